//! The control API: HTTP/JSON served on a Unix socket (and optionally TCP+TLS),
//! versioned under `/v1`. Reads come from snapshots the data-plane thread builds
//! between batches; writes are commands to that thread.
//!
//! Every route is declared once in [`ROUTES`] with the permission it needs and, for
//! a write, the audit action it records; the router, the guard and the committed
//! OpenAPI document (`docs/openapi.json`, checked by a test) follow that table.
//!
//! Invariants: the API never touches the switch directly (command channel only);
//! every error is one JSON shape `{"error": {"code", "message"}}` (axum's own
//! rejections included, see `guard::normalize`); every call passes the guard
//! (identity → role → permission) and every refusal and every write is audited
//! before it is answered — writes in two phases (an intent record before the
//! change, an outcome record after it), so a crash between the change and its
//! record leaves an intent without outcome, never an unrecorded change.

mod config;
mod guard;
mod handlers;
pub(crate) mod port_changes;
pub mod refusals;
pub mod web;

pub use config::{ApplyAnswer, ApplyRequest, ConfigView, SourceText};
pub use guard::UNAUTHENTICATED;
pub use handlers::*;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
pub use portcullis_api::{ErrorBody, ErrorDetail, EventRecord};
use portcullis_control::audit::AuditLog;
use portcullis_control::rbac::{Authorizer, Permission};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};

/// Events kept for `GET /v1/events`.
pub const EVENT_HISTORY: usize = 1024;
/// The largest request body (an apply carries a whole profile).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// One route of API version 1.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    /// What the caller's role must allow; `None`: any identified caller.
    pub permission: Option<Permission>,
    /// The audit action of a write (`None` for reads).
    pub action: Option<&'static str>,
    pub summary: &'static str,
}

const fn read(path: &'static str, summary: &'static str) -> RouteSpec {
    RouteSpec {
        method: Method::GET,
        path,
        permission: Some(Permission::Read),
        action: None,
        summary,
    }
}

const fn write(
    method: Method,
    path: &'static str,
    permission: Permission,
    action: &'static str,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        permission: Some(permission),
        action: Some(action),
        summary,
    }
}

/// Every route: the single source of truth for routing, authorization, auditing
/// and the OpenAPI document.
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: Method::GET,
        path: "/v1/whoami",
        permission: None,
        action: None,
        summary: "The caller's identity and role",
    },
    read("/v1/status", "Switch summary"),
    read("/v1/ports", "Every port with its state and counters"),
    read("/v1/ports/{name}", "One port"),
    write(
        Method::POST,
        "/v1/ports/{name}",
        Permission::Operate,
        "port.add",
        "Add a runtime port (host state, kept across restarts)",
    ),
    write(
        Method::PATCH,
        "/v1/ports/{name}",
        Permission::Operate,
        "port.set",
        "Change a runtime port's group, MAC or owner",
    ),
    write(
        Method::DELETE,
        "/v1/ports/{name}",
        Permission::Operate,
        "port.remove",
        "Remove a runtime port",
    ),
    write(
        Method::PUT,
        "/v1/ports/{name}/effective-mac",
        Permission::Operate,
        "port.report_mac",
        "Report a guest's effective MAC (hypervisor hook)",
    ),
    write(
        Method::POST,
        "/v1/ports/{name}/recover",
        Permission::Operate,
        "port.recover",
        "Bring an error-disabled port back",
    ),
    write(
        Method::POST,
        "/v1/ports/{name}/shutdown",
        Permission::Operate,
        "port.shutdown",
        "Administratively shut a port down",
    ),
    write(
        Method::POST,
        "/v1/ports/{name}/enable",
        Permission::Operate,
        "port.enable",
        "Enable an administratively down port",
    ),
    write(
        Method::POST,
        "/v1/ports/{name}/capture",
        Permission::Operate,
        "port.capture",
        "Capture the frames dropped on a port's ingress (answered when done)",
    ),
    read("/v1/mac", "The MAC address table"),
    read("/v1/counters", "Per-port counters and drops by reason"),
    write(
        Method::POST,
        "/v1/counters/clear",
        Permission::Operate,
        "counters.clear",
        "Zero every port's counters",
    ),
    read("/v1/events", "Recent switch events"),
    read("/v1/port-security", "Port security per port"),
    read("/v1/mac-acls", "MAC ACLs with rule hit counters"),
    read(
        "/v1/uplinks",
        "Uplinks, their state and the guests pinned to them",
    ),
    read("/v1/bindings", "The binding table"),
    read(
        "/v1/hosts",
        "Hosts per VLAN and subnet: bindings, addresses seen by ARP, MACs without an address",
    ),
    read(
        "/v1/overlay",
        "The VXLAN overlay: VNIs, remote tunnel endpoints with their counters, remote MACs",
    ),
    write(
        Method::POST,
        "/v1/bindings",
        Permission::Operate,
        "binding.add",
        "Add a binding (never expires)",
    ),
    write(
        Method::DELETE,
        "/v1/bindings/{vlan}/{ip}",
        Permission::Operate,
        "binding.remove",
        "Remove a binding",
    ),
    read(
        "/v1/config",
        "The running configuration: profile and host binding texts",
    ),
    write(
        Method::POST,
        "/v1/config/apply",
        Permission::Administer,
        "config.apply",
        "Validate, diff and (unless dry_run) apply a configuration hitlessly",
    ),
    RouteSpec {
        method: Method::POST,
        path: "/v1/trace",
        permission: Some(Permission::Operate),
        action: None,
        summary: "One frame through the pipeline of a copy of the live switch, stage by stage",
    },
    RouteSpec {
        method: Method::GET,
        path: "/v1/audit",
        permission: Some(Permission::ReadAudit),
        action: None,
        summary: "Audit records, filtered, and whether the chain verifies",
    },
];

/// Shared state of the API handlers.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub commands: crate::runtime::CommandSender,
    /// Port names in port-id order. Held for reading while a command that names a
    /// port by id is sent, and for writing across an apply, so that no command
    /// carries an id of the other numbering.
    pub port_names: Arc<tokio::sync::RwLock<Arc<Vec<String>>>>,
    pub events: Arc<Mutex<VecDeque<EventRecord>>>,
    /// Who may do what (rebuilt by an apply).
    pub auth: Arc<RwLock<Arc<Authorizer>>>,
    /// The runtime ports' owner metadata by port name (USED-BY), replaced on every
    /// port change.
    pub owners: Arc<RwLock<Arc<std::collections::BTreeMap<String, portcullis_api::PortOwner>>>>,
    /// The audit log (appends run on the blocking pool).
    pub audit: Arc<Mutex<AuditLog>>,
    /// The running configuration; locked for the whole of an apply (one at a time).
    pub running: Arc<tokio::sync::Mutex<crate::running::Running>>,
    /// Applies done and refused (for the metrics).
    pub applies: Arc<ApplyCounters>,
    /// How many refusals reach the audit log (per peer and in all).
    pub refusals: Arc<Mutex<refusals::RefusalLimiter>>,
    /// Whether the read-only web view is served (`web_view`; set by an apply).
    pub web_view: Arc<std::sync::atomic::AtomicBool>,
    /// Woken after every runtime port change (the cluster agent claims or
    /// releases the port at once) and every apply (the agent reads the ports and
    /// gives the overlay its peers again).
    pub ports_changed: Arc<tokio::sync::Notify>,
}

/// Applies since start.
#[derive(Debug, Default)]
pub struct ApplyCounters {
    pub ok: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

pub use crate::conns::Peer;

/// An API error: HTTP status, a stable code, a message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub(crate) fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dataplane_unavailable",
            "the data plane is not answering",
        )
    }
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

/// The routes of API version 1, behind the guard, and the web view's static
/// files (`web`), outside it.
pub fn router(state: ApiState) -> Router {
    use handlers as h;
    let mut r = Router::new();
    for spec in ROUTES {
        let m = |mr| r.clone().route(spec.path, mr);
        r = match (spec.method.as_str(), spec.path) {
            ("GET", "/v1/whoami") => m(get(h::whoami)),
            ("GET", "/v1/status") => m(get(h::status)),
            ("GET", "/v1/ports") => m(get(h::ports)),
            ("GET", "/v1/ports/{name}") => m(get(h::port)),
            ("POST", "/v1/ports/{name}") => m(post(port_changes::add_port)),
            ("PATCH", "/v1/ports/{name}") => m(patch(port_changes::set_port)),
            ("DELETE", "/v1/ports/{name}") => m(delete(port_changes::remove_port)),
            ("PUT", "/v1/ports/{name}/effective-mac") => m(put(h::report_mac)),
            ("POST", "/v1/ports/{name}/recover") => m(post(h::recover)),
            ("POST", "/v1/ports/{name}/shutdown") => m(post(h::shutdown)),
            ("POST", "/v1/ports/{name}/enable") => m(post(h::enable)),
            ("POST", "/v1/ports/{name}/capture") => m(post(h::capture)),
            ("GET", "/v1/mac") => m(get(h::mac_table)),
            ("GET", "/v1/counters") => m(get(h::counters)),
            ("POST", "/v1/counters/clear") => m(post(h::clear_counters)),
            ("GET", "/v1/events") => m(get(h::events)),
            ("GET", "/v1/port-security") => m(get(h::port_security)),
            ("GET", "/v1/mac-acls") => m(get(h::mac_acls)),
            ("GET", "/v1/uplinks") => m(get(h::uplinks)),
            ("GET", "/v1/bindings") => m(get(h::bindings)),
            ("GET", "/v1/hosts") => m(get(h::hosts)),
            ("GET", "/v1/overlay") => m(get(h::overlay)),
            ("POST", "/v1/trace") => m(post(h::trace)),
            ("POST", "/v1/bindings") => m(post(h::add_binding)),
            ("DELETE", "/v1/bindings/{vlan}/{ip}") => m(delete(h::remove_binding)),
            ("GET", "/v1/config") => m(get(config::get_config)),
            ("POST", "/v1/config/apply") => m(post(config::apply)),
            ("GET", "/v1/audit") => m(get(h::audit_records)),
            (method, path) => unreachable!("route {method} {path} has no handler"),
        };
    }
    r.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(web::router(state.web_view.clone()))
        .with_state(state)
}

/// Appends an event to the bounded history, numbering it (the oldest goes when full).
pub(crate) fn record_event(
    history: &std::sync::Mutex<std::collections::VecDeque<EventRecord>>,
    mut rec: EventRecord,
) {
    if let Ok(mut q) = history.lock() {
        if q.len() == EVENT_HISTORY {
            q.pop_front();
        }
        rec.seq = q.back().map_or(0, |e| e.seq) + 1;
        q.push_back(rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permission_name(p: Option<Permission>) -> &'static str {
        match p {
            None => "any",
            Some(Permission::Read) => "read",
            Some(Permission::ReadAudit) => "read_audit",
            Some(Permission::Operate) => "operate",
            Some(Permission::Administer) => "administer",
        }
    }

    /// The committed OpenAPI document describes exactly the routes the server
    /// serves, with the same permission and audit action.
    #[test]
    fn the_committed_openapi_document_matches_the_routes() {
        let text = include_str!("../../../../docs/openapi.json");
        let doc: serde_json::Value = serde_json::from_str(text).expect("docs/openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented = Vec::new();
        for (path, ops) in paths {
            for (method, op) in ops.as_object().expect("operations") {
                documented.push((method.to_uppercase(), path.clone()));
                let route = ROUTES
                    .iter()
                    .find(|r| r.method.as_str() == method.to_uppercase() && r.path == path)
                    .unwrap_or_else(|| panic!("{method} {path} is documented but not served"));
                assert_eq!(
                    op["x-permission"],
                    permission_name(route.permission),
                    "{method} {path}"
                );
                assert_eq!(
                    op["x-audit-action"].as_str(),
                    route.action,
                    "{method} {path}: audit action"
                );
                assert_eq!(op["summary"], route.summary, "{method} {path}: summary");
                let responses = op["responses"].as_object().expect("responses");
                for code in ["401", "403", "500"] {
                    assert!(
                        responses.contains_key(code),
                        "{method} {path} documents {code}"
                    );
                }
            }
        }
        for r in ROUTES {
            assert!(
                documented.contains(&(r.method.to_string(), r.path.to_string())),
                "{} {} is served but not documented in docs/openapi.json",
                r.method,
                r.path
            );
        }
        assert_eq!(documented.len(), ROUTES.len());
    }

    /// Every route has a handler (the router panics at build time otherwise).
    #[test]
    fn the_router_builds_with_every_route() {
        let names: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
        assert!(names.contains(&"/v1/config/apply"));
    }
}
