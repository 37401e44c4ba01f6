//! Job definitions with ordered steps and their executions (the OCAPI model).

use jobstore::{
    ClaimRequest, Definition, DefinitionStep, Error, Execution, Failure, State, StepReport,
    StepStatus,
};
use serde_json::json;

use crate::support::Fixture;

fn definition(id: &str) -> Definition {
    let mut def = Definition::new(
        id,
        "batch",
        vec![
            DefinitionStep {
                step_id: "export-catalog".into(),
                step_type_id: "ExportCatalog".into(),
                description: "export the catalog".into(),
                execution_scope: "Organization".into(),
            },
            DefinitionStep::new("transfer", "TransferFiles"),
            DefinitionStep::new("notify", "SendMail"),
        ],
    );
    def.description = "nightly export".into();
    def
}

fn report(status: StepStatus, code: Option<&str>) -> StepReport {
    StepReport {
        status,
        exit_code: code.map(str::to_owned),
        message: None,
    }
}

#[test]
fn definitions_are_stored_replaced_and_listed_with_ordered_steps() {
    let f = Fixture::new();
    let stored = f.store.put_definition(definition("nightly")).unwrap();
    assert_eq!(stored.steps.len(), 3);
    assert_eq!(stored.steps[0].execution_scope, "Organization");
    assert_eq!(f.store.definition("nightly").unwrap(), stored);

    let mut shorter = definition("nightly");
    shorter.steps.truncate(1);
    shorter.queue = "exports".into();
    let replaced = f.store.put_definition(shorter).unwrap();
    assert_eq!(replaced.steps.len(), 1);
    assert_eq!(replaced.queue, "exports");
    f.store.put_definition(definition("another")).unwrap();
    let ids: Vec<String> = f
        .store
        .definitions()
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec!["another", "nightly"]);
    assert!(matches!(
        f.store.definition("missing"),
        Err(Error::DefinitionNotFound { id }) if id == "missing"
    ));
    // Another tenant does not see them.
    let other = f.store.with_scope(jobstore::Scope::Tenant("acme".into()));
    assert!(matches!(
        other.definition("nightly"),
        Err(Error::DefinitionNotFound { .. })
    ));

    let mut duplicate = definition("dup");
    duplicate.steps.push(DefinitionStep::new("transfer", "X"));
    assert!(matches!(
        f.store.put_definition(duplicate),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn an_execution_runs_its_steps_and_one_at_a_time_is_live() {
    let f = Fixture::new();
    f.store.put_definition(definition("nightly")).unwrap();
    let job = f
        .store
        .execute(
            "nightly",
            Execution {
                payload: json!({"parameters": [{"name": "site", "value": "eu"}]}),
                created_by: "client-1".into(),
                ..Execution::default()
            },
        )
        .unwrap();
    assert_eq!(job.state, State::Queued);
    assert_eq!(job.kind, "nightly");
    assert_eq!(job.queue, "batch");
    assert_eq!(job.definition_id.as_deref(), Some("nightly"));
    let steps = f.store.steps(job.id).unwrap();
    assert_eq!(steps.len(), 3);
    assert!(steps.iter().all(|s| s.status == StepStatus::Pending));

    match f.store.execute("nightly", Execution::default()) {
        Err(Error::JobAlreadyRunning { job: holder, .. }) => assert_eq!(holder, job.id),
        other => panic!("expected JobAlreadyRunning, got {other:?}"),
    }

    f.clock.advance(10);
    let lease = f
        .store
        .claim(&ClaimRequest::new("w", "batch"))
        .unwrap()
        .remove(0)
        .lease()
        .unwrap();
    f.store
        .report_step(
            job.id,
            &lease,
            "export-catalog",
            report(StepStatus::Running, None),
        )
        .unwrap();
    f.clock.advance(100);
    f.store
        .report_step(
            job.id,
            &lease,
            "export-catalog",
            report(StepStatus::Ok, Some("OK")),
        )
        .unwrap();
    // Finishing a finished step again is refused.
    assert!(matches!(
        f.store.report_step(
            job.id,
            &lease,
            "export-catalog",
            report(StepStatus::Running, None)
        ),
        Err(Error::InvalidStepTransition { .. })
    ));
    assert!(matches!(
        f.store
            .report_step(job.id, &lease, "nope", report(StepStatus::Running, None)),
        Err(Error::StepNotFound { .. })
    ));
    let steps = f.store.steps(job.id).unwrap();
    assert_eq!(steps[0].status, StepStatus::Ok);
    assert_eq!(steps[0].exit_code.as_deref(), Some("OK"));
    assert_eq!(
        steps[0].finished_at.unwrap() - steps[0].started_at.unwrap(),
        100
    );
    f.store
        .report_step(
            job.id,
            &lease,
            "transfer",
            report(StepStatus::Error, Some("ERROR")),
        )
        .unwrap();
    f.store
        .fail(job.id, &lease, Failure::fatal("transfer failed"))
        .unwrap();

    // Once it failed, a new execution may start.
    let restarted = f
        .store
        .execute(
            "nightly",
            Execution {
                restart: true,
                ..Execution::default()
            },
        )
        .unwrap();
    assert_eq!(restarted.restart_of, Some(job.id));
    let steps: Vec<StepStatus> = f
        .store
        .steps(restarted.id)
        .unwrap()
        .iter()
        .map(|s| s.status)
        .collect();
    assert_eq!(
        steps,
        vec![StepStatus::Ok, StepStatus::Pending, StepStatus::Pending]
    );
    // A restart needs a failed or cancelled latest execution.
    assert!(matches!(
        f.store.execute(
            "nightly",
            Execution {
                restart: true,
                ..Execution::default()
            }
        ),
        Err(Error::JobAlreadyRunning { .. })
    ));
    f.store.cancel(restarted.id, "").unwrap();
    let lease = f.store.claim(&ClaimRequest::new("w", "batch")).unwrap();
    assert!(lease.is_empty());
    let fresh = f.store.execute("nightly", Execution::default()).unwrap();
    f.store.cancel(fresh.id, "").unwrap();
    f.store.put_definition(definition("other")).unwrap();
    assert!(matches!(
        f.store.execute(
            "other",
            Execution {
                restart: true,
                ..Execution::default()
            }
        ),
        Err(Error::NothingToRestart { .. })
    ));
}

#[test]
fn invalid_disabled_or_unrestartable_definitions_are_refused() {
    let f = Fixture::new();
    let mut invalid = definition("invalid");
    invalid.valid = false;
    f.store.put_definition(invalid).unwrap();
    assert!(matches!(
        f.store.execute("invalid", Execution::default()),
        Err(Error::DefinitionInvalid { cause, .. }) if cause.contains("invalid")
    ));
    f.store
        .put_definition(Definition::new("empty", "batch", vec![]))
        .unwrap();
    assert!(matches!(
        f.store.execute("empty", Execution::default()),
        Err(Error::DefinitionInvalid { cause, .. }) if cause.contains("no steps")
    ));
    let mut disabled = definition("disabled");
    disabled.enabled = false;
    f.store.put_definition(disabled).unwrap();
    assert!(matches!(
        f.store.execute("disabled", Execution::default()),
        Err(Error::DefinitionDisabled { .. })
    ));
    assert!(matches!(
        f.store.execute("missing", Execution::default()),
        Err(Error::DefinitionNotFound { .. })
    ));
    let mut fixed = definition("fixed");
    fixed.restartable = false;
    f.store.put_definition(fixed).unwrap();
    let job = f.store.execute("fixed", Execution::default()).unwrap();
    assert!(!job.restartable);
    f.store.cancel(job.id, "").unwrap();
    assert!(matches!(
        f.store.execute(
            "fixed",
            Execution {
                restart: true,
                ..Execution::default()
            }
        ),
        Err(Error::NotRestartable { .. })
    ));
    assert!(matches!(
        f.store.restart(job.id, ""),
        Err(Error::NotRestartable { .. })
    ));
}
