//! The handlers of the API's routes (see [`super::ROUTES`]). They run behind the
//! guard, which has already identified the caller, checked their role and, for a
//! write, recorded the intent in the audit log.

use super::guard::{AuditDetail, Caller};
use super::{ApiError, ApiState};
use crate::held::{ApiBinding, BindingRefusal};
use crate::runtime::Command;
use crate::snapshot::{MacTableView, PortView, Snapshot};
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
pub use portcullis_api::endpoints::*;
pub use portcullis_api::{AuditQuery, AuditView};
use portcullis_dataplane::bindings::BindingHolder;
use portcullis_dataplane::{ControlError, MacAddr, PortId};
use tokio::sync::oneshot;

/// The switch as the data plane sees it, with what the control plane knows of
/// its ports (which are runtime ports, and who owns them).
pub(crate) async fn snapshot(st: &ApiState) -> Result<Snapshot, ApiError> {
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::Snapshot(tx))
        .map_err(|_| ApiError::unavailable())?;
    let mut snap = rx.await.map_err(|_| ApiError::unavailable())?;
    let owners = st.owners.read().map(|o| o.clone()).unwrap_or_default();
    for p in &mut snap.ports {
        if let Some(owner) = owners.get(&p.name) {
            p.runtime = true;
            p.owner = owner.clone();
        }
    }
    Ok(snap)
}

pub async fn status(State(st): State<ApiState>) -> Result<Json<StatusView>, ApiError> {
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

pub async fn ports(State(st): State<ApiState>) -> Result<Json<Vec<PortView>>, ApiError> {
    Ok(Json(snapshot(&st).await?.ports))
}

pub async fn port(
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

pub async fn mac_table(State(st): State<ApiState>) -> Result<Json<MacTableView>, ApiError> {
    Ok(Json(snapshot(&st).await?.mac_table))
}

pub async fn counters(State(st): State<ApiState>) -> Result<Json<CountersResponse>, ApiError> {
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

pub async fn events(
    State(st): State<ApiState>,
    Query(q): Query<EventsQuery>,
) -> Json<Vec<EventRecord>> {
    Json(
        st.events
            .lock()
            .map(|h| {
                let newest = h.back().map_or(0, |e| e.seq);
                match q.after_seq {
                    Some(n) if n <= newest => h.iter().filter(|e| e.seq > n).cloned().collect(),
                    _ => h.iter().cloned().collect(),
                }
            })
            .unwrap_or_default(),
    )
}

pub async fn report_mac(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Json(body): Json<ReportMac>,
) -> Result<StatusCode, ApiError> {
    let peer = &caller.user;
    let mac: MacAddr = body.mac.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_mac",
            format!("{:?}: {e}", body.mac),
        )
    })?;
    let names = st.port_names.read().await;
    let port = port_id(&names, &name)?;
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::ReportEffectiveMac {
            port,
            mac,
            reply: tx,
        })
        .map_err(|_| ApiError::unavailable())?;
    drop(names);
    match rx.await.map_err(|_| ApiError::unavailable())? {
        Ok(()) => {
            tracing::info!(%peer, port = %name, %mac, "effective MAC reported");
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

fn port_id(names: &[String], name: &str) -> Result<PortId, ApiError> {
    names
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

pub async fn port_security(
    State(st): State<ApiState>,
) -> Result<Json<Vec<crate::snapshot::PortSecurityView>>, ApiError> {
    Ok(Json(snapshot(&st).await?.port_security))
}

pub async fn recover(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<RecoverAnswer>, ApiError> {
    let peer = &caller.user;
    let names = st.port_names.read().await;
    let port = port_id(&names, &name)?;
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::Recover { port, reply: tx })
        .map_err(|_| ApiError::unavailable())?;
    drop(names);
    let recovered = rx
        .await
        .map_err(|_| ApiError::unavailable())?
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "refused", e.to_string()))?;
    tracing::info!(%peer, port = %name, recovered, "port recover");
    Ok(Json(RecoverAnswer {
        port: name,
        recovered,
    }))
}

pub async fn mac_acls(
    State(st): State<ApiState>,
) -> Result<Json<Vec<crate::snapshot::MacAclView>>, ApiError> {
    Ok(Json(snapshot(&st).await?.mac_acls))
}

pub async fn bindings(
    State(st): State<ApiState>,
) -> Result<Json<crate::snapshot::BindingsView>, ApiError> {
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::Bindings(tx))
        .map_err(|_| ApiError::unavailable())?;
    Ok(Json(rx.await.map_err(|_| ApiError::unavailable())?))
}

pub async fn hosts(
    State(st): State<ApiState>,
    Query(q): Query<HostsQuery>,
) -> Result<Json<crate::snapshot::HostsView>, ApiError> {
    if let Some(v) = q.vlan
        && portcullis_dataplane::Vid::new(v).is_none()
    {
        return Err(bad("invalid_vlan", format!("VLAN {v} is outside 1..=4094")));
    }
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::Hosts {
            vlan: q.vlan,
            reply: tx,
        })
        .map_err(|_| ApiError::unavailable())?;
    Ok(Json(rx.await.map_err(|_| ApiError::unavailable())?))
}

/// `GET /v1/overlay`: 404 `no_overlay` when the switch has none.
pub async fn overlay(
    State(st): State<ApiState>,
) -> Result<Json<portcullis_api::OverlayView>, ApiError> {
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::Overlay {
            remote_macs: true,
            reply: tx,
        })
        .map_err(|_| ApiError::unavailable())?;
    match rx.await.map_err(|_| ApiError::unavailable())? {
        Some(v) => Ok(Json(v)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_overlay",
            "the switch has no overlay (the profile has no [overlay] section)",
        )),
    }
}

fn bad(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// A binding that holds an address, as the API names it.
fn holder_text(names: &[String], h: &BindingHolder) -> String {
    let port = names
        .get(h.port.index())
        .map_or_else(|| format!("#{}", h.port.0), |n| format!("{n:?}"));
    format!("{} on port {port} ({} binding)", h.mac, h.source.name())
}

fn holder_json(names: &[String], h: &BindingHolder) -> serde_json::Value {
    serde_json::json!({
        "mac": h.mac.to_string(),
        "port": names.get(h.port.index()).cloned().unwrap_or_else(|| h.port.0.to_string()),
        "source": h.source.name(),
    })
}

/// Why the switch refused a binding, as an API error: what the configuration would
/// refuse is a 400 (nothing is stored), a conflict with the address's holder a 409.
fn binding_refused(
    names: &[String],
    e: BindingRefusal,
    ip: std::net::IpAddr,
    vlan: u16,
    port: &str,
) -> ApiError {
    let e = match e {
        BindingRefusal::Unavailable(m) => {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "binding_refused", m);
        }
        BindingRefusal::Refused(e) => e,
    };
    match e {
        ControlError::InvalidMac => bad(
            "invalid_mac",
            "a binding's MAC must be unicast and not all zeros".into(),
        ),
        ControlError::InvalidBindingIp(why) => bad("invalid_ip", format!("{ip} is {why}")),
        ControlError::VlanNotCarried => bad(
            "vlan_not_carried",
            format!("port {port:?} does not carry VLAN {vlan}"),
        ),
        ControlError::NoSuchPort => ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_port",
            format!("no port named {port:?}"),
        ),
        ControlError::StaticBinding(h) => ApiError::new(
            StatusCode::CONFLICT,
            "static_binding",
            format!(
                "{ip} in VLAN {vlan} is a configured static binding of {}; static bindings change only with the configuration (portcullis apply), never through the API",
                holder_text(names, &h)
            ),
        ),
        ControlError::BindingHeld(h) => ApiError::new(
            StatusCode::CONFLICT,
            "binding_conflict",
            format!(
                "{ip} in VLAN {vlan} is bound to {}; remove that binding first, or replace it explicitly (--replace, \"replace\": true)",
                holder_text(names, &h)
            ),
        ),
        ControlError::BindingTableFull => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "binding_table_full",
            "the binding table is full",
        ),
        e => bad("binding_refused", e.to_string()),
    }
}

pub async fn add_binding(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Json(b): Json<NewBinding>,
) -> Result<axum::response::Response, ApiError> {
    let peer = &caller.user;
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
    let names = st.port_names.read().await;
    let port = port_id(&names, &b.port)?;
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::AddBinding {
            binding: ApiBinding {
                vid,
                ip,
                mac,
                port,
                replace: b.replace,
            },
            reply: tx,
        })
        .map_err(|_| ApiError::unavailable())?;
    let names = names.clone();
    let replaced = rx
        .await
        .map_err(|_| ApiError::unavailable())?
        .map_err(|e| binding_refused(&names, e, ip, b.vlan, &b.port))?;
    let mut resp = StatusCode::CREATED.into_response();
    match replaced {
        Some(h) => {
            tracing::warn!(%peer, %ip, %mac, vlan = b.vlan, port = %b.port, replaced = %holder_text(&names, &h), "binding added, replacing another");
            resp.extensions_mut().insert(AuditDetail(
                serde_json::json!({ "replaced": holder_json(&names, &h) }),
            ));
        }
        None => {
            tracing::info!(%peer, %ip, %mac, vlan = b.vlan, port = %b.port, "binding added");
        }
    }
    Ok(resp)
}

pub async fn remove_binding(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((vlan, ip)): Path<(u16, String)>,
) -> Result<StatusCode, ApiError> {
    let peer = &caller.user;
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|e| bad("invalid_ip", format!("{ip:?}: {e}")))?;
    let vid = portcullis_dataplane::Vid::new(vlan)
        .ok_or_else(|| bad("invalid_vlan", format!("VLAN {vlan} is outside 1..=4094")))?;
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::RemoveBinding { vid, ip, reply: tx })
        .map_err(|_| ApiError::unavailable())?;
    match rx.await.map_err(|_| ApiError::unavailable())? {
        Ok(true) => {
            tracing::info!(%peer, %ip, vlan, "binding removed");
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(false) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_binding",
            format!("no binding of {ip} in VLAN {vlan}"),
        )),
        Err(h) => {
            let names = st.port_names.read().await.clone();
            Err(binding_refused(
                &names,
                BindingRefusal::Refused(ControlError::StaticBinding(h)),
                ip,
                vlan,
                "",
            ))
        }
    }
}

pub async fn uplinks(
    State(st): State<ApiState>,
) -> Result<Json<Vec<crate::snapshot::UplinkView>>, ApiError> {
    Ok(Json(snapshot(&st).await?.uplinks))
}

pub async fn whoami(Extension(caller): Extension<Caller>) -> Json<WhoAmI> {
    Json(WhoAmI {
        role: caller.role.map(|r| r.name().to_string()),
        user: caller.user,
        source: caller.source,
    })
}

async fn set_admin_up(
    st: &ApiState,
    caller: &Caller,
    name: String,
    up: bool,
) -> Result<Json<AdminStateAnswer>, ApiError> {
    let names = st.port_names.read().await;
    let port = port_id(&names, &name)?;
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::SetAdminUp {
            port,
            up,
            reply: tx,
        })
        .map_err(|_| ApiError::unavailable())?;
    drop(names);
    rx.await
        .map_err(|_| ApiError::unavailable())?
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "refused", e.to_string()))?;
    tracing::info!(user = %caller.user, port = %name, up, "port admin state");
    Ok(Json(AdminStateAnswer {
        port: name,
        admin_up: up,
    }))
}

pub async fn shutdown(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<AdminStateAnswer>, ApiError> {
    set_admin_up(&st, &caller, name, false).await
}

pub async fn enable(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<AdminStateAnswer>, ApiError> {
    set_admin_up(&st, &caller, name, true).await
}

pub async fn clear_counters(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<StatusCode, ApiError> {
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::ClearCounters(tx))
        .map_err(|_| ApiError::unavailable())?;
    rx.await.map_err(|_| ApiError::unavailable())?;
    tracing::info!(user = %caller.user, "counters cleared");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn audit_records(
    State(st): State<ApiState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditView>, ApiError> {
    use portcullis_control::audit;
    let since = match &q.since {
        Some(s) => Some(
            audit::parse_rfc3339(s)
                .ok_or_else(|| bad("invalid_time", format!("{s:?} is not an RFC 3339 time")))?,
        ),
        None => None,
    };
    let path = st
        .audit
        .lock()
        .map(|l| l.path().to_path_buf())
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "lock"))?;
    let limit = q.limit.unwrap_or(1000);
    let view = tokio::task::spawn_blocking(move || -> Result<AuditView, String> {
        let verify_error = audit::verify(&path).err().map(|e| e.to_string());
        let (records, _) = audit::read_records(&path).map_err(|e| e.to_string())?;
        let total = records.len();
        let mut records: Vec<_> = records
            .into_iter()
            .filter(|r| q.user.as_ref().is_none_or(|u| &r.user == u))
            .filter(|r| q.action.as_ref().is_none_or(|a| &r.action == a))
            .filter(|r| {
                since.is_none_or(|t| audit::parse_rfc3339(&r.time).is_some_and(|rt| rt >= t))
            })
            .collect();
        let skip = records.len().saturating_sub(limit);
        records.drain(..skip);
        Ok(AuditView {
            verify_error,
            total,
            records,
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "audit_unreadable", e))?;
    Ok(Json(view))
}

/// The largest frame a trace takes (a GSO super-frame).
const MAX_TRACE_FRAME: usize = 65_535;

pub async fn trace(
    State(st): State<ApiState>,
    Json(req): Json<TraceRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let hex: Vec<u8> = req
        .hex
        .bytes()
        .filter(|c| !matches!(c, b' ' | b':' | b'-' | b'\n'))
        .collect();
    if hex.is_empty() || !hex.len().is_multiple_of(2) || hex.len() / 2 > MAX_TRACE_FRAME {
        return Err(bad(
            "invalid_frame",
            format!("hex must be 1..={MAX_TRACE_FRAME} bytes, two digits each"),
        ));
    }
    let frame = hex
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| {
            bad(
                "invalid_frame",
                "hex has a character that is not a hex digit".into(),
            )
        })?;
    let names = st.port_names.read().await;
    let port = port_id(&names, &req.port)?;
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::Trace {
            port,
            frame,
            reply: tx,
        })
        .map_err(|_| ApiError::unavailable())?;
    drop(names);
    Ok(Json(rx.await.map_err(|_| ApiError::unavailable())?))
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    v: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ApiError> {
    let v = v.unwrap_or(default);
    if v < min || v > max {
        return Err(bad(
            "invalid_capture",
            format!("{field} must be in {min}..={max} (got {v})"),
        ));
    }
    Ok(v)
}

fn to_hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Arms a capture of the frames dropped on the port's ingress and answers when it
/// is done (count seen or time up).
pub async fn capture(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Option<Json<CaptureRequest>>,
) -> Result<Json<CaptureAnswer>, ApiError> {
    use crate::runtime::{CaptureRefused, PortCapture};
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let count = in_range(
        "count",
        req.count,
        CAPTURE_DEFAULT_COUNT,
        1,
        CAPTURE_MAX_COUNT,
    )?;
    let seconds = in_range(
        "seconds",
        req.seconds,
        CAPTURE_DEFAULT_SECONDS,
        1,
        CAPTURE_MAX_SECONDS,
    )?;
    let snaplen = in_range(
        "snaplen",
        req.snaplen,
        CAPTURE_DEFAULT_SNAPLEN,
        1,
        CAPTURE_MAX_SNAPLEN,
    )?;
    let names = st.port_names.read().await;
    let port = port_id(&names, &name)?;
    // The slots are allocated here, off the data-plane thread.
    let slots = tokio::task::spawn_blocking(move || {
        Box::new(PortCapture::new(
            count,
            snaplen as usize,
            seconds * 1_000_000_000,
        ))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let (tx, rx) = oneshot::channel();
    st.commands
        .send(Command::Capture {
            port,
            capture: slots,
            reply: tx,
        })
        .map_err(|_| ApiError::unavailable())?;
    drop(names);
    tracing::info!(user = %caller.user, port = %name, count, seconds, snaplen, "capture armed");
    let done = match rx.await.map_err(|_| ApiError::unavailable())? {
        Ok(c) => c,
        Err(CaptureRefused::Busy) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "capture_busy",
                format!("port {name:?} already has a capture running"),
            ));
        }
        Err(CaptureRefused::NoSuchPort) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "ports_renumbered",
                format!("port {name:?} changed under an apply; try again"),
            ));
        }
    };
    // The data plane's clock → wall clock, by the time it handed the capture back.
    let wall_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mono_now = done.finished_at().0;
    let frames = done
        .frames()
        .iter()
        .map(|f| CapturedFrameView {
            time_ns: wall_now.saturating_sub(mono_now.saturating_sub(f.time.0)),
            reason: f.reason.name().to_string(),
            orig_len: f.orig_len,
            seq: f.seq,
            hex: to_hex(&f.data),
        })
        .collect::<Vec<_>>();
    tracing::info!(user = %caller.user, port = %name, frames = frames.len(), lost = done.lost(), "capture done");
    Ok(Json(CaptureAnswer {
        port: name,
        snaplen,
        frames,
        lost: done.lost(),
    }))
}
