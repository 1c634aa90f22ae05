//! Prometheus metrics: the text exposition format 0.0.4 of one scrape, built from a
//! data-plane [`Snapshot`], the [`BindingsView`], the control plane's
//! [`ControlStats`] and, on a switch with an overlay, the overlay's view; and the
//! HTTP endpoint that serves it (`GET /metrics`, nothing else). The families and
//! their labels are documented in `docs/metrics.md`.
//!
//! Invariants: [`render`] and [`render_overlay`] are pure functions of their inputs
//! (no clock, no I/O); every family is written as one block — `# HELP`, `# TYPE`,
//! then its samples — appears once per scrape even when it has no samples (the
//! cluster's families on a cluster member only, the overlay's on a switch with an
//! overlay only), and every label value is escaped as the format requires.
//! [`serve`] asks the data plane for at most one snapshot at a time (a burst of
//! scrapes queues instead of piling work on the data-plane thread), and never
//! waits for one longer than [`SCRAPE_TIMEOUT`].

use crate::runtime::Command;
use crate::snapshot::{BindingsView, Snapshot};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, oneshot};

/// The media type of the text exposition format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a scrape waits for the data plane (its turn included) before it is
/// answered 503.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Extra numbers the control plane has that the snapshot does not (filled by the lead).
#[derive(Clone, Debug, Default)]
pub struct ControlStats {
    /// Configuration applies that took effect.
    pub applies_ok: u64,
    /// Configuration applies that were refused or failed.
    pub applies_failed: u64,
    /// Records written to the audit log.
    pub audit_records: u64,
    /// Audit records the syslog forwarder could not deliver.
    pub audit_forward_failures: u64,
    /// A cluster member's agent (`None` on a single host).
    pub cluster: Option<portcullis_cluster::ClusterStats>,
}

/// What a metric family counts: a counter only goes up (until the daemon restarts),
/// a gauge is a current value.
#[derive(Clone, Copy, Debug)]
enum MetricType {
    Counter,
    Gauge,
}

impl MetricType {
    fn word(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        }
    }
}

/// One family being written: its header is out, samples follow under its name.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

/// Starts family `name` in `out` with its `# HELP` and `# TYPE` lines.
fn family<'a>(out: &'a mut String, name: &'static str, kind: MetricType, help: &str) -> Family<'a> {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind.word());
    out.push('\n');
    Family { out, name }
}

impl Family<'_> {
    /// One sample: `name{label="value",…} value`.
    fn sample(&mut self, labels: &[(&str, &str)], value: u64) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_label_value(v, self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, " {value}");
    }
}

/// Appends `v` escaped as a label value: backslash, double quote and line feed
/// become `\\`, `\"` and `\n`; everything else is UTF-8 as is.
fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Every binding source, as the API names it: each is a series of
/// `portcullis_bindings_by_source` even at 0, so that a dashboard sees it.
const BINDING_SOURCES: [&str; 5] = ["dhcp", "dhcpv6", "nd", "static", "api"];

/// `ipv4` or `ipv6`, for a binding's address as the API writes it.
fn binding_family(ip: &str) -> &'static str {
    if ip.contains(':') { "ipv6" } else { "ipv4" }
}

fn flag(b: bool) -> u64 {
    u64::from(b)
}

/// Prometheus text exposition format 0.0.4 for one scrape.
///
/// Without `b` (the bindings were not asked for) the binding families are written
/// with their headers only.
pub fn render(s: &Snapshot, b: Option<&BindingsView>, c: &ControlStats) -> String {
    let mut out = String::with_capacity(4096 + 512 * s.ports.len());
    let o = &mut out;

    family(
        o,
        "portcullis_uptime_seconds",
        MetricType::Gauge,
        "Seconds since the data plane started.",
    )
    .sample(&[], s.uptime_secs);

    let mut f = family(
        o,
        "portcullis_port_up",
        MetricType::Gauge,
        "1 if the port forwards: administratively up, link up and not error-disabled; 0 otherwise.",
    );
    for p in &s.ports {
        f.sample(
            &[("port", &p.name), ("role", &p.role)],
            flag(p.state == "up"),
        );
    }

    let mut f = family(
        o,
        "portcullis_port_err_disabled",
        MetricType::Gauge,
        "1 if the port is error-disabled, with the cause; 0 (cause empty) otherwise.",
    );
    for p in &s.ports {
        let cause = p.err_disabled.as_deref().unwrap_or("");
        f.sample(
            &[("port", &p.name), ("cause", cause)],
            flag(p.err_disabled.is_some()),
        );
    }

    let mut f = family(
        o,
        "portcullis_port_frames_total",
        MetricType::Counter,
        "Frames the port received (rx, dropped ones included) or the switch forwarded out of it (tx).",
    );
    for p in &s.ports {
        f.sample(
            &[("port", &p.name), ("direction", "rx")],
            p.counters.rx_frames,
        );
        f.sample(
            &[("port", &p.name), ("direction", "tx")],
            p.counters.tx_frames,
        );
    }

    let mut f = family(
        o,
        "portcullis_port_bytes_total",
        MetricType::Counter,
        "Bytes of the frames counted in portcullis_port_frames_total (Ethernet header and 802.1Q tag included, FCS excluded).",
    );
    for p in &s.ports {
        f.sample(
            &[("port", &p.name), ("direction", "rx")],
            p.counters.rx_bytes,
        );
        f.sample(
            &[("port", &p.name), ("direction", "tx")],
            p.counters.tx_bytes,
        );
    }

    let mut f = family(
        o,
        "portcullis_port_drops_total",
        MetricType::Counter,
        "Frames dropped on the port, by direction (rx: on ingress, tx: on egress) and reason; reasons that never occurred are left out.",
    );
    for p in &s.ports {
        for (direction, drops) in [("rx", &p.counters.rx_drops), ("tx", &p.counters.tx_drops)] {
            for (reason, n) in drops.iter().filter(|(_, n)| **n != 0) {
                f.sample(
                    &[
                        ("port", &p.name),
                        ("direction", direction),
                        ("reason", reason),
                    ],
                    *n,
                );
            }
        }
    }

    let mut f = family(
        o,
        "portcullis_port_io_losses_total",
        MetricType::Counter,
        "Frames lost on the port's receive path before the switch saw them, by kind (kernel_drop: the receive ring was full; truncated: cut short, skipped); not in portcullis_port_drops_total.",
    );
    for p in &s.ports {
        f.sample(
            &[("port", &p.name), ("kind", "kernel_drop")],
            p.io.rx_kernel_drops,
        );
        f.sample(
            &[("port", &p.name), ("kind", "truncated")],
            p.io.rx_truncated,
        );
    }

    let mut f = family(
        o,
        "portcullis_drops_total",
        MetricType::Counter,
        "Frames dropped by the switch over all ports and both directions, by reason; reasons that never occurred are left out.",
    );
    for (reason, n) in s.drops.iter().filter(|(_, n)| **n != 0) {
        f.sample(&[("reason", reason)], *n);
    }

    family(
        o,
        "portcullis_mac_table_entries",
        MetricType::Gauge,
        "Entries in the MAC table (guest, secure and learned).",
    )
    .sample(&[], s.mac_table.entries.len() as u64);

    family(
        o,
        "portcullis_mac_table_capacity",
        MetricType::Gauge,
        "Entries the MAC table can hold.",
    )
    .sample(&[], s.mac_table.capacity as u64);

    family(
        o,
        "portcullis_mac_table_learn_refused_total",
        MetricType::Counter,
        "MAC addresses not learned because the MAC table was full.",
    )
    .sample(&[], s.mac_table.learn_refused);

    let mut f = family(
        o,
        "portcullis_bindings",
        MetricType::Gauge,
        "Entries in the IP binding table (every source: DHCP and DHCPv6 snooping, ND inspection, static and API bindings).",
    );
    if let Some(b) = b {
        f.sample(&[], b.bindings.len() as u64);
    }
    let mut f = family(
        o,
        "portcullis_bindings_by_source",
        MetricType::Gauge,
        "Entries in the IP binding table by where they came from (dhcp, dhcpv6, nd, static, api) and address family.",
    );
    if let Some(b) = b {
        for source in BINDING_SOURCES {
            for family in ["ipv4", "ipv6"] {
                let n = b
                    .bindings
                    .iter()
                    .filter(|x| x.source == source && binding_family(&x.ip) == family)
                    .count();
                f.sample(&[("source", source), ("family", family)], n as u64);
            }
        }
    }
    let mut f = family(
        o,
        "portcullis_binding_table_capacity",
        MetricType::Gauge,
        "Entries the IP binding table can hold.",
    );
    if let Some(b) = b {
        f.sample(&[], b.capacity as u64);
    }
    let mut f = family(
        o,
        "portcullis_held_acks_waiting",
        MetricType::Gauge,
        "DHCPACKs held until their binding is committed to disk.",
    );
    if let Some(b) = b {
        f.sample(&[], b.held.waiting);
    }

    let mut f = family(
        o,
        "portcullis_uplink_up",
        MetricType::Gauge,
        "1 if the uplink is administratively up and has carrier; 0 otherwise.",
    );
    for u in &s.uplinks {
        f.sample(
            &[("uplink", &u.name), ("interface", &u.interface)],
            flag(u.state == "up"),
        );
    }

    let mut f = family(
        o,
        "portcullis_uplink_guests",
        MetricType::Gauge,
        "Guest ports whose traffic leaves by the uplink now (teaming).",
    );
    for u in &s.uplinks {
        f.sample(&[("uplink", &u.name)], u.guests.len() as u64);
    }

    let mut f = family(
        o,
        "portcullis_mac_acl_rule_hits_total",
        MetricType::Counter,
        "Frames a MAC ACL rule matched, by ACL and rule number (1-based, as in the configuration).",
    );
    for a in &s.mac_acls {
        for r in &a.rules {
            f.sample(&[("acl", &a.name), ("seq", &r.seq.to_string())], r.hits);
        }
    }

    let mut f = family(
        o,
        "portcullis_mac_acl_implicit_deny_hits_total",
        MetricType::Counter,
        "Frames no rule of the MAC ACL matched (denied by its implicit deny).",
    );
    for a in &s.mac_acls {
        f.sample(&[("acl", &a.name)], a.implicit_deny_hits);
    }

    family(
        o,
        "portcullis_events_lost_total",
        MetricType::Counter,
        "Switch events (learning, violations, bindings, link changes) lost because the control plane fell behind.",
    )
    .sample(&[], s.events_lost);

    let mut f = family(
        o,
        "portcullis_config_applies_total",
        MetricType::Counter,
        "Configuration applies, by result (ok: took effect; failed: refused or failed).",
    );
    f.sample(&[("result", "ok")], c.applies_ok);
    f.sample(&[("result", "failed")], c.applies_failed);

    family(
        o,
        "portcullis_audit_records_total",
        MetricType::Counter,
        "Records written to the audit log.",
    )
    .sample(&[], c.audit_records);

    family(
        o,
        "portcullis_audit_forward_failures_total",
        MetricType::Counter,
        "Audit records that could not be forwarded to syslog.",
    )
    .sample(&[], c.audit_forward_failures);

    if let Some(k) = c.cluster {
        let gauges: [(&str, &str, u64); 3] = [
            (
                "portcullis_cluster_connected",
                "1 while etcd answers this host's agent, 0 while it forwards on its last state.",
                u64::from(k.connected),
            ),
            (
                "portcullis_cluster_owned_ports",
                "Logical ports this host owns.",
                k.owned_ports as u64,
            ),
            (
                "portcullis_cluster_pending_ports",
                "Ports whose bindings etcd may not have yet (reconciled when it answers).",
                k.dirty_ports as u64,
            ),
        ];
        for (name, help, v) in gauges {
            family(o, name, MetricType::Gauge, help).sample(&[], v);
        }
        let counters: [(&str, &str, u64); 5] = [
            (
                "portcullis_cluster_binding_writes_total",
                "Binding changes written to etcd after their local commit.",
                k.writes,
            ),
            (
                "portcullis_cluster_binding_write_failures_total",
                "Binding writes etcd did not take in time (left to the reconcile).",
                k.write_failures,
            ),
            (
                "portcullis_cluster_reconciles_total",
                "Ports whose bindings were rewritten to etcd by a reconcile.",
                k.reconciles,
            ),
            (
                "portcullis_cluster_claims_total",
                "Claims of logical ports by this host.",
                k.claims,
            ),
            (
                "portcullis_cluster_claims_lost_total",
                "Claims that lost to a concurrent one.",
                k.claims_lost,
            ),
        ];
        for (name, help, v) in counters {
            family(o, name, MetricType::Counter, help).sample(&[], v);
        }
    }

    out
}

/// The overlay's families (docs/metrics.md, "The overlay"), for a switch that has
/// one: appended to [`render`]'s text, after the single host's families. One series
/// per remote endpoint (at most [`portcullis_dataplane::overlay::MAX_ENDPOINTS`]),
/// labelled by its address.
pub fn render_overlay(v: &portcullis_api::OverlayView) -> String {
    let mut out = String::with_capacity(1024 + 512 * v.endpoints.len());
    let o = &mut out;
    let mut f = family(
        o,
        "portcullis_overlay_endpoints",
        MetricType::Gauge,
        "Remote tunnel endpoints installed, by where they come from (configured: the configuration's peers; cluster: the cluster's port records).",
    );
    for source in ["configured", "cluster"] {
        let n = v.endpoints.iter().filter(|e| e.source == source).count();
        f.sample(&[("source", source)], n as u64);
    }
    family(
        o,
        "portcullis_overlay_remote_macs",
        MetricType::Gauge,
        "Guest MACs installed behind remote endpoints (the remote-MAC table).",
    )
    .sample(&[], v.remote_mac_count as u64);
    let refused: [(&str, &str, u64); 3] = [
        (
            "portcullis_overlay_refused_macs_total",
            "Remote MACs not installed: the table was full, or another endpoint had the MAC in that VLAN.",
            v.refused_macs,
        ),
        (
            "portcullis_overlay_refused_endpoints_total",
            "Remote endpoints not installed: beyond the most endpoints, or this host's own address.",
            v.refused_endpoints,
        ),
        (
            "portcullis_overlay_unknown_endpoint_datagrams_total",
            "VXLAN datagrams dropped because their source address is not an endpoint.",
            v.unknown_endpoint,
        ),
    ];
    for (name, help, n) in refused {
        family(o, name, MetricType::Counter, help).sample(&[], n);
    }
    let mut f = family(
        o,
        "portcullis_overlay_endpoint_macs",
        MetricType::Gauge,
        "Guest MACs installed behind the remote endpoint.",
    );
    for e in &v.endpoints {
        f.sample(&[("endpoint", &e.address)], e.macs as u64);
    }
    let mut f = family(
        o,
        "portcullis_overlay_endpoint_frames_total",
        MetricType::Counter,
        "Frames received from the endpoint that passed the overlay's checks (rx), or sent to it (tx; a flood counts once per endpoint).",
    );
    for e in &v.endpoints {
        f.sample(
            &[("endpoint", &e.address), ("direction", "rx")],
            e.counters.rx_frames,
        );
        f.sample(
            &[("endpoint", &e.address), ("direction", "tx")],
            e.counters.tx_frames,
        );
    }
    let mut f = family(
        o,
        "portcullis_overlay_endpoint_bytes_total",
        MetricType::Counter,
        "Bytes of the frames in portcullis_overlay_endpoint_frames_total (rx: the VXLAN payload, header and inner frame; tx: the inner frame).",
    );
    for e in &v.endpoints {
        f.sample(
            &[("endpoint", &e.address), ("direction", "rx")],
            e.counters.rx_bytes,
        );
        f.sample(
            &[("endpoint", &e.address), ("direction", "tx")],
            e.counters.tx_bytes,
        );
    }
    let mut f = family(
        o,
        "portcullis_overlay_endpoint_drops_total",
        MetricType::Counter,
        "Frames from the endpoint dropped by the overlay, by reason (overlay_forged_source: the inner source MAC is not behind it; overlay_bad_header: a bad VXLAN header, an unmapped VNI or an inner 802.1Q tag).",
    );
    for e in &v.endpoints {
        f.sample(
            &[
                ("endpoint", &e.address),
                ("reason", "overlay_forged_source"),
            ],
            e.counters.forged_source,
        );
        f.sample(
            &[("endpoint", &e.address), ("reason", "overlay_bad_header")],
            e.counters.bad_header,
        );
    }
    out
}

/// What every request of the endpoint shares.
#[derive(Clone)]
struct Endpoint {
    commands: crate::runtime::CommandSender,
    control: Arc<dyn Fn() -> ControlStats + Send + Sync>,
    /// Held while a scrape waits for the data plane: one snapshot at a time.
    data_plane_turn: Arc<Mutex<()>>,
}

/// What one scrape asks the data plane for.
type Answers = (Snapshot, BindingsView, Option<portcullis_api::OverlayView>);

/// Why a scrape got no snapshot.
enum ScrapeFailure {
    /// The data-plane thread is gone (its command channel or reply was dropped).
    DataPlaneGone,
    /// It did not answer within [`SCRAPE_TIMEOUT`].
    Timeout,
}

impl Endpoint {
    /// The snapshot, the bindings and the overlay's counts, asked for in one turn
    /// of the data plane.
    async fn ask_data_plane(&self) -> Result<Answers, ScrapeFailure> {
        let asked = async {
            let _turn = self.data_plane_turn.lock().await;
            let (snapshot_tx, snapshot_rx) = oneshot::channel();
            let (bindings_tx, bindings_rx) = oneshot::channel();
            let (overlay_tx, overlay_rx) = oneshot::channel();
            let gone = |_| ScrapeFailure::DataPlaneGone;
            self.commands
                .send(Command::Snapshot(snapshot_tx))
                .map_err(gone)?;
            self.commands
                .send(Command::Bindings(bindings_tx))
                .map_err(gone)?;
            self.commands
                .send(Command::Overlay {
                    remote_macs: false,
                    reply: overlay_tx,
                })
                .map_err(gone)?;
            let snapshot = snapshot_rx
                .await
                .map_err(|_| ScrapeFailure::DataPlaneGone)?;
            let bindings = bindings_rx
                .await
                .map_err(|_| ScrapeFailure::DataPlaneGone)?;
            let overlay = overlay_rx.await.map_err(|_| ScrapeFailure::DataPlaneGone)?;
            Ok((snapshot, bindings, overlay))
        };
        tokio::time::timeout(SCRAPE_TIMEOUT, asked)
            .await
            .unwrap_or(Err(ScrapeFailure::Timeout))
    }
}

async fn scrape(State(endpoint): State<Endpoint>) -> Response {
    match endpoint.ask_data_plane().await {
        Ok((snapshot, bindings, overlay)) => {
            let control = (endpoint.control)();
            let mut text = render(&snapshot, Some(&bindings), &control);
            if let Some(o) = &overlay {
                text.push_str(&render_overlay(o));
            }
            ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
        }
        Err(ScrapeFailure::DataPlaneGone) => {
            tracing::warn!("metrics scrape: the data plane is not running");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the data plane is not running\n",
            )
                .into_response()
        }
        Err(ScrapeFailure::Timeout) => {
            tracing::warn!(
                timeout_secs = SCRAPE_TIMEOUT.as_secs(),
                "metrics scrape: the data plane did not answer in time"
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the data plane did not answer in time\n",
            )
                .into_response()
        }
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: the only resource is /metrics\n",
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "GET, HEAD")],
        "method not allowed: /metrics answers GET\n",
    )
        .into_response()
}

/// Serves GET /metrics (and nothing else: any other path → 404, any other method →
/// 405, both with a short text body) on `listener` until `shutdown` resolves; each
/// scrape asks the data plane for a snapshot and the bindings through `commands`
/// (timeout 2 s → 503) and calls `control()` for the rest.
///
/// `control` is called on the async runtime: it must be quick and must not block.
pub async fn serve(
    listener: tokio::net::TcpListener,
    commands: crate::runtime::CommandSender,
    control: Arc<dyn Fn() -> ControlStats + Send + Sync>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let endpoint = Endpoint {
        commands,
        control,
        data_plane_turn: Arc::new(Mutex::new(())),
    };
    let app = Router::new()
        .route("/metrics", get(scrape).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(endpoint);
    crate::conns::serve(
        crate::conns::Listener::Tcp(listener),
        app,
        crate::conns::Limits::with_cap(crate::conns::METRICS_CONNECTIONS),
        shutdown,
    )
    .await;
}
