//! Job definitions: create, read, list, execute (one live execution at a time), and a worker
//! reporting each step.

use serde_json::{Value, json};

use crate::support::{Daemon, assert_error, id_of};

fn steps_of(job: &Value) -> Vec<Value> {
    job["steps"].as_array().expect("steps array").clone()
}

#[test]
fn definitions_executions_and_steps() {
    let daemon = Daemon::start();
    let api = daemon.client();

    let definition = json!({
        "description": "Nightly export",
        "queue": "ocapi",
        "restartable": true,
        "steps": [
            {"step_id": "extract", "step_type_id": "sql.read",
             "description": "read the rows", "execution_scope": "site-a"},
            {"step_id": "load", "step_type_id": "s3.write",
             "description": "write the file", "execution_scope": "site-a"}
        ]
    });
    let stored = api
        .put("/v1/definitions/nightly-export", &definition)
        .expect_json(200);
    assert_eq!(stored["id"], "nightly-export");
    assert_eq!(stored["description"], "Nightly export");
    assert_eq!(stored["queue"], "ocapi");
    assert_eq!(stored["restartable"], true);
    assert_eq!(stored["steps"], definition["steps"]);

    let fetched = api.get("/v1/definitions/nightly-export").expect_json(200);
    assert_eq!(fetched["id"], "nightly-export");
    assert_eq!(fetched["steps"], definition["steps"]);

    api.put(
        "/v1/definitions/cleanup",
        &json!({"steps": [{"step_id": "purge"}]}),
    )
    .expect(200);
    let listed = api.get("/v1/definitions").expect_json(200);
    let mut names: Vec<&str> = listed["definitions"]
        .as_array()
        .expect("definitions array")
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["cleanup", "nightly-export"]);

    assert_error(
        &api.get("/v1/definitions/missing"),
        404,
        "definition_not_found",
    );
    assert_error(
        &api.post("/v1/definitions/missing/executions", &json!({})),
        404,
        "definition_not_found",
    );
    assert_error(
        &api.put(
            "/v1/definitions/bad",
            &json!({"steps": [{"step_id": "x", "oops": 1}]}),
        ),
        400,
        "invalid_json",
    );

    // Execute: a queued job of the definition with one pending step per step.
    let execution = api
        .post(
            "/v1/definitions/nightly-export/executions",
            &json!({"payload": {"date": "2024-05-01"}}),
        )
        .expect_json(201);
    let id = id_of(&execution);
    assert_eq!(execution["definition_id"], "nightly-export");
    assert_eq!(execution["state"], "queued");
    assert_eq!(execution["queue"], "ocapi");
    assert_eq!(execution["payload"], json!({"date": "2024-05-01"}));
    let job = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    let steps = steps_of(&job);
    assert_eq!(steps.len(), 2, "{job}");
    for (i, (step, want)) in steps.iter().zip(["extract", "load"]).enumerate() {
        assert_eq!(step["step_id"], want);
        assert_eq!(step["position"], i);
        assert_eq!(step["status"], "pending");
        assert_eq!(step["started_at"], Value::Null);
    }
    assert_eq!(steps[0]["step_type_id"], "sql.read");
    assert_eq!(steps[0]["execution_scope"], "site-a");

    // One live execution at a time.
    let second = api.post("/v1/definitions/nightly-export/executions", &json!({}));
    assert_error(&second, 409, "job_already_running");

    // A worker runs it and reports each step.
    let claimed = api.claim("runner", "ocapi", 1);
    assert_eq!(id_of(&claimed[0]), id);
    let token = claimed[0]["lease_token"].as_i64().unwrap();
    let report = |step: &str, body: Value| api.post(&format!("/v1/jobs/{id}/steps/{step}"), &body);

    let answer = report(
        "extract",
        json!({"worker": "runner", "lease_token": token, "status": "running"}),
    )
    .expect_json(200);
    let extract = &steps_of(&answer)[0];
    assert_eq!(extract["status"], "running");
    assert!(extract["started_at"].is_i64(), "{answer}");

    let answer = report(
        "extract",
        json!({"worker": "runner", "lease_token": token, "status": "ok",
               "exit_code": "OK", "message": "read 10 rows"}),
    )
    .expect_json(200);
    let extract = &steps_of(&answer)[0];
    assert_eq!(extract["status"], "ok");
    assert_eq!(extract["exit_code"], "OK");
    assert_eq!(extract["message"], "read 10 rows");
    assert!(extract["finished_at"].is_i64(), "{answer}");
    assert_eq!(steps_of(&answer)[1]["status"], "pending");

    // Faults: an unknown step, a stale lease, a status that is not a report, a bad body.
    assert_error(
        &report(
            "transform",
            json!({"worker": "runner", "lease_token": token, "status": "running"}),
        ),
        404,
        "step_not_found",
    );
    assert_error(
        &report(
            "load",
            json!({"worker": "runner", "lease_token": token + 1, "status": "running"}),
        ),
        409,
        "stale_lease",
    );
    assert_error(
        &report(
            "load",
            json!({"worker": "intruder", "lease_token": token, "status": "running"}),
        ),
        409,
        "stale_lease",
    );
    for status in ["pending", "done"] {
        assert_error(
            &report(
                "load",
                json!({"worker": "runner", "lease_token": token, "status": status}),
            ),
            400,
            "invalid_request",
        );
    }
    assert_error(
        &report("load", json!({"worker": "runner", "status": "running"})),
        400,
        "invalid_json",
    );

    report(
        "load",
        json!({"worker": "runner", "lease_token": token, "status": "running"}),
    )
    .expect(200);
    let answer = report(
        "load",
        json!({"worker": "runner", "lease_token": token, "status": "error",
               "exit_code": "ERROR", "message": "bucket missing"}),
    )
    .expect_json(200);
    let load = &steps_of(&answer)[1];
    assert_eq!(load["status"], "error");
    assert_eq!(load["exit_code"], "ERROR");
    assert_eq!(load["message"], "bucket missing");

    let job = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    let steps = steps_of(&job);
    assert_eq!(
        (&steps[0]["status"], &steps[1]["status"]),
        (&json!("ok"), &json!("error"))
    );

    // The execution fails; a restart runs it again, keeping the step that finished ok.
    api.post(
        &format!("/v1/jobs/{id}/fail"),
        &json!({"worker": "runner", "lease_token": token, "error": "load failed", "retryable": false}),
    )
    .expect(200);
    let restarted = api
        .post(
            "/v1/definitions/nightly-export/executions",
            &json!({"restart": true}),
        )
        .expect_json(201);
    let again = id_of(&restarted);
    assert_ne!(again, id);
    assert_eq!(restarted["state"], "queued");
    assert_eq!(restarted["restart_of"], id);
    let steps = steps_of(&api.get(&format!("/v1/jobs/{again}")).expect_json(200));
    assert_eq!(
        (&steps[0]["status"], &steps[1]["status"]),
        (&json!("ok"), &json!("pending"))
    );
    assert_error(
        &api.post("/v1/definitions/nightly-export/executions", &json!({})),
        409,
        "job_already_running",
    );

    // It succeeds; a plain execution runs again from scratch.
    let token = api.claim("runner", "ocapi", 1)[0]["lease_token"]
        .as_i64()
        .unwrap();
    api.post(
        &format!("/v1/jobs/{again}/complete"),
        &json!({"worker": "runner", "lease_token": token, "result": {}}),
    )
    .expect(200);
    let fresh = api
        .post("/v1/definitions/nightly-export/executions", &json!({}))
        .expect_json(201);
    assert_eq!(fresh["state"], "queued");
    let steps = steps_of(
        &api.get(&format!("/v1/jobs/{}", id_of(&fresh)))
            .expect_json(200),
    );
    assert!(steps.iter().all(|s| s["status"] == "pending"), "{steps:?}");

    // A disabled definition does not execute.
    api.put(
        "/v1/definitions/cleanup",
        &json!({"steps": [{"step_id": "purge"}], "enabled": false}),
    )
    .expect(200);
    assert_error(
        &api.post("/v1/definitions/cleanup/executions", &json!({})),
        409,
        "definition_disabled",
    );
}
