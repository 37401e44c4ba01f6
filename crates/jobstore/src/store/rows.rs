//! The small helpers every family of store calls shares: reading a job that must exist,
//! writing an event, asking the state machine, checking a lease, sizes, backoff.

use crate::driver::{EventRow, Reader, WriteTx};
use crate::model::{Job, Lease};
use crate::state::{Event, State};
use crate::{Error, Result};

/// Reads one job visible in the scope (`tenant` `None`: any tenant).
///
/// # Errors
/// [`Error::JobNotFound`] when there is none.
pub(crate) fn load_job<R: Reader + ?Sized>(
    tx: &mut R,
    tenant: Option<&str>,
    id: i64,
) -> Result<Job> {
    tx.load_job(tenant, id)?.ok_or(Error::JobNotFound { id })
}

/// Reads one job visible in the scope that the write is about to change, and holds it until
/// the write ends ([`WriteTx::lock_job`]): on an engine with several writers, another write
/// of the job waits instead of changing it between this read and this write's statements.
///
/// # Errors
/// [`Error::JobNotFound`] when there is none.
pub(crate) fn lock_job(tx: &mut dyn WriteTx, tenant: Option<&str>, id: i64) -> Result<Job> {
    tx.lock_job(tenant, id)?.ok_or(Error::JobNotFound { id })
}

/// Refuses a name or key holding U+0000, which PostgreSQL's text cannot hold: alike on every
/// engine (a text kept for reading is made [`readable`] instead).
///
/// # Errors
/// [`Error::InvalidInput`] naming `field`.
pub(crate) fn refuse_nul(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid(field, "must not contain U+0000 (NUL)"));
    }
    Ok(())
}

/// A worker's text kept for reading (a log line, an error, a phase, a step's message): a
/// command's output may carry U+0000, which PostgreSQL's text cannot hold, so every engine
/// keeps it as U+FFFD.
pub(crate) fn readable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text
    }
}

/// Appends one event; called in the write that made the transition.
pub(crate) fn insert_event(tx: &mut dyn WriteTx, event: &EventRow<'_>) -> Result<()> {
    tx.insert_events(std::slice::from_ref(event))
}

/// Asks the state machine, naming the job in a refusal.
pub(crate) fn next_state(job: &Job, event: Event) -> Result<State> {
    crate::state::transition(Some(job.state), event).map_err(|err| match err {
        Error::InvalidTransition { from, event, .. } => Error::InvalidTransition {
            job: job.id,
            from,
            event,
        },
        other => other,
    })
}

/// Checks that `lease` is the job's current lease.
///
/// # Errors
/// [`Error::StaleLease`] when the job is not running or runs under another lease.
pub(crate) fn check_lease(job: &Job, lease: &Lease) -> Result<()> {
    let current = job.state == State::Running
        && job.lease_owner.as_deref() == Some(lease.worker.as_str())
        && job.lease_token == Some(lease.token);
    if current {
        Ok(())
    } else {
        Err(Error::StaleLease {
            job: job.id,
            worker: lease.worker.clone(),
            lease_token: lease.token,
        })
    }
}

/// Refuses a JSON document larger than `limit` bytes.
pub(crate) fn check_document(field: &str, text: &str, limit: usize) -> Result<()> {
    if text.len() > limit {
        Err(Error::invalid(
            field,
            format!(
                "document of {} bytes exceeds the limit of {limit}",
                text.len()
            ),
        ))
    } else {
        Ok(())
    }
}

/// The delay before retry number `attempt` (1-based): `base · 2^(attempt-1)`, capped at
/// `max`, plus up to a quarter of it at random so that failed jobs do not retry in lockstep.
pub(crate) fn backoff_ms(attempt: i64, base_ms: i64, max_ms: i64) -> i64 {
    let exponent = u32::try_from((attempt - 1).clamp(0, 40)).unwrap_or(40);
    let delay = base_ms
        .saturating_mul(2_i64.saturating_pow(exponent))
        .min(max_ms)
        .max(0);
    delay + fastrand::i64(0..=delay / 4)
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;
    use crate::{ClaimRequest, Definition, DefinitionStep, Execution, Heartbeat, NewJob, Store};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Numbers at the edges of what a JSON document holds exactly, and floats the default
    /// parsing would read back one unit in the last place off.
    fn edge_numbers() -> Value {
        json!({
            "i64_max": i64::MAX, "i64_min": i64::MIN, "u64_max": u64::MAX,
            "tenth": 0.1, "small": 1e-7, "negative_zero": -0.0, "huge": 1e300,
            "tiny": 5e-324, "drifting": [-3_299.581_019_663_067_8, 1_010_851.413_233_845_3],
            "nested": [{"n": 12_345_678_901_234_567_u64}]
        })
    }

    #[test]
    fn payload_result_progress_and_execution_payload_read_back_as_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("jobs.db")).expect("open");
        let numbers = edge_numbers();
        let job = store
            .enqueue(NewJob::new("x").queue("q").payload(numbers.clone()))
            .expect("enqueue");
        assert_eq!(store.get(job.id).expect("get").payload, numbers);
        let claimed = store.claim(&ClaimRequest::new("w", "q")).expect("claim");
        let lease = claimed[0].lease().expect("lease");
        // Progress is merged in SQL (json_patch): its numbers keep their text.
        for progress in [
            numbers.clone(),
            json!({"more": 2.5e-3, "u64_max": u64::MAX}),
        ] {
            let beat = Heartbeat {
                progress: Some(progress),
                ..Heartbeat::default()
            };
            store.heartbeat(job.id, &lease, beat).expect("heartbeat");
        }
        let mut merged = numbers.clone();
        merged["more"] = json!(2.5e-3);
        assert_eq!(store.get(job.id).expect("get").progress, merged);
        let done = store
            .complete(job.id, &lease, numbers.clone())
            .expect("complete");
        assert_eq!(done.result, Some(numbers.clone()));
        assert_eq!(
            store.get(job.id).expect("get").result,
            Some(numbers.clone())
        );

        let steps = vec![DefinitionStep::new("s1", "t")];
        store
            .put_definition(Definition::new("def", "batch", steps))
            .expect("definition");
        let execution = Execution {
            payload: json!({"parameters": numbers.clone()}),
            ..Execution::default()
        };
        let run = store.execute("def", execution).expect("execute");
        let read = store.get(run.id).expect("get");
        assert_eq!(read.payload, json!({"parameters": numbers}));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_number_in_a_payload_reads_back_as_stored(
            bits in prop::collection::vec(any::<u64>(), 1..16),
            signed in any::<i64>(),
            unsigned in any::<u64>(),
        ) {
            let floats: Vec<Value> = bits
                .into_iter()
                .map(f64::from_bits)
                .filter(|f| f.is_finite())
                .map(Value::from)
                .collect();
            let payload = json!({"floats": floats, "i": signed, "u": unsigned});
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Store::open(dir.path().join("jobs.db")).expect("open");
            let job = store.enqueue(NewJob::new("x").payload(payload.clone())).expect("enqueue");
            prop_assert_eq!(store.get(job.id).expect("get").payload, payload);
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempt in 1..60 {
            let delay = backoff_ms(attempt, 1000, 3_600_000);
            let base = (1000_i64 << (attempt - 1).min(40)).min(3_600_000);
            assert!(
                delay >= base && delay <= base + base / 4,
                "{attempt}: {delay}"
            );
        }
    }
}
