//! `POST`, `PATCH` and `DELETE /v1/ports/{name}`: runtime ports added, changed and
//! removed (`runtime_ports.rs` says what they are). A change is an apply of the
//! running configuration with the new list of runtime ports: compiled, prepared
//! (`plan::prepare` opens only the port that is new or moved) and swapped in by the
//! data-plane thread between two batches with the carry-over, so every other port
//! keeps its socket, MACs, bindings and counters.
//!
//! Invariants: a change is checked whole before anything runs (name, interface,
//! group, MAC, the configuration's own checks), and one that fails changes nothing
//! (a TAP it created is removed); the runtime-port file is written after the swap,
//! and a change whose file cannot be written is swapped back out; changes are
//! serialized with applies by the `running` lock. A configured port is never
//! changed here: that is an apply's.

use super::config::swap_switch;
use super::guard::{AuditDetail, Caller};
use super::handlers::snapshot;
use super::{ApiError, ApiState};
use crate::running::Running;
use crate::runtime_ports::{self, MAX_RUNTIME_PORTS, RuntimePort};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_api::{NewPort, PortChangeAnswer, PortPatch, RemovePortQuery};
use std::sync::Arc;

fn conflict(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_port", message)
}

fn no_such_port(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_such_port",
        format!("no runtime port named {name:?}"),
    )
}

/// The port `name` comes from the configuration files: refused here.
fn configured(running: &Running, name: &str) -> Option<ApiError> {
    let is_port = running.compiled.spec.ports.iter().any(|p| p.name == name);
    (is_port && running.runtime_ports.get(name).is_none()).then(|| {
        conflict(
            "configured_port",
            format!(
                "port {name:?} is in the configuration files: change it there and apply, not as a runtime port"
            ),
        )
    })
}

/// Another port (configured, runtime or uplink) already on `interface`.
fn interface_user(running: &Running, interface: &str, except: &str) -> Option<String> {
    running
        .compiled
        .interfaces
        .iter()
        .zip(&running.compiled.spec.ports)
        .find(|(i, p)| i.as_str() == interface && p.name != except)
        .map(|(_, p)| p.name.clone())
}

/// Another port (configured or runtime) already on vhost-user socket `socket`.
fn socket_user(running: &Running, socket: &str, except: &str) -> Option<String> {
    running
        .compiled
        .vhost_user
        .iter()
        .zip(&running.compiled.spec.ports)
        .find(|(v, p)| v.as_ref().is_some_and(|v| v.socket == socket) && p.name != except)
        .map(|(_, p)| p.name.clone())
}

/// Another port whose initial or effective MAC is `mac` (a guest's MAC is its
/// identity: two ports with one MAC would black-hole one of them).
async fn mac_user(st: &ApiState, mac: &str, except: &str) -> Result<Option<String>, ApiError> {
    let snap = snapshot(st).await?;
    Ok(snap
        .ports
        .into_iter()
        .find(|p| {
            p.name != except
                && (p.initial_mac.as_deref() == Some(mac)
                    || p.effective_mac.as_deref() == Some(mac))
        })
        .map(|p| p.name))
}

/// Runs `ports` as the runtime ports: swapped in, then saved (and swapped back
/// out if the file cannot be written). The carry-over report.
pub(crate) async fn change(
    st: &ApiState,
    running: &mut Running,
    ports: Vec<RuntimePort>,
) -> Result<portcullis_dataplane::CarryOver, ApiError> {
    let t0 = std::time::Instant::now();
    let compiled = runtime_ports::compile(&running.config, &ports).map_err(bad)?;
    let t1 = std::time::Instant::now();
    let (compiled, report) = swap_switch(st, running, compiled).await?;
    tracing::debug!(
        ports = ports.len(),
        compile_us = (t1 - t0).as_micros() as u64,
        swap_us = t1.elapsed().as_micros() as u64,
        "runtime ports changed"
    );
    running.compiled = compiled;
    let old = std::mem::replace(&mut running.runtime_ports.ports, ports);
    if let Err(e) = save(running).await {
        tracing::error!(error = %e, "the runtime ports could not be saved: the change is taken back");
        running.runtime_ports.ports = old;
        let back =
            runtime_ports::compile(&running.config, &running.runtime_ports.ports).map_err(bad)?;
        let (back, _) = swap_switch(st, running, back).await?;
        running.compiled = back;
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "state_write_failed",
            format!("the runtime ports could not be saved ({e}); nothing changed"),
        ));
    }
    publish_owners(st, running);
    st.ports_changed.notify_one();
    Ok(report)
}

/// The bindings runtime port `name` holds now, as the store records them.
async fn port_bindings(
    st: &ApiState,
    running: &Running,
    name: &str,
) -> Result<Vec<crate::bindings_store::BindingRecord>, ApiError> {
    let Some(i) = running
        .compiled
        .spec
        .ports
        .iter()
        .position(|p| p.name == name)
    else {
        return Ok(Vec::new());
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    st.commands
        .send(crate::runtime::Command::PortBindings {
            port: Some(portcullis_dataplane::PortId(i as u16)),
            reply: tx,
        })
        .map_err(|_| ApiError::unavailable())?;
    rx.await.map_err(|_| ApiError::unavailable())
}

/// Gives port `name` the parked `records`; how many the switch took.
async fn restore(
    st: &ApiState,
    running: &Running,
    name: &str,
    records: Vec<crate::bindings_store::BindingRecord>,
) -> usize {
    let Some(i) = running
        .compiled
        .spec
        .ports
        .iter()
        .position(|p| p.name == name)
    else {
        return 0;
    };
    if records.is_empty() {
        return 0;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = st.commands.send(crate::runtime::Command::RestoreBindings {
        port: portcullis_dataplane::PortId(i as u16),
        records,
        reply: tx,
    });
    if sent.is_err() {
        return 0;
    }
    rx.await.unwrap_or(0)
}

/// Parked bindings whose grace ended leave the store (unless held again).
fn sweep(st: &ApiState, running: &mut Running) {
    let gone = running.parked.expire(crate::held::unix_now());
    resync(st, gone);
}

fn resync(st: &ApiState, records: Vec<crate::bindings_store::BindingRecord>) {
    let keys: Vec<_> = records
        .into_iter()
        .filter_map(|r| portcullis_dataplane::Vid::new(r.vlan).map(|v| (v, r.ip)))
        .collect();
    if !keys.is_empty() {
        let _ = st
            .commands
            .send(crate::runtime::Command::ResyncBindings(keys));
    }
}

/// Writes the runtime-port file (off the async runtime: it fsyncs).
async fn save(running: &Running) -> Result<(), String> {
    let file = running.runtime_ports.clone();
    tokio::task::spawn_blocking(move || file.save())
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
}

fn publish_owners(st: &ApiState, running: &Running) {
    if let Ok(mut o) = st.owners.write() {
        *o = Arc::new(running.runtime_ports.owners());
    }
}

fn event(st: &ApiState, caller: &Caller, port: &str, event: &str, detail: serde_json::Value) {
    let mut detail = detail;
    detail["user"] = caller.user.clone().into();
    super::record_event(
        &st.events,
        super::EventRecord {
            seq: 0,
            time: portcullis_control::audit::format_rfc3339(std::time::SystemTime::now()),
            port: port.to_string(),
            event: event.into(),
            detail,
        },
    );
}

fn answer(a: PortChangeAnswer) -> Response {
    let detail = serde_json::json!({
        "outcome": a.outcome,
        "runtime_port": a.runtime_port,
    });
    let mut resp = Json(a).into_response();
    resp.extensions_mut().insert(AuditDetail(detail));
    resp
}

pub async fn add_port(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(req): Json<NewPort>,
) -> Result<Response, ApiError> {
    let mut running = st.running.lock().await;
    let port = runtime_ports::from_request(&running.config, &name, &req).map_err(bad)?;
    if let Some(e) = configured(&running, &name) {
        return Err(e);
    }
    if let Some(have) = running.runtime_ports.get(&name).cloned() {
        if !req.may_exist || have.interface != port.interface || have.vhost_user != port.vhost_user
        {
            let on = match &have.vhost_user {
                Some(v) => format!("on vhost-user socket {:?}", v.socket),
                None => format!("on interface {:?}", have.interface),
            };
            return Err(conflict(
                "port_exists",
                format!("runtime port {name:?} exists ({on}); remove it first, or set it"),
            ));
        }
        // `--may-exist`: the port as asked for, changed in place if it differs.
        let mut owner = have.owner.clone();
        owner.extend(port.owner.clone());
        let want = RuntimePort {
            owner,
            mac: port.mac.clone().or(have.mac.clone()),
            ..port
        };
        return set_to(&st, &caller, &mut running, have, want).await;
    }
    if running.runtime_ports.ports.len() >= MAX_RUNTIME_PORTS {
        return Err(conflict(
            "too_many_ports",
            format!("the switch holds at most {MAX_RUNTIME_PORTS} runtime ports"),
        ));
    }
    if !port.interface.is_empty()
        && let Some(user) = interface_user(&running, &port.interface, &name)
    {
        return Err(conflict(
            "interface_in_use",
            format!("interface {:?} is port {user:?}'s", port.interface),
        ));
    }
    if let Some(v) = &port.vhost_user
        && let Some(user) = socket_user(&running, &v.socket, &name)
    {
        return Err(conflict(
            "socket_in_use",
            format!("vhost-user socket {:?} is port {user:?}'s", v.socket),
        ));
    }
    if let Some(mac) = &port.mac
        && let Some(user) = mac_user(&st, mac, &name).await?
    {
        return Err(conflict(
            "mac_in_use",
            format!("MAC {mac} is port {user:?}'s"),
        ));
    }
    let mut ports = running.runtime_ports.ports.clone();
    ports.push(port.clone());
    let report = change(&st, &mut running, ports).await?;
    let mut notes = notes_of(&report);
    // The bindings it (or its guest, by MAC) left when it was removed.
    let mac = port
        .mac
        .as_deref()
        .and_then(|m| runtime_ports::parse_mac(m).ok());
    let records = running.parked.take_for(&name, mac, crate::held::unix_now());
    let restored = restore(&st, &running, &name, records).await;
    if restored > 0 {
        notes.push(format!(
            "{restored} binding(s) it had before its removal restored"
        ));
    }
    sweep(&st, &mut running);
    tracing::info!(port = %name, interface = %port.interface, group = %port.group, user = %caller.user, "runtime port added");
    event(
        &st,
        &caller,
        &name,
        "port_added",
        serde_json::json!({ "interface": port.interface, "vhost_user": port.vhost_user, "group": port.group, "owner": port.owner }),
    );
    Ok(answer(PortChangeAnswer {
        port: name,
        outcome: "added".into(),
        runtime_port: Some(port),
        bindings_parked: 0,
        bindings_restored: restored,
        notes,
    }))
}

fn notes_of(report: &portcullis_dataplane::CarryOver) -> Vec<String> {
    let mut notes = Vec::new();
    if report.macs_dropped > 0 {
        notes.push(format!(
            "{} MAC table entries of the port were removed",
            report.macs_dropped
        ));
    }
    if report.bindings_dropped > 0 {
        notes.push(format!(
            "{} bindings of the port were removed",
            report.bindings_dropped
        ));
    }
    notes
}

pub async fn set_port(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(patch): Json<PortPatch>,
) -> Result<Response, ApiError> {
    let mut running = st.running.lock().await;
    if let Some(e) = configured(&running, &name) {
        return Err(e);
    }
    let Some(have) = running.runtime_ports.get(&name).cloned() else {
        return Err(no_such_port(&name));
    };
    let group = if patch.group.is_some() || patch.vlan.is_some() {
        runtime_ports::resolve_group(&running.config, patch.group.as_deref(), patch.vlan)
            .map_err(bad)?
    } else {
        have.group.clone()
    };
    let mac = match patch.mac.as_deref() {
        None => have.mac.clone(),
        Some("") => None,
        Some(m) => Some(runtime_ports::parse_mac(m).map_err(bad)?.to_string()),
    };
    let mut owner = have.owner.clone();
    for (k, v) in &patch.owner {
        if v.is_empty() {
            owner.remove(k);
        } else {
            owner.insert(k.clone(), v.clone());
        }
    }
    runtime_ports::check_owner(&owner).map_err(bad)?;
    let want = RuntimePort {
        group,
        mac,
        owner,
        ..have.clone()
    };
    set_to(&st, &caller, &mut running, have, want).await
}

/// Changes runtime port `have` into `want` (same name and interface).
async fn set_to(
    st: &ApiState,
    caller: &Caller,
    running: &mut Running,
    have: RuntimePort,
    want: RuntimePort,
) -> Result<Response, ApiError> {
    let name = have.name.clone();
    if want == have {
        return Ok(answer(PortChangeAnswer {
            port: name,
            outcome: "unchanged".into(),
            runtime_port: Some(have),
            bindings_parked: 0,
            bindings_restored: 0,
            notes: Vec::new(),
        }));
    }
    if let Some(mac) = want.mac.as_ref().filter(|m| have.mac.as_ref() != Some(*m))
        && let Some(user) = mac_user(st, mac, &name).await?
    {
        return Err(conflict(
            "mac_in_use",
            format!("MAC {mac} is port {user:?}'s"),
        ));
    }
    let ports: Vec<RuntimePort> = running
        .runtime_ports
        .ports
        .iter()
        .map(|p| {
            if p.name == name {
                want.clone()
            } else {
                p.clone()
            }
        })
        .collect();
    let notes = if want.group == have.group && want.mac == have.mac {
        // The owner alone: nothing the switch runs changes.
        let old = std::mem::replace(&mut running.runtime_ports.ports, ports);
        if let Err(e) = save(running).await {
            running.runtime_ports.ports = old;
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "state_write_failed",
                format!("the runtime ports could not be saved ({e}); nothing changed"),
            ));
        }
        publish_owners(st, running);
        Vec::new()
    } else {
        notes_of(&change(st, running, ports).await?)
    };
    tracing::info!(port = %name, group = %want.group, user = %caller.user, "runtime port changed");
    event(
        st,
        caller,
        &name,
        "port_changed",
        serde_json::json!({ "group": want.group, "mac": want.mac, "owner": want.owner }),
    );
    Ok(answer(PortChangeAnswer {
        port: name,
        outcome: "changed".into(),
        runtime_port: Some(want),
        bindings_parked: 0,
        bindings_restored: 0,
        notes,
    }))
}

pub async fn remove_port(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<RemovePortQuery>,
) -> Result<Response, ApiError> {
    let mut running = st.running.lock().await;
    if let Some(e) = configured(&running, &name) {
        return Err(e);
    }
    let Some(have) = running.runtime_ports.get(&name).cloned() else {
        if q.if_exists {
            return Ok(answer(PortChangeAnswer {
                port: name,
                outcome: "absent".into(),
                runtime_port: None,
                bindings_parked: 0,
                bindings_restored: 0,
                notes: Vec::new(),
            }));
        }
        return Err(no_such_port(&name));
    };
    let ports: Vec<RuntimePort> = running
        .runtime_ports
        .ports
        .iter()
        .filter(|p| p.name != name)
        .cloned()
        .collect();
    let leaving = port_bindings(&st, &running, &name).await?;
    let report = change(&st, &mut running, ports).await?;
    let mut notes = notes_of(&report);
    let parked = leaving.len();
    let evicted = running.parked.park(leaving, crate::held::unix_now());
    resync(&st, evicted);
    sweep(&st, &mut running);
    if parked > 0 {
        notes.push(format!(
            "{parked} binding(s) kept for {} s in case it returns",
            runtime_ports::BINDING_GRACE_SECS
        ));
    }
    if have.create_tap && !running.in_memory {
        // The TAP this port had the switch create goes with it.
        let ifname = have.interface.clone();
        let deleted =
            tokio::task::spawn_blocking(move || portcullis_io::delete_persistent_tap(&ifname))
                .await;
        if let Ok(Err(e)) = deleted {
            notes.push(format!("its TAP {:?} was not removed: {e}", have.interface));
        }
    }
    tracing::info!(port = %name, interface = %have.interface, user = %caller.user, "runtime port removed");
    event(
        &st,
        &caller,
        &name,
        "port_removed",
        serde_json::json!({ "interface": have.interface }),
    );
    Ok(answer(PortChangeAnswer {
        port: name,
        outcome: "removed".into(),
        runtime_port: None,
        bindings_parked: parked,
        bindings_restored: 0,
        notes,
    }))
}
