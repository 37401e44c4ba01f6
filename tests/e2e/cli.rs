//! The command line on the daemon's database file: `jobs list`, `jobs show`, `jobs output`,
//! `check` and `backup`, while the daemon runs (online backup) and after it stopped.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use serde_json::{Value, json};

use crate::support::{Daemon, id_of, jobstore};

/// `jobstore --db DB ARGS...`.
fn on(db: &Path, args: &[&str]) -> crate::support::Output {
    let mut all: Vec<OsString> = vec!["--db".into(), db.into()];
    all.extend(args.iter().map(OsString::from));
    jobstore(all)
}

/// The ids and states `jobs list --json` prints.
fn listed(db: &Path) -> BTreeSet<(i64, String)> {
    let output = on(db, &["jobs", "list", "--json", "--limit", "1000"]);
    let jobs: Value = serde_json::from_str(output.success())
        .unwrap_or_else(|err| panic!("jobs list --json is not JSON ({err}): {}", output.stdout));
    jobs.as_array()
        .expect("a JSON array of jobs")
        .iter()
        .map(|j| (id_of(j), j["state"].as_str().expect("state").to_owned()))
        .collect()
}

#[test]
fn jobs_check_and_backup_on_the_database_file() {
    crate::support::sqlite_only!(
        "backs the file up online and reads the copy (postgres.rs runs the commands on a URL)"
    );
    let mut daemon = Daemon::start();
    let api = daemon.client();
    let first = id_of(&api.create(&json!({"kind": "export", "name": "first"})));
    let second = id_of(&api.create(&json!({"kind": "import", "queue": "q"})));
    let third = id_of(&api.create(&json!({"kind": "sync"})));
    let lease = api.claim("w", "q", 1);
    let token = lease[0]["lease_token"].as_i64().unwrap();
    api.post(
        &format!("/v1/jobs/{second}/complete"),
        &json!({"worker": "w", "lease_token": token, "result": {"rows": 3}}),
    )
    .expect(200);
    api.post(&format!("/v1/jobs/{third}/cancel"), &json!({}))
        .expect(200);
    let expected = BTreeSet::from([
        (first, "queued".to_owned()),
        (second, "succeeded".to_owned()),
        (third, "cancelled".to_owned()),
    ]);
    assert_eq!(api.all_jobs(), expected);

    // An online backup while the daemon runs.
    let db = daemon.db();
    let online = daemon.dir().join("online-backup.db");
    on(&db, &["backup", online.to_str().unwrap()]).success();
    assert_eq!(listed(&online), expected);

    let mut served = api.get(&format!("/v1/jobs/{second}")).expect_json(200);
    daemon.stop();

    assert_eq!(listed(&db), expected);

    // The human table names every job, with its creation time in human form.
    let table = on(&db, &["jobs", "list"]);
    let table = table.success();
    assert!(
        table.lines().next().is_some_and(|h| h.ends_with("CREATED")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .skip(1)
            .all(|l| l.ends_with(" ago") || l.ends_with("just now")),
        "{table}"
    );
    for id in [first, second, third] {
        assert!(
            table
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&id.to_string())),
            "job {id} missing from:\n{table}"
        );
    }

    let shown = on(&db, &["jobs", "show", &second.to_string(), "--json"]);
    let shown: Value = serde_json::from_str(shown.success()).unwrap();
    assert_eq!(shown["job"]["id"], second);
    assert_eq!(shown["job"]["state"], "succeeded");
    assert_eq!(shown["job"]["result"], json!({"rows": 3}));
    // The same document as the native API's, but for what only one job's answer carries.
    for member in ["steps", "data_batches", "data_bytes", "batches"] {
        served.as_object_mut().map(|doc| doc.remove(member));
    }
    assert_eq!(
        shown["job"], served,
        "`jobs show --json` and GET /v1/jobs/{{id}} differ"
    );
    let events: Vec<&str> = shown["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .filter(|e| *e != "heartbeat")
        .collect();
    assert_eq!(events, ["create", "claim", "complete"]);
    let human = on(&db, &["jobs", "show", &first.to_string()]);
    let human = human.success();
    assert!(
        human.contains("export") && human.contains("create"),
        "{human}"
    );
    // History times are readable: UTC to the millisecond and how long ago.
    let history = human
        .lines()
        .find(|l| l.contains(" create "))
        .unwrap_or_else(|| panic!("no create event in {human}"));
    assert!(
        history.contains(" UTC (") && (history.contains(" ago)") || history.contains("just now)")),
        "{history}"
    );
    assert!(human.lines().any(|l| l.starts_with("created ")), "{human}");
    let missing = on(&db, &["jobs", "show", "999999"]);
    assert!(
        !missing.status.success(),
        "showing an unknown job succeeded"
    );

    let check = on(&db, &["check"]);
    assert_eq!(check.success().trim(), "ok");

    let dest = daemon.dir().join("backup.db");
    on(&db, &["backup", dest.to_str().unwrap()]).success();
    assert!(dest.is_file());
    assert_eq!(listed(&dest), expected);
    assert_eq!(on(&dest, &["check"]).success().trim(), "ok");

    // A new daemon on the file serves the same jobs.
    let daemon = daemon.restart(crate::support::Options::default());
    assert_eq!(daemon.client().all_jobs(), expected);
}

/// `jobs output` lists a job's named outputs and prints one whole, byte for byte, as a worker
/// uploaded it in several batches; a name the job has not is an error naming it.
#[test]
fn jobs_output_lists_and_prints_a_jobs_outputs() {
    crate::support::sqlite_only!(
        "reads the daemon's file (postgres.rs runs the commands on a URL)"
    );
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "ingest", "queue": "out"})));
    let token = api.claim("w", "out", 1)[0]["lease_token"]
        .as_i64()
        .unwrap_or_default();
    let octets = [("Content-Type", "application/octet-stream")];
    let path = format!("/v1/jobs/{id}/outputs/results%2Ffailed?worker=w&lease_token={token}");
    for part in [
        "sf__Id,sf__Error,Name\n",
        "1,DUPLICATE_VALUE,Ada\n",
        "2,REQUIRED_FIELD_MISSING,\n",
    ] {
        api.request("PUT", &path, &octets, part.as_bytes().to_vec())
            .expect(201);
    }
    let db = daemon.db();
    let whole = "sf__Id,sf__Error,Name\n1,DUPLICATE_VALUE,Ada\n2,REQUIRED_FIELD_MISSING,\n";
    let table = on(&db, &["jobs", "output", &id.to_string()]);
    let row = table
        .success()
        .lines()
        .find(|line| line.starts_with("results/failed"))
        .unwrap_or_else(|| panic!("no row for results/failed: {}", table.stdout));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["results/failed", "3", &whole.len().to_string()]);
    let printed = on(&db, &["jobs", "output", &id.to_string(), "results/failed"]);
    assert_eq!(printed.success(), whole);
    let missing = on(&db, &["jobs", "output", &id.to_string(), "results/none"]);
    assert!(!missing.status.success(), "{}", missing.stdout);
    assert!(
        missing.stderr.contains("results/none"),
        "{}",
        missing.stderr
    );
}
