//! Job definitions (named jobs with ordered steps) and their executions. Executing a
//! definition creates an ordinary job with one pending step row per step; the unique key
//! `definition:{id}` lets at most one execution of a definition be live at a time, enforced by
//! the partial unique index.

use rusqlite::{Connection, OptionalExtension, params};

use super::Store;
use super::jobs::{JobInsert, insert_job};
use super::rows::check_document;
use crate::model::{DEFAULT_TENANT, Definition, DefinitionStep, Execution, Job, NewJob, Scope};
use crate::state::State;
use crate::{Error, Result};

/// The unique key of the live execution of a definition.
pub(super) fn definition_unique_key(definition: &str) -> String {
    format!("definition:{definition}")
}

impl Store {
    fn definition_tenant(&self) -> String {
        match &self.scope {
            Scope::Tenant(tenant) => tenant.clone(),
            Scope::All => DEFAULT_TENANT.to_owned(),
        }
    }

    /// Creates or replaces a definition and its steps. Executions already made keep the steps
    /// they were created with.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty id or queue, a step without an id, or two steps
    /// with one id.
    pub fn put_definition(&self, definition: Definition) -> Result<Definition> {
        if definition.id.is_empty() || definition.id.len() > 256 {
            return Err(Error::invalid("id", "must be 1 to 256 bytes"));
        }
        if definition.queue.is_empty() {
            return Err(Error::invalid("queue", "must not be empty"));
        }
        let mut seen = std::collections::HashSet::new();
        for step in &definition.steps {
            if step.step_id.is_empty() {
                return Err(Error::invalid("steps", "every step needs a step_id"));
            }
            if !seen.insert(step.step_id.as_str()) {
                return Err(Error::invalid(
                    "steps",
                    format!("step_id `{}` appears twice", step.step_id),
                ));
            }
        }
        let tenant = self.definition_tenant();
        let now = self.now();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO job_definitions (tenant, id, description, queue, restartable, \
                 enabled, valid, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) \
                 ON CONFLICT (tenant, id) DO UPDATE SET description = excluded.description, \
                 queue = excluded.queue, restartable = excluded.restartable, \
                 enabled = excluded.enabled, valid = excluded.valid, updated_at = excluded.updated_at",
            )?
            .execute(params![
                tenant,
                definition.id,
                definition.description,
                definition.queue,
                definition.restartable,
                definition.enabled,
                definition.valid,
                now
            ])?;
            conn.prepare_cached(
                "DELETE FROM job_definition_steps WHERE tenant = ?1 AND definition_id = ?2",
            )?
            .execute(params![tenant, definition.id])?;
            let mut insert = conn.prepare_cached(
                "INSERT INTO job_definition_steps (tenant, definition_id, position, step_id, \
                 step_type_id, description, execution_scope) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (position, step) in definition.steps.iter().enumerate() {
                insert.execute(params![
                    tenant,
                    definition.id,
                    position as i64,
                    step.step_id,
                    step.step_type_id,
                    step.description,
                    step.execution_scope
                ])?;
            }
            load_definition(conn, &tenant, &definition.id)
        })
    }

    /// One definition.
    ///
    /// # Errors
    /// [`Error::DefinitionNotFound`].
    pub fn definition(&self, id: &str) -> Result<Definition> {
        let tenant = self.definition_tenant();
        self.read(|conn| load_definition(conn, &tenant, id))
    }

    /// Every definition of the tenant, by id.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn definitions(&self) -> Result<Vec<Definition>> {
        let tenant = self.definition_tenant();
        self.read(|conn| {
            let ids = conn
                .prepare_cached("SELECT id FROM job_definitions WHERE tenant = ?1 ORDER BY id")?
                .query_map(params![tenant], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            ids.iter()
                .map(|id| load_definition(conn, &tenant, id))
                .collect()
        })
    }

    /// Executes a definition: creates a job of kind = the definition id on the definition's
    /// queue, with one pending step per step. With `restart`, the latest execution must have
    /// failed or been cancelled; the new job records it in `restart_of`, and its steps that
    /// finished `ok` are copied as finished.
    ///
    /// # Errors
    /// [`Error::DefinitionNotFound`], [`Error::DefinitionDisabled`],
    /// [`Error::DefinitionInvalid`], [`Error::JobAlreadyRunning`] while an execution is live,
    /// [`Error::NotRestartable`], [`Error::NothingToRestart`].
    pub fn execute(&self, definition_id: &str, execution: Execution) -> Result<Job> {
        let payload_text = serde_json::to_string(&execution.payload)?;
        check_document("payload", &payload_text, self.options().max_document_bytes)?;
        let tenant = self.definition_tenant();
        let now = self.now();
        let definition_id = definition_id.to_owned();
        let job = self.write(move |conn| {
            let definition = load_definition(conn, &tenant, &definition_id)?;
            if !definition.enabled {
                return Err(Error::DefinitionDisabled {
                    definition: definition.id,
                });
            }
            if !definition.valid || definition.steps.is_empty() {
                let cause = if definition.valid {
                    "it has no steps"
                } else {
                    "it is marked invalid"
                };
                return Err(Error::DefinitionInvalid {
                    definition: definition.id,
                    cause: cause.into(),
                });
            }
            let restart_of = if execution.restart {
                if !definition.restartable {
                    return Err(Error::NotRestartable { job: 0 });
                }
                let latest: Option<(i64, String)> = conn
                    .prepare_cached(
                        "SELECT id, state FROM jobs WHERE tenant = ?1 AND definition_id = ?2 \
                         ORDER BY id DESC LIMIT 1",
                    )?
                    .query_row(params![tenant, definition.id], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()?;
                match latest {
                    Some((id, state))
                        if state == State::Failed.as_str()
                            || state == State::Cancelled.as_str() =>
                    {
                        Some(id)
                    }
                    // A live execution is the more useful answer than "nothing to restart".
                    Some((id, state)) if State::LIVE.iter().any(|s| s.as_str() == state) => {
                        return Err(Error::JobAlreadyRunning {
                            unique_key: definition_unique_key(&definition.id),
                            job: id,
                        });
                    }
                    _ => {
                        return Err(Error::NothingToRestart {
                            definition: definition.id,
                        });
                    }
                }
            } else {
                None
            };
            let mut new = NewJob::new(definition.id.clone())
                .queue(definition.queue.clone())
                .name(definition.id.clone())
                .created_by(execution.created_by.clone())
                .unique_key(definition_unique_key(&definition.id))
                .restartable(definition.restartable)
                .payload(execution.payload.clone());
            if let Some(dialect) = &execution.dialect {
                new = new.dialect(dialect.clone());
            }
            let insert = JobInsert {
                tenant: tenant.clone(),
                new,
                payload_text: payload_text.clone(),
                definition_id: Some(definition.id.clone()),
                restart_of,
                fingerprint: String::new(),
            };
            let job = insert_job(conn, now, &insert)?;
            insert_steps(conn, job.id, &definition.steps, restart_of, now)?;
            Ok(job)
        })?;
        self.signal().notify();
        Ok(job)
    }
}

fn insert_steps(
    conn: &Connection,
    job: i64,
    steps: &[DefinitionStep],
    restart_of: Option<i64>,
    now: i64,
) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO job_steps (job_id, position, step_id, step_type_id, description, \
         execution_scope, status, exit_code, message, started_at, finished_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', NULL, NULL, NULL, NULL, ?7)",
    )?;
    for (position, step) in steps.iter().enumerate() {
        insert.execute(params![
            job,
            position as i64,
            step.step_id,
            step.step_type_id,
            step.description,
            step.execution_scope,
            now
        ])?;
    }
    if let Some(previous) = restart_of {
        // Steps that finished well in the restarted execution are not run again.
        conn.prepare_cached(
            "UPDATE job_steps AS s SET status = 'ok', exit_code = p.exit_code, \
             message = p.message, started_at = p.started_at, finished_at = p.finished_at \
             FROM job_steps AS p WHERE s.job_id = ?1 AND p.job_id = ?2 \
             AND p.step_id = s.step_id AND p.status = 'ok'",
        )?
        .execute(params![job, previous])?;
    }
    Ok(())
}

fn load_definition(conn: &Connection, tenant: &str, id: &str) -> Result<Definition> {
    let head = conn
        .prepare_cached(
            "SELECT description, queue, restartable, enabled, valid, created_at, updated_at \
             FROM job_definitions WHERE tenant = ?1 AND id = ?2",
        )?
        .query_row(params![tenant, id], |row| {
            Ok(Definition {
                id: id.to_owned(),
                description: row.get(0)?,
                queue: row.get(1)?,
                restartable: row.get(2)?,
                enabled: row.get(3)?,
                valid: row.get(4)?,
                steps: Vec::new(),
                created_at: row.get(5)?,
                updated_at: row.get(6)?,
            })
        })
        .optional()?;
    let Some(mut definition) = head else {
        return Err(Error::DefinitionNotFound { id: id.to_owned() });
    };
    definition.steps = conn
        .prepare_cached(
            "SELECT step_id, step_type_id, description, execution_scope \
             FROM job_definition_steps WHERE tenant = ?1 AND definition_id = ?2 ORDER BY position",
        )?
        .query_map(params![tenant, id], |row| {
            Ok(DefinitionStep {
                step_id: row.get(0)?,
                step_type_id: row.get(1)?,
                description: row.get(2)?,
                execution_scope: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(definition)
}
