//! The data-plane thread: owns the [`Switch`] and every port's RX/TX queue, and
//! runs the loop poll → receive a batch → `Switch::process_batch` → queue each copy
//! on its output port → flush. Between batches it answers control commands, hands
//! events to the control plane and does housekeeping.
//!
//! Invariants: the switch is touched by this thread only (single writer); the loop
//! never blocks on the control plane (commands are `try_recv`'d, events `try_send`'d
//! into a bounded channel and counted when it is full); it reads the clock once per
//! batch, never per frame.
//!
//! Live capture ([`PortCapture`]): while a capture is armed on a port, the frames
//! that port's ingress verdict drops are copied (their first `snaplen` bytes) into
//! slots preallocated by the control plane; with no capture armed a dropped frame
//! costs one check of a per-port `Option`, and an armed one never allocates.

use crate::held::{ApiBinding, BindingRefusal, Committed};
pub use crate::ports::{LinkState, PortIo, PortLinks};
use portcullis_api::{IoStats, Snapshot};
use portcullis_dataplane::bindings::{BindingHolder, BindingSource, NewBinding};
use portcullis_dataplane::egress::{self, Output, TxCopy};
use portcullis_dataplane::events::BindingRemoval;
use portcullis_dataplane::{
    ControlError, DropReason, Event, IngressFrame, MacAddr, PortId, Switch, Timestamp, Verdict,
};
use portcullis_dataplane::{EventKind, Vid};
use portcullis_io::{RxQueue, TxError, TxOptions, TxQueue, VlanTag};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// How long the loop sleeps in poll(2) when no frame arrives (bounds the latency of
/// timers and of commands sent without a wake-up).
const POLL_TIMEOUT_MS: i32 = 10;

/// The control plane's way to the data-plane thread: the command queue, and an
/// eventfd the thread polls beside its ports, so that a command is answered at once
/// rather than at the next poll timeout (an idle switch sleeps in poll(2)).
#[derive(Clone, Debug)]
pub struct CommandSender {
    tx: mpsc::Sender<Command>,
    wake: Option<Arc<std::os::fd::OwnedFd>>,
}

impl CommandSender {
    /// Commands on `tx`, each followed by a write to the eventfd `wake`.
    pub fn new(tx: mpsc::Sender<Command>, wake: Option<Arc<std::os::fd::OwnedFd>>) -> Self {
        CommandSender { tx, wake }
    }

    /// Queues `cmd` and wakes the data-plane thread.
    pub fn send(&self, cmd: Command) -> Result<(), mpsc::SendError<Command>> {
        self.tx.send(cmd)?;
        if let Some(fd) = &self.wake {
            let one: u64 = 1;
            // SAFETY: writes the 8 bytes of `one`, alive for the call, to an eventfd
            // this sender shares ownership of. A full counter (EAGAIN) already
            // means "wake up".
            let _ = unsafe {
                libc::write(
                    std::os::fd::AsRawFd::as_raw_fd(fd.as_ref()),
                    (&one as *const u64).cast(),
                    8,
                )
            };
        }
        Ok(())
    }
}

impl From<mpsc::Sender<Command>> for CommandSender {
    /// Without a wake-up: the thread sees the command at its next poll timeout.
    fn from(tx: mpsc::Sender<Command>) -> Self {
        CommandSender { tx, wake: None }
    }
}

/// A non-blocking eventfd for [`CommandSender`] and [`DataThread::wake`].
pub fn command_wake() -> std::io::Result<Arc<std::os::fd::OwnedFd>> {
    // SAFETY: eventfd(2) takes no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by eventfd(2): open and owned by nobody else.
    Ok(Arc::new(unsafe {
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }))
}

/// Requests from the control plane, answered between batches.
#[derive(Debug)]
pub enum Command {
    Snapshot(oneshot::Sender<Snapshot>),
    /// The bindings of a port (of every port with `None`; not the configured
    /// static ones), as the store records them: what a removed runtime port leaves
    /// parked, what a cluster host replicates.
    PortBindings {
        port: Option<PortId>,
        reply: oneshot::Sender<Vec<crate::bindings_store::BindingRecord>>,
    },
    /// Parked bindings given to `port`: each installed if the switch's binding rule
    /// accepts it now (the address free, the VLAN carried), and its record written
    /// again with the port's name. Answers how many were installed.
    RestoreBindings {
        port: PortId,
        records: Vec<crate::bindings_store::BindingRecord>,
        reply: oneshot::Sender<usize>,
    },
    /// Make the store say what the switch holds of these (VLAN, IP) keys: parked
    /// bindings whose grace ended leave the store unless a port holds them again.
    ResyncBindings(Vec<(Vid, std::net::IpAddr)>),
    /// How many bindings the switch holds (static ones included).
    BindingCount(oneshot::Sender<usize>),
    /// RARP announcements of a guest that moved here from another host (on its
    /// uplinks, `Switch::announce_guest`); answers how many were queued.
    AnnounceGuest {
        port: PortId,
        reply: oneshot::Sender<usize>,
    },
    ReportEffectiveMac {
        port: PortId,
        mac: MacAddr,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Bring an error-disabled port back; answers whether it was error-disabled.
    Recover {
        port: PortId,
        reply: oneshot::Sender<Result<bool, ControlError>>,
    },
    /// Add a binding (source api); checked against the switch first (nothing is
    /// stored for a binding it refuses), answered once it is committed and
    /// installed, with the holder it replaced (`binding.replace`).
    AddBinding {
        binding: crate::held::ApiBinding,
        reply: crate::held::ApiReply,
    },
    /// The bindings (built on request only: there may be a million).
    Bindings(oneshot::Sender<portcullis_api::BindingsView>),
    /// One frame through the pipeline of a copy of the switch (the live state is not
    /// changed): the trace, as `portcullis trace --json` prints it.
    Trace {
        port: PortId,
        frame: Vec<u8>,
        reply: oneshot::Sender<serde_json::Value>,
    },
    /// The hosts behind each VLAN (of one VLAN with `vlan`), built on request.
    Hosts {
        vlan: Option<u16>,
        reply: oneshot::Sender<portcullis_api::HostsView>,
    },
    /// Remove a binding; answers whether there was one, or the static binding the
    /// API may not remove.
    RemoveBinding {
        vid: Vid,
        ip: std::net::IpAddr,
        reply: oneshot::Sender<Result<bool, BindingHolder>>,
    },
    /// Administratively shut a port down (`false`) or enable it (`true`).
    SetAdminUp {
        port: PortId,
        up: bool,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Replace the overlay's peers from the control plane (the cluster's port
    /// records; the configured peers stay): answers what was installed, `None`
    /// when the switch has no overlay.
    SetOverlayPeers {
        peers: Vec<portcullis_dataplane::OverlayPeer>,
        reply: oneshot::Sender<Option<portcullis_dataplane::overlay::PeersInstalled>>,
    },
    /// The overlay's view (`None`: no overlay), built on request; the remote MACs
    /// listed only with `remote_macs` (the metrics take the counts).
    Overlay {
        remote_macs: bool,
        reply: oneshot::Sender<Option<portcullis_api::OverlayView>>,
    },
    /// Zero every port's counters.
    ClearCounters(oneshot::Sender<()>),
    /// Swap in a new configuration between two batches (hitless apply).
    Apply(Box<ApplyPlan>),
    /// Arm a capture of the frames dropped on `port`'s ingress; answered when it
    /// is done (count seen, time up, or an apply renumbered the ports) with the
    /// capture, or at once if the port already has one.
    Capture {
        port: PortId,
        capture: Box<PortCapture>,
        reply: CaptureReply,
    },
}

/// The most bytes the slots of one capture may take (slots × snaplen); drops
/// beyond the slots a capture could afford are counted as lost.
pub const CAPTURE_MAX_BYTES: usize = 32 << 20;

/// Why a capture was not armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureRefused {
    /// The port already has a capture armed (one per port at a time).
    Busy,
    /// No such port (the ports were renumbered by an apply).
    NoSuchPort,
}

/// How the data-plane thread hands a finished capture back.
pub type CaptureReply = oneshot::Sender<Result<Box<PortCapture>, CaptureRefused>>;

/// One dropped frame a capture copied.
#[derive(Clone, Debug)]
pub struct CapturedFrame {
    /// When its batch was received (the data plane's clock: ns since start).
    pub time: Timestamp,
    pub reason: DropReason,
    /// The frame's length on the wire (with its VLAN tag, if it had one).
    pub orig_len: u32,
    /// Its number among the drops the capture saw: 0, 1, 2 … (lost ones leave gaps).
    pub seq: u64,
    /// Its first `snaplen` bytes, the VLAN tag put back after the MACs.
    pub data: Vec<u8>,
}

/// A capture of the frames dropped on one port's ingress. Built (and its slots
/// allocated) by the control plane; filled by the data-plane thread without
/// allocating.
///
/// Invariant: `filled <= slots.len()`, every slot's buffer has capacity `snaplen`
/// and never holds more; `seen == filled + lost <= count`.
#[derive(Debug)]
pub struct PortCapture {
    count: u64,
    snaplen: usize,
    duration_ns: u64,
    deadline: Timestamp,
    slots: Vec<CapturedFrame>,
    filled: usize,
    seen: u64,
    lost: u64,
    finished_at: Timestamp,
}

impl PortCapture {
    /// A capture of up to `count` drops (at least 1) over at most `duration_ns`,
    /// `snaplen` (at least 1) bytes of each: preallocates `min(count,
    /// CAPTURE_MAX_BYTES / snaplen)` slots.
    pub fn new(count: u64, snaplen: usize, duration_ns: u64) -> PortCapture {
        let count = count.max(1);
        let snaplen = snaplen.max(1);
        let n = count.min((CAPTURE_MAX_BYTES / snaplen).max(1) as u64) as usize;
        let slots = (0..n)
            .map(|_| CapturedFrame {
                time: Timestamp(0),
                reason: DropReason::Truncated,
                orig_len: 0,
                seq: 0,
                data: Vec::with_capacity(snaplen),
            })
            .collect();
        PortCapture {
            count,
            snaplen,
            duration_ns,
            deadline: Timestamp(u64::MAX),
            slots,
            filled: 0,
            seen: 0,
            lost: 0,
            finished_at: Timestamp(0),
        }
    }

    /// The frames captured, in arrival order.
    pub fn frames(&self) -> &[CapturedFrame] {
        &self.slots[..self.filled]
    }

    /// Drops seen but not copied (the slots were full).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The bytes kept of each frame.
    pub fn snaplen(&self) -> usize {
        self.snaplen
    }

    /// When the data-plane thread handed it back (its clock).
    pub fn finished_at(&self) -> Timestamp {
        self.finished_at
    }

    /// Copies one dropped frame, or counts it lost when the slots are full; ignores
    /// it once `count` drops were seen (the capture is handed back after the batch).
    #[inline]
    fn record(&mut self, now: Timestamp, reason: DropReason, frame: &portcullis_io::RxFrame<'_>) {
        if self.seen >= self.count {
            return;
        }
        let seq = self.seen;
        self.seen += 1;
        let Some(slot) = self.slots.get_mut(self.filled) else {
            self.lost += 1;
            return;
        };
        self.filled += 1;
        let data = frame.data;
        let snap = self.snaplen;
        slot.time = now;
        slot.reason = reason;
        slot.seq = seq;
        slot.data.clear();
        match frame.tag {
            Some(t) if data.len() >= 12 => {
                slot.orig_len = (data.len() + 4) as u32;
                let mut tag = [0u8; 4];
                tag[..2].copy_from_slice(&t.tpid.to_be_bytes());
                tag[2..].copy_from_slice(&t.tci.to_be_bytes());
                for part in [&data[..12], &tag[..], &data[12..]] {
                    let room = snap - slot.data.len();
                    slot.data.extend_from_slice(&part[..part.len().min(room)]);
                }
            }
            _ => {
                slot.orig_len = data.len() as u32;
                slot.data.extend_from_slice(&data[..data.len().min(snap)]);
            }
        }
    }

    fn done(&self, now: Timestamp) -> bool {
        self.seen >= self.count || now >= self.deadline
    }
}

/// One port as the data-plane thread holds it: its queues and everything the thread
/// keeps about it beside the switch's own state. An apply renumbers one vector of
/// these (`DataThread::apply`), never parallel lists.
#[derive(Debug)]
pub struct PortSlot {
    pub io: PortIo,
    /// Interface name, for snapshots and logs.
    pub interface: String,
    /// Port group name ("" for none), for snapshots.
    pub group: String,
    /// The runtime's I/O counters of the port.
    pub stats: IoStats,
    /// The capture of dropped frames armed on the port, if any.
    capture: Option<(Box<PortCapture>, CaptureReply)>,
    /// Frames were queued since the last flush.
    dirty: bool,
    /// The interface is gone (or does not exist yet: state `no-interface`): the
    /// port is not polled until `recheck_links` (re)attaches it.
    pub(crate) gone: bool,
}

impl PortSlot {
    pub fn new(io: PortIo, interface: String, group: String) -> PortSlot {
        PortSlot {
            io,
            interface,
            group,
            stats: IoStats::default(),
            capture: None,
            dirty: false,
            gone: false,
        }
    }

    /// Hands the frames queued since the last flush to the kernel.
    fn flush(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        // A backend that sends at flush time (the overlay's tunnel socket) counts
        // what the kernel refused there: carried into the port's counters.
        let before = self.io.tx.tx_stats();
        if self.io.tx.flush().is_err() {
            self.stats.tx_errors += 1;
            return;
        }
        let after = self.io.tx.tx_stats();
        self.stats.tx_too_big += after.too_big.saturating_sub(before.too_big);
        self.stats.tx_errors += after.send_errors.saturating_sub(before.send_errors);
    }

    /// Arms `capture` on the port, or refuses it if one is armed already.
    fn arm(&mut self, mut capture: Box<PortCapture>, reply: CaptureReply, now: Timestamp) -> bool {
        if self.capture.is_some() {
            let _ = reply.send(Err(CaptureRefused::Busy));
            return false;
        }
        capture.deadline = Timestamp(now.0.saturating_add(capture.duration_ns));
        self.capture = Some((capture, reply));
        true
    }

    /// Hands back the port's capture if it is done (or `all`), or dropped if its
    /// caller went away; returns whether it did.
    fn finish_capture(&mut self, now: Timestamp, all: bool) -> bool {
        let due = self
            .capture
            .as_ref()
            .is_some_and(|(c, reply)| all || c.done(now) || reply.is_closed());
        match self.capture.take_if(|_| due) {
            Some((mut c, reply)) => {
                c.finished_at = now;
                let _ = reply.send(Ok(c));
                true
            }
            None => false,
        }
    }
}

/// The slots of ports given as lists in port order (as start and tests build them).
pub fn port_slots(io: Vec<PortIo>, interfaces: Vec<String>, groups: Vec<String>) -> Vec<PortSlot> {
    let mut groups = groups.into_iter();
    io.into_iter()
        .zip(interfaces)
        .map(|(io, interface)| PortSlot::new(io, interface, groups.next().unwrap_or_default()))
        .collect()
}

/// What the data-plane thread tells the control plane, in order.
#[derive(Debug)]
pub enum ToControl {
    Event(Event),
    /// An apply renumbered the ports: events after this one use these names.
    PortNames(Arc<Vec<String>>),
}

/// A new configuration, prepared off the data-plane thread: the switch built from
/// the new spec, and the I/O of the ports it adds. The data-plane thread moves the
/// running state into it ([`Switch::carry_over_from`]), keeps the sockets of the
/// ports that stay (they are never closed, so their traffic is not interrupted),
/// and swaps — all between two batches.
pub struct ApplyPlan {
    pub switch: Switch,
    pub interfaces: Vec<String>,
    pub groups: Vec<String>,
    /// The opened I/O of ports that are new, by their index in the new switch.
    pub new_io: Vec<(usize, PortIo)>,
    pub links: Box<dyn PortLinks>,
    pub link_monitor: Option<(portcullis_io::LinkMonitor, Vec<(u32, PortId)>)>,
    pub reply: oneshot::Sender<portcullis_dataplane::CarryOver>,
}

impl std::fmt::Debug for ApplyPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyPlan")
            .field("ports", &self.interfaces)
            .field("new_io", &self.new_io.len())
            .finish()
    }
}

/// How often ports that are down or gone are probed again.
const LINK_RECHECK_NS: u64 = 1_000_000_000;

/// Queues one copy of a frame on its output port's slot with its egress tag; `opts`
/// are the offloads the bytes still need (a GSO super-frame goes whole to a port
/// that takes it, else the port's backend cuts it into segments). Returns whether
/// it was queued. The one push of the data-plane thread: forwarded frames, released
/// held ACKs and the frames the switch originates all go through it.
#[inline]
fn push_copy(slot: &mut PortSlot, copy: TxCopy, frame: egress::Frame<'_>, opts: TxOptions) -> bool {
    let tx = slot.io.tx.as_mut();
    let tag = copy.tci.map(|tci| VlanTag { tpid: 0x8100, tci });
    // A copy to the overlay: the data plane's VXLAN header, to its endpoint.
    let opts = TxOptions {
        tunnel: copy.tunnel.map(|t| portcullis_io::Tunnel {
            remote: t.remote,
            header: portcullis_dataplane::wire::vxlan::header(t.vni),
        }),
        ..opts
    };
    let gso = opts.offload.is_some_and(|v| v.is_gso());
    let segments_before = if gso { tx.tx_stats().gso_segments } else { 0 };
    let result = tx.push_with(frame.head, tag, frame.body, opts);
    if gso {
        let cut = tx.tx_stats().gso_segments.saturating_sub(segments_before);
        slot.stats.tx_gso_segments += cut;
        if cut > 0 {
            slot.dirty = true; // some segments may be queued even if a later one failed
        }
    }
    match result {
        Ok(()) => {
            slot.dirty = true;
            return true;
        }
        Err(TxError::RingFull) => slot.stats.tx_ring_full += 1,
        Err(TxError::TooBig) => slot.stats.tx_too_big += 1,
        Err(TxError::BadOffload(_)) => slot.stats.tx_bad_offload += 1,
        Err(TxError::NoTunnel) => slot.stats.tx_errors += 1,
    }
    false
}

/// Queues every copy of a forwarded frame (`out`, from [`Switch::output`]) on the
/// ports around its ingress port `i` (`before`: ports `0..i`, `after`: ports
/// `i+1..`). `csum_partial` and `vnet` are the offloads the frame arrived with; they
/// go with the received bytes, not with a rewrite (whose checksums are complete).
#[allow(clippy::too_many_arguments)]
#[inline]
fn send_output(
    out: &Output<'_>,
    csum_partial: bool,
    vnet: Option<portcullis_io::VnetHdr>,
    i: usize,
    before: &mut [PortSlot],
    after: &mut [PortSlot],
    stats: &mut RuntimeCounters,
) {
    if out.rewrite_failed {
        stats.rewrite_failed += 1;
    }
    let opts = if out.rewritten {
        TxOptions::default()
    } else {
        TxOptions {
            complete_checksum: csum_partial,
            offload: vnet,
            tunnel: None,
        }
    };
    for copy in out.copies() {
        let o = copy.port.index();
        let slot = if o < i {
            before.get_mut(o)
        } else {
            after.get_mut(o - i - 1)
        };
        if let Some(slot) = slot {
            push_copy(slot, copy, out.frame, opts);
        }
    }
}

/// The ports before port `i` and after it (both empty sides for an `i` past the end).
fn around(ports: &mut [PortSlot], i: usize) -> (&mut [PortSlot], &mut [PortSlot]) {
    let (before, rest) = ports.split_at_mut(i.min(ports.len()));
    (before, rest.get_mut(1..).unwrap_or_default())
}

/// The switch's monotonic clock: [`Timestamp`]s are nanoseconds since `origin`, the
/// moment the daemon started. The data-plane thread reads it once per loop and
/// passes the time into the switch; the API reads it for what it hands the switch
/// (an apply's carry-over).
#[derive(Clone, Copy, Debug)]
pub struct SwitchClock {
    origin: std::time::Instant,
}

impl SwitchClock {
    /// A clock whose time 0 is now.
    pub fn start() -> SwitchClock {
        SwitchClock {
            origin: std::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        Timestamp(self.origin.elapsed().as_nanos() as u64)
    }
}

/// Everything the data-plane thread owns.
pub struct DataThread {
    pub switch: Switch,
    /// One slot per port of the switch, in port order (see [`PortSlot`]).
    pub ports: Vec<PortSlot>,
    pub commands: mpsc::Receiver<Command>,
    pub events: tokio::sync::mpsc::Sender<ToControl>,
    pub stop: Arc<AtomicBool>,
    pub clock: SwitchClock,
    pub links: Box<dyn PortLinks>,
    /// Held DHCPACKs and the binding store's commits.
    pub held: crate::held::Held,
    /// Carrier notifications for the uplinks (teaming failover), with each uplink's
    /// interface index. `None`: no monitor (links are then only seen failing by their
    /// sockets' errors).
    pub link_monitor: Option<(portcullis_io::LinkMonitor, Vec<(u32, PortId)>)>,
    /// Reused between loop iterations (no allocation once grown).
    pub event_buf: Vec<Event>,
    /// An unwatched interface appeared: probe the waiting ports now rather than at
    /// the next periodic recheck.
    pub attach_now: bool,
    /// Written by [`CommandSender`] with every command: polled, so that commands
    /// wake the thread (`None`: commands wait for the poll timeout).
    pub wake: Option<Arc<std::os::fd::OwnedFd>>,
}

impl std::fmt::Debug for DataThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataThread")
            .field("ports", &self.ports.len())
            .finish()
    }
}

/// Counters the runtime keeps beside the switch's own (the per-port I/O counters
/// are in the port slots, `PortSlot::stats`).
#[derive(Debug, Default, Clone)]
pub struct RuntimeCounters {
    /// Held ACKs dropped because their binding could not be committed or installed.
    pub held_dropped: u64,
    /// Option-82 rewrites that could not be made (the frame went unchanged).
    pub rewrite_failed: u64,
    /// RARP announcements sent for guests moved to another uplink.
    pub announcements: u64,
    pub events_lost: u64,
    pub batches: u64,
}

impl DataThread {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Flushes every port frames were queued on since its last flush.
    fn flush(&mut self) {
        for slot in &mut self.ports {
            slot.flush();
        }
    }

    /// Runs until `stop` is set.
    pub fn run(mut self) {
        let mut stats = RuntimeCounters::default();
        let mut verdicts: Vec<Verdict> = Vec::with_capacity(1024);
        // Ports with a capture armed (none: a finished-capture check costs nothing).
        let mut armed = 0usize;
        // One pollfd per port (fd -1, which poll ignores, for a port without one).
        let mut pollfds = self.pollfds();
        let mut last_recheck = self.now();
        while !self.stop.load(Ordering::Relaxed) {
            // SAFETY: `pollfds` is a live, correctly sized array of pollfd for the
            // duration of the call; the fds belong to queues this thread owns.
            let _ = unsafe {
                libc::poll(
                    pollfds.as_mut_ptr(),
                    pollfds.len() as libc::nfds_t,
                    POLL_TIMEOUT_MS,
                )
            };
            let now = self.now();
            let n = self.ports.len();
            // After the ports: the command wake-up (if any), then the link monitor.
            let monitor_at = n + usize::from(self.wake.is_some());
            if let Some(w) = &self.wake
                && pollfds.get(n).is_some_and(|p| p.revents != 0)
            {
                let mut count = [0u8; 8];
                // SAFETY: reads at most 8 bytes into `count`, alive for the call, from
                // the eventfd this thread shares; it resets the counter.
                let _ = unsafe {
                    libc::read(
                        std::os::fd::AsRawFd::as_raw_fd(w.as_ref()),
                        count.as_mut_ptr().cast(),
                        8,
                    )
                };
            }
            if pollfds.get(monitor_at).is_some_and(|p| p.revents != 0) {
                self.link_changes(now);
            }
            for (i, pfd) in pollfds.iter_mut().enumerate().take(n) {
                if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                    self.port_error(i, now, pfd);
                }
                if !self.ports[i].gone {
                    self.service_port(i, now, &mut verdicts, &mut stats);
                }
            }
            self.flush();
            if self.attach_now || now.saturating_since(last_recheck) >= LINK_RECHECK_NS {
                self.attach_now = false;
                last_recheck = now;
                self.recheck_links(now, &mut pollfds);
            }
            self.release_committed(now, &mut stats);
            self.flush();
            self.switch.tick(now);
            let mut events = std::mem::take(&mut self.event_buf);
            events.extend(self.switch.drain_events());
            for ev in events.drain(..) {
                if let EventKind::BindingRemoved { vid, ip, .. } = ev.kind
                    && let Some(vid) = Vid::new(vid)
                {
                    self.held.remove(vid, ip);
                }
                // An Nd binding its owner is using: its record is written again
                // with the new lease end (nothing waits for it).
                if let EventKind::BindingRefreshed { vid, ip, .. } = ev.kind
                    && let Some(vid) = Vid::new(vid)
                {
                    let current = self.switch.binding(vid, ip);
                    self.held.resync(vid, ip, current, now);
                }
                if let EventKind::UplinkMoved { port, vid, to, .. } = ev.kind {
                    tracing::info!(port = %self.switch.ports()[port.index()].name, uplink = %self.switch.ports()[to.index()].name, vid, "guest moved to another uplink; announced");
                }
                if self.events.try_send(ToControl::Event(ev)).is_err() {
                    stats.events_lost += 1;
                }
            }
            self.event_buf = events;
            // The frames the switch originated (RARP announcements of moved guests).
            let ports = &mut self.ports;
            self.switch.drain_emitted(|e| {
                if let Some(slot) = ports.get_mut(e.copy.port.index())
                    && push_copy(slot, e.copy, e.frame, TxOptions::default())
                {
                    stats.announcements += 1;
                }
            });
            self.flush();
            let plan = self.answer_commands(now, &stats, &mut armed);
            if armed > 0 {
                self.finish_captures(now, false, &mut armed);
            }
            if let Some(plan) = plan {
                // Captures name ports by number: an apply may renumber them.
                self.finish_captures(now, true, &mut armed);
                self.apply(*plan, now, &mut stats);
                pollfds = self.pollfds();
            }
        }
    }

    /// Hands back the captures that are done (all of them with `all`); drops those
    /// whose caller went away.
    fn finish_captures(&mut self, now: Timestamp, all: bool, armed: &mut usize) {
        for slot in &mut self.ports {
            if slot.finish_capture(now, all) {
                *armed -= 1;
            }
        }
    }

    /// One pollfd per port (fd -1, which poll ignores, for a port without one or
    /// whose interface is gone), then the link monitor's.
    fn pollfds(&self) -> Vec<libc::pollfd> {
        let mut pollfds: Vec<libc::pollfd> = self
            .ports
            .iter()
            .map(|p| libc::pollfd {
                fd: if p.gone {
                    -1
                } else {
                    p.io.rx.fd().unwrap_or(-1)
                },
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if let Some(w) = &self.wake {
            pollfds.push(libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(w.as_ref()),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some((m, _)) = &self.link_monitor {
            pollfds.push(libc::pollfd {
                fd: m.fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        pollfds
    }

    /// Swaps in a new configuration (see [`ApplyPlan`]). Frames already queued for
    /// sending are flushed first; the held ACKs keep waiting, renumbered.
    fn apply(&mut self, plan: ApplyPlan, now: Timestamp, stats: &mut RuntimeCounters) {
        self.flush();
        for ev in self.switch.drain_events() {
            if self.events.try_send(ToControl::Event(ev)).is_err() {
                stats.events_lost += 1;
            }
        }
        let ApplyPlan {
            switch,
            interfaces,
            groups,
            mut new_io,
            links,
            link_monitor,
            reply,
        } = plan;
        let old = std::mem::replace(&mut self.switch, switch);
        let old_n = self.ports.len();
        let report = self.switch.carry_over_from(old, now);
        let new_n = report.port_map.len();
        let mut old_slots: Vec<Option<PortSlot>> = std::mem::take(&mut self.ports)
            .into_iter()
            .map(Some)
            .collect();
        let mut new_of_old = vec![None; old_n];
        let mut groups = groups.into_iter();
        for ((i, from), interface) in report.port_map.iter().enumerate().zip(interfaces) {
            let group = groups.next().unwrap_or_default();
            // A port the control plane opened anew (new, or moved to another
            // interface) takes that I/O; a kept one keeps its socket (and its gone
            // state) and, either way, its counters.
            let opened = new_io
                .iter()
                .position(|(k, _)| *k == i)
                .map(|k| new_io.swap_remove(k).1);
            let kept = from.and_then(|o| {
                new_of_old[o.index()] = Some(PortId(i as u16));
                old_slots[o.index()].take()
            });
            let slot = match (opened, kept) {
                (Some(io), kept) => PortSlot {
                    stats: kept.map(|k| k.stats).unwrap_or_default(),
                    ..PortSlot::new(io, interface, group)
                },
                (None, Some(k)) => PortSlot {
                    interface,
                    group,
                    ..k
                },
                (None, None) => {
                    // Not opened by the control plane: the port waits, like one whose
                    // interface is gone, until `recheck_links` opens it.
                    PortSlot {
                        gone: true,
                        ..PortSlot::new(PortIo::placeholder(), interface, group)
                    }
                }
            };
            self.ports.push(slot);
        }
        debug_assert_eq!(self.ports.len(), new_n, "one interface per port");
        // The sockets of removed ports are closed off this thread: closing an
        // AF_PACKET socket waits for a kernel RCU grace period (tens of ms), which
        // would stall every other port's frames here.
        let removed: Vec<PortSlot> = old_slots.into_iter().flatten().collect();
        if !removed.is_empty() {
            let closer = std::thread::Builder::new()
                .name("portcullis-close".into())
                .spawn(move || drop(removed));
            if let Err(e) = closer {
                tracing::debug!(error = %e, "removed ports' sockets closed on the data-plane thread");
            }
        }
        self.links = links;
        self.link_monitor = link_monitor;
        let names: Vec<String> = self.switch.ports().iter().map(|p| p.name.clone()).collect();
        self.held.renumber_ports(&new_of_old, names.clone());
        // Ordered after every event of the old numbering (blocking here is fine:
        // an apply is rare, and the control plane drains this channel continuously).
        let _ = self
            .events
            .blocking_send(ToControl::PortNames(Arc::new(names)));
        tracing::info!(
            ports = new_n,
            added = ?report.ports_added,
            removed = ?report.ports_removed,
            macs_kept = report.macs_kept,
            bindings_kept = report.bindings_kept,
            "configuration applied"
        );
        let _ = reply.send(report);
    }

    /// Applies the carrier changes the kernel reported to the ports they concern:
    /// an uplink without carrier fails over; a guest port without carrier (a TAP
    /// no VM holds, a veth whose peer is down) is link-down, out of the floods.
    fn link_changes(&mut self, now: Timestamp) {
        let Some((monitor, watched)) = self.link_monitor.as_mut() else {
            return;
        };
        let mut changes: Vec<(PortId, bool)> = Vec::new();
        let mut unknown = false;
        monitor.read(|c| {
            if let Some((_, port)) = watched.iter().find(|(ix, _)| *ix == c.ifindex) {
                changes.push((*port, c.up));
                // A watched interface deleted: its port detaches at once.
                unknown |= c.gone;
            } else if !c.gone {
                unknown = true;
            }
        });
        // An interface the switch does not watch appeared or changed — it may be the
        // one a waiting port (`no-interface`) waits for — or a watched one was
        // deleted: the links are checked now rather than at the next recheck.
        if unknown {
            self.attach_now = true;
        }
        for (port, up) in changes {
            if let Some(p) = self.switch.port(port)
                && p.link_up != up
            {
                let interface = &self.ports[port.index()].interface;
                if p.role == portcullis_dataplane::PortRole::Uplink {
                    tracing::warn!(uplink = %interface, up, "uplink carrier changed");
                } else {
                    tracing::info!(port = %p.name, %interface, up, "guest port carrier changed");
                }
            }
            let _ = self.switch.set_link_up(port, up, now);
        }
    }

    /// poll(2) flagged port `i`: take the error, and find out whether its interface
    /// went down or away. A port whose interface is gone is no longer polled (its
    /// socket would report the error forever) until [`Self::recheck_links`] reopens it.
    fn port_error(&mut self, i: usize, now: Timestamp, pfd: &mut libc::pollfd) {
        let err = self.ports[i].io.rx.take_error();
        self.port_failed(i, err, now, pfd);
    }

    /// A port's socket reported `err`: find out whether its interface went down or away.
    fn port_failed(
        &mut self,
        i: usize,
        err: Option<std::io::Error>,
        now: Timestamp,
        pfd: &mut libc::pollfd,
    ) {
        let id = PortId(i as u16);
        // A backend that knows its own link (vhost-user) is asked; else the
        // interface's carrier.
        let state = match self.ports[i].io.rx.link_up() {
            Some(true) => LinkState::Up,
            Some(false) => LinkState::Down,
            None => self.links.state(i),
        };
        let slot = &mut self.ports[i];
        let name = slot.interface.as_str();
        match state {
            LinkState::Gone => {
                let error = err.as_ref().map(tracing::field::display);
                tracing::warn!(
                    interface = name,
                    error,
                    "interface is gone; the port is down until it returns"
                );
                slot.gone = true;
                pfd.fd = -1;
            }
            LinkState::Down | LinkState::Up => {
                let error = err.as_ref().map(tracing::field::display);
                let link = if state == LinkState::Up { "up" } else { "down" };
                tracing::info!(
                    interface = name,
                    error,
                    link,
                    "port interface reported an error"
                );
            }
        }
        let _ = self.switch.set_link_up(id, state == LinkState::Up, now);
    }

    /// Probes the ports that are down or gone; reopens an interface that came back.
    /// The ports that are up are asked for a pending socket error (one getsockopt
    /// each): an AF_XDP socket records ENETDOWN when its interface vanishes without
    /// poll(2) ever flagging it.
    fn recheck_links(&mut self, now: Timestamp, pollfds: &mut [libc::pollfd]) {
        // The interfaces that exist, in one look (a netlink dump), when some ports
        // wait for theirs: a thousand waiting ports must not cost two thousand
        // system calls on this thread every second.
        let present = self
            .ports
            .iter()
            .any(|p| p.gone)
            .then(portcullis_io::interface_indexes)
            .and_then(Result::ok);
        for (i, pfd) in pollfds.iter_mut().enumerate().take(self.ports.len()) {
            let id = PortId(i as u16);
            let down = !self.switch.ports()[i].link_up;
            let gone = self.ports[i].gone;
            // A port without an interface whose backend knows its link (vhost-user:
            // a frontend connected with running rings) follows it.
            if !gone && let Some(up) = self.ports[i].io.rx.link_up() {
                if up == down {
                    tracing::info!(port = %self.switch.ports()[i].name, socket = %self.ports[i].interface, up, "vhost-user frontend link changed");
                    let _ = self.switch.set_link_up(id, up, now);
                }
                continue;
            }
            if gone
                && present
                    .as_ref()
                    .is_some_and(|m| !m.contains_key(&self.ports[i].interface))
            {
                continue;
            }
            if !gone && !down {
                if let Some(err) = self.ports[i].io.rx.take_error() {
                    self.port_failed(i, Some(err), now, pfd);
                }
                continue;
            }
            match self.links.state(i) {
                // Its interface went away (AF_XDP sockets never say so through
                // poll(2)): the port detaches and waits for it (`no-interface`).
                LinkState::Gone if !gone => self.port_failed(i, None, now, pfd),
                LinkState::Gone => {}
                LinkState::Down if !gone => {}
                state if gone => match self.links.reopen(i) {
                    Ok(io) => {
                        pfd.fd = io.rx.fd().unwrap_or(-1);
                        let slot = &mut self.ports[i];
                        slot.io = io;
                        slot.gone = false;
                        tracing::info!(interface = %slot.interface, "interface is back; port attached");
                        // A new interface (a new ifindex): carrier is watched on it,
                        // and a MAC the port had learned is learned again (a
                        // restarted guest may come back with a new random MAC).
                        if let Some((_, watched)) = self.link_monitor.as_mut()
                            && let Ok(ifindex) = portcullis_io::interface_index(&slot.interface)
                        {
                            watched.retain(|(_, p)| *p != id);
                            watched.push((ifindex, id));
                        }
                        if let Ok(Some(mac)) = self.switch.forget_learned_mac(id, now) {
                            tracing::info!(port = %self.switch.ports()[i].name, %mac, "interface re-created: the learned MAC is learned again");
                        }
                        let _ = self.switch.set_link_up(id, state == LinkState::Up, now);
                    }
                    Err(e) => {
                        tracing::debug!(interface = %self.ports[i].interface, error = %e, "cannot reattach yet")
                    }
                },
                LinkState::Up => {
                    let _ = self.switch.set_link_up(id, true, now);
                }
                LinkState::Down => {}
            }
        }
    }

    /// Drains the RX queue of port `i` (a bounded number of batches) and queues the
    /// forwarded copies; then ends the queue's turn ([`RxQueue::end_turn`]).
    fn service_port(
        &mut self,
        i: usize,
        now: Timestamp,
        verdicts: &mut Vec<Verdict>,
        stats: &mut RuntimeCounters,
    ) {
        self.drain_port(i, now, verdicts, stats);
        self.ports[i].io.rx.end_turn();
    }

    fn drain_port(
        &mut self,
        i: usize,
        now: Timestamp,
        verdicts: &mut Vec<Verdict>,
        stats: &mut RuntimeCounters,
    ) {
        let ingress = PortId(i as u16);
        // A few batches per port per loop, so one busy port cannot starve the others.
        for _ in 0..4 {
            let (ports_before, rest) = self.ports.split_at_mut(i);
            let (this, ports_after) = rest.split_first_mut().expect("i < ports.len()");
            let batch = match this.io.rx.recv() {
                Ok(b) => b,
                Err(_) => {
                    this.stats.rx_errors += 1;
                    return;
                }
            };
            if batch.is_empty() {
                return;
            }
            stats.batches += 1;
            this.stats.rx_frames += batch.len() as u64;
            // A frame from the port's far side proves its link is up (a TAP whose
            // VM writes has carrier; a veth whose peer sends is up): the kernel's
            // carrier notice may come later (linkwatch runs it up to a second
            // after the change), and the guest's first frames must not be lost.
            if self.switch.port(ingress).is_some_and(|p| !p.link_up) {
                tracing::info!(interface = %this.interface, "frames from a port marked link-down: its link is up");
                let _ = self.switch.set_link_up(ingress, true, now);
            }
            // The overlay port: datagrams, checked and decapsulated by the switch.
            let tunnel = self.switch.overlay().is_some_and(|o| o.port() == ingress);
            if tunnel {
                verdicts.clear();
                for f in batch.iter() {
                    let peer = f.peer.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
                    verdicts.push(self.switch.process_tunneled(now, ingress, peer, f.data));
                }
            } else {
                let frames = batch.iter().map(|f| IngressFrame {
                    data: f.data,
                    tag: f.tag.map(|t| portcullis_dataplane::VlanTag {
                        tpid: t.tpid,
                        tci: t.tci,
                    }),
                });
                self.switch.process_batch(now, ingress, frames, verdicts);
            }
            for (frame, verdict) in batch.iter().zip(verdicts.iter()) {
                // A tunneled frame goes on as its inner frame (the header is cut).
                let frame = if tunnel {
                    let hlen = portcullis_dataplane::wire::vxlan::HEADER_LEN;
                    portcullis_io::RxFrame {
                        data: frame.data.get(hlen..).unwrap_or_default(),
                        tag: None,
                        csum_partial: false,
                        // A train of TCP segments the tunnel merged back.
                        vnet: frame.vnet,
                        peer: frame.peer,
                    }
                } else {
                    frame
                };
                if frame.is_gso() {
                    this.stats.rx_gso_frames += 1;
                }
                let fwd = match verdict {
                    Verdict::Forward(fwd) => fwd,
                    Verdict::Hold(fwd, binding) => {
                        self.held
                            .hold(&mut self.switch, ingress, frame, fwd, binding, now);
                        continue;
                    }
                    Verdict::Drop(reason) => {
                        if let Some((c, _)) = &mut this.capture {
                            c.record(now, *reason, &frame);
                        }
                        continue;
                    }
                };
                let out = self
                    .switch
                    .output(ingress, fwd, frame.data, frame.csum_partial);
                send_output(
                    &out,
                    frame.csum_partial,
                    frame.vnet,
                    i,
                    ports_before,
                    ports_after,
                    stats,
                );
            }
        }
    }

    /// Releases the held ACKs whose bindings the store has committed (or failed).
    fn release_committed(&mut self, now: Timestamp, stats: &mut RuntimeCounters) {
        for c in self.held.drain() {
            let (h, ok) = match c {
                Committed::Frame(h, ok) => (h, ok),
                Committed::Api(reply, b, ok) => {
                    let _ = reply.send(self.install_api_binding(b, ok, now));
                    continue;
                }
            };
            if !self
                .switch
                .release_held(h.ingress, &h.fwd, &h.binding, h.data.len(), ok, now)
            {
                stats.held_dropped += 1;
                if ok {
                    // Written, then refused (another binding took the address
                    // meanwhile): the store goes back to what the index holds.
                    let ip = h.binding.ip;
                    let current = self.switch.binding(h.binding.vid, ip);
                    self.held.resync(h.binding.vid, ip, current, now);
                }
                if h.binding.source == BindingSource::Dhcpv6 {
                    // The REPLY's further bindings may have been written: none of
                    // them is installed, so the store forgets them again.
                    let mut rest = Vec::new();
                    portcullis_dataplane::stages::dhcpv6_guard::reply_rest(
                        &h.fwd,
                        &h.binding,
                        &h.data,
                        |b| rest.push((b.vid, b.ip)),
                    );
                    for (vid, ip) in rest {
                        let current = self.switch.binding(vid, ip);
                        self.held.resync(vid, ip, current, now);
                    }
                }
                continue;
            }
            let i = h.ingress.index();
            let out = self
                .switch
                .output(h.ingress, &h.fwd, &h.data, h.csum_partial);
            let (before, after) = around(&mut self.ports, i);
            send_output(&out, h.csum_partial, None, i, before, after, stats);
            if h.binding.source == BindingSource::Dhcpv6 {
                self.install_reply_rest(&h, now);
            }
        }
    }

    /// A released DHCPv6 REPLY's further addresses (the hold carried its first, and
    /// committed these with it): installed now; the store is then made to say what
    /// the index says of each (one another binding took meanwhile is refused and
    /// forgotten again).
    fn install_reply_rest(&mut self, h: &crate::held::HeldFrame, now: Timestamp) {
        let mut rest = Vec::new();
        portcullis_dataplane::stages::dhcpv6_guard::install_reply_rest(
            &mut self.switch,
            &h.fwd,
            &h.binding,
            &h.data,
            now,
            |b| rest.push((b.vid, b.ip)),
        );
        for (vid, ip) in rest {
            let current = self.switch.binding(vid, ip);
            self.held.resync(vid, ip, current, now);
        }
    }

    /// Installs an API binding whose record the store has committed (`ok`); the rule
    /// is checked again (a lease may have taken the address while it was written),
    /// and a refused record is taken back out of the store.
    fn install_api_binding(
        &mut self,
        b: ApiBinding,
        ok: bool,
        now: Timestamp,
    ) -> Result<Option<BindingHolder>, BindingRefusal> {
        if !ok {
            return Err(BindingRefusal::Unavailable(
                "the binding store could not commit".into(),
            ));
        }
        let new = api_new_binding(&b);
        let installed = if b.replace {
            self.switch.replace_binding(new, now)
        } else {
            self.switch.install_binding(new, now).map(|()| None)
        };
        installed.map_err(|e| {
            let current = self.switch.binding(b.vid, b.ip);
            self.held.resync(b.vid, b.ip, current, now);
            BindingRefusal::Refused(e)
        })
    }

    /// Answers the control plane's commands; stops at an apply and hands it back (the
    /// loop's own state must be rebuilt with it).
    fn answer_commands(
        &mut self,
        now: Timestamp,
        stats: &RuntimeCounters,
        armed: &mut usize,
    ) -> Option<Box<ApplyPlan>> {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Apply(plan) => return Some(plan),
                Command::SetAdminUp { port, up, reply } => {
                    let _ = reply.send(self.switch.set_admin_up(port, up));
                }
                Command::Capture {
                    port,
                    capture,
                    reply,
                } => match self.ports.get_mut(port.index()) {
                    None => {
                        let _ = reply.send(Err(CaptureRefused::NoSuchPort));
                    }
                    Some(slot) => {
                        if slot.arm(capture, reply, now) {
                            *armed += 1;
                        }
                    }
                },
                Command::BindingCount(reply) => {
                    let _ = reply.send(self.switch.binding_count());
                }
                Command::AnnounceGuest { port, reply } => {
                    let _ = reply.send(self.switch.announce_guest(port));
                }
                Command::PortBindings { port, reply } => {
                    let records = self
                        .switch
                        .bindings()
                        .into_iter()
                        .filter(|e| {
                            port.is_none_or(|p| e.binding.port == p)
                                && e.binding.source != BindingSource::Static
                        })
                        .map(|e| self.held.record(e.vid, e.ip, &e.binding, now))
                        .collect();
                    let _ = reply.send(records);
                }
                Command::RestoreBindings {
                    port,
                    records,
                    reply,
                } => {
                    let unix = crate::held::unix_now();
                    let mut restored = 0;
                    for r in records {
                        let Some(vid) = Vid::new(r.vlan) else {
                            continue;
                        };
                        let new = NewBinding {
                            vid,
                            ip: r.ip,
                            mac: r.mac,
                            port,
                            lease_secs: r.lease_end_unix.map(|end| {
                                u32::try_from(end.saturating_sub(unix)).unwrap_or(u32::MAX)
                            }),
                            source: r.source,
                            duid: r.duid,
                        };
                        if self.switch.install_binding(new, now).is_ok() {
                            restored += 1;
                        }
                        // The store says what the switch holds now: the binding with
                        // its new port's name, or whoever took the address meanwhile.
                        let current = self.switch.binding(vid, r.ip);
                        self.held.resync(vid, r.ip, current, now);
                    }
                    let _ = reply.send(restored);
                }
                Command::ResyncBindings(keys) => {
                    for (vid, ip) in keys {
                        let current = self.switch.binding(vid, ip);
                        self.held.resync(vid, ip, current, now);
                    }
                }
                Command::ClearCounters(reply) => {
                    self.switch.clear_counters();
                    let _ = reply.send(());
                }
                Command::Snapshot(reply) => {
                    // The receive paths' own losses, read now (a syscall per port on
                    // AF_PACKET: fine for a status view, never done per frame).
                    let io: Vec<IoStats> = self
                        .ports
                        .iter()
                        .map(|p| {
                            let l = p.io.rx.losses();
                            IoStats {
                                rx_kernel_drops: l.kernel_drops,
                                rx_truncated: l.truncated,
                                ..p.stats.clone()
                            }
                        })
                        .collect();
                    let interfaces: Vec<String> =
                        self.ports.iter().map(|p| p.interface.clone()).collect();
                    let groups: Vec<String> = self.ports.iter().map(|p| p.group.clone()).collect();
                    let in_use: Vec<_> = self.ports.iter().map(|p| p.io.in_use).collect();
                    let mut snap = crate::snapshot::build(
                        &self.switch,
                        &interfaces,
                        &in_use,
                        &groups,
                        &io,
                        (stats.events_lost, stats.batches),
                        now,
                    );
                    // Without its interface a port is neither up nor down: it waits.
                    for (view, slot) in snap.ports.iter_mut().zip(&self.ports) {
                        if slot.gone && view.state != "down" {
                            view.state = "no-interface".into();
                        }
                    }
                    let _ = reply.send(snap);
                }
                Command::ReportEffectiveMac { port, mac, reply } => {
                    let _ = reply.send(self.switch.report_effective_mac(port, mac, now));
                }
                Command::Recover { port, reply } => {
                    let _ = reply.send(self.switch.recover(port, now));
                }
                Command::Bindings(reply) => {
                    let _ = reply.send(crate::snapshot::bindings_view(
                        &self.switch,
                        now,
                        self.held.stats,
                    ));
                }
                Command::Trace { port, frame, reply } => {
                    let _ = reply.send(trace_live(&self.switch, now, port, &frame));
                }
                Command::SetOverlayPeers { peers, reply } => {
                    let _ = reply.send(self.switch.set_overlay_peers(peers));
                }
                Command::Overlay { remote_macs, reply } => {
                    let _ = reply.send(crate::snapshot::overlay_view(&self.switch, remote_macs));
                }
                Command::Hosts { vlan, reply } => {
                    let _ = reply.send(crate::snapshot::hosts_view(&self.switch, now, vlan));
                }
                Command::AddBinding { binding, reply } => {
                    // Checked before anything is written: an invalid binding, or one
                    // that conflicts (unless replacing a non-static holder), is
                    // refused with nothing stored.
                    let new = api_new_binding(&binding);
                    let refused = self.switch.check_binding(&new).err().or_else(|| {
                        match self.switch.binding_conflict(&new, now) {
                            Some(h) if h.source == BindingSource::Static => {
                                Some(ControlError::StaticBinding(h))
                            }
                            Some(h) if !binding.replace => Some(ControlError::BindingHeld(h)),
                            _ => None,
                        }
                    });
                    match refused {
                        Some(e) => {
                            let _ = reply.send(Err(BindingRefusal::Refused(e)));
                        }
                        None => self.held.add_api_binding(binding, reply),
                    }
                }
                Command::RemoveBinding { vid, ip, reply } => {
                    let answer = match self.switch.binding(vid, ip) {
                        Some(b) if b.source == BindingSource::Static => Err(BindingHolder {
                            mac: b.mac,
                            port: b.port,
                            source: b.source,
                        }),
                        _ => Ok(self
                            .switch
                            .remove_binding(vid, ip, BindingRemoval::Api, now)),
                    };
                    let _ = reply.send(answer);
                }
            }
        }
        None
    }
}

/// The binding an API request asks for (never expires).
fn api_new_binding(b: &ApiBinding) -> NewBinding {
    NewBinding {
        vid: b.vid,
        ip: b.ip,
        mac: b.mac,
        port: b.port,
        lease_secs: None,
        source: BindingSource::Api,
        duid: None,
    }
}

/// Traces one frame through a copy of `switch` (so the frame is learned, counted and
/// rate-limited in the copy only). The copy shares the binding table (copy-on-write:
/// a million bindings cost nothing unless the traced frame itself removes one); the
/// MAC and IP-seen tables, bounded by their configured sizes, are copied.
fn trace_live(switch: &Switch, now: Timestamp, port: PortId, frame: &[u8]) -> serde_json::Value {
    use portcullis_dataplane::trace::{Trace, describe_verdict};
    let mut copy = switch.clone();
    let _ = copy.drain_events().count();
    let mut t = Trace::new();
    let v = copy.process_traced(
        now,
        port,
        &IngressFrame {
            data: frame,
            tag: None,
        },
        &mut t,
    );
    let stages: Vec<serde_json::Value> = t
        .explain(&copy)
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "stage": s.stage,
                "title": s.title,
                "decision": s.decision,
                "reason": s.reason,
                "text": s.text,
            })
        })
        .collect();
    let events: Vec<Event> = copy.drain_events().collect();
    serde_json::json!({
        "port": copy.port(port).map(|p| p.name.clone()),
        "time_ns": now.0,
        "bytes": frame.len(),
        "stages": stages,
        "verdict": describe_verdict(&copy, &v),
        "events": serde_json::to_value(&events).unwrap_or_default(),
    })
}

#[cfg(test)]
mod capture_tests {
    use super::*;

    fn rx(data: &[u8]) -> portcullis_io::RxFrame<'_> {
        portcullis_io::RxFrame {
            data,
            tag: None,
            csum_partial: false,
            vnet: None,
            peer: None,
        }
    }

    /// Slots are bounded by the memory budget; drops beyond them are counted lost,
    /// and the capture is done once `count` drops were seen.
    #[test]
    fn drops_beyond_the_slots_are_counted_lost() {
        let snaplen = CAPTURE_MAX_BYTES / 3;
        let mut c = PortCapture::new(5, snaplen, 1_000);
        assert_eq!(c.slots.len(), 3);
        c.deadline = Timestamp(1_000);
        let f = [7u8; 60];
        for t in 0..4 {
            assert!(!c.done(Timestamp(t)));
            c.record(Timestamp(t), DropReason::ForgedTransmit, &rx(&f));
        }
        assert_eq!(c.frames().len(), 3);
        assert_eq!(c.lost(), 1);
        assert_eq!(c.frames()[2].seq, 2);
        assert_eq!(c.frames()[0].data, f);
        c.record(Timestamp(5), DropReason::MacAclDeny, &rx(&f));
        assert!(c.done(Timestamp(5)), "5 drops seen");
        c.record(Timestamp(6), DropReason::MacAclDeny, &rx(&f));
        assert_eq!(
            (c.frames().len(), c.lost()),
            (3, 2),
            "past the count: ignored"
        );
        assert!(
            PortCapture::new(5, 4, 10).done(Timestamp(u64::MAX)),
            "time up"
        );
    }

    /// A frame is cut to the snaplen, without reallocating the slot.
    #[test]
    fn frames_are_cut_to_the_snaplen_in_place() {
        let mut c = PortCapture::new(2, 16, 1_000);
        let cap = c.slots[0].data.capacity();
        let f: Vec<u8> = (0..100).collect();
        c.record(Timestamp(1), DropReason::Truncated, &rx(&f));
        let got = &c.frames()[0];
        assert_eq!(got.data, &f[..16]);
        assert_eq!(got.orig_len, 100);
        assert_eq!(c.slots[0].data.capacity(), cap);
    }
}
