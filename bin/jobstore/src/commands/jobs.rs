//! `jobstore jobs`: list, show, cancel, restart and delete jobs of every tenant, printed as
//! tables or JSON, and print a job's named outputs.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use jobstore::{Direction, Job, ListQuery, SortField, State, Store};
use jobstore_http::{EventDocument, JobDocument, StepDocument};

use super::human;
use crate::cli::JobsCommand;

/// Runs one `jobstore jobs …` command on `store`.
pub(crate) fn run(store: &Store, command: JobsCommand) -> Result<ExitCode> {
    match command {
        JobsCommand::List {
            state,
            kind,
            queue,
            sort,
            order,
            limit,
            json,
        } => {
            let query = ListQuery {
                states: state
                    .iter()
                    .map(|s| s.parse::<State>())
                    .collect::<jobstore::Result<_>>()?,
                kinds: kind,
                queues: queue,
                sort: Some(sort.parse::<SortField>()?),
                direction: order.parse::<Direction>()?,
                limit: Some(limit),
                ..ListQuery::default()
            };
            let page = store.list(&query)?;
            if json {
                // The native API's documents: the same JSON as `GET /v1/jobs`.
                let jobs: Vec<JobDocument> = page.jobs.into_iter().map(JobDocument::from).collect();
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                print_table(&page.jobs, store.now());
            }
        }
        JobsCommand::Show { id, json } => {
            let job = store.get(id)?;
            let steps = store.steps(id)?;
            let events = store.events(id)?;
            if json {
                let doc = serde_json::json!({
                    "job": JobDocument::from(job),
                    "steps": steps.into_iter().map(StepDocument::from).collect::<Vec<_>>(),
                    "events": events.into_iter().map(EventDocument::from).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                let now = store.now();
                let times = [
                    ("created", Some(job.created_at)),
                    ("run at", Some(job.run_at)),
                    ("started", job.started_at),
                    ("finished", job.finished_at),
                    ("lease expires", job.lease_expires_at),
                    ("heartbeat", job.heartbeat_at),
                    ("cancel asked", job.cancel_requested_at),
                ];
                println!("{}", serde_json::to_string_pretty(&JobDocument::from(job))?);
                for (what, at) in times {
                    if let Some(at) = at {
                        println!("{what:<14} {}", human::when(now, at));
                    }
                }
                for step in steps {
                    println!(
                        "step {:<24} {:<8} {}",
                        step.step_id,
                        step.status.as_str(),
                        step.exit_code.unwrap_or_default()
                    );
                }
                for event in events {
                    println!(
                        "{} {:<14} {:>9} -> {:<9} {} {}",
                        human::when(now, event.at),
                        event.event,
                        event.from.map_or("", State::as_str),
                        event.to,
                        event.actor,
                        event.detail.unwrap_or_default()
                    );
                }
            }
        }
        JobsCommand::Cancel { id } => {
            let job = store.cancel(id, "cli")?;
            println!("job {id}: {}", describe(&job));
        }
        JobsCommand::Restart { id } => {
            let job = store.restart(id, "cli")?;
            println!("job {id}: {}", describe(&job));
        }
        JobsCommand::Delete { id } => {
            store.delete(id)?;
            println!("job {id}: deleted");
        }
        JobsCommand::Output { id, name: None } => {
            println!("{:<40} {:>8} {:>14}", "NAME", "BATCHES", "BYTES");
            for output in store.outputs(id)? {
                println!(
                    "{:<40} {:>8} {:>14}",
                    output.name, output.batches, output.bytes
                );
            }
        }
        JobsCommand::Output {
            id,
            name: Some(name),
        } => {
            let Some(mut reader) = store.read_output(id, &name)? else {
                anyhow::bail!("job {id} has no output named {name:?}");
            };
            // Chunk by chunk: an output may be far larger than memory.
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = reader.next_chunk()? {
                out.write_all(&chunk)?;
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A job's state for the operator, noting a requested cancel of a running job.
fn describe(job: &Job) -> String {
    if job.state == State::Running && job.cancel_requested_at.is_some() {
        "running, cancel requested".into()
    } else {
        job.state.to_string()
    }
}

/// Prints `jobs` as a table, one line per job under a header; CREATED as how long ago, at
/// `now`.
fn print_table(jobs: &[Job], now: i64) {
    println!(
        "{:>8} {:<10} {:<16} {:<12} {:<10} {:>7}  CREATED",
        "ID", "TENANT", "KIND", "QUEUE", "STATE", "ATTEMPT"
    );
    for job in jobs {
        println!(
            "{:>8} {:<10} {:<16} {:<12} {:<10} {:>7}  {}",
            job.id,
            job.tenant,
            job.kind,
            job.queue,
            job.state.as_str(),
            format!("{}/{}", job.attempt, job.max_attempts),
            human::ago(now, job.created_at)
        );
    }
}
