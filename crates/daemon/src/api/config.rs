//! `GET /v1/config` and `POST /v1/config/apply`: the running configuration, and the
//! hitless apply of a new one.
//!
//! An apply validates the whole configuration first (syntax, shape, values,
//! cross-references, the data plane's own check, interfaces on this host); any
//! error refuses it with every located error and changes nothing. Otherwise the new
//! switch is built here, the I/O of the ports it adds is opened here, and the
//! data-plane thread swaps between two batches, moving the state that is still
//! valid (MAC table, bindings, counters, error-disabled ports, carrier) into it
//! (`Switch::carry_over_from`). Ports that stay keep their sockets: their traffic
//! never stops. Applies are serialized by the `running` lock.
//!
//! File names in a request are labels for error messages only; the daemon never
//! opens a path a caller sends.

use super::guard::{AuditDetail, Caller};
use super::{ApiError, ApiState};
use crate::runtime::{ApplyPlan, Command};
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_control::diff::{self, Change};
use portcullis_control::rbac::Authorizer;
use portcullis_control::{Config, export};
use portcullis_dataplane::CarryOver;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::oneshot;

/// A configuration file's text and the name that labels it in errors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SourceText {
    pub name: String,
    pub text: String,
}

/// `POST /v1/config/apply`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    pub profile: SourceText,
    /// The host binding; omitted: the profile's own `[host]`, or else the running one.
    #[serde(default)]
    pub host: Option<SourceText>,
    /// Validate and show the diff only.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer of an apply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApplyAnswer {
    pub applied: bool,
    pub changes: Vec<Change>,
    /// `changes`, rendered one per line.
    pub diff: String,
    /// What the swap kept and dropped (absent for a dry run or no change).
    pub carry_over: Option<serde_json::Value>,
    /// Changes that take effect only at the next daemon start.
    pub notes: Vec<String>,
}

/// `GET /v1/config`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigView {
    /// The profile, without the host binding (golden, host-independent).
    pub profile: SourceText,
    /// The host binding, as a file whose only table is `[host]`.
    pub host: SourceText,
    /// Every effective setting as `key = value` (profile and per port).
    pub flat: std::collections::BTreeMap<String, String>,
}

/// Every effective setting of a configuration, profile and host.
pub fn flatten(c: &Config) -> diff::Flat {
    let mut flat = diff::flatten_config(c);
    let m = &c.host.management;
    let onoff = |b: bool| if b { "on" } else { "off" }.to_string();
    flat.insert(
        "management.tls".into(),
        onoff(m.tcp_listen.is_none() || m.tls.is_some()),
    );
    flat.insert("management.tcp".into(), onoff(m.tcp_listen.is_some()));
    flat.insert(
        "management.audit_syslog".into(),
        onoff(m.audit_syslog.is_some()),
    );
    flat.extend(diff::flatten_management(m));
    flat
}

pub async fn get_config(State(st): State<ApiState>) -> Json<ConfigView> {
    let running = st.running.lock().await;
    let c = &running.config;
    Json(ConfigView {
        profile: SourceText {
            name: c.sources.profile.name.display().to_string(),
            text: export::export_profile(c),
        },
        host: SourceText {
            name: c
                .sources
                .host
                .as_ref()
                .unwrap_or(&c.sources.profile)
                .name
                .display()
                .to_string(),
            text: export::export_host(c),
        },
        flat: flatten(c),
    })
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", message)
}

fn check_label(s: &SourceText) -> Result<(), ApiError> {
    if s.name.is_empty() || s.name.len() > 255 || s.name.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            "a file name must be 1..=255 characters without control characters",
        ));
    }
    Ok(())
}

pub async fn apply(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<ApplyRequest>,
) -> Result<Response, ApiError> {
    use std::sync::atomic::Ordering::Relaxed;
    let applies = st.applies.clone();
    // Counted: applies made, and applies refused (a dry run or "nothing to apply" is neither).
    match apply_inner(st, caller, req).await {
        Ok((resp, applied)) => {
            if applied {
                applies.ok.fetch_add(1, Relaxed);
            }
            Ok(resp)
        }
        Err(e) => {
            applies.failed.fetch_add(1, Relaxed);
            Err(e)
        }
    }
}

async fn apply_inner(
    st: ApiState,
    caller: Caller,
    req: ApplyRequest,
) -> Result<(Response, bool), ApiError> {
    check_label(&req.profile)?;
    if let Some(h) = &req.host {
        check_label(h)?;
    }
    let mut running = st.running.lock().await;
    // The host binding: given, in the profile, or the running one.
    let profile_has_host = req
        .profile
        .text
        .parse::<toml_edit::DocumentMut>()
        .is_ok_and(|d| d.contains_key("host"));
    let running_host;
    let host = match (&req.host, profile_has_host) {
        (Some(h), _) => Some((h.text.as_str(), h.name.as_str())),
        (None, true) => None,
        (None, false) => {
            running_host = export::export_host(&running.config);
            Some((running_host.as_str(), "<running host binding>"))
        }
    };
    let (config, mut compiled) =
        portcullis_control::parse_str_compiled(&req.profile.text, &req.profile.name, host)
            .map_err(|e| invalid(e.to_string()))?;
    if !running.in_memory {
        crate::check_interfaces(&config, &compiled).map_err(|e| invalid(e.to_string()))?;
    }
    let changes = diff::diff(&flatten(&running.config), &flatten(&config));
    let rendered = diff::render(&changes);
    let mut notes = Vec::new();
    // The TCP listeners this apply opens or moves, bound before anything changes:
    // an address that cannot be bound (or TLS files that cannot be read) refuses it.
    let listener_plan = match (&running.listeners, req.dry_run) {
        (Some(_), false) => Some(plan_listeners(
            &running.config.host.management,
            &config.host.management,
        )?),
        _ => None,
    };
    // Nothing changed, but a configured static binding missing from the switch (or
    // held by another source) is restored by applying anyway: static bindings are
    // configuration, and `apply` is how an operator re-asserts it.
    let missing = if changes.is_empty() && !req.dry_run {
        missing_static_bindings(&st, &compiled).await?
    } else {
        0
    };
    if missing > 0 {
        notes.push(format!(
            "{missing} configured static binding(s) were missing from the switch: restored"
        ));
    }
    if req.dry_run || (changes.is_empty() && missing == 0) {
        let answer = ApplyAnswer {
            applied: false,
            changes,
            diff: rendered,
            carry_over: None,
            notes,
        };
        return Ok((Json(answer).into_response(), false));
    }

    // Management alone (roles, tokens, syslog, the socket) needs no new switch.
    let switch_changed = missing > 0 || changes.iter().any(|c| !c.key.starts_with("management."));
    let report = if switch_changed {
        let report = swap_switch(&st, &running, &mut compiled).await?;
        running.compiled = compiled;
        Some(report)
    } else {
        None
    };
    if let (Some(listeners), Some(plan)) = (running.listeners.as_mut(), listener_plan) {
        move_listeners(listeners, plan, &mut notes).await;
    }
    // Roles and tokens are read per request: the next request on every connection,
    // open ones included, is judged by the new configuration.
    if let Ok(mut a) = st.auth.write() {
        *a = Arc::new(Authorizer::new(&config.host.management, running.owner_uid));
    }
    if let Some(socket) = &running.socket {
        let (old_m, new_m) = (&running.config.host.management, &config.host.management);
        if (old_m.socket_mode != new_m.socket_mode || old_m.socket_group != new_m.socket_group)
            && let Err(e) = crate::socket_access(socket, new_m)
        {
            notes.push(format!("the control socket's mode or group: {e}"));
        }
    }
    if running.config.host.management.audit_syslog != config.host.management.audit_syslog {
        let forward = crate::syslog_forwarder(&config.host.management);
        if let Ok(mut log) = st.audit.lock() {
            log.set_forward(forward);
        }
    }
    running.config = config;
    tracing::info!(user = %caller.user, changes = changes.len(), "configuration applied");
    crate::record_event(
        &st.events,
        super::EventRecord {
            seq: 0,
            time_ms: std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            port: String::new(),
            event: "config_applied".into(),
            detail: serde_json::json!({
                "user": caller.user,
                "changes": changes.len(),
                "ports_added": report.as_ref().map(|r| r.ports_added.clone()).unwrap_or_default(),
                "ports_removed": report.as_ref().map(|r| r.ports_removed.clone()).unwrap_or_default(),
            }),
        },
    );
    let carry = report.map(|r| serde_json::to_value(&r).unwrap_or_default());
    let detail = serde_json::json!({ "changes": changes, "carry_over": carry });
    let answer = ApplyAnswer {
        applied: true,
        changes,
        diff: rendered,
        carry_over: carry,
        notes,
    };
    let mut resp = Json(answer).into_response();
    resp.extensions_mut().insert(AuditDetail(detail));
    Ok((resp, true))
}

/// Builds the new switch of `compiled`, opens the I/O of the ports it adds and has
/// the data-plane thread swap it in between two batches; what the swap carried over.
async fn swap_switch(
    st: &ApiState,
    running: &crate::Running,
    compiled: &mut portcullis_control::CompiledConfig,
) -> Result<CarryOver, ApiError> {
    crate::restore_sticky(&running.store, compiled).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "state_store",
            e.to_string(),
        )
    })?;
    let now = portcullis_dataplane::Instant(running.epoch.elapsed().as_nanos() as u64);
    let mut switch = portcullis_dataplane::Switch::new(&compiled.spec, now)
        .map_err(|e| invalid(e.to_string()))?;
    // The ports this apply adds (or moves to another interface) get their I/O now;
    // the others keep theirs.
    let old = &running.compiled;
    let mut new_io = Vec::new();
    let mut created = crate::CreatedTaps::default();
    for (i, (spec, ifname)) in compiled
        .spec
        .ports
        .iter()
        .zip(&compiled.interfaces)
        .enumerate()
    {
        let kept = old
            .spec
            .ports
            .iter()
            .zip(&old.interfaces)
            .any(|(p, ifn)| p.name == spec.name && ifn == ifname);
        if !kept && running.in_memory {
            let (rx, tx, _) = portcullis_io::memory_port();
            let io = crate::runtime::PortIo {
                rx: Box::new(rx),
                tx: Box::new(tx),
            };
            new_io.push((i, io));
        } else if !kept {
            let backend = compiled.backends[i];
            let io = crate::open_port(spec, ifname, compiled.create_tap[i], backend, &mut created)
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "port_open_failed",
                        e.to_string(),
                    )
                })?;
            new_io.push((i, io));
        }
    }
    crate::initial_carrier(&mut switch, compiled);
    let _ = switch.drain_events().count();
    let plan = ApplyPlan {
        switch,
        interfaces: compiled.interfaces.clone(),
        groups: crate::group_names(compiled),
        circuit_ids: crate::circuit_ids(compiled),
        new_io,
        links: crate::af_packet_links(compiled),
        link_monitor: crate::uplink_monitor(compiled),
        reply: oneshot::channel().0,
    };
    let (tx, rx) = oneshot::channel::<CarryOver>();
    let plan = ApplyPlan { reply: tx, ..plan };
    let mut names = st.port_names.write().await;
    st.commands
        .send(Command::Apply(Box::new(plan)))
        .map_err(|_| ApiError::unavailable())?;
    let report = rx.await.map_err(|_| ApiError::unavailable())?;
    created.keep();
    *names = Arc::new(compiled.spec.ports.iter().map(|p| p.name.clone()).collect());
    drop(names);
    Ok(report)
}

/// What an apply does to one TCP listener.
enum Move<T> {
    Keep,
    Stop,
    /// Serve on `addr`: on `listener`, bound already, or — when the address is the
    /// running listener's — bound once that one is closed.
    Start {
        addr: std::net::SocketAddr,
        listener: Option<tokio::net::TcpListener>,
        with: T,
    },
}

struct ListenerPlan {
    tls: Move<Arc<rustls::ServerConfig>>,
    metrics: Move<()>,
}

fn listener_error(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "listener_failed", message)
}

/// The listener changes from `old` to `new`: TLS files read and new addresses
/// bound now, so that a failure refuses the apply before anything changes.
fn plan_listeners(
    old: &portcullis_control::config::Management,
    new: &portcullis_control::config::Management,
) -> Result<ListenerPlan, ApiError> {
    let bind = |addr: std::net::SocketAddr, running: Option<std::net::SocketAddr>, what: &str| {
        if running == Some(addr) {
            return Ok(None);
        }
        crate::bind_tcp(addr)
            .map(Some)
            .map_err(|e| listener_error(format!("cannot listen on {addr} for {what}: {e}")))
    };
    let tls = if old.tcp_listen == new.tcp_listen && old.tls == new.tls {
        Move::Keep
    } else {
        match (new.tcp_listen, &new.tls) {
            (Some(addr), Some(files)) => {
                let with =
                    crate::tls::server_config(&files.cert, &files.key).map_err(listener_error)?;
                let listener = bind(addr, old.tcp_listen, "the API over TLS")?;
                Move::Start {
                    addr,
                    listener,
                    with,
                }
            }
            _ => Move::Stop,
        }
    };
    let metrics = match new.metrics_listen {
        m if m == old.metrics_listen => Move::Keep,
        None => Move::Stop,
        Some(addr) => Move::Start {
            addr,
            listener: bind(addr, old.metrics_listen, "the metrics")?,
            with: (),
        },
    };
    Ok(ListenerPlan { tls, metrics })
}

/// Stops, moves and starts the TCP listeners as planned. A listener that keeps its
/// address but changes otherwise (new TLS files) is rebound once the old one has
/// closed; if that fails the listener stays off, and the answer's notes say so.
async fn move_listeners(
    listeners: &mut crate::TcpListeners,
    plan: ListenerPlan,
    notes: &mut Vec<String>,
) {
    match plan.tls {
        Move::Keep => {}
        Move::Stop => listeners.stop_tls(),
        Move::Start {
            addr,
            listener,
            with,
        } => {
            listeners.stop_tls();
            match rebound(addr, listener).await {
                Ok(l) => listeners.serve_tls(l, with),
                Err(e) => notes.push(format!(
                    "the API over TLS is off: cannot listen on {addr}: {e}"
                )),
            }
        }
    }
    match plan.metrics {
        Move::Keep => {}
        Move::Stop => listeners.stop_metrics(),
        Move::Start { addr, listener, .. } => {
            listeners.stop_metrics();
            match rebound(addr, listener).await {
                Ok(l) => listeners.serve_metrics(l),
                Err(e) => notes.push(format!(
                    "the metrics endpoint is off: cannot listen on {addr}: {e}"
                )),
            }
        }
    }
}

/// `listener`, or a new one on `addr` once the listener that held it has closed
/// (its task closes it as soon as it runs: within a second).
async fn rebound(
    addr: std::net::SocketAddr,
    listener: Option<tokio::net::TcpListener>,
) -> std::io::Result<tokio::net::TcpListener> {
    if let Some(l) = listener {
        return Ok(l);
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match crate::bind_tcp(addr) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            r => return r,
        }
    }
}

/// How many of the configuration's static bindings the running switch does not hold
/// as configured (same MAC and port, source static).
async fn missing_static_bindings(
    st: &ApiState,
    compiled: &portcullis_control::config::CompiledConfig,
) -> Result<usize, ApiError> {
    if compiled.spec.static_bindings.is_empty() {
        return Ok(0);
    }
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::Bindings(tx))
        .map_err(|_| ApiError::unavailable())?;
    let view = rx.await.map_err(|_| ApiError::unavailable())?;
    let held: std::collections::HashSet<(u16, String, String, String)> = view
        .bindings
        .into_iter()
        .filter(|b| b.source == "static")
        .map(|b| (b.vlan, b.ip, b.mac, b.port))
        .collect();
    Ok(compiled
        .spec
        .static_bindings
        .iter()
        .filter(|sb| {
            let port = compiled
                .spec
                .ports
                .get(sb.port)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            !held.contains(&(sb.vid.get(), sb.ip.to_string(), sb.mac.to_string(), port))
        })
        .count())
}
