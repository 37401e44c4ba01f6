//! Job definitions (named jobs with ordered steps) and their executions. Executing a
//! definition creates an ordinary job with one pending step row per step; the unique key
//! `definition:{id}` lets at most one execution of a definition be live at a time, enforced by
//! the partial unique index.

use super::Store;
use super::jobs::{JobInsert, insert_job};
use super::rows::check_document;
use crate::driver::Reader;
use crate::model::{DEFAULT_TENANT, Definition, Execution, Job, NewJob, Scope};
use crate::state::State;
use crate::{Error, Result};

/// What begins the unique key of a definition's execution; reserved, so that no job of a
/// caller's can hold a definition's key and block its executions.
pub(super) const EXECUTION_KEY_PREFIX: &str = "definition:";

/// The unique key of the live execution of a definition.
pub(super) fn definition_unique_key(definition: &str) -> String {
    format!("{EXECUTION_KEY_PREFIX}{definition}")
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
        self.write(move |tx| {
            tx.put_definition(&tenant, &definition, now)?;
            load_definition(tx, &tenant, &definition.id)
        })
    }

    /// One definition.
    ///
    /// # Errors
    /// [`Error::DefinitionNotFound`].
    pub fn definition(&self, id: &str) -> Result<Definition> {
        let tenant = self.definition_tenant();
        self.read(|tx| load_definition(tx, &tenant, id))
    }

    /// Every definition of the tenant, by id.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn definitions(&self) -> Result<Vec<Definition>> {
        let tenant = self.definition_tenant();
        self.read(|tx| {
            let ids = tx.definition_ids(&tenant)?;
            ids.iter()
                .map(|id| load_definition(tx, &tenant, id))
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
        let job = self.write(move |tx| {
            let definition = load_definition(tx, &tenant, &definition_id)?;
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
                match tx.latest_execution(&tenant, &definition.id)? {
                    Some((id, State::Failed | State::Cancelled)) => Some(id),
                    // A live execution is the more useful answer than "nothing to restart".
                    Some((id, state)) if State::LIVE.contains(&state) => {
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
            let job = insert_job(tx, now, &insert)?;
            tx.insert_steps(job.id, &definition.steps, restart_of, now)?;
            Ok(job)
        })?;
        self.signal().notify();
        Ok(job)
    }
}

fn load_definition<R: Reader + ?Sized>(tx: &mut R, tenant: &str, id: &str) -> Result<Definition> {
    tx.definition(tenant, id)?
        .ok_or_else(|| Error::DefinitionNotFound { id: id.to_owned() })
}
