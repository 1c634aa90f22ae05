//! The guard every API call passes: who is calling (Unix peer credentials mapped to
//! a user, its groups and a role; or, over TCP, a bearer token), whether their
//! role allows the route, and the audit records — a refusal (401/403) as one record,
//! a write as an intent record before it runs and an outcome record after it.
//! It also gives axum's own rejections (bad JSON, wrong content type, body too
//! large, wrong method) the API's one error shape.
//!
//! Invariant: a write's handler runs only after its intent record is on disk, and
//! on a task of its own so that a client hanging up cannot stop it between the
//! change and its outcome record.

use super::{ApiError, ApiState, ErrorBody, ErrorDetail, MAX_BODY_BYTES, Peer, ROUTES, RouteSpec};
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_control::rbac::Role;

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Caller {
    /// `alice`, `uid:1001` (no passwd entry) or `token:ci-bot`.
    pub user: String,
    pub role: Option<Role>,
    /// `unix:pid=…,uid=…` or `tcp:ADDR`.
    pub source: String,
}

impl Caller {
    pub fn role_name(&self) -> &'static str {
        self.role.map_or("none", Role::name)
    }
}

/// Extra details a write handler wants in its outcome record (the diff of an
/// apply), put in the response's extensions.
#[derive(Clone, Debug)]
pub struct AuditDetail(pub serde_json::Value);

pub(crate) fn unix_now() -> u64 {
    crate::held::unix_now()
}

/// The one answer to a TCP caller whose token is missing, malformed, unknown,
/// wrong or expired: which of these it was is for the audit record and the log,
/// never for the caller (it would tell which token names exist).
pub const UNAUTHENTICATED: &str =
    "a valid bearer token is required (Authorization: Bearer pcl_<name>_<secret>)";

/// Who is calling; on a refusal, the error to answer and what the audit record
/// says about it.
async fn identify(
    st: &ApiState,
    peer: &Peer,
    headers: &HeaderMap,
) -> Result<Caller, (ApiError, String)> {
    let auth = st.auth.read().map(|a| a.clone()).map_err(|_| {
        (
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "lock"),
            "the authorizer's lock is poisoned".to_string(),
        )
    })?;
    if let Some(addr) = peer.tcp {
        let source = format!("tcp:{addr}");
        let unauthenticated = |detail: String| {
            (
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", UNAUTHENTICATED),
                detail,
            )
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthenticated("no bearer token".into()));
        };
        let Some(token) = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned())
        else {
            return Err(unauthenticated(
                "the Authorization header is not `Bearer TOKEN`".into(),
            ));
        };
        // argon2 takes tens of milliseconds: off the executor.
        let verified =
            tokio::task::spawn_blocking(move || auth.verify_token(&token, unix_now())).await;
        return match verified {
            Ok(Ok((name, role))) => Ok(Caller {
                user: format!("token:{name}"),
                role: Some(role),
                source,
            }),
            Ok(Err(e)) => Err(unauthenticated(e.to_string())),
            Err(e) => Err(unauthenticated(format!("token check failed: {e}"))),
        };
    }
    let (Some(uid), Some(gid)) = (peer.uid, peer.gid) else {
        let message = "the caller's credentials are unknown";
        return Err((
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message),
            message.to_string(),
        ));
    };
    let (user, groups) = crate::unix_users::user_and_groups(uid, gid);
    Ok(Caller {
        role: auth.role_of_local(uid, &user, &groups),
        user,
        source: format!(
            "unix:pid={},uid={uid}",
            peer.pid.map_or_else(|| "?".into(), |p| p.to_string())
        ),
    })
}

/// A refusal with who it refused and why (for the audit record).
struct Refusal {
    caller: Caller,
    error: ApiError,
    /// The audit record's reason (may say more than the answer).
    detail: String,
}

fn source_of(peer: &Peer) -> String {
    match peer.tcp {
        Some(a) => format!("tcp:{a}"),
        None => format!(
            "unix:pid={},uid={}",
            peer.pid.map_or_else(|| "?".into(), |p| p.to_string()),
            peer.uid.map_or_else(|| "?".into(), |u| u.to_string())
        ),
    }
}

/// The audit action of a call: the route's, or `read <path>` for reads.
fn action_of(route: Option<&RouteSpec>, path: &str) -> String {
    match route {
        Some(RouteSpec {
            action: Some(a), ..
        }) => (*a).to_string(),
        _ => format!("read {path}"),
    }
}

/// Appends one audit record on the blocking pool; its sequence number.
pub(crate) async fn append(
    st: &ApiState,
    caller: &Caller,
    action: &str,
    args: serde_json::Value,
    result: String,
) -> Result<u64, ApiError> {
    let log = st.audit.clone();
    let (user, role, source, action) = (
        caller.user.clone(),
        caller.role_name(),
        caller.source.clone(),
        action.to_string(),
    );
    let appended = tokio::task::spawn_blocking(move || {
        let mut log = log
            .lock()
            .map_err(|_| "the audit log lock is poisoned".to_string())?;
        log.append(&user, role, &source, &action, args, &result)
            .map(|r| r.seq)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    appended.map_err(|e| {
        tracing::error!(error = %e, "cannot write the audit record");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "audit_failed",
            format!("the call could not be audited ({e})"),
        )
    })
}

/// Long strings in audited arguments (a whole profile) are recorded by digest.
fn summarize(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) if s.len() > 256 => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(s.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            serde_json::json!({ "sha256": hex, "bytes": s.len() })
        }
        Value::Array(a) => Value::Array(a.into_iter().map(summarize).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, summarize(v))).collect()),
        v => v,
    }
}

/// The middleware: identify, authorize, audit, normalize errors.
pub async fn guard(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let route = matched.as_ref().and_then(|m| {
        ROUTES
            .iter()
            .find(|r| r.path == m.as_str() && r.method == req.method())
    });
    let action = action_of(route, &path);
    // A write's body is read first (bounded), so that even a refusal records
    // what was asked.
    let write_action = route.and_then(|r| r.action);
    let (req, body) = match write_action {
        Some(_) => {
            let (parts, body) = req.into_parts();
            match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
                Ok(b) => (Request::from_parts(parts, Body::empty()), Some(b)),
                Err(_) => (Request::from_parts(parts, Body::empty()), None),
            }
        }
        None => (req, None),
    };
    // A refusal is recorded by a bounded summary: never the body itself.
    let mut refusal_args = serde_json::json!({ "method": req.method().as_str(), "path": path });
    match (write_action, &body) {
        (Some(_), Some(bytes)) => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(bytes);
            refusal_args["body_bytes"] = bytes.len().into();
            refusal_args["body_sha256"] = digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into();
        }
        (Some(_), None) => refusal_args["body_bytes"] = format!(">{MAX_BODY_BYTES}").into(),
        (None, _) => {}
    }
    let mut args = serde_json::json!({ "path": path });
    if let Some(bytes) = &body
        && !bytes.is_empty()
    {
        args["body"] = serde_json::from_slice::<serde_json::Value>(bytes)
            .map(summarize)
            .unwrap_or_else(|_| serde_json::json!({ "invalid_body_bytes": bytes.len() }));
    }
    let caller = match identify(&st, &peer, req.headers()).await {
        Ok(c) => c,
        Err((error, detail)) => {
            let refusal = Refusal {
                caller: Caller {
                    user: "anonymous".into(),
                    role: None,
                    source: source_of(&peer),
                },
                error,
                detail,
            };
            return refuse(&st, &peer, refusal, &action, refusal_args).await;
        }
    };
    // Unknown routes and wrong methods need an identified caller too.
    let permission = match (route, &matched) {
        (Some(r), _) => r.permission,
        _ => Some(portcullis_control::rbac::Permission::Read),
    };
    if let Some(p) = permission
        && !caller.role.is_some_and(|r| r.allows(p))
    {
        let message = match caller.role {
            None => format!("{} has no role on this switch", caller.user),
            Some(r) => format!("the {} role may not {}", r.name(), describe(route, &path)),
        };
        let error = ApiError::new(StatusCode::FORBIDDEN, "forbidden", message.clone());
        let refusal = Refusal {
            caller,
            error,
            detail: message,
        };
        return refuse(&st, &peer, refusal, &action, refusal_args).await;
    }
    let Some(RouteSpec {
        action: Some(write_action),
        ..
    }) = route
    else {
        return normalize(next.run(with_caller(req, caller)).await).await;
    };
    // A write: record the intent, run detached, record the outcome.
    let Some(bytes) = body else {
        let error = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        );
        let result = format!("error: {}: {}", error.code, error.message);
        return match append(&st, &caller, write_action, args, result).await {
            Ok(_) => error.into_response(),
            Err(e) => e.into_response(),
        };
    };
    let (parts, _) = req.into_parts();
    let intent = match append(&st, &caller, write_action, args, "pending".into()).await {
        Ok(seq) => seq,
        Err(e) => return e.into_response(),
    };
    let req = with_caller(
        Request::from_parts(parts, Body::from(bytes)),
        caller.clone(),
    );
    let st2 = st.clone();
    let write_action = write_action.to_string();
    let work = async move {
        let resp = normalize(next.run(req).await).await;
        let (resp, outcome) = outcome_of(resp).await;
        let detail = resp.extensions().get::<AuditDetail>().map(|d| d.0.clone());
        let mut args = serde_json::json!({ "intent": intent });
        if let Some(d) = detail {
            args["detail"] = d;
        }
        match append(&st2, &caller, &write_action, args, outcome).await {
            Ok(_) => resp,
            Err(mut e) => {
                e.message = format!("{}; the call's outcome is not confirmed", e.message);
                e.into_response()
            }
        }
    };
    tokio::spawn(work).await.unwrap_or_else(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the call's task failed: {e}"),
        )
        .into_response()
    })
}

fn describe(route: Option<&RouteSpec>, path: &str) -> String {
    match route {
        Some(r) => format!("{} ({} {})", r.summary.to_lowercase(), r.method, r.path),
        None => format!("call {path}"),
    }
}

fn with_caller(mut req: Request, caller: Caller) -> Request {
    req.extensions_mut().insert(caller);
    req
}

/// Answers a refusal, and audits it — for a TCP peer, unless its (or all TCP
/// peers') refusal records are over their rate (see `refusals`): then it is only
/// counted.
async fn refuse(
    st: &ApiState,
    peer: &Peer,
    r: Refusal,
    action: &str,
    mut args: serde_json::Value,
) -> Response {
    use super::refusals::{Admit, peer_key};
    // Local callers are identified by the kernel and accountable: all recorded.
    // Over TCP anyone who can reach the port can be refused: rate-limited.
    let admit = match peer.tcp {
        None => None,
        Some(_) => st
            .refusals
            .lock()
            .ok()
            .map(|mut l| l.admit(&peer_key(peer), std::time::Instant::now())),
    }
    .unwrap_or(Admit::Record {
        suppressed_before: 0,
    });
    let Admit::Record { suppressed_before } = admit else {
        return r.error.into_response();
    };
    if suppressed_before > 0 {
        args["suppressed_before"] = suppressed_before.into();
    }
    tracing::warn!(user = %r.caller.user, source = %r.caller.source, %action, suppressed_before, "refused: {}", r.detail);
    let result = format!("refused: {}", r.detail);
    match append(st, &r.caller, action, args, result).await {
        Ok(_) => r.error.into_response(),
        Err(e) => e.into_response(),
    }
}

/// The outcome text of a response: `ok`, or `error: CODE: MESSAGE`.
async fn outcome_of(resp: Response) -> (Response, String) {
    if resp.status().is_success() {
        return (resp, "ok".into());
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 16)
        .await
        .unwrap_or_default();
    let result = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(e) => format!("error: {}: {}", e.error.code, e.error.message),
        Err(_) => format!("error: {}", parts.status),
    };
    (Response::from_parts(parts, Body::from(bytes)), result)
}

/// Gives an error response that is not in the API's shape (axum's rejections:
/// malformed JSON, wrong content type, unknown fields, too large, wrong method)
/// the `{"error": {"code", "message"}}` shape.
pub async fn normalize(resp: Response) -> Response {
    let status = resp.status();
    if status.is_success() || status.is_informational() || status.is_redirection() {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 16)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        _ => "error",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = (
        status,
        axum::Json(ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message,
            },
        }),
    )
        .into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}
