//! The OpenAPI 3.1 document served at `/v1/openapi.json`: every operation of the route table
//! ([`ROUTES`]) with its parameters, its request body and every answer it can give, the
//! schemas derived from the wire types themselves (`wire`). One exhaustive table, [`operation`],
//! says what each route and method reads and answers; the answers every operation shares
//! (authentication, bodies, load) follow from it here.

use std::sync::LazyLock;

use http::Method;
use serde_json::Value;
use utoipa::openapi::header::Header;
use utoipa::openapi::link::Link;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder,
    Ref, RefOr, Required,
};
use utoipa::{IntoParams, ToSchema};

use super::wire;
use super::{Name, ROUTES};

/// The name of the bearer security scheme.
const BEARER: &str = "bearer";

/// What an operation reads besides its path.
enum Input {
    /// Nothing.
    Nothing,
    /// A body that is read and dropped (it may be empty).
    Ignored,
    /// A JSON document of this schema.
    Json(&'static str),
    /// The log lines: JSON, or `text/plain` (one info line per line).
    LogLines,
    /// Raw bytes, streamed.
    Bytes,
}

/// What an operation answers on success.
enum Output {
    /// A JSON document of this schema.
    Json(u16, &'static str),
    /// The OpenAPI document itself.
    Document,
    /// Text of this content type.
    Text(&'static str),
    /// The job's data.
    Bytes,
    /// 204 without a body.
    Empty,
}

/// The path parameters of a route.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// None.
    None,
    /// `{id}` names a job.
    Job,
    /// `{id}` names a job and `{step}` one of its steps.
    JobStep,
    /// `{id}` names a job and `{name}` one of its outputs.
    JobOutput,
    /// `{id}` names a definition.
    Definition,
}

/// One operation: its id and summary, the scope its token needs (`None`: no token), what it
/// reads and answers, and the refusals particular to it.
struct Spec {
    id: &'static str,
    summary: &'static str,
    scope: Option<&'static str>,
    path: Path,
    input: Input,
    output: Output,
    /// Refusals beyond those every operation of its kind can give (see [`operation`]).
    refusals: &'static [(u16, &'static str)],
}

/// Every operation of the route table. Exhaustive over the routes: a new route does not
/// compile until it is described here, and a method the table does not name is `None`.
fn spec(name: Name, method: &Method) -> Option<Spec> {
    use Input as I;
    use Output as O;
    let get = *method == Method::GET;
    let spec = |id, summary, scope, path, input, output, refusals| Spec {
        id,
        summary,
        scope,
        path,
        input,
        output,
        refusals,
    };
    const CONFLICT: (u16, &str) = (409, "the job's state refuses it (`invalid_transition`)");
    const LEASE: (u16, &str) = (
        409,
        "not the job's current lease (`stale_lease`), or the job is not running \
         (`invalid_transition`)",
    );
    Some(match name {
        Name::Health => spec(
            "health",
            "Liveness",
            None,
            Path::None,
            I::Nothing,
            O::Text("text/plain"),
            &[],
        ),
        Name::Metrics => spec(
            "metrics",
            "Prometheus metrics",
            Some("`read`"),
            Path::None,
            I::Nothing,
            O::Text("text/plain"),
            &[],
        ),
        Name::OpenApi => spec(
            "openapi",
            "This document",
            None,
            Path::None,
            I::Nothing,
            O::Document,
            &[],
        ),
        Name::Stats => spec(
            "stats",
            "Job counts by queue and state",
            Some("`read`"),
            Path::None,
            I::Nothing,
            O::Json(200, "Stats"),
            &[],
        ),
        Name::Jobs if get => spec(
            "list_jobs",
            "List jobs",
            Some("`read`"),
            Path::None,
            I::Nothing,
            O::Json(200, "JobList"),
            &[(
                400,
                "a query parameter unknown, repeated or malformed, an unknown sort field, or \
                 a cursor this daemon did not make for this query",
            )],
        ),
        Name::Jobs => spec(
            "create_job",
            "Create a job",
            Some("`write`"),
            Path::None,
            I::Json("CreateJob"),
            O::Json(201, "Job"),
            &[
                (403, "a tenant named without an admin token"),
                (
                    409,
                    "a live job holds the unique key (`job_already_running`)",
                ),
                (
                    422,
                    "the idempotency key was used for another request (`idempotency_key_reused`)",
                ),
            ],
        ),
        Name::Job if get => spec(
            "get_job",
            "One job, with its steps and data counters",
            Some("`read`"),
            Path::Job,
            I::Nothing,
            O::Json(200, "Job"),
            &[],
        ),
        Name::Job => spec(
            "delete_job",
            "Delete a finished job",
            Some("`write`"),
            Path::Job,
            I::Nothing,
            O::Empty,
            &[(409, "the job is not finished (`invalid_transition`)")],
        ),
        Name::Cancel => spec(
            "cancel_job",
            "Cancel a job (cooperatively when running)",
            Some("`write`"),
            Path::Job,
            I::Ignored,
            O::Json(200, "Job"),
            &[CONFLICT],
        ),
        Name::Restart => spec(
            "restart_job",
            "Restart a failed or cancelled job",
            Some("`write`"),
            Path::Job,
            I::Ignored,
            O::Json(200, "Job"),
            &[(
                409,
                "the job is not failed or cancelled (`invalid_transition`), or may not be \
                 restarted (`not_restartable`)",
            )],
        ),
        Name::Close => spec(
            "close_job",
            "Close the upload phase",
            Some("`write`"),
            Path::Job,
            I::Ignored,
            O::Json(200, "Job"),
            &[CONFLICT],
        ),
        Name::Heartbeat => spec(
            "heartbeat",
            "Extend the lease, report progress",
            Some("`work`"),
            Path::Job,
            I::Json("HeartbeatBody"),
            O::Json(200, "HeartbeatAnswer"),
            &[LEASE],
        ),
        Name::Complete => spec(
            "complete_job",
            "Report success",
            Some("`work`"),
            Path::Job,
            I::Json("CompleteBody"),
            O::Json(200, "Job"),
            &[LEASE],
        ),
        Name::Fail => spec(
            "fail_job",
            "Report a failure (or acknowledge a cancel)",
            Some("`work`"),
            Path::Job,
            I::Json("FailBody"),
            O::Json(200, "Job"),
            &[LEASE],
        ),
        Name::Data if get => spec(
            "download_data",
            "Every data batch, in order",
            Some("`read` (or `work`)"),
            Path::Job,
            I::Nothing,
            O::Bytes,
            &[],
        ),
        Name::Data => spec(
            "upload_data",
            "Append a data batch",
            Some("`write`"),
            Path::Job,
            I::Bytes,
            O::Json(201, "DataBatch"),
            &[
                (400, "the body broke off (`invalid_data`)"),
                (
                    409,
                    "the job is not open (`invalid_transition`), or holds the most batches \
                     allowed (`too_many_data_batches`)",
                ),
                (413, "the batch is past its limit (`data_batch_too_large`)"),
            ],
        ),
        Name::Output if get => spec(
            "download_output",
            "A named output of the job: its batches, in order (empty when none was uploaded)",
            Some("`read` (or `work`)"),
            Path::JobOutput,
            I::Nothing,
            O::Bytes,
            &[(400, "not a valid output name (`invalid_request`)")],
        ),
        Name::Output => spec(
            "upload_output",
            "Append a batch to a named output of a running job, under its lease",
            Some("`work`"),
            Path::JobOutput,
            I::Bytes,
            O::Json(201, "DataBatch"),
            &[
                (
                    400,
                    "the body broke off (`invalid_data`), not a valid output name, or the \
                     lease missing from the query (`invalid_request`)",
                ),
                (
                    409,
                    "not the job's current lease (`stale_lease`), or the job holds the most \
                     output batches allowed (`too_many_data_batches`)",
                ),
                (413, "the batch is past its limit (`data_batch_too_large`)"),
            ],
        ),
        Name::Logs if get => spec(
            "get_logs",
            "The job's log as text; its last lines (`tail`), or the lines after one (`after`)",
            Some("`read`"),
            Path::Job,
            I::Nothing,
            O::Text("text/plain"),
            &[(
                400,
                "`tail` with `after` or `limit`; a parameter unknown, repeated or out of range",
            )],
        ),
        Name::Logs => spec(
            "append_logs",
            "Append log lines",
            Some("`write` (or `work`)"),
            Path::Job,
            I::LogLines,
            O::Json(200, "Appended"),
            &[],
        ),
        Name::Events => spec(
            "get_events",
            "The job's transitions",
            Some("`read`"),
            Path::Job,
            I::Nothing,
            O::Json(200, "Events"),
            &[],
        ),
        Name::Step => spec(
            "report_step",
            "Report a step's start or finish",
            Some("`work`"),
            Path::JobStep,
            I::Json("StepBody"),
            O::Json(200, "Steps"),
            &[(
                409,
                "not the job's current lease (`stale_lease`), the job is not running \
                 (`invalid_transition`), or the step cannot move so \
                 (`invalid_step_transition`)",
            )],
        ),
        Name::Definitions => spec(
            "list_definitions",
            "Every job definition",
            Some("`read`"),
            Path::None,
            I::Nothing,
            O::Json(200, "Definitions"),
            &[],
        ),
        Name::Definition if get => spec(
            "get_definition",
            "One job definition",
            Some("`read`"),
            Path::Definition,
            I::Nothing,
            O::Json(200, "Definition"),
            &[],
        ),
        Name::Definition => spec(
            "put_definition",
            "Create or replace a job definition",
            Some("`write`"),
            Path::Definition,
            I::Json("DefinitionBody"),
            O::Json(200, "Definition"),
            &[],
        ),
        Name::Executions => spec(
            "execute_definition",
            "Execute a job definition as a new job",
            Some("`write`"),
            Path::Definition,
            I::Json("ExecuteBody"),
            O::Json(201, "Job"),
            &[(
                409,
                "an execution is live (`job_already_running`), the definition is disabled or \
                 invalid, or there is nothing to restart",
            )],
        ),
        Name::Claim => spec(
            "claim_jobs",
            "Lease jobs, waiting for some",
            Some("`work`"),
            Path::None,
            I::Json("ClaimBody"),
            O::Json(200, "Claimed"),
            &[],
        ),
        Name::Throughput => spec(
            "throughput",
            "Jobs created, succeeded and failed per minute",
            Some("`read`"),
            Path::None,
            I::Nothing,
            O::Json(200, "Throughput"),
            &[(400, "`minutes` unknown, repeated or out of range")],
        ),
        Name::Queues => spec(
            "queues",
            "Each queue's waiting, running and recently failed jobs",
            Some("`read`"),
            Path::None,
            I::Nothing,
            O::Json(200, "Queues"),
            &[],
        ),
        Name::QueueDepth => spec(
            "queue_depth",
            "Queue depth over time, sampled since the daemon started",
            Some("`read`"),
            Path::None,
            I::Nothing,
            O::Json(200, "QueueDepth"),
            &[],
        ),
        Name::Workers => spec(
            "workers",
            "The workers holding leases, with their running jobs",
            Some("`read`"),
            Path::None,
            I::Nothing,
            O::Json(200, "Workers"),
            &[],
        ),
    })
    .filter(|_| {
        // A method the route does not serve has no operation.
        ROUTES
            .iter()
            .any(|route| route.name == name && route.methods.contains(method))
    })
}

/// The OpenAPI document, built once.
pub(crate) fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
        let mut document = serde_json::to_value(build()).unwrap_or(Value::Null);
        camel_case_links(&mut document);
        document
    });
    &DOCUMENT
}

/// utoipa 5 writes a link's `operationId` and `requestBody` in snake case; the specification
/// (and every tool reading links) spells them in camel case.
fn camel_case_links(document: &mut Value) {
    let operations = document
        .get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    let links = operations
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(Value::as_object_mut)
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links"))
        .filter_map(Value::as_object_mut)
        .flat_map(|links| links.values_mut())
        .filter_map(Value::as_object_mut);
    for link in links {
        for (snake, camel) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_owned(), value);
            }
        }
    }
}

/// Builds the document from the route table.
fn build() -> OpenApi {
    let components = components();
    let mut paths = PathsBuilder::new();
    for route in &ROUTES {
        for method in route.methods {
            if let (Some(spec), Some(http)) = (spec(route.name, method), http_method(method)) {
                let operation = operation(&spec, &components);
                paths = paths.path(route.path, PathItem::new(http, operation));
            }
        }
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("jobstore native API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "JSON over HTTP/1.1. Times are integer milliseconds since the Unix epoch \
                     (UTC). Without a tokens file the daemon listens on loopback only and \
                     needs no token.",
                )),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

fn http_method(method: &Method) -> Option<HttpMethod> {
    match *method {
        Method::GET => Some(HttpMethod::Get),
        Method::POST => Some(HttpMethod::Post),
        Method::PUT => Some(HttpMethod::Put),
        Method::DELETE => Some(HttpMethod::Delete),
        _ => None,
    }
}

/// The operation of `spec`, with every answer it can give: its own, and those of its kind.
fn operation(spec: &Spec, components: &Components) -> Operation {
    let mut op = OperationBuilder::new()
        .operation_id(Some(spec.id))
        .summary(Some(spec.summary));
    if let Some(scope) = spec.scope {
        op = op
            .description(Some(format!("Needs a token with the {scope} scope.")))
            .security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
    }
    for parameter in path_parameters(spec.path) {
        op = op.parameter(parameter);
    }
    if spec.id == "list_jobs" {
        for parameter in wire::ListParams::into_params(|| Some(ParameterIn::Query)) {
            op = op.parameter(parameter);
        }
    }
    if spec.id == "throughput" {
        for parameter in wire::ThroughputParams::into_params(|| Some(ParameterIn::Query)) {
            op = op.parameter(parameter);
        }
    }
    if spec.id == "get_logs" {
        for parameter in wire::LogParams::into_params(|| Some(ParameterIn::Query)) {
            op = op.parameter(parameter);
        }
    }
    if spec.id == "upload_output" {
        for parameter in wire::OutputParams::into_params(|| Some(ParameterIn::Query)) {
            op = op.parameter(parameter);
        }
    }
    if spec.id == "create_job" {
        op = op.parameter(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "A retried create with the same key answers the job the first one made; \
                     the same key with another request is refused (422). Printable ASCII, \
                     at most 1024 bytes.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(1024))
                        .pattern(Some("^[\\x21-\\x7e]([\\x20-\\x7e\\t]*[\\x21-\\x7e])?$")),
                )),
        );
    }
    op = op.request_body(request_body(&spec.input, components));

    let (status, success) = success(spec);
    op = op.response(status.to_string(), success);
    for (status, answer) in refusals(spec) {
        op = op.response(status.to_string(), answer);
    }
    op.build()
}

fn path_parameters(path: Path) -> Vec<Parameter> {
    let parameter = |name: &str, description: &str, schema: ObjectBuilder| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(schema))
            .build()
    };
    let job = || {
        parameter(
            "id",
            "The job's id",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(1))
                .maximum(Some(i64::MAX)),
        )
    };
    match path {
        Path::None => vec![],
        Path::Job => vec![job()],
        Path::JobStep => vec![
            job(),
            parameter(
                "step",
                "The step's `step_id`",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1)),
            ),
        ],
        Path::JobOutput => vec![
            job(),
            parameter(
                "name",
                "The output's name: `/`-separated parts of letters, digits, `.`, `_` and \
                 `-` (`results/failed`), its `/` escaped as `%2F` in the path",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(jobstore::MAX_OUTPUT_NAME_BYTES))
                    .pattern(Some("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")),
            ),
        ],
        Path::Definition => vec![parameter(
            "id",
            "The definition's id",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(256)),
        )],
    }
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// The body an operation reads. A JSON body is required when its schema has required
/// members (an empty body reads as `{}`).
fn request_body(input: &Input, components: &Components) -> Option<RequestBody> {
    let required = |content: Vec<(&str, Content)>, required| {
        let mut body = RequestBodyBuilder::new().required(Some(required));
        for (media, content) in content {
            body = body.content(media, content);
        }
        Some(body.build())
    };
    match input {
        Input::Nothing | Input::Ignored => None,
        Input::Json(name) => {
            let needs_members = match components.schemas.get(*name) {
                Some(RefOr::T(Schema::Object(object))) => !object.required.is_empty(),
                _ => false,
            };
            required(
                vec![("application/json", Content::new(Some(schema_ref(name))))],
                if needs_members {
                    Required::True
                } else {
                    Required::False
                },
            )
        }
        Input::LogLines => required(
            vec![
                (
                    "application/json",
                    Content::new(Some(schema_ref("LogBody"))),
                ),
                (
                    "text/plain",
                    Content::new(Some(ObjectBuilder::new().schema_type(Type::String))),
                ),
            ],
            Required::True,
        ),
        Input::Bytes => required(
            vec![(
                "application/octet-stream",
                Content::new(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_media_type("application/octet-stream"),
                )),
            )],
            Required::False,
        ),
    }
}

/// The success answer of `spec` and its status.
fn success(spec: &Spec) -> (u16, Response) {
    let with = |description: &str, media: &str, schema: RefOr<Schema>| {
        ResponseBuilder::new()
            .description(description)
            .content(media, Content::new(Some(schema)))
    };
    let text = || RefOr::T(Schema::from(ObjectBuilder::new().schema_type(Type::String)));
    let (status, response) = match spec.output {
        Output::Json(status, name) => (
            status,
            with(spec.summary, "application/json", schema_ref(name)),
        ),
        Output::Document => (
            200,
            with(
                "The OpenAPI 3.1 document",
                "application/json",
                RefOr::T(Schema::from(ObjectBuilder::new().schema_type(Type::Object))),
            ),
        ),
        Output::Text(media) => (200, with(spec.summary, media, text())),
        Output::Bytes => (
            200,
            with(
                "Every batch's bytes, in order (empty when there are none)",
                "application/octet-stream",
                RefOr::T(Schema::from(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_media_type("application/octet-stream"),
                )),
            ),
        ),
        Output::Empty => (204, ResponseBuilder::new().description("Deleted")),
    };
    let mut response = response;
    for (name, link) in links(spec) {
        response = response.link(name, link);
    }
    (status, response.build())
}

/// The operations an answer of `spec` leads to, with the parameters it provides.
fn links(spec: &Spec) -> Vec<(&'static str, Link)> {
    let job_link = |target: &'static str, id: &str| {
        (
            target,
            Link::builder()
                .operation_id(target)
                .parameter("id", id)
                .build(),
        )
    };
    let on_job = |id: &'static str| -> Vec<(&'static str, Link)> {
        [
            "get_job",
            "delete_job",
            "cancel_job",
            "restart_job",
            "close_job",
            "upload_data",
            "download_data",
            "get_logs",
            "append_logs",
            "get_events",
        ]
        .into_iter()
        .map(|target| job_link(target, id))
        .collect()
    };
    // A created job can be claimed from its queue, and the claim leads to the worker calls.
    let claim = (
        "claim_jobs",
        Link::builder()
            .operation_id("claim_jobs")
            .request_body(Some(
                serde_json::json!({"queues": ["$response.body#/queue"]}),
            ))
            .build(),
    );
    match spec.id {
        "create_job" | "execute_definition" => {
            let mut links = on_job("$response.body#/id");
            links.push(claim);
            links
        }
        "put_definition" => vec![
            job_link("get_definition", "$response.body#/id"),
            job_link("execute_definition", "$response.body#/id"),
        ],
        "claim_jobs" => {
            let mut links = on_job("$response.body#/jobs/0/id");
            for target in ["heartbeat", "complete_job", "fail_job", "report_step"] {
                let link = Link::builder()
                    .operation_id(target)
                    .parameter("id", "$response.body#/jobs/0/id")
                    .request_body(Some(serde_json::json!({
                        "worker": "$response.body#/jobs/0/lease_owner",
                        "lease_token": "$response.body#/jobs/0/lease_token",
                    })))
                    .build();
                links.push((target, link));
            }
            links
        }
        _ => vec![],
    }
}

/// Every refusal `spec` can answer: those of its kind, then its own.
fn refusals(spec: &Spec) -> Vec<(u16, Response)> {
    let mut reasons: Vec<(u16, String)> = Vec::new();
    let mut add = |status: u16, reason: &str| match reasons.iter_mut().find(|(s, _)| *s == status) {
        Some((_, known)) => {
            known.push_str("; ");
            known.push_str(reason);
        }
        None => reasons.push((status, reason.to_owned())),
    };
    match spec.input {
        Input::Json(_) | Input::LogLines => add(
            400,
            "the body is not the JSON asked for (`invalid_json`: malformed, a wrong type, an \
             unknown field, a number that cannot be kept exactly) or holds a value out of \
             range (`invalid_request`)",
        ),
        _ => {}
    }
    for (status, reason) in spec.refusals {
        add(*status, reason);
    }
    if spec.scope.is_some() {
        add(
            401,
            "no token, or a token the daemon does not know (`unauthorized`)",
        );
        add(403, "the token lacks the scope (`forbidden`)");
    }
    match spec.path {
        Path::Job => add(404, "no such job in the token's tenant (`job_not_found`)"),
        Path::JobOutput => add(404, "no such job in the token's tenant (`job_not_found`)"),
        Path::JobStep => add(
            404,
            "no such job in the token's tenant (`job_not_found`), or the job has no such \
             step (`step_not_found`)",
        ),
        Path::Definition if spec.id != "put_definition" => add(
            404,
            "no such definition in the token's tenant (`definition_not_found`)",
        ),
        _ => {}
    }
    if !matches!(spec.input, Input::Nothing) {
        add(
            408,
            "the body arrived slower than the minimum transfer rate (`body_timeout`)",
        );
        add(413, "the body is past its limit (`body_too_large`)");
    }
    if spec.scope.is_some() {
        add(
            429,
            "the token has too many requests in flight (`too_many_requests`)",
        );
    }
    add(
        503,
        "every connection is busy (`overloaded`), or the store is busy, closing, cannot reach \
         its database, or is not sure a write was kept (`busy`, `shutting_down`, \
         `storage_unavailable`, `outcome_unknown`)",
    );
    reasons.sort_by_key(|(status, _)| *status);
    reasons
        .into_iter()
        .map(|(status, reason)| (status, refusal(status, &reason)))
        .collect()
}

/// An error answer: the error document, and the headers its status carries.
fn refusal(status: u16, reason: &str) -> Response {
    let mut response = ResponseBuilder::new().description(reason).content(
        "application/json",
        Content::new(Some(schema_ref("ErrorDocument"))),
    );
    let integer = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
    };
    match status {
        401 => {
            response = response.header(
                "WWW-Authenticate",
                Header::new(ObjectBuilder::new().schema_type(Type::String)),
            );
        }
        429 | 503 => {
            response = response.header("Retry-After", Header::new(integer()));
        }
        _ => {}
    }
    response.build()
}

/// The schemas of every wire type, and the bearer scheme.
fn components() -> Components {
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    fn add<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
    add::<wire::JsonValue>(&mut schemas);
    add::<wire::Job>(&mut schemas);
    add::<wire::JobState>(&mut schemas);
    add::<wire::Step>(&mut schemas);
    add::<wire::StepStatus>(&mut schemas);
    add::<wire::Definition>(&mut schemas);
    add::<wire::DefinitionStep>(&mut schemas);
    add::<wire::JobEvent>(&mut schemas);
    add::<wire::DataBatch>(&mut schemas);
    add::<wire::QueueCount>(&mut schemas);
    add::<wire::Stats>(&mut schemas);
    add::<wire::HeartbeatAnswer>(&mut schemas);
    add::<wire::JobList>(&mut schemas);
    add::<wire::Claimed>(&mut schemas);
    add::<wire::Events>(&mut schemas);
    add::<wire::Steps>(&mut schemas);
    add::<wire::Definitions>(&mut schemas);
    add::<wire::Appended>(&mut schemas);
    add::<wire::ErrorDocument>(&mut schemas);
    add::<wire::ErrorDetail>(&mut schemas);
    add::<wire::CreateJob>(&mut schemas);
    add::<wire::ClaimBody>(&mut schemas);
    add::<wire::HeartbeatBody>(&mut schemas);
    add::<wire::StepBody>(&mut schemas);
    add::<wire::CompleteBody>(&mut schemas);
    add::<wire::FailBody>(&mut schemas);
    add::<wire::LogBody>(&mut schemas);
    add::<wire::LogLineBody>(&mut schemas);
    add::<wire::DefinitionBody>(&mut schemas);
    add::<wire::DefinitionStepBody>(&mut schemas);
    add::<wire::ExecuteBody>(&mut schemas);
    add::<wire::ThroughputBucket>(&mut schemas);
    add::<wire::Throughput>(&mut schemas);
    add::<wire::QueueSummary>(&mut schemas);
    add::<wire::Queues>(&mut schemas);
    add::<wire::DepthSample>(&mut schemas);
    add::<wire::QueueDepth>(&mut schemas);
    add::<wire::BusyWorker>(&mut schemas);
    add::<wire::Workers>(&mut schemas);
    ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn operations(doc: &Value) -> BTreeSet<(String, String)> {
        let mut listed = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
                listed.insert((path.clone(), method.to_uppercase()));
            }
        }
        listed
    }

    /// Every route and method of the table is an operation of the document, and every
    /// operation of the document is a route and method of the table.
    #[test]
    fn the_document_and_the_route_table_name_the_same_operations() {
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .flat_map(|route| {
                route
                    .methods
                    .iter()
                    .map(|method| (route.path.to_owned(), method.as_str().to_owned()))
            })
            .collect();
        let listed = operations(document());
        let undocumented: Vec<_> = routed.difference(&listed).collect();
        let unrouted: Vec<_> = listed.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from the document: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "documented operations no route serves: {unrouted:?}"
        );
    }

    fn references(value: &Value, found: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.insert(target.clone());
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_operation_is_complete() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut found = BTreeSet::new();
        references(doc, &mut found);
        for target in &found {
            let name = target.trim_start_matches("#/components/schemas/");
            assert!(doc["components"]["schemas"][name].is_object(), "{target}");
        }
        let mut ids = BTreeSet::new();
        for (path, method) in operations(doc) {
            let op = &doc["paths"][&path][method.to_lowercase()];
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            assert!(ids.insert(id.clone()), "operationId {id} twice");
            let responses = op["responses"].as_object().cloned().unwrap_or_default();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}"
            );
            assert!(responses.contains_key("503"), "{method} {path}");
            let secured = op["security"].is_array();
            assert_eq!(responses.contains_key("401"), secured, "{method} {path}");
            for name in ["id", "step"] {
                if path.contains(&format!("{{{name}}}")) {
                    let declared = op["parameters"].as_array().is_some_and(|ps| {
                        ps.iter().any(|p| p["name"] == name && p["in"] == "path")
                    });
                    assert!(declared, "{method} {path} lacks path parameter {name}");
                }
            }
        }
    }

    #[test]
    fn links_name_existing_operations_in_camel_case() {
        let doc = document();
        let ids: BTreeSet<String> = operations(doc)
            .iter()
            .filter_map(|(path, method)| {
                doc["paths"][path][method.to_lowercase()]["operationId"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        let links = doc["paths"]["/v1/jobs"]["post"]["responses"]["201"]["links"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(links.contains_key("get_job"), "{links:?}");
        for (path, method) in operations(doc) {
            let op = &doc["paths"][&path][method.to_lowercase()];
            for response in op["responses"].as_object().into_iter().flatten() {
                for (name, link) in response.1["links"].as_object().into_iter().flatten() {
                    let target = link["operationId"].as_str().unwrap_or_default();
                    assert!(
                        ids.contains(target),
                        "{method} {path}: link {name} to {target}"
                    );
                    assert!(
                        link.get("operation_id").is_none() && link.get("request_body").is_none()
                    );
                }
            }
        }
    }

    /// The numbers the schemas repeat as literals are the core's limits.
    #[test]
    fn the_schemas_state_the_cores_limits() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["ClaimBody"]["properties"]["max"]["maximum"],
            jobstore::MAX_CLAIM
        );
        assert_eq!(
            schemas["LogBody"]["properties"]["lines"]["maxItems"],
            jobstore::MAX_LOG_LINES_PER_CALL
        );
        let limit = doc["paths"]["/v1/jobs"]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
            .map(|p| p["schema"]["maximum"].clone());
        assert_eq!(limit, Some(Value::from(jobstore::MAX_PAGE_SIZE)));
        let sorts = doc["paths"]["/v1/jobs"]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "sort"))
            .map(|p| p["schema"]["enum"].clone());
        let core: Vec<&str> = jobstore::SortField::ALL
            .map(jobstore::SortField::as_str)
            .to_vec();
        assert_eq!(sorts, Some(Value::from(core)));
        let types = schemas["ErrorDetail"]["properties"]["type"]["enum"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for kind in crate::fault::ErrorKind::ALL {
            assert!(types.contains(&Value::from(kind.as_str())), "{kind:?}");
        }
    }

    /// A request schema requires exactly the members its type cannot do without.
    #[test]
    fn request_bodies_require_what_the_decoder_requires() {
        let doc = document();
        let required = |name: &str| doc["components"]["schemas"][name]["required"].clone();
        let lease = Value::from(vec!["worker", "lease_token"]);
        for (name, expected) in [
            ("CreateJob", Value::from(vec!["kind"])),
            ("ClaimBody", Value::from(vec!["worker", "queues"])),
            ("HeartbeatBody", lease.clone()),
            ("CompleteBody", lease.clone()),
            (
                "FailBody",
                Value::from(vec!["worker", "lease_token", "error"]),
            ),
            (
                "StepBody",
                Value::from(vec!["worker", "lease_token", "status"]),
            ),
            ("LogBody", Value::from(vec!["lines"])),
            ("LogLineBody", Value::from(vec!["message"])),
            ("DefinitionStepBody", Value::from(vec!["step_id"])),
        ] {
            assert_eq!(required(name), expected, "{name}");
        }
        for name in ["DefinitionBody", "ExecuteBody"] {
            assert!(required(name).is_null(), "{name}: {}", required(name));
        }
        let body = |path: &str, method: &str| {
            doc["paths"][path][method]["requestBody"]["required"].as_bool()
        };
        assert_eq!(body("/v1/jobs", "post"), Some(true));
        assert_eq!(body("/v1/definitions/{id}", "put"), Some(false));
    }

    /// The answers that have no JSON body are documented as what they are.
    #[test]
    fn text_bytes_and_empty_answers_have_their_types() {
        let doc = document();
        let content = |path: &str, method: &str, status: &str| {
            doc["paths"][path][method]["responses"][status]["content"]
                .as_object()
                .map(|c| c.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(content("/healthz", "get", "200"), ["text/plain"]);
        assert_eq!(content("/metrics", "get", "200"), ["text/plain"]);
        assert_eq!(content("/v1/jobs/{id}/logs", "get", "200"), ["text/plain"]);
        assert_eq!(
            content("/v1/jobs/{id}/data", "get", "200"),
            ["application/octet-stream"]
        );
        assert!(content("/v1/jobs/{id}", "delete", "204").is_empty());
        let upload = &doc["paths"]["/v1/jobs/{id}/data"]["put"]["requestBody"]["content"];
        assert!(upload["application/octet-stream"].is_object());
        let logs = &doc["paths"]["/v1/jobs/{id}/logs"]["post"]["requestBody"]["content"];
        assert!(logs["application/json"].is_object() && logs["text/plain"].is_object());
    }
}
