//! `GET /v1/config` and `POST /v1/config/apply`: the running configuration, and the
//! hitless apply of a new one.
//!
//! An apply validates the whole configuration first (syntax, shape, values,
//! cross-references, the data plane's own check, interfaces on this host); any
//! error refuses it with every located error and changes nothing. Otherwise the
//! TCP listeners' changes are planned (`running::ListenerPlan`) and
//! `plan::prepare` builds the new switch and opens the I/O of the ports it adds,
//! both off the async runtime; the data-plane thread swaps between two batches,
//! moving the state that is still valid (MAC table, bindings, counters,
//! error-disabled ports, carrier) into it (`Switch::carry_over_from`). Ports that stay keep their sockets: their traffic
//! never stops. Applies are serialized by the `running` lock.
//!
//! File names in a request are labels for error messages only; the daemon never
//! opens a path a caller sends.

use super::guard::{AuditDetail, Caller};
use super::{ApiError, ApiState};
use crate::plan::{self, Current, PrepareError};
use crate::running::ListenerPlan;
use crate::runtime::Command;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use portcullis_api::{ApplyAnswer, ApplyRequest, ConfigView, SourceText};
use portcullis_control::diff;
use portcullis_control::rbac::Authorizer;
use portcullis_control::{Config, export};
use portcullis_dataplane::CarryOver;
use std::sync::Arc;
use tokio::sync::oneshot;

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
        runtime_ports: running.runtime_ports.ports.clone(),
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
    reload: Option<Extension<crate::service::StartupReload>>,
    Json(req): Json<ApplyRequest>,
) -> Result<Response, ApiError> {
    use std::sync::atomic::Ordering::Relaxed;
    let applies = st.applies.clone();
    let changed = st.ports_changed.clone();
    let reload = reload.map(|Extension(r)| r);
    // Counted: applies made, and applies refused (a dry run or "nothing to apply" is neither).
    match apply_inner(st, caller, req, reload).await {
        Ok((resp, applied)) => {
            if applied {
                applies.ok.fetch_add(1, Relaxed);
                // The switch was rebuilt: the cluster agent reads the ports again
                // and gives the overlay its peers in the new groups' VLANs.
                changed.notify_one();
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
    reload: Option<crate::service::StartupReload>,
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
    let (config, compiled) =
        portcullis_control::parse_str_compiled(&req.profile.text, &req.profile.name, host)
            .map_err(|e| invalid(e.to_string()))?;
    if !running.in_memory {
        crate::ports::check_interfaces(&config, &compiled).map_err(|e| invalid(e.to_string()))?;
    }
    // The runtime ports stay (they are host state): they must still fit.
    let compiled = if running.runtime_ports.ports.is_empty() {
        compiled
    } else {
        runtime_ports_fit(&config, &running.runtime_ports.ports)?;
        crate::runtime_ports::compile(&config, &running.runtime_ports.ports).map_err(|e| {
            invalid(format!(
                "the configuration does not fit the runtime ports: {e}"
            ))
        })?
    };
    let changes = diff::diff(&flatten(&running.config), &flatten(&config));
    let rendered = diff::render(&changes);
    let mut notes = Vec::new();
    // The TCP listeners this apply opens or moves, bound before anything changes:
    // an address that cannot be bound (or TLS files that cannot be read) refuses it.
    let listener_plan = match (&running.listeners, req.dry_run) {
        (Some(_), false) => {
            let old = running.config.host.management.clone();
            let new = config.host.management.clone();
            let planned =
                tokio::task::spawn_blocking(move || ListenerPlan::new(Some(&old), &new)).await;
            let planned = planned.map_err(|_| ApiError::unavailable())?;
            Some(planned.map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "listener_failed",
                    e.to_string(),
                )
            })?)
        }
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
        // A reload of files that change nothing still makes them the startup
        // files the running configuration derives from.
        if let Some(reload) = reload.filter(|r| !req.dry_run && r.0 != running.persist.startup) {
            running.persist.startup = reload.0;
            save_running(&running, &caller.user, &mut notes).await;
        }
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
        let (compiled, report) = swap_switch(&st, &running, compiled).await?;
        running.compiled = compiled;
        Some(report)
    } else {
        None
    };
    // A bridge netdev turned on, or a renamed switch: made now (an old one stays).
    if let Err(e) = crate::bridge_netdev(&config) {
        notes.push(e.to_string());
    }
    if let (Some(listeners), Some(plan)) = (running.listeners.as_mut(), listener_plan) {
        listeners.change(plan, &mut notes).await;
    }
    // Roles and tokens are read per request: the next request on every connection,
    // open ones included, is judged by the new configuration.
    if let Ok(mut a) = st.auth.write() {
        *a = Arc::new(Authorizer::new(&config.host.management, running.owner_uid));
    }
    // So is the web view: its next request is served, or answered 404.
    st.web_view.store(
        config.host.management.web_view,
        std::sync::atomic::Ordering::Relaxed,
    );
    if let Some(socket) = &running.socket {
        let (old_m, new_m) = (&running.config.host.management, &config.host.management);
        if (old_m.socket_mode != new_m.socket_mode || old_m.socket_group != new_m.socket_group)
            && let Err(e) = crate::running::socket_access(socket, new_m)
        {
            notes.push(format!("the control socket's mode or group: {e}"));
        }
    }
    if running.config.host.management.audit_syslog != config.host.management.audit_syslog {
        let forward = crate::running::syslog_forwarder(&config.host.management);
        if let Ok(mut log) = st.audit.lock() {
            log.set_forward(forward);
        }
    }
    running.config = config;
    // A reload (SIGHUP) applied the startup files: what runs now derives from them,
    // so this save, and every apply's after it, is kept by a restart on them.
    if let Some(reload) = reload {
        running.persist.startup = reload.0;
    }
    // Applied is saved: a restart comes back with it (running_config.rs).
    save_running(&running, &caller.user, &mut notes).await;
    tracing::info!(user = %caller.user, changes = changes.len(), "configuration applied");
    super::record_event(
        &st.events,
        super::EventRecord {
            seq: 0,
            time: portcullis_control::audit::format_rfc3339(std::time::SystemTime::now()),
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

/// Saves the running configuration (`running_config.rs`), by `user`. A save that
/// fails leaves the apply in force, and says so in the log and in `notes`.
async fn save_running(running: &crate::running::Running, user: &str, notes: &mut Vec<String>) {
    let (persist, saved_config, user) = (
        running.persist.clone(),
        running.config.clone(),
        user.to_string(),
    );
    let saved = tokio::task::spawn_blocking(move || persist.save(&saved_config, &user)).await;
    if let Err(e) = saved
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        tracing::error!(error = %e, "the applied configuration could not be saved: a restart would start from the configuration files");
        notes.push(format!(
            "applied, but not saved ({e}): a restart would start from the configuration files"
        ));
    }
}

/// Prepares `compiled` against the running ports (off the async runtime: it opens
/// sockets, loads BPF and creates TAPs) and has the data-plane thread swap it in
/// between two batches; the configuration as prepared (sticky MACs restored) and
/// what the swap carried over. A failure undoes what the plan created.
pub(crate) async fn swap_switch(
    st: &ApiState,
    running: &crate::running::Running,
    compiled: portcullis_control::CompiledConfig,
) -> Result<(portcullis_control::CompiledConfig, CarryOver), ApiError> {
    let now = running.clock.now();
    let current = Current::running(
        &running.compiled,
        running.in_memory,
        running.store.clone(),
        now,
    );
    let t0 = std::time::Instant::now();
    let plan = tokio::task::spawn_blocking(move || plan::prepare(compiled, &current))
        .await
        .map_err(|_| ApiError::unavailable())?
        .map_err(|e| match e {
            PrepareError::Store(e) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "state_store",
                e.to_string(),
            ),
            PrepareError::Spec(e) => invalid(e.to_string()),
            PrepareError::Port(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "port_open_failed",
                e.to_string(),
            ),
        })?;
    let prepared_us = t0.elapsed().as_micros() as u64;
    let (plan, answer, compiled, mut undo) = plan.into_apply();
    let mut names = st.port_names.write().await;
    st.commands
        .send(Command::Apply(Box::new(plan)))
        .map_err(|_| ApiError::unavailable())?;
    let report = answer.await.map_err(|_| ApiError::unavailable())?;
    tracing::debug!(
        prepared_us,
        swapped_us = t0.elapsed().as_micros() as u64,
        "switch swapped"
    );
    undo.keep();
    *names = Arc::new(compiled.spec.ports.iter().map(|p| p.name.clone()).collect());
    drop(names);
    Ok((compiled, report))
}

/// Every runtime port's group is in `config`, and no configured port has a runtime
/// port's name or interface: else the apply is refused, naming them.
fn runtime_ports_fit(
    config: &Config,
    ports: &[crate::runtime_ports::RuntimePort],
) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for p in ports {
        if !config.profile.port_groups.iter().any(|g| g.name == p.group) {
            problems.push(format!(
                "runtime port {:?} is in port group {:?}, which this configuration removes",
                p.name, p.group
            ));
        }
        if let Some(c) = config
            .host
            .ports
            .iter()
            .find(|c| c.name == p.name || c.interface == p.interface)
        {
            problems.push(format!(
                "configured port {:?} (interface {:?}) clashes with runtime port {:?} (interface {:?})",
                c.name, c.interface, p.name, p.interface
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(invalid(format!(
        "{}; move or remove those runtime ports first (`portcullis port set|remove`)",
        problems.join("; ")
    )))
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
