//! Listing jobs: filters, sort fields and directions, page sizes, cursors, and the faults of a
//! bad query.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{Client, Daemon, assert_error, encode, id_of};

/// The jobs of one list answer.
fn jobs(page: &Value) -> Vec<Value> {
    page["jobs"].as_array().expect("jobs array").clone()
}

fn ids(page: &Value) -> Vec<i64> {
    jobs(page).iter().map(id_of).collect()
}

/// Follows `next_cursor` from `query` to the end; answers every id in the order served.
fn page_through(api: &Client, query: &str) -> (Vec<i64>, usize) {
    let mut all = Vec::new();
    let mut pages = 0;
    let mut path = format!("/v1/jobs?{query}");
    loop {
        let page = api.get(&path).expect_json(200);
        pages += 1;
        assert!(pages < 100, "paging does not end");
        all.extend(ids(&page));
        match &page["next_cursor"] {
            Value::String(cursor) => path = format!("/v1/jobs?{query}&cursor={}", encode(cursor)),
            Value::Null => return (all, pages),
            other => panic!("next_cursor is {other}"),
        }
    }
}

/// 12 jobs: kinds `a`/`b`/`c`, queues `q1`/`q2`; two claimed (running), two cancelled.
fn populate(api: &Client) -> Vec<i64> {
    let mut created = Vec::new();
    for i in 0..12 {
        let kind = ["a", "b", "c"][i % 3];
        let queue = if i % 2 == 0 { "q1" } else { "q2" };
        created.push(id_of(&api.create(&json!({
            "kind": kind, "queue": queue, "name": format!("job-{i:02}")
        }))));
    }
    assert_eq!(api.claim("w", "q1", 2).len(), 2);
    for id in &created[10..12] {
        api.post(&format!("/v1/jobs/{id}/cancel"), &json!({}))
            .expect(200);
    }
    created
}

#[test]
fn filters_sorting_and_cursor_paging() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let created = populate(&api);
    let all: BTreeSet<i64> = created.iter().copied().collect();

    let everything = api.get("/v1/jobs?limit=100").expect_json(200);
    assert_eq!(ids(&everything).len(), 12);
    assert_eq!(everything["next_cursor"], Value::Null);

    // Repeated `state`: the union of the states.
    let page = api
        .get("/v1/jobs?state=running&state=cancelled&limit=100")
        .expect_json(200);
    let listed = jobs(&page);
    assert_eq!(listed.len(), 4, "{page}");
    assert!(
        listed
            .iter()
            .all(|j| j["state"] == "running" || j["state"] == "cancelled")
    );
    let page = api.get("/v1/jobs?state=queued&limit=100").expect_json(200);
    assert_eq!(jobs(&page).len(), 8);

    let page = api.get("/v1/jobs?kind=a&limit=100").expect_json(200);
    assert_eq!(jobs(&page).len(), 4);
    assert!(jobs(&page).iter().all(|j| j["kind"] == "a"));

    let page = api.get("/v1/jobs?queue=q2&limit=100").expect_json(200);
    assert_eq!(jobs(&page).len(), 6);
    assert!(jobs(&page).iter().all(|j| j["queue"] == "q2"));

    let page = api
        .get("/v1/jobs?kind=a&queue=q1&state=queued&limit=100")
        .expect_json(200);
    let expected = jobs(&everything)
        .iter()
        .filter(|j| j["kind"] == "a" && j["queue"] == "q1" && j["state"] == "queued")
        .count();
    assert!(expected > 0);
    assert_eq!(jobs(&page).len(), expected, "{page}");
    for job in jobs(&page) {
        assert_eq!(job["kind"], "a");
        assert_eq!(job["queue"], "q1");
        assert_eq!(job["state"], "queued");
    }

    // Sort by id both ways.
    let up = ids(&api
        .get("/v1/jobs?sort=id&order=asc&limit=100")
        .expect_json(200));
    let mut sorted = created.clone();
    sorted.sort_unstable();
    assert_eq!(up, sorted);
    let down = ids(&api
        .get("/v1/jobs?sort=id&order=desc&limit=100")
        .expect_json(200));
    sorted.reverse();
    assert_eq!(down, sorted);

    // Sort by a text field.
    let by_name = jobs(
        &api.get("/v1/jobs?sort=name&order=desc&limit=100")
            .expect_json(200),
    );
    let names: Vec<&str> = by_name
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    let mut expected_names = names.clone();
    expected_names.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(names, expected_names);

    // A page size.
    let first = api
        .get("/v1/jobs?sort=id&order=asc&limit=5")
        .expect_json(200);
    assert_eq!(ids(&first).len(), 5);
    assert!(first["next_cursor"].is_string(), "{first}");

    // Cursors walk every job exactly once, on a unique field and on one with ties.
    for query in [
        "sort=id&order=asc&limit=5",
        "sort=id&order=desc&limit=5",
        "sort=kind&order=asc&limit=4",
        "sort=state&order=desc&limit=3",
        "sort=created_at&order=asc&limit=1",
        "kind=b&sort=name&order=asc&limit=2",
    ] {
        let (walked, pages) = page_through(&api, query);
        let unique: BTreeSet<i64> = walked.iter().copied().collect();
        assert_eq!(
            unique.len(),
            walked.len(),
            "repeats with {query}: {walked:?}"
        );
        if query.starts_with("kind=b") {
            assert_eq!(walked.len(), 4, "{query}");
            assert_eq!(pages, 2, "{query}: 4 jobs in pages of 2");
        } else {
            assert_eq!(unique, all, "{query}");
        }
        if query.starts_with("sort=id&order=asc") {
            let mut sorted = walked.clone();
            sorted.sort_unstable();
            assert_eq!(walked, sorted);
        }
    }
}

#[test]
fn bad_list_queries_are_400() {
    let daemon = Daemon::start();
    let api = daemon.client();
    api.create(&json!({"kind": "a"}));

    let message = assert_error(&api.get("/v1/jobs?sort=bogus"), 400, "unknown_sort_field");
    assert!(message.contains("bogus"), "{message}");
    // A sort field is not SQL.
    assert_error(
        &api.get("/v1/jobs?sort=id%3B%20DROP%20TABLE%20jobs"),
        400,
        "unknown_sort_field",
    );
    let message = assert_error(&api.get("/v1/jobs?colour=red"), 400, "invalid_request");
    assert!(message.contains("colour"), "{message}");
    for query in ["limit=0", "limit=-1", "limit=abc", "limit=100000"] {
        assert_error(
            &api.get(&format!("/v1/jobs?{query}")),
            400,
            "invalid_request",
        );
    }
    assert_error(&api.get("/v1/jobs?order=sideways"), 400, "invalid_request");
    assert_error(&api.get("/v1/jobs?state=sleeping"), 400, "invalid_request");
    assert_error(
        &api.get("/v1/jobs?cursor=not-a-cursor"),
        400,
        "invalid_cursor",
    );
    assert_error(
        &api.get("/v1/jobs?created_after=yesterday"),
        400,
        "invalid_request",
    );

    // The daemon still serves, and the job is still there.
    assert_eq!(ids(&api.get("/v1/jobs").expect_json(200)).len(), 1);
}

#[test]
fn filters_on_source_target_creator_and_time() {
    let (_daemon, [alice, bob]) =
        Daemon::with_tokens([("alice", "t", "read,write"), ("bob", "t", "read,write")]);
    let one = alice.create(&json!({"kind": "k", "source": "crm", "target": "s3"}));
    let two = bob.create(&json!({"kind": "k", "source": "crm", "target": "gcs"}));
    let three = bob.create(&json!({"kind": "k", "source": "erp", "target": "s3"}));
    let select = |query: &str| {
        let mut found = ids(&alice.get(&format!("/v1/jobs?{query}")).expect_json(200));
        found.sort_unstable();
        found
    };
    assert_eq!(select("source=crm"), [id_of(&one), id_of(&two)]);
    assert_eq!(select("target=s3"), [id_of(&one), id_of(&three)]);
    assert_eq!(select("source=crm&target=s3"), [id_of(&one)]);
    assert_eq!(select("created_by=bob"), [id_of(&two), id_of(&three)]);
    assert_eq!(
        select("source=erp&source=crm&created_by=alice"),
        [id_of(&one)]
    );

    let created: Vec<i64> = [&one, &two, &three]
        .iter()
        .map(|j| j["created_at"].as_i64().unwrap())
        .collect();
    let (low, high) = (created[0], created[2]);
    let everything = select(&format!(
        "created_after={}&created_before={}",
        low - 1,
        high + 1
    ));
    assert_eq!(everything.len(), 3);
    assert!(select(&format!("created_after={}", high + 1)).is_empty());
    assert!(select(&format!("created_before={}", low - 1)).is_empty());
}
