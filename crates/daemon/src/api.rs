//! The control API: HTTP/JSON on a Unix socket, versioned under `/v1`. Reads come
//! from snapshots the data-plane thread builds between batches; the one write so far
//! (the hypervisor's report of a guest's effective MAC) is a command to that thread.
//!
//! Invariants: the API never touches the switch directly (command channel only);
//! every error is one JSON shape `{"error": {"code", "message"}}`; a write is
//! accepted only from a caller whose Unix peer credentials are root's or the
//! daemon's own user (roles come with the management plane); every write, accepted,
//! failed or refused, is appended to the audit log (fsync'd) before it is answered,
//! and a write that cannot be audited is answered 500 `audit_failed`.

use crate::runtime::Command;
use crate::snapshot::{MacTableView, PortView, Snapshot};
use axum::extract::connect_info::{self, ConnectInfo};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use portcullis_control::audit::AuditLog;
use portcullis_dataplane::{ControlError, MacAddr, PortId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, mpsc};
use tokio::net::UnixListener;
use tokio::sync::oneshot;

/// Events kept for `GET /v1/events`.
pub const EVENT_HISTORY: usize = 1024;

/// One event as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventRecord {
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub port: String,
    pub event: String,
    pub detail: serde_json::Value,
}

/// Shared state of the API handlers.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub commands: mpsc::Sender<Command>,
    pub port_names: Arc<Vec<String>>,
    pub events: Arc<Mutex<VecDeque<EventRecord>>>,
    pub owner_uid: u32,
    /// The audit log (API thread only; appends run on the blocking pool).
    pub audit: Arc<Mutex<AuditLog>>,
}

/// The caller's transport: a Unix-socket peer (SO_PEERCRED) or a TCP peer (TLS).
#[derive(Clone, Copy, Debug, Default)]
pub struct Peer {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub pid: Option<i32>,
    /// Set for callers over TCP+TLS (who then authenticate with a bearer token).
    pub tcp: Option<std::net::SocketAddr>,
}

impl connect_info::Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        let cred = stream.io().peer_cred().ok();
        Peer {
            uid: cred.map(|c| c.uid()),
            gid: cred.map(|c| c.gid()),
            pid: cred.and_then(|c| c.pid()),
            tcp: None,
        }
    }
}

/// An API error: HTTP status, a stable code, a message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dataplane_unavailable",
            "the data plane is not answering",
        )
    }
}

#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}
#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The routes of API version 1.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/ports", get(ports))
        .route("/v1/ports/{name}", get(port))
        .route("/v1/ports/{name}/effective-mac", put(report_mac))
        .route("/v1/mac", get(mac_table))
        .route("/v1/counters", get(counters))
        .route("/v1/events", get(events))
        .route("/v1/port-security", get(port_security))
        .route("/v1/mac-acls", get(mac_acls))
        .route("/v1/uplinks", get(uplinks))
        .route("/v1/bindings", get(bindings).post(add_binding))
        .route(
            "/v1/bindings/{vlan}/{ip}",
            axum::routing::delete(remove_binding),
        )
        .route("/v1/ports/{name}/recover", post(recover))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
        })
        .with_state(state)
}

async fn snapshot(st: &ApiState) -> Result<Snapshot, ApiError> {
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::Snapshot(tx))
        .map_err(|_| ApiError::unavailable())?;
    rx.await.map_err(|_| ApiError::unavailable())
}

#[derive(Serialize, Deserialize, Debug)]
pub struct StatusView {
    pub switch: String,
    pub uptime_secs: u64,
    pub ports: usize,
    pub mac_entries: usize,
    pub drops: BTreeMap<String, u64>,
    pub events_lost: u64,
}

async fn status(State(st): State<ApiState>) -> Result<Json<StatusView>, ApiError> {
    let s = snapshot(&st).await?;
    Ok(Json(StatusView {
        switch: s.switch,
        uptime_secs: s.uptime_secs,
        ports: s.ports.len(),
        mac_entries: s.mac_table.entries.len(),
        drops: s.drops,
        events_lost: s.events_lost,
    }))
}

async fn ports(State(st): State<ApiState>) -> Result<Json<Vec<PortView>>, ApiError> {
    Ok(Json(snapshot(&st).await?.ports))
}

async fn port(
    State(st): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<PortView>, ApiError> {
    snapshot(&st)
        .await?
        .ports
        .into_iter()
        .find(|p| p.name == name)
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_port",
                format!("no port named {name:?}"),
            )
        })
}

async fn mac_table(State(st): State<ApiState>) -> Result<Json<MacTableView>, ApiError> {
    Ok(Json(snapshot(&st).await?.mac_table))
}

#[derive(Serialize, Deserialize, Debug)]
pub struct CountersResponse {
    pub ports: Vec<PortCountersEntry>,
    /// All ports, both directions, by reason.
    pub drops: BTreeMap<String, u64>,
}
#[derive(Serialize, Deserialize, Debug)]
pub struct PortCountersEntry {
    pub name: String,
    pub counters: crate::snapshot::CountersView,
}

async fn counters(State(st): State<ApiState>) -> Result<Json<CountersResponse>, ApiError> {
    let s = snapshot(&st).await?;
    Ok(Json(CountersResponse {
        ports: s
            .ports
            .into_iter()
            .map(|p| PortCountersEntry {
                name: p.name,
                counters: p.counters,
            })
            .collect(),
        drops: s.drops,
    }))
}

async fn events(State(st): State<ApiState>) -> Json<Vec<EventRecord>> {
    Json(
        st.events
            .lock()
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default(),
    )
}

#[derive(Serialize, Deserialize, Debug)]
pub struct ReportMac {
    pub mac: String,
}

async fn report_mac(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(name): Path<String>,
    Json(body): Json<ReportMac>,
) -> Result<StatusCode, ApiError> {
    let args = serde_json::json!({ "port": name, "mac": body.mac });
    let action = "port.report_mac";
    detached(async move {
        require_writer(&st, &peer, action, "report a MAC change", &args).await?;
        let r = report_mac_inner(&st, &peer, name, body).await;
        audited(&st, &peer, action, args, r).await
    })
    .await
}

async fn report_mac_inner(
    st: &ApiState,
    peer: &Peer,
    name: String,
    body: ReportMac,
) -> Result<StatusCode, ApiError> {
    let mac: MacAddr = body.mac.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_mac",
            format!("{:?}: {e}", body.mac),
        )
    })?;
    let port = port_id(st, &name)?;
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::ReportEffectiveMac {
            port,
            mac,
            reply: tx,
        })
        .map_err(|_| ApiError::unavailable())?;
    match rx.await.map_err(|_| ApiError::unavailable())? {
        Ok(()) => {
            tracing::info!(?peer, port = %name, %mac, "effective MAC reported");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e @ ControlError::MacInUse(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "mac_in_use",
            e.to_string(),
        )),
        Err(e @ ControlError::MacTableFull) => Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "mac_table_full",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "refused",
            e.to_string(),
        )),
    }
}

/// Writes are for root and the daemon's own user until roles exist; refusals are
/// logged and audited.
async fn require_writer(
    st: &ApiState,
    peer: &Peer,
    action: &'static str,
    what: &str,
    args: &serde_json::Value,
) -> Result<(), ApiError> {
    if is_writer(st, peer) {
        return Ok(());
    }
    tracing::warn!(
        ?peer,
        action,
        %args,
        "refused: caller is neither root nor the daemon's user"
    );
    let refusal = ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("only root or the daemon's user may {what}"),
    );
    audited::<()>(st, peer, action, args.clone(), Err(refusal)).await
}

/// Runs a write to its end (including its audit record) on its own task, so that a
/// client hanging up cannot cancel it between the change and the record.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work).await.unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the call's task failed: {e}"),
        ))
    })
}

fn is_writer(st: &ApiState, peer: &Peer) -> bool {
    matches!(peer.uid, Some(uid) if uid == 0 || uid == st.owner_uid)
}

/// Appends the audit record of a write (`ok`, `refused: …` for 403, `error: …`)
/// and passes its outcome on, or answers 500 `audit_failed` if the record cannot
/// be written (fail closed: the change, if any, was applied but is not confirmed).
async fn audited<T>(
    st: &ApiState,
    peer: &Peer,
    action: &'static str,
    args: serde_json::Value,
    outcome: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let result = match &outcome {
        Ok(_) => "ok".to_string(),
        Err(e) if e.status == StatusCode::FORBIDDEN => format!("refused: {}", e.message),
        Err(e) => format!("error: {}: {}", e.code, e.message),
    };
    let user = peer
        .uid
        .map_or_else(|| "uid:unknown".to_string(), |u| format!("uid:{u}"));
    let role = if is_writer(st, peer) { "admin" } else { "none" };
    let source = format!(
        "unix:pid={},uid={}",
        peer.pid.map_or_else(|| "?".to_string(), |p| p.to_string()),
        peer.uid.map_or_else(|| "?".to_string(), |u| u.to_string()),
    );
    let log = st.audit.clone();
    let appended = tokio::task::spawn_blocking(move || {
        let mut log = log
            .lock()
            .map_err(|_| "the audit log lock is poisoned".to_string())?;
        log.append(&user, role, &source, action, args, &result)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    match appended {
        Ok(_) => outcome,
        Err(e) => {
            tracing::error!(error = %e, action, "cannot write the audit record");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "audit_failed",
                format!("the call could not be audited ({e}); its outcome is not confirmed"),
            ))
        }
    }
}

fn port_id(st: &ApiState, name: &str) -> Result<PortId, ApiError> {
    st.port_names
        .iter()
        .position(|n| n == name)
        .map(|i| PortId(i as u16))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_port",
                format!("no port named {name:?}"),
            )
        })
}

async fn port_security(
    State(st): State<ApiState>,
) -> Result<Json<Vec<crate::snapshot::PortSecurityView>>, ApiError> {
    Ok(Json(snapshot(&st).await?.port_security))
}

#[derive(Serialize, Deserialize, Debug)]
pub struct RecoverAnswer {
    pub port: String,
    /// Whether the port was error-disabled.
    pub recovered: bool,
}

async fn recover(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(name): Path<String>,
) -> Result<Json<RecoverAnswer>, ApiError> {
    let args = serde_json::json!({ "port": name });
    let action = "port.recover";
    detached(async move {
        require_writer(&st, &peer, action, "recover a port", &args).await?;
        let r = recover_inner(&st, &peer, name).await;
        audited(&st, &peer, action, args, r).await
    })
    .await
}

async fn recover_inner(
    st: &ApiState,
    peer: &Peer,
    name: String,
) -> Result<Json<RecoverAnswer>, ApiError> {
    let port = port_id(st, &name)?;
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::Recover { port, reply: tx })
        .map_err(|_| ApiError::unavailable())?;
    let recovered = rx
        .await
        .map_err(|_| ApiError::unavailable())?
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "refused", e.to_string()))?;
    tracing::info!(?peer, port = %name, recovered, "port recover");
    Ok(Json(RecoverAnswer {
        port: name,
        recovered,
    }))
}

async fn mac_acls(
    State(st): State<ApiState>,
) -> Result<Json<Vec<crate::snapshot::MacAclView>>, ApiError> {
    Ok(Json(snapshot(&st).await?.mac_acls))
}

async fn bindings(
    State(st): State<ApiState>,
) -> Result<Json<crate::snapshot::BindingsView>, ApiError> {
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::Bindings(tx))
        .map_err(|_| ApiError::unavailable())?;
    Ok(Json(rx.await.map_err(|_| ApiError::unavailable())?))
}

/// `POST /v1/bindings`: a binding that never expires (source api).
#[derive(Serialize, Deserialize, Debug)]
pub struct NewBinding {
    pub mac: String,
    pub ip: String,
    pub vlan: u16,
    pub port: String,
}

fn bad(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

async fn add_binding(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Json(b): Json<NewBinding>,
) -> Result<StatusCode, ApiError> {
    let args = serde_json::json!({ "mac": b.mac, "ip": b.ip, "vlan": b.vlan, "port": b.port });
    let action = "binding.add";
    detached(async move {
        require_writer(&st, &peer, action, "add a binding", &args).await?;
        let r = add_binding_inner(&st, &peer, b).await;
        audited(&st, &peer, action, args, r).await
    })
    .await
}

async fn add_binding_inner(
    st: &ApiState,
    peer: &Peer,
    b: NewBinding,
) -> Result<StatusCode, ApiError> {
    let mac: MacAddr = b
        .mac
        .parse()
        .map_err(|e| bad("invalid_mac", format!("{:?}: {e}", b.mac)))?;
    let ip: std::net::IpAddr =
        b.ip.parse()
            .map_err(|e| bad("invalid_ip", format!("{:?}: {e}", b.ip)))?;
    let vid = portcullis_dataplane::Vid::new(b.vlan).ok_or_else(|| {
        bad(
            "invalid_vlan",
            format!("VLAN {} is outside 1..=4094", b.vlan),
        )
    })?;
    let port = port_id(st, &b.port)?;
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::AddBinding {
            vid,
            ip,
            mac,
            port,
            reply: tx,
        })
        .map_err(|_| ApiError::unavailable())?;
    rx.await
        .map_err(|_| ApiError::unavailable())?
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "binding_refused", e))?;
    tracing::info!(?peer, %ip, %mac, vlan = b.vlan, port = %b.port, "binding added");
    Ok(StatusCode::CREATED)
}

async fn remove_binding(
    State(st): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path((vlan, ip)): Path<(u16, String)>,
) -> Result<StatusCode, ApiError> {
    let args = serde_json::json!({ "vlan": vlan, "ip": ip });
    let action = "binding.remove";
    detached(async move {
        require_writer(&st, &peer, action, "remove a binding", &args).await?;
        let r = remove_binding_inner(&st, &peer, vlan, ip).await;
        audited(&st, &peer, action, args, r).await
    })
    .await
}

async fn remove_binding_inner(
    st: &ApiState,
    peer: &Peer,
    vlan: u16,
    ip: String,
) -> Result<StatusCode, ApiError> {
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|e| bad("invalid_ip", format!("{ip:?}: {e}")))?;
    let vid = portcullis_dataplane::Vid::new(vlan)
        .ok_or_else(|| bad("invalid_vlan", format!("VLAN {vlan} is outside 1..=4094")))?;
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::RemoveBinding { vid, ip, reply: tx })
        .map_err(|_| ApiError::unavailable())?;
    if rx.await.map_err(|_| ApiError::unavailable())? {
        tracing::info!(?peer, %ip, vlan, "binding removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_binding",
            format!("no binding of {ip} in VLAN {vlan}"),
        ))
    }
}

async fn uplinks(
    State(st): State<ApiState>,
) -> Result<Json<Vec<crate::snapshot::UplinkView>>, ApiError> {
    Ok(Json(snapshot(&st).await?.uplinks))
}
