//! The native API's wire types: the JSON bodies it reads, with unknown fields refused, and
//! the documents it answers.

use jobstore::{Job, Step};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A job as the native API renders it: every stored field, and on a single job its steps and
/// data counters.
#[derive(Debug, Serialize)]
pub(crate) struct JobDocument {
    #[serde(flatten)]
    pub(crate) job: Job,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) steps: Option<Vec<Step>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data_batches: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data_bytes: Option<i64>,
}

impl From<Job> for JobDocument {
    fn from(job: Job) -> Self {
        JobDocument {
            job,
            steps: None,
            data_batches: None,
            data_bytes: None,
        }
    }
}

/// `POST /v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateJob {
    pub(crate) kind: String,
    pub(crate) queue: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) payload: Option<Value>,
    pub(crate) priority: Option<i64>,
    pub(crate) run_at: Option<i64>,
    pub(crate) max_attempts: Option<i64>,
    pub(crate) unique_key: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) target: Option<String>,
    pub(crate) upload: Option<bool>,
    pub(crate) restartable: Option<bool>,
    /// Admins only: the tenant to create the job in.
    pub(crate) tenant: Option<String>,
}

/// `POST /v1/claim`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimBody {
    pub(crate) worker: String,
    pub(crate) queues: Vec<String>,
    pub(crate) max: Option<u32>,
    pub(crate) lease_ms: Option<i64>,
    pub(crate) wait_ms: Option<u64>,
}

/// The lease every worker call carries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeartbeatBody {
    pub(crate) worker: String,
    pub(crate) lease_token: i64,
    pub(crate) progress: Option<Value>,
    pub(crate) phase: Option<String>,
    pub(crate) lease_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepBody {
    pub(crate) worker: String,
    pub(crate) lease_token: i64,
    pub(crate) status: String,
    pub(crate) exit_code: Option<String>,
    pub(crate) message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteBody {
    pub(crate) worker: String,
    pub(crate) lease_token: i64,
    #[serde(default)]
    pub(crate) result: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailBody {
    pub(crate) worker: String,
    pub(crate) lease_token: i64,
    pub(crate) error: String,
    #[serde(default = "yes")]
    pub(crate) retryable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogBody {
    pub(crate) lines: Vec<LogLineBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogLineBody {
    #[serde(default = "info")]
    pub(crate) level: String,
    pub(crate) message: String,
}

fn info() -> String {
    "info".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefinitionBody {
    #[serde(default)]
    pub(crate) steps: Vec<DefinitionStepBody>,
    #[serde(default = "yes")]
    pub(crate) restartable: bool,
    pub(crate) queue: Option<String>,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    #[serde(default = "yes")]
    pub(crate) valid: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefinitionStepBody {
    pub(crate) step_id: String,
    #[serde(default)]
    pub(crate) step_type_id: String,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) execution_scope: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecuteBody {
    #[serde(default)]
    pub(crate) restart: bool,
    #[serde(default)]
    pub(crate) payload: Value,
}
