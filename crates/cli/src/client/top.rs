//! `portcullis top`: live per-port packet and bit rates, like esxtop's network screen,
//! and a CSV batch mode like `esxtop -b`.
//!
//! Owns the turning of two counter samples (`GET /v1/ports`) into per-port rates
//! ([`rates`]), their sort order, the screen ([`render`]), the key bindings
//! ([`handle_key`]) and the CSV rows ([`write_csv_rows`]). Those parts are pure; the
//! I/O (API polling, terminal, stdout) lives in [`run`] and its private helpers.
//!
//! Invariant: a rate is never negative, never NaN and never counts frames from before
//! the previous sample. A port whose counters went down (counters cleared, or the port
//! removed and re-added by an apply; ports are matched by name) or that did not exist
//! in the previous sample restarts from zero; drop percentages stay within 0–100.
//!
//! Direction follows esxtop, which reports each row from the point of view of the
//! device using the port (USED-BY), not of the switch:
//!
//! | column            | guest port (vNIC, TAP, veth) | uplink port (host NIC)   |
//! |-------------------|------------------------------|--------------------------|
//! | PKTTX/s, MbTX/s   | `rx_frames`, `rx_bytes`      | `tx_frames`, `tx_bytes`  |
//! | %DRPTX            | (`rx_dropped` + lost) / (`rx_frames` + lost) | `tx_dropped` / (`tx_frames` + `tx_dropped`) |
//! | PKTRX/s, MbRX/s   | `tx_frames`, `tx_bytes`      | `rx_frames`, `rx_bytes`  |
//! | %DRPRX            | `tx_dropped` / (`tx_frames` + `tx_dropped`) | (`rx_dropped` + lost) / (`rx_frames` + lost) |
//!
//! A guest transmits into the switch (our ingress, `rx_*`) and receives what the switch
//! delivers to it (our egress, `tx_*`); a host NIC transmits onto the wire what the
//! switch sends it. `rx_frames` counts every frame received, ingress drops included
//! (see the dataplane's counters); `tx_frames` counts only copies forwarded, so egress
//! drops are added to it. "lost" is what the port's receive path lost before the
//! switch saw it (`io.rx_kernel_drops`: ring full, `io.rx_truncated`); it is in the
//! packet rate too, and a TOP-DROP candidate as `ring_full` / `truncated`. See
//! `docs/top.md`.

use anyhow::Context as _;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use portcullis_api::call;
use portcullis_api::{CountersView, IoStats, PortView};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// Shortest refresh interval accepted (`-d`, and the `-` key's floor).
pub const MIN_DELAY: f64 = 0.5;
/// Longest refresh interval accepted (`-d`, and the `+` key's ceiling).
pub const MAX_DELAY: f64 = 3600.0;
/// What the `+` and `-` keys add to or take from the refresh interval.
pub const DELAY_STEP: f64 = 0.5;
/// How long one API call may take before the sample counts as failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// Seconds between refreshes (esxtop -d).
    #[arg(short = 'd', long, default_value_t = 2.0)]
    pub delay: f64,
    /// Batch mode: CSV to stdout, no screen (esxtop -b).
    #[arg(short = 'b', long)]
    pub batch: bool,
    /// Number of samples in batch mode (esxtop -n); 0 = until interrupted.
    #[arg(short = 'n', long, default_value_t = 0)]
    pub iterations: u64,
    /// Initial sort column.
    #[arg(long, value_enum, default_value_t = SortKey::PktRx)]
    pub sort: SortKey,
}

/// The columns the table can be sorted by. Numeric columns sort descending (busiest
/// first), PORT-ID ascending; ties are broken by ascending PORT-ID.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    PortId,
    PktTx,
    MbTx,
    PktRx,
    MbRx,
    DrpTx,
    DrpRx,
}

impl SortKey {
    /// In screen order; the digit keys `1`–`7` pick by position in this list.
    pub const ALL: [SortKey; 7] = [
        SortKey::PortId,
        SortKey::PktTx,
        SortKey::MbTx,
        SortKey::PktRx,
        SortKey::MbRx,
        SortKey::DrpTx,
        SortKey::DrpRx,
    ];

    /// The column's title on screen.
    pub fn title(self) -> &'static str {
        match self {
            SortKey::PortId => "PORT-ID",
            SortKey::PktTx => "PKTTX/s",
            SortKey::MbTx => "MbTX/s",
            SortKey::PktRx => "PKTRX/s",
            SortKey::MbRx => "MbRX/s",
            SortKey::DrpTx => "%DRPTX",
            SortKey::DrpRx => "%DRPRX",
        }
    }

    /// The next column (the `s` key), wrapping around.
    pub fn next(self) -> SortKey {
        let i = Self::ALL.iter().position(|k| *k == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

/// One poll of the API.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Monotonic seconds (from any fixed origin) when the counters were read.
    pub at: f64,
    /// Wall-clock time of the sample (shown in the header and the CSV).
    pub wall: SystemTime,
    /// The switch's name (DNAME).
    pub switch: String,
    pub ports: Vec<PortView>,
}

/// Whose point of view a row's TX/RX columns take (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// A guest NIC: its TX is the switch's ingress.
    Guest,
    /// A host NIC: its TX is the switch's egress.
    Uplink,
}

impl PortKind {
    /// From the API's `role`; any role but "uplink" is a device behind the port.
    pub fn of_role(role: &str) -> PortKind {
        if role == "uplink" {
            PortKind::Uplink
        } else {
            PortKind::Guest
        }
    }
}

/// One row of the network screen: the rates of one port over one interval.
#[derive(Clone, Debug, PartialEq)]
pub struct PortRow {
    /// PORT-ID.
    pub port_id: u16,
    /// USED-BY: the port's name, with its interface for guests (`web1:tap0`).
    pub used_by: String,
    /// TEAM-PNIC: the uplink the port's traffic leaves by, or "-".
    pub team_pnic: String,
    /// DNAME: the switch.
    pub dname: String,
    pub kind: PortKind,
    /// Packets per second the device transmitted (PKTTX/s).
    pub pkt_tx_s: f64,
    /// Megabits per second the device transmitted (MbTX/s, bytes × 8 / 10⁶).
    pub mb_tx_s: f64,
    /// Packets per second the device received (PKTRX/s).
    pub pkt_rx_s: f64,
    /// Megabits per second the device received (MbRX/s).
    pub mb_rx_s: f64,
    /// Percent of the device's transmitted packets the switch dropped (%DRPTX).
    pub drp_tx_pct: f64,
    /// Percent of the packets bound for the device that were dropped (%DRPRX).
    pub drp_rx_pct: f64,
    /// The drop reason that grew most over the interval, either direction, or "-".
    pub top_drop: String,
}

impl PortRow {
    /// Packets and megabits per second the switch received on this port: the
    /// switching load it adds (each frame counts once, on its ingress port).
    pub fn switch_ingress(&self) -> (f64, f64) {
        match self.kind {
            PortKind::Guest => (self.pkt_tx_s, self.mb_tx_s),
            PortKind::Uplink => (self.pkt_rx_s, self.mb_rx_s),
        }
    }

    fn key(&self, key: SortKey) -> f64 {
        match key {
            SortKey::PortId => f64::from(self.port_id),
            SortKey::PktTx => self.pkt_tx_s,
            SortKey::MbTx => self.mb_tx_s,
            SortKey::PktRx => self.pkt_rx_s,
            SortKey::MbRx => self.mb_rx_s,
            SortKey::DrpTx => self.drp_tx_pct,
            SortKey::DrpRx => self.drp_rx_pct,
        }
    }
}

/// Counter increases of one port over one interval.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Deltas {
    rx_frames: u64,
    rx_bytes: u64,
    tx_frames: u64,
    tx_bytes: u64,
    rx_dropped: u64,
    tx_dropped: u64,
    /// Both directions, by reason.
    drops: BTreeMap<String, u64>,
}

/// Any counter lower now than before: the port's counters restarted.
fn went_down(prev: &CountersView, cur: &CountersView) -> bool {
    let scalar = [
        (prev.rx_frames, cur.rx_frames),
        (prev.rx_bytes, cur.rx_bytes),
        (prev.tx_frames, cur.tx_frames),
        (prev.tx_bytes, cur.tx_bytes),
        (prev.rx_dropped, cur.rx_dropped),
        (prev.tx_dropped, cur.tx_dropped),
    ];
    let by_reason = |p: &BTreeMap<String, u64>, c: &BTreeMap<String, u64>| {
        p.iter().any(|(r, n)| c.get(r).copied().unwrap_or(0) < *n)
    };
    scalar.iter().any(|(p, c)| c < p)
        || by_reason(&prev.rx_drops, &cur.rx_drops)
        || by_reason(&prev.tx_drops, &cur.tx_drops)
}

fn deltas(prev: Option<&CountersView>, cur: &CountersView) -> Deltas {
    let zero = CountersView::default();
    let prev = match prev {
        Some(p) if !went_down(p, cur) => p,
        _ => &zero,
    };
    let mut drops: BTreeMap<String, u64> = BTreeMap::new();
    for (now, before) in [
        (&cur.rx_drops, &prev.rx_drops),
        (&cur.tx_drops, &prev.tx_drops),
    ] {
        for (reason, n) in now {
            let d = n.saturating_sub(before.get(reason).copied().unwrap_or(0));
            if d > 0 {
                *drops.entry(reason.clone()).or_default() += d;
            }
        }
    }
    Deltas {
        rx_frames: cur.rx_frames.saturating_sub(prev.rx_frames),
        rx_bytes: cur.rx_bytes.saturating_sub(prev.rx_bytes),
        tx_frames: cur.tx_frames.saturating_sub(prev.tx_frames),
        tx_bytes: cur.tx_bytes.saturating_sub(prev.tx_bytes),
        rx_dropped: cur.rx_dropped.saturating_sub(prev.rx_dropped),
        tx_dropped: cur.tx_dropped.saturating_sub(prev.tx_dropped),
        drops,
    }
}

/// `dropped` as a percentage of `offered` (0 when nothing was offered), at most 100.
fn drop_pct(dropped: u64, offered: u64) -> f64 {
    if offered == 0 {
        return 0.0;
    }
    (dropped as f64 * 100.0 / offered as f64).min(100.0)
}

/// One direction of traffic over the interval, as the switch counts it.
struct Flow {
    frames: u64,
    bytes: u64,
    drop_pct: f64,
}

/// Rates of every port of `cur` over the interval since `prev`, in `cur`'s port
/// order. Ports are matched by name; a port missing from `prev`, or whose counters
/// went down, counts from zero; ports gone from `cur` have no row. A non-positive
/// interval gives zero rates (the drop percentages are still computed).
pub fn rates(prev: &Sample, cur: &Sample) -> Vec<PortRow> {
    let dt = cur.at - prev.at;
    let per_sec = |n: u64| {
        if dt > 0.0 && dt.is_finite() {
            n as f64 / dt
        } else {
            0.0
        }
    };
    let before: BTreeMap<&str, &PortView> =
        prev.ports.iter().map(|p| (p.name.as_str(), p)).collect();
    cur.ports
        .iter()
        .map(|p| {
            let was = before.get(p.name.as_str()).copied();
            let mut d = deltas(was.map(|w| &w.counters), &p.counters);
            // Frames the port's receive path lost before the switch saw them (ring
            // full, cut short) were sent by the device and dropped: esxtop counts
            // them in the device's %DRPTX (guest) or %DRPRX (uplink).
            let (ring_full, truncated) = io_losses(was.map(|w| &w.io), &p.io);
            for (reason, n) in [("ring_full", ring_full), ("truncated", truncated)] {
                if n > 0 {
                    *d.drops.entry(reason.to_string()).or_default() += n;
                }
            }
            let lost = ring_full.saturating_add(truncated);
            // rx_frames already counts the frames dropped on ingress.
            let offered = d.rx_frames.saturating_add(lost);
            let switch_in = Flow {
                frames: offered,
                bytes: d.rx_bytes,
                drop_pct: drop_pct(d.rx_dropped.saturating_add(lost), offered),
            };
            // tx_frames counts only the copies forwarded.
            let switch_out = Flow {
                frames: d.tx_frames,
                bytes: d.tx_bytes,
                drop_pct: drop_pct(d.tx_dropped, d.tx_frames.saturating_add(d.tx_dropped)),
            };
            let kind = PortKind::of_role(&p.role);
            let (tx, rx) = match kind {
                PortKind::Guest => (switch_in, switch_out),
                PortKind::Uplink => (switch_out, switch_in),
            };
            // The biggest increase; on a tie, the reason first in name order.
            let top_drop = d
                .drops
                .iter()
                .fold(None::<(&String, u64)>, |best, (r, n)| match best {
                    Some((_, m)) if m >= *n => best,
                    _ => Some((r, *n)),
                })
                .map_or_else(|| "-".to_string(), |(r, _)| r.clone());
            PortRow {
                port_id: p.id,
                used_by: used_by(p),
                team_pnic: p.uplink.clone().unwrap_or_else(|| "-".into()),
                dname: cur.switch.clone(),
                kind,
                pkt_tx_s: per_sec(tx.frames),
                mb_tx_s: per_sec(tx.bytes) * 8.0 / 1e6,
                pkt_rx_s: per_sec(rx.frames),
                mb_rx_s: per_sec(rx.bytes) * 8.0 / 1e6,
                drp_tx_pct: tx.drop_pct,
                drp_rx_pct: rx.drop_pct,
                top_drop,
            }
        })
        .collect()
}

/// The receive-path losses (ring full, truncated) over the interval: counted since
/// the port's socket opened, so a port new to this sample, or whose counters went
/// down (reopened by an apply), counts from zero.
fn io_losses(prev: Option<&IoStats>, cur: &IoStats) -> (u64, u64) {
    match prev {
        Some(p)
            if cur.rx_kernel_drops >= p.rx_kernel_drops && cur.rx_truncated >= p.rx_truncated =>
        {
            (
                cur.rx_kernel_drops - p.rx_kernel_drops,
                cur.rx_truncated - p.rx_truncated,
            )
        }
        _ => (cur.rx_kernel_drops, cur.rx_truncated),
    }
}

fn used_by(p: &PortView) -> String {
    let base = if PortKind::of_role(&p.role) == PortKind::Guest && !p.interface.is_empty() {
        format!("{}:{}", p.name, p.interface)
    } else {
        p.name.clone()
    };
    // A runtime port's owner (the VM or container behind it), as esxtop names the
    // VM in USED-BY.
    match p.owner_summary() {
        Some(owner) => format!("{base} ({owner})"),
        None => base,
    }
}

/// Sorts `rows` by `key`: numeric columns descending, PORT-ID ascending, ties by
/// ascending PORT-ID.
pub fn sort_rows(rows: &mut [PortRow], key: SortKey) {
    rows.sort_by(|a, b| {
        let by_key = match key {
            SortKey::PortId => a.port_id.cmp(&b.port_id),
            _ => b.key(key).total_cmp(&a.key(key)),
        };
        by_key.then(a.port_id.cmp(&b.port_id))
    });
}

/// Everything the screen shows.
#[derive(Clone, Debug)]
pub struct TopState {
    pub switch: String,
    /// Wall-clock time of the latest sample; `None` before the first.
    pub wall: Option<SystemTime>,
    /// Ports in the latest sample.
    pub ports: usize,
    /// Ports of the latest sample that are error-disabled.
    pub err_disabled: usize,
    /// Rows of the latest interval, sorted by `sort`.
    pub rows: Vec<PortRow>,
    pub sort: SortKey,
    /// Seconds between refreshes.
    pub delay: f64,
    /// The last poll's failure, shown until a poll succeeds.
    pub error: Option<String>,
}

impl TopState {
    pub fn new(sort: SortKey, delay: f64) -> TopState {
        TopState {
            switch: String::new(),
            wall: None,
            ports: 0,
            err_disabled: 0,
            rows: Vec::new(),
            sort,
            delay,
            error: None,
        }
    }

    /// Takes in a successful poll. Without a previous sample there are no rates yet:
    /// the rows stay empty and the screen says it is collecting.
    pub fn update(&mut self, prev: Option<&Sample>, cur: &Sample) {
        self.switch = cur.switch.clone();
        self.wall = Some(cur.wall);
        self.ports = cur.ports.len();
        self.err_disabled = cur
            .ports
            .iter()
            .filter(|p| p.err_disabled.is_some())
            .count();
        self.rows = prev.map(|p| rates(p, cur)).unwrap_or_default();
        sort_rows(&mut self.rows, self.sort);
        self.error = None;
    }

    pub fn set_sort(&mut self, key: SortKey) {
        self.sort = key;
        sort_rows(&mut self.rows, key);
    }

    /// The switching load: packets (millions) and megabits per second received
    /// over all ports.
    pub fn totals(&self) -> (f64, f64) {
        self.rows.iter().fold((0.0, 0.0), |(pps, mbps), r| {
            let (p, m) = r.switch_ingress();
            (pps + p / 1e6, mbps + m)
        })
    }
}

/// What the loop does after a key press.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    Quit,
    /// The state changed: draw again (a changed delay applies from the next poll).
    Redraw,
    Ignore,
}

/// The footer: the keys [`handle_key`] knows.
pub const FOOTER: &str = "q quit  s next sort  1-7 sort by column  + slower  - faster";

/// Applies one key: `q`, Esc or Ctrl-C quit; `s` sorts by the next column; `1`–`7`
/// sort by that column (left to right among the numeric ones, PORT-ID first); `+`
/// and `-` lengthen or shorten the refresh interval by [`DELAY_STEP`] within
/// [`MIN_DELAY`]–[`MAX_DELAY`].
pub fn handle_key(state: &mut TopState, key: KeyEvent) -> KeyAction {
    if key.kind == KeyEventKind::Release {
        return KeyAction::Ignore;
    }
    match key.code {
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => KeyAction::Quit,
        KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => KeyAction::Quit,
        KeyCode::Char('s') => {
            state.set_sort(state.sort.next());
            KeyAction::Redraw
        }
        KeyCode::Char(c @ '1'..='7') => {
            let i = usize::from(c as u8 - b'1');
            state.set_sort(SortKey::ALL[i]);
            KeyAction::Redraw
        }
        KeyCode::Char('+') | KeyCode::Char('=') => {
            state.delay = (state.delay + DELAY_STEP).min(MAX_DELAY);
            KeyAction::Redraw
        }
        KeyCode::Char('-') | KeyCode::Char('_') => {
            state.delay = (state.delay - DELAY_STEP).max(MIN_DELAY);
            KeyAction::Redraw
        }
        _ => KeyAction::Ignore,
    }
}

/// RFC 3339 UTC to the second: `2023-11-14T22:13:20Z`.
fn time_text(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Width of a text column: its title or its longest value, at most `cap`.
fn text_width<'a>(title: &str, values: impl Iterator<Item = &'a str>, cap: usize) -> u16 {
    let w = values
        .map(|v| v.chars().count())
        .fold(title.len(), usize::max)
        .min(cap);
    u16::try_from(w).unwrap_or(u16::MAX)
}

/// Draws the header (switch, time, port counts, switching load), a status line (the
/// sort and interval, or the last error), the port table and the key footer.
pub fn render(frame: &mut Frame, state: &TopState) {
    let [head, status, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let (mpps, mbps) = state.totals();
    let header = format!(
        "{}  {}  ports {}  err-disabled {}  switched {:.3} Mpps {:.2} Mbps",
        if state.switch.is_empty() {
            "-"
        } else {
            &state.switch
        },
        state.wall.map_or_else(|| "-".to_string(), time_text),
        state.ports,
        state.err_disabled,
        mpps,
        mbps,
    );
    frame.render_widget(
        Paragraph::new(header).style(Style::new().add_modifier(Modifier::BOLD)),
        head,
    );

    let status_line = match &state.error {
        Some(e) => Line::styled(
            format!("error: {e} (retrying every {:.1} s)", state.delay),
            Style::new().add_modifier(Modifier::REVERSED),
        ),
        None if state.wall.is_some() && state.rows.is_empty() && state.ports > 0 => {
            Line::raw(format!(
                "collecting: rates appear after one interval ({:.1} s)",
                state.delay
            ))
        }
        None => Line::raw(format!(
            "sort {} {}  every {:.1} s",
            state.sort.title(),
            if state.sort == SortKey::PortId {
                "ascending"
            } else {
                "descending"
            },
            state.delay
        )),
    };
    frame.render_widget(Paragraph::new(status_line), status);

    let rows = &state.rows;
    let widths = [
        Constraint::Length(7),
        Constraint::Length(text_width(
            "USED-BY",
            rows.iter().map(|r| r.used_by.as_str()),
            32,
        )),
        Constraint::Length(text_width(
            "TEAM-PNIC",
            rows.iter().map(|r| r.team_pnic.as_str()),
            16,
        )),
        Constraint::Length(text_width(
            "DNAME",
            rows.iter().map(|r| r.dname.as_str()),
            16,
        )),
        Constraint::Length(11),
        Constraint::Length(9),
        Constraint::Length(11),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Min(8),
    ];
    let sorted = Style::new().add_modifier(Modifier::REVERSED);
    let right = |s: String| Cell::from(Line::from(s).right_aligned());
    let title = |t: &'static str, key: Option<SortKey>, align_right: bool| {
        let line = if align_right {
            Line::from(t).right_aligned()
        } else {
            Line::from(t)
        };
        let cell = Cell::from(line);
        if key == Some(state.sort) {
            cell.style(sorted)
        } else {
            cell
        }
    };
    let header_row = Row::new([
        title("PORT-ID", Some(SortKey::PortId), true),
        title("USED-BY", None, false),
        title("TEAM-PNIC", None, false),
        title("DNAME", None, false),
        title("PKTTX/s", Some(SortKey::PktTx), true),
        title("MbTX/s", Some(SortKey::MbTx), true),
        title("PKTRX/s", Some(SortKey::PktRx), true),
        title("MbRX/s", Some(SortKey::MbRx), true),
        title("%DRPTX", Some(SortKey::DrpTx), true),
        title("%DRPRX", Some(SortKey::DrpRx), true),
        title("TOP-DROP", None, false),
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let table_rows = rows.iter().map(|r| {
        Row::new([
            right(r.port_id.to_string()),
            Cell::from(r.used_by.as_str()),
            Cell::from(r.team_pnic.as_str()),
            Cell::from(r.dname.as_str()),
            right(format!("{:.2}", r.pkt_tx_s)),
            right(format!("{:.2}", r.mb_tx_s)),
            right(format!("{:.2}", r.pkt_rx_s)),
            right(format!("{:.2}", r.mb_rx_s)),
            right(format!("{:.2}", r.drp_tx_pct)),
            right(format!("{:.2}", r.drp_rx_pct)),
            Cell::from(r.top_drop.as_str()),
        ])
    });
    frame.render_widget(
        Table::new(table_rows, widths)
            .header(header_row)
            .column_spacing(1),
        body,
    );

    frame.render_widget(
        Paragraph::new(FOOTER).style(Style::new().add_modifier(Modifier::REVERSED)),
        foot,
    );
}

/// The batch mode's CSV columns, one row per port per sample.
pub const CSV_HEADER: [&str; 12] = [
    "time",
    "port_id",
    "used_by",
    "team_pnic",
    "dname",
    "pkttx_s",
    "mbtx_s",
    "pktrx_s",
    "mbrx_s",
    "drptx_pct",
    "drprx_pct",
    "top_drop",
];

/// Writes one CSV row per port for the interval ending at `wall`: time in RFC 3339
/// UTC, rates with 3 decimals, percentages with 2.
pub fn write_csv_rows<W: Write>(
    out: &mut csv::Writer<W>,
    wall: SystemTime,
    rows: &[PortRow],
) -> csv::Result<()> {
    let time = time_text(wall);
    for r in rows {
        out.write_record([
            time.clone(),
            r.port_id.to_string(),
            r.used_by.clone(),
            r.team_pnic.clone(),
            r.dname.clone(),
            format!("{:.3}", r.pkt_tx_s),
            format!("{:.3}", r.mb_tx_s),
            format!("{:.3}", r.pkt_rx_s),
            format!("{:.3}", r.mb_rx_s),
            format!("{:.2}", r.drp_tx_pct),
            format!("{:.2}", r.drp_rx_pct),
            r.top_drop.clone(),
        ])?;
    }
    Ok(())
}

/// Runs `portcullis top` against the daemon at `socket`: the live screen, or with
/// `-b` CSV on stdout.
pub fn run(socket: &Path, args: &TopArgs) -> anyhow::Result<ExitCode> {
    if !args.delay.is_finite() || !(MIN_DELAY..=MAX_DELAY).contains(&args.delay) {
        anyhow::bail!(
            "-d {}: the refresh interval must be between {MIN_DELAY} and {MAX_DELAY} seconds",
            args.delay
        );
    }
    if args.batch {
        return run_batch(socket, args);
    }
    if args.iterations != 0 {
        anyhow::bail!("-n applies to batch mode only: add -b (e.g. portcullis top -b -n 10)");
    }
    if !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "portcullis top draws a screen and stdout is not a terminal; \
             for CSV use batch mode: portcullis top -b -n 10 > ports.csv"
        );
    }
    run_screen(socket, args)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the API client's runtime")
}

/// Polls `/v1/status` (the switch's name) and `/v1/ports` (the counters) once.
async fn fetch_sample(socket: &Path, origin: Instant) -> anyhow::Result<Sample> {
    let get = |path: &'static str| async move {
        tokio::time::timeout(
            FETCH_TIMEOUT,
            call(socket, portcullis_api::Method::GET, path, None),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the daemon at {} did not answer {path} within {} s",
                socket.display(),
                FETCH_TIMEOUT.as_secs()
            )
        })?
        // The client's messages already name their cause: no chain to repeat it.
        .map_err(|e| anyhow::anyhow!("{e}"))
    };
    let status = get("/v1/status").await?;
    let switch = status
        .get("switch")
        .and_then(|s| s.as_str())
        .context("the daemon's /v1/status has no switch name")?
        .to_string();
    let before = origin.elapsed().as_secs_f64();
    let ports = get("/v1/ports").await?;
    let after = origin.elapsed().as_secs_f64();
    let ports: Vec<PortView> =
        serde_json::from_value(ports).context("the daemon's /v1/ports is not a port list")?;
    Ok(Sample {
        at: (before + after) / 2.0,
        wall: SystemTime::now(),
        switch,
        ports,
    })
}

fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

/// `-b`: CSV to stdout. The first sample only primes the rates (and a daemon that
/// cannot be reached then is an error, before any output); then one row per port per
/// interval, for `-n` intervals (0: until interrupted). A later failed poll is
/// reported on stderr and the next good sample primes again. A closed stdout
/// (`| head`) ends the run successfully.
fn run_batch(socket: &Path, args: &TopArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let origin = Instant::now();
    let delay = Duration::from_secs_f64(args.delay);
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    let done = |r: csv::Result<()>| -> anyhow::Result<bool> {
        match r {
            Ok(()) => Ok(false),
            Err(e) => match e.kind() {
                csv::ErrorKind::Io(io) if is_broken_pipe(io) => Ok(true),
                _ => Err(anyhow::Error::from(e).context("cannot write the CSV")),
            },
        }
    };
    let flush = |out: &mut csv::Writer<_>| -> anyhow::Result<bool> {
        match out.flush() {
            Ok(()) => Ok(false),
            Err(e) if is_broken_pipe(&e) => Ok(true),
            Err(e) => Err(anyhow::Error::from(e).context("cannot write the CSV")),
        }
    };
    // The first sample only primes the rates; a daemon that cannot be reached now is
    // an error, before anything is written.
    let mut prev = Some(rt.block_on(fetch_sample(socket, origin))?);
    if done(out.write_record(CSV_HEADER))? || flush(&mut out)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut written = 0u64;
    let mut next = Instant::now();
    loop {
        next += delay;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
        match rt.block_on(fetch_sample(socket, origin)) {
            Ok(cur) => {
                if let Some(p) = &prev {
                    let mut rows = rates(p, &cur);
                    sort_rows(&mut rows, SortKey::PortId);
                    if done(write_csv_rows(&mut out, cur.wall, &rows))? || flush(&mut out)? {
                        return Ok(ExitCode::SUCCESS);
                    }
                    written += 1;
                    if args.iterations != 0 && written >= args.iterations {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                prev = Some(cur);
            }
            Err(e) => {
                eprintln!("portcullis top: {e:#}; retrying");
                prev = None;
            }
        }
    }
}

/// Raw mode and the alternate screen, left again on drop and (through the panic
/// hook installed by [`TerminalGuard::enter`]) before a panic message is printed.
struct TerminalGuard;

impl std::fmt::Debug for TerminalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TerminalGuard")
    }
}

fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

impl TerminalGuard {
    fn enter() -> anyhow::Result<TerminalGuard> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            hook(info);
        }));
        crossterm::terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        // From here on, dropping the guard restores the terminal.
        let guard = TerminalGuard;
        crossterm::execute!(
            std::io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::cursor::Hide
        )
        .context("cannot switch to the alternate screen")?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Polls the API on its own thread, one request at a time, so a slow or lost daemon
/// never freezes the keyboard.
struct Poller {
    request: mpsc::Sender<()>,
    result: mpsc::Receiver<anyhow::Result<Sample>>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Poller")
    }
}

impl Poller {
    fn spawn(socket: PathBuf, origin: Instant) -> anyhow::Result<Poller> {
        let (request, requests) = mpsc::channel::<()>();
        let (results, result) = mpsc::channel();
        let rt = runtime()?;
        std::thread::Builder::new()
            .name("top-poller".into())
            .spawn(move || {
                // Ends when the screen drops its sender.
                while requests.recv().is_ok() {
                    let sample = rt.block_on(fetch_sample(&socket, origin));
                    if results.send(sample).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the API poller thread")?;
        Ok(Poller { request, result })
    }
}

fn run_screen(socket: &Path, args: &TopArgs) -> anyhow::Result<ExitCode> {
    let origin = Instant::now();
    let poller = Poller::spawn(socket.to_path_buf(), origin)?;
    let guard = TerminalGuard::enter()?;
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(std::io::stdout()))
            .context("cannot draw on the terminal")?;
    let mut state = TopState::new(args.sort, args.delay);
    let mut prev: Option<Sample> = None;
    let mut last_request: Option<Instant> = None;
    let mut in_flight = false;
    let mut dirty = true;
    loop {
        let now = Instant::now();
        let due = last_request.map_or(now, |t| t + Duration::from_secs_f64(state.delay));
        if !in_flight && now >= due {
            poller
                .request
                .send(())
                .context("the API poller thread stopped")?;
            in_flight = true;
            last_request = Some(now);
        }
        match poller.result.try_recv() {
            Ok(Ok(cur)) => {
                state.update(prev.as_ref(), &cur);
                prev = Some(cur);
                in_flight = false;
                dirty = true;
            }
            Ok(Err(e)) => {
                // The next good sample primes again: no rate spans the outage.
                state.error = Some(format!("{e:#}"));
                prev = None;
                in_flight = false;
                dirty = true;
            }
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => {
                anyhow::bail!("the API poller thread stopped")
            }
        }
        if dirty {
            terminal
                .draw(|f| render(f, &state))
                .context("cannot draw on the terminal")?;
            dirty = false;
        }
        let wait = if in_flight {
            Duration::from_millis(50)
        } else {
            due.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(250))
        };
        if event::poll(wait).context("cannot read the keyboard")? {
            match event::read().context("cannot read the keyboard")? {
                Event::Key(k) => match handle_key(&mut state, k) {
                    KeyAction::Quit => break,
                    KeyAction::Redraw => dirty = true,
                    KeyAction::Ignore => {}
                },
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
    drop(terminal);
    drop(guard);
    std::io::stdout().flush().ok();
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_api::IoStats;
    use proptest::prelude::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn port(id: u16, name: &str, role: &str, interface: &str) -> PortView {
        PortView {
            id,
            name: name.into(),
            role: role.into(),
            interface: interface.into(),
            backend: "af_packet".into(),
            xdp_mode: None,
            port_group: None,
            vlan: portcullis_api::VlanView::Access { vid: 10 },
            state: "up".into(),
            err_disabled: None,
            initial_mac: None,
            effective_mac: None,
            mac_change_blocked: false,
            security: BTreeMap::new(),
            uplink: None,
            counters: CountersView::default(),
            io: IoStats::default(),
            runtime: false,
            owner: Default::default(),
        }
    }

    fn counters(rx: (u64, u64), tx: (u64, u64)) -> CountersView {
        CountersView {
            rx_frames: rx.0,
            rx_bytes: rx.1,
            tx_frames: tx.0,
            tx_bytes: tx.1,
            ..CountersView::default()
        }
    }

    fn with_drops(mut c: CountersView, rx: &[(&str, u64)], tx: &[(&str, u64)]) -> CountersView {
        c.rx_drops = rx.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        c.tx_drops = tx.iter().map(|(r, n)| (r.to_string(), *n)).collect();
        c.rx_dropped = rx.iter().map(|(_, n)| n).sum();
        c.tx_dropped = tx.iter().map(|(_, n)| n).sum();
        c
    }

    fn sample(at: f64, ports: Vec<PortView>) -> Sample {
        Sample {
            at,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + at as u64),
            switch: "sw0".into(),
            ports,
        }
    }

    fn guest(id: u16, name: &str, c: CountersView) -> PortView {
        let mut p = port(id, name, "guest", &format!("tap-{name}"));
        p.uplink = Some("uplink0".into());
        p.counters = c;
        p
    }

    fn uplink(id: u16, name: &str, c: CountersView) -> PortView {
        let mut p = port(id, name, "uplink", "eth0");
        p.vlan = portcullis_api::VlanView::trunk([10], Some(1));
        p.counters = c;
        p
    }

    fn row<'a>(rows: &'a [PortRow], name: &str) -> &'a PortRow {
        rows.iter()
            .find(|r| r.used_by == name || r.used_by.starts_with(&format!("{name}:")))
            .expect("row present")
    }

    #[test]
    fn guest_tx_is_switch_ingress_and_uplink_tx_is_switch_egress() {
        let prev = sample(
            10.0,
            vec![
                guest(0, "web1", counters((1_000, 100_000), (500, 50_000))),
                uplink(1, "uplink0", counters((300, 30_000), (900, 90_000))),
            ],
        );
        let cur = sample(
            12.0,
            vec![
                guest(0, "web1", counters((3_000, 1_100_000), (900, 90_000))),
                uplink(1, "uplink0", counters((700, 70_000), (2_900, 1_090_000))),
            ],
        );
        let rows = rates(&prev, &cur);
        let g = row(&rows, "web1");
        assert_eq!(g.used_by, "web1:tap-web1");
        assert_eq!(g.team_pnic, "uplink0");
        assert_eq!(g.dname, "sw0");
        assert_eq!(g.pkt_tx_s, 1_000.0); // 2000 frames received from the guest / 2 s
        assert_eq!(g.mb_tx_s, 4.0); // 1_000_000 bytes × 8 / 2 s / 1e6
        assert_eq!(g.pkt_rx_s, 200.0); // 400 frames sent to the guest / 2 s
        assert_eq!(g.mb_rx_s, 0.16);
        let u = row(&rows, "uplink0");
        assert_eq!(u.used_by, "uplink0");
        assert_eq!(u.team_pnic, "-");
        assert_eq!(u.pkt_tx_s, 1_000.0); // sent onto the wire
        assert_eq!(u.mb_tx_s, 4.0);
        assert_eq!(u.pkt_rx_s, 200.0); // received from the wire
        assert_eq!(u.switch_ingress(), (200.0, 0.16));
        assert_eq!(g.switch_ingress(), (1_000.0, 4.0));
    }

    #[test]
    fn drop_percentages_per_direction() {
        // Guest: 100 frames received by the switch, 25 of them dropped on ingress;
        // 30 forwarded to it, 10 more dropped on egress.
        let prev = sample(0.0, vec![guest(0, "web1", CountersView::default())]);
        let cur = sample(
            1.0,
            vec![guest(
                0,
                "web1",
                with_drops(
                    counters((100, 6_400), (30, 1_920)),
                    &[("ingress_filter", 20), ("mac_acl_deny", 5)],
                    &[("mac_acl_deny", 10)],
                ),
            )],
        );
        let r = &rates(&prev, &cur)[0];
        assert_eq!(r.drp_tx_pct, 25.0); // 25 / 100 (rx_frames counts the drops)
        assert_eq!(r.drp_rx_pct, 25.0); // 10 / (30 + 10)
        // mac_acl_deny grew by 15 over both directions, ingress_filter by 20.
        assert_eq!(r.top_drop, "ingress_filter");
        // Uplink: the same counters, the other way round.
        let prev = sample(0.0, vec![uplink(0, "up", CountersView::default())]);
        let c = with_drops(counters((100, 0), (30, 0)), &[("x", 50)], &[("y", 10)]);
        let cur = sample(1.0, vec![uplink(0, "up", c)]);
        let r = &rates(&prev, &cur)[0];
        assert_eq!(r.drp_tx_pct, 25.0);
        assert_eq!(r.drp_rx_pct, 50.0);
    }

    #[test]
    fn receive_ring_losses_count_as_the_devices_drops() {
        // A guest sent 40 frames: the switch received 30 (none dropped by it), the
        // port's receive ring lost 10 — 25 % of what the guest transmitted.
        let prev = sample(0.0, vec![guest(0, "web1", CountersView::default())]);
        let mut g = guest(0, "web1", counters((30, 1_920), (0, 0)));
        g.io.rx_kernel_drops = 10;
        let cur = sample(1.0, vec![g.clone()]);
        let r = &rates(&prev, &cur)[0];
        assert_eq!((r.pkt_tx_s, r.drp_tx_pct, r.drp_rx_pct), (40.0, 25.0, 0.0));
        assert_eq!(r.top_drop, "ring_full");
        // Next interval: nothing new lost, 10 more frames; then the port is reopened
        // (its io counters restart lower): what it reports counts from zero.
        let mut g2 = guest(0, "web1", counters((40, 2_560), (0, 0)));
        g2.io.rx_kernel_drops = 10;
        let r = &rates(&cur, &sample(2.0, vec![g2.clone()]))[0];
        assert_eq!(
            (r.pkt_tx_s, r.drp_tx_pct, r.top_drop.as_str()),
            (10.0, 0.0, "-")
        );
        let mut g3 = guest(0, "web1", counters((50, 3_200), (0, 0)));
        g3.io.rx_truncated = 2;
        let r = &rates(&sample(2.0, vec![g2]), &sample(3.0, vec![g3]))[0];
        assert_eq!((r.pkt_tx_s, r.top_drop.as_str()), (12.0, "truncated"));
        // An uplink's losses are the wire side's: %DRPRX.
        let prev = sample(0.0, vec![uplink(0, "up", CountersView::default())]);
        let mut u = uplink(0, "up", counters((90, 0), (0, 0)));
        u.io.rx_kernel_drops = 10;
        let r = &rates(&prev, &sample(1.0, vec![u]))[0];
        assert_eq!((r.pkt_rx_s, r.drp_rx_pct, r.drp_tx_pct), (100.0, 10.0, 0.0));
    }

    #[test]
    fn no_frames_means_zero_percent_and_no_top_drop() {
        let c = with_drops(counters((5, 320), (5, 320)), &[("storm_control", 3)], &[]);
        let prev = sample(0.0, vec![guest(0, "a", c.clone())]);
        let cur = sample(2.0, vec![guest(0, "a", c)]);
        let r = &rates(&prev, &cur)[0];
        assert_eq!(
            (r.pkt_tx_s, r.pkt_rx_s, r.mb_tx_s, r.mb_rx_s),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!((r.drp_tx_pct, r.drp_rx_pct), (0.0, 0.0));
        // storm_control is non-zero but did not grow in the interval.
        assert_eq!(r.top_drop, "-");
    }

    #[test]
    fn top_drop_tie_goes_to_the_first_reason_by_name() {
        let prev = sample(0.0, vec![guest(0, "a", CountersView::default())]);
        let cur = sample(
            1.0,
            vec![guest(
                0,
                "a",
                with_drops(
                    counters((10, 640), (0, 0)),
                    &[("zeta", 4), ("alpha", 4)],
                    &[],
                ),
            )],
        );
        assert_eq!(rates(&prev, &cur)[0].top_drop, "alpha");
    }

    #[test]
    fn cleared_counters_restart_from_zero() {
        let prev = sample(
            0.0,
            vec![guest(
                0,
                "web1",
                with_drops(
                    counters((1_000_000, 64_000_000), (900, 57_600)),
                    &[("a", 7)],
                    &[],
                ),
            )],
        );
        // Cleared, then 40 frames in and 20 out during the 2 s interval.
        let cur = sample(
            2.0,
            vec![guest(0, "web1", counters((40, 2_560), (20, 1_280)))],
        );
        let r = &rates(&prev, &cur)[0];
        assert_eq!(r.pkt_tx_s, 20.0);
        assert_eq!(r.pkt_rx_s, 10.0);
        assert_eq!(r.drp_tx_pct, 0.0);
        assert_eq!(r.top_drop, "-");
    }

    #[test]
    fn a_reason_count_going_down_is_a_restart() {
        // Totals went up but a reason went down: the counters were cleared and refilled.
        let prev = sample(
            0.0,
            vec![guest(
                0,
                "a",
                with_drops(counters((100, 0), (0, 0)), &[("a", 50)], &[]),
            )],
        );
        let cur = sample(
            1.0,
            vec![guest(
                0,
                "a",
                with_drops(counters((200, 0), (0, 0)), &[("a", 10), ("b", 60)], &[]),
            )],
        );
        let r = &rates(&prev, &cur)[0];
        assert_eq!(r.pkt_tx_s, 200.0);
        assert_eq!(r.drp_tx_pct, 35.0);
        assert_eq!(r.top_drop, "b");
    }

    #[test]
    fn ports_are_matched_by_name_not_id() {
        // An apply removed port "old" and renumbered the others; "new" was added.
        let prev = sample(
            0.0,
            vec![
                guest(0, "old", counters((9_999, 0), (9_999, 0))),
                guest(1, "web1", counters((100, 6_400), (100, 6_400))),
            ],
        );
        let cur = sample(
            1.0,
            vec![
                guest(0, "web1", counters((150, 9_600), (110, 7_040))),
                guest(1, "new", counters((7, 448), (3, 192))),
            ],
        );
        let rows = rates(&prev, &cur);
        assert_eq!(rows.len(), 2);
        let web = row(&rows, "web1");
        assert_eq!((web.port_id, web.pkt_tx_s, web.pkt_rx_s), (0, 50.0, 10.0));
        let new = row(&rows, "new");
        assert_eq!((new.port_id, new.pkt_tx_s, new.pkt_rx_s), (1, 7.0, 3.0));
        assert!(rows.iter().all(|r| !r.used_by.starts_with("old")));
    }

    #[test]
    fn non_positive_interval_gives_zero_rates() {
        let prev = sample(5.0, vec![guest(0, "a", counters((0, 0), (0, 0)))]);
        let cur = sample(5.0, vec![guest(0, "a", counters((10, 640), (0, 0)))]);
        let r = &rates(&prev, &cur)[0];
        assert_eq!((r.pkt_tx_s, r.mb_tx_s), (0.0, 0.0));
        let back = sample(4.0, cur.ports.clone());
        let r = &rates(&prev, &back)[0];
        assert_eq!(r.pkt_tx_s, 0.0);
    }

    fn fixed_rows() -> Vec<PortRow> {
        let mk = |id: u16, name: &str, kind: PortKind, v: [f64; 6], drop: &str| PortRow {
            port_id: id,
            used_by: name.into(),
            team_pnic: if kind == PortKind::Guest {
                "uplink0".into()
            } else {
                "-".into()
            },
            dname: "sw0".into(),
            kind,
            pkt_tx_s: v[0],
            mb_tx_s: v[1],
            pkt_rx_s: v[2],
            mb_rx_s: v[3],
            drp_tx_pct: v[4],
            drp_rx_pct: v[5],
            top_drop: drop.into(),
        };
        vec![
            mk(
                0,
                "uplink0",
                PortKind::Uplink,
                [1500.0, 12.0, 3000.0, 24.5, 0.0, 1.0 / 3.0 * 10.0],
                "storm_control",
            ),
            mk(
                1,
                "web1:tap-web1",
                PortKind::Guest,
                [2000.0, 16.0, 1200.0, 9.6, 12.5, 0.0],
                "ingress_filter",
            ),
            mk(
                2,
                "db1:tap-db1",
                PortKind::Guest,
                [1000.0, 8.0, 1200.0, 9.6, 0.0, 100.0],
                "-",
            ),
        ]
    }

    #[test]
    fn sort_orders() {
        let ids = |key| {
            let mut r = fixed_rows();
            sort_rows(&mut r, key);
            r.iter().map(|r| r.port_id).collect::<Vec<_>>()
        };
        assert_eq!(ids(SortKey::PortId), [0, 1, 2]);
        assert_eq!(ids(SortKey::PktTx), [1, 0, 2]);
        assert_eq!(ids(SortKey::MbTx), [1, 0, 2]);
        assert_eq!(ids(SortKey::PktRx), [0, 1, 2]); // 1 and 2 tie: by port id
        assert_eq!(ids(SortKey::MbRx), [0, 1, 2]);
        assert_eq!(ids(SortKey::DrpTx), [1, 0, 2]);
        assert_eq!(ids(SortKey::DrpRx), [2, 0, 1]);
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn keys() {
        let mut st = TopState::new(SortKey::PktRx, 2.0);
        st.rows = fixed_rows();
        assert_eq!(
            handle_key(&mut st, key(KeyCode::Char('s'))),
            KeyAction::Redraw
        );
        assert_eq!(st.sort, SortKey::MbRx);
        for _ in 0..3 {
            handle_key(&mut st, key(KeyCode::Char('s')));
        }
        assert_eq!(st.sort, SortKey::PortId); // wrapped around
        assert_eq!(
            handle_key(&mut st, key(KeyCode::Char('7'))),
            KeyAction::Redraw
        );
        assert_eq!(st.sort, SortKey::DrpRx);
        assert_eq!(
            st.rows.iter().map(|r| r.port_id).collect::<Vec<_>>(),
            [2, 0, 1]
        );
        handle_key(&mut st, key(KeyCode::Char('2')));
        assert_eq!(st.sort, SortKey::PktTx);
        assert_eq!(
            handle_key(&mut st, key(KeyCode::Char('8'))),
            KeyAction::Ignore
        );
        assert_eq!(st.sort, SortKey::PktTx);

        handle_key(&mut st, key(KeyCode::Char('+')));
        assert_eq!(st.delay, 2.5);
        for _ in 0..10 {
            handle_key(&mut st, key(KeyCode::Char('-')));
        }
        assert_eq!(st.delay, MIN_DELAY);

        assert_eq!(
            handle_key(&mut st, key(KeyCode::Char('q'))),
            KeyAction::Quit
        );
        assert_eq!(handle_key(&mut st, key(KeyCode::Esc)), KeyAction::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(handle_key(&mut st, ctrl_c), KeyAction::Quit);
        assert_eq!(
            handle_key(&mut st, key(KeyCode::Char('c'))),
            KeyAction::Ignore
        );
        let mut release = key(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(handle_key(&mut st, release), KeyAction::Ignore);
    }

    fn screen(state: &TopState, width: u16, height: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
        t.draw(|f| render(f, state)).expect("draw");
        let buf = t.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buf.cell((x, y)).map_or(" ", |c| c.symbol()))
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn render_exact_screen() {
        let mut st = TopState::new(SortKey::PktTx, 2.0);
        st.switch = "sw0".into();
        st.wall = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        st.ports = 4;
        st.err_disabled = 1;
        st.rows = fixed_rows();
        sort_rows(&mut st.rows, st.sort);
        let lines = screen(&st, 120, 8);
        let expected = [
            "sw0  2023-11-14T22:13:20Z  ports 4  err-disabled 1  switched 0.006 Mpps 48.50 Mbps",
            "sort PKTTX/s descending  every 2.0 s",
            "PORT-ID USED-BY       TEAM-PNIC DNAME     PKTTX/s    MbTX/s     PKTRX/s    MbRX/s  %DRPTX  %DRPRX TOP-DROP",
            "      1 web1:tap-web1 uplink0   sw0       2000.00     16.00     1200.00      9.60   12.50    0.00 ingress_filter",
            "      0 uplink0       -         sw0       1500.00     12.00     3000.00     24.50    0.00    3.33 storm_control",
            "      2 db1:tap-db1   uplink0   sw0       1000.00      8.00     1200.00      9.60    0.00  100.00 -",
            "",
            "q quit  s next sort  1-7 sort by column  + slower  - faster",
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn render_shows_the_error_and_keeps_the_rows() {
        let mut st = TopState::new(SortKey::PortId, 1.5);
        st.switch = "sw0".into();
        st.rows = fixed_rows();
        st.error = Some("cannot reach the daemon".into());
        let lines = screen(&st, 120, 6);
        assert_eq!(
            lines[1],
            "error: cannot reach the daemon (retrying every 1.5 s)"
        );
        assert!(lines[3].starts_with("      0 uplink0"), "{}", lines[3]);
    }

    #[test]
    fn first_sample_only_primes() {
        let mut st = TopState::new(SortKey::PktRx, 2.0);
        let mut p = guest(0, "a", counters((10, 640), (0, 0)));
        p.err_disabled = Some("port_security".into());
        let first = sample(0.0, vec![p.clone(), guest(1, "b", CountersView::default())]);
        st.update(None, &first);
        assert!(st.rows.is_empty());
        assert_eq!((st.ports, st.err_disabled), (2, 1));
        let lines = screen(&st, 100, 5);
        assert_eq!(
            lines[1],
            "collecting: rates appear after one interval (2.0 s)"
        );
        p.counters = counters((30, 1_920), (0, 0));
        let second = sample(2.0, vec![p, guest(1, "b", counters((0, 0), (4, 256)))]);
        st.update(Some(&first), &second);
        // Sorted by PKTRX/s: b (2/s) before a (0/s).
        assert_eq!(
            st.rows.iter().map(|r| r.port_id).collect::<Vec<_>>(),
            [1, 0]
        );
        assert_eq!(st.totals(), (10.0 / 1e6, 1_280.0 * 8.0 / 2.0 / 1e6));
    }

    #[test]
    fn csv_round_trip() {
        let prev = sample(
            0.0,
            vec![
                guest(0, "web1", counters((0, 0), (0, 0))),
                uplink(1, "uplink0", counters((0, 0), (0, 0))),
            ],
        );
        let cur = sample(
            4.0,
            vec![
                guest(
                    0,
                    "web1",
                    with_drops(
                        counters((400, 500_000), (100, 6_400)),
                        &[("mac_acl_deny", 40)],
                        &[],
                    ),
                ),
                uplink(1, "uplink0", counters((100, 6_400), (360, 450_000))),
            ],
        );
        let rows = rates(&prev, &cur);
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(CSV_HEADER).expect("header");
        write_csv_rows(&mut w, cur.wall, &rows).expect("rows");
        let bytes = w.into_inner().expect("flush");
        let mut r = csv::Reader::from_reader(bytes.as_slice());
        assert_eq!(
            r.headers().expect("headers").iter().collect::<Vec<_>>(),
            CSV_HEADER
        );
        let recs: Vec<csv::StringRecord> = r.records().collect::<Result<_, _>>().expect("records");
        assert_eq!(recs.len(), 2);
        let web: Vec<&str> = recs[0].iter().collect();
        assert_eq!(
            web,
            [
                "2023-11-14T22:13:24Z",
                "0",
                "web1:tap-web1",
                "uplink0",
                "sw0",
                "100.000",
                "1.000",
                "25.000",
                "0.013",
                "10.00",
                "0.00",
                "mac_acl_deny",
            ]
        );
        let up = &recs[1];
        assert_eq!(&up[2], "uplink0");
        assert_eq!(&up[3], "-");
        let num = |i: usize| up[i].parse::<f64>().expect("number");
        assert_eq!(num(5), 90.0); // PKTTX/s: sent to the wire
        assert_eq!(num(6), 0.9);
        assert_eq!(num(7), 25.0);
        assert_eq!(&up[11], "-");
    }

    #[test]
    fn csv_quotes_awkward_names() {
        let mut rows = fixed_rows();
        rows.truncate(1);
        rows[0].used_by = "a,\"b\"".into();
        let mut w = csv::Writer::from_writer(Vec::new());
        write_csv_rows(&mut w, SystemTime::UNIX_EPOCH, &rows).expect("rows");
        let bytes = w.into_inner().expect("flush");
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes.as_slice());
        let rec = r.records().next().expect("one row").expect("parses");
        assert_eq!(rec.len(), CSV_HEADER.len());
        assert_eq!(&rec[2], "a,\"b\"");
    }

    #[test]
    fn bad_delay_is_refused_before_any_io() {
        for delay in [0.0, -1.0, f64::NAN, f64::INFINITY, 0.1, 7200.0] {
            let args = TopArgs {
                delay,
                batch: true,
                iterations: 1,
                sort: SortKey::PktRx,
            };
            let e = run(Path::new("/nonexistent/portcullis.sock"), &args).expect_err("refused");
            assert!(e.to_string().contains("refresh interval"), "{e}");
        }
    }

    #[test]
    fn batch_without_daemon_fails_clearly() {
        let args = TopArgs {
            delay: 0.5,
            batch: true,
            iterations: 1,
            sort: SortKey::PktRx,
        };
        let e = run(Path::new("/nonexistent/portcullis.sock"), &args).expect_err("no daemon");
        let text = format!("{e:#}");
        assert!(
            text.contains("no daemon listens at /nonexistent/portcullis.sock")
                && text.matches("os error 2").count() == 1,
            "{text}"
        );
    }

    fn arb_counters() -> impl Strategy<Value = CountersView> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            0u64..1_000,
            0u64..1_000,
        )
            .prop_map(|(rf, rb, tf, tb, rd, td)| {
                with_drops(
                    counters(
                        (u64::from(rf), u64::from(rb)),
                        (u64::from(tf), u64::from(tb)),
                    ),
                    &[("a", rd)],
                    &[("b", td)],
                )
            })
    }

    proptest! {
        #[test]
        fn rates_are_never_negative_or_over_100_percent(
            before in arb_counters(),
            after in arb_counters(),
            uplink_role in any::<bool>(),
            dt in -1.0f64..10.0,
        ) {
            let role = if uplink_role { "uplink" } else { "guest" };
            let mut p = port(0, "p", role, "x");
            p.counters = before;
            let prev = sample(10.0, vec![p.clone()]);
            p.counters = after;
            let cur = sample(10.0 + dt, vec![p]);
            let r = &rates(&prev, &cur)[0];
            for v in [r.pkt_tx_s, r.mb_tx_s, r.pkt_rx_s, r.mb_rx_s] {
                prop_assert!(v.is_finite() && v >= 0.0, "{v}");
            }
            for v in [r.drp_tx_pct, r.drp_rx_pct] {
                prop_assert!((0.0..=100.0).contains(&v), "{v}");
            }
        }
    }
}
