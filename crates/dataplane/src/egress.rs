//! What leaves the switch, as the runtime sends it: for a forwarded frame
//! ([`crate::Switch::output`]), each copy's output port and egress tag and the bytes — the
//! ones received, or a rewrite the switch made in its own buffer (DHCP option 82,
//! with the circuit-id and remote-id of the spec); and the frames the switch
//! originates itself (RARP announcements for guests moved to another uplink),
//! queued until the runtime drains them ([`crate::Switch::drain_emitted`]). The runtime
//! only moves these bytes; it never builds, rewrites or tags a frame.
//!
//! Invariants: no allocation after construction (the rewrite buffers and the queue
//! of originated frames are allocated by [`Egress::new`]; a full queue drops and
//! counts, `Egress::emit_dropped`); a copy never goes out on its ingress port; a
//! rewrite that cannot be made leaves the received bytes, flagged
//! ([`Output::rewrite_failed`]), never partial bytes.

use crate::events::EVENT_RING_CAPACITY;
use crate::overlay::{Overlay, Tunnel};
use crate::types::{MacAddr, PortId, PortSet, Vid};
use crate::verdict::{Forward, Rewrite};
use crate::wire::{announce, dhcp};

/// The largest frame the switch rewrites (larger ones go unchanged, counted as a
/// failed rewrite): a DHCP message fits many times over.
pub const REWRITE_MAX: usize = 2048;

/// Originated frames that may wait between two drains: as many as the event ring
/// holds events (each announcement comes from one `UplinkMoved`).
pub const EMIT_CAPACITY: usize = EVENT_RING_CAPACITY;

/// The largest frame the switch originates.
pub const EMIT_FRAME_MAX: usize = 128;

/// A frame the switch originates, kept as its representation until it is drained
/// (emitted into a buffer then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Originated {
    /// A RARP announcement of a guest's MAC (`wire::announce`).
    Rarp(announce::Announcement),
    /// A gratuitous ARP (RFC 5227 §2.3 ARP Announcement) of a guest's bound IPv4
    /// address, from its MAC (`wire::announce::Garp`).
    Garp(announce::Garp),
    /// An unsolicited Neighbor Advertisement (RFC 4861 §7.2.6, override set) of a
    /// guest's bound IPv6 address, from its MAC, to all nodes.
    UnsolicitedNa(announce::UnsolicitedNa),
    /// The overlay's ARP proxy's answer to a guest's request (`stages/arp_proxy.rs`).
    ArpReply(announce::ProxyReply),
}

/// One copy of a frame: where it goes and the tag it carries there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxCopy {
    pub port: PortId,
    /// The 802.1Q TCI of the egress tag; `None`: the frame leaves untagged.
    pub tci: Option<u16>,
    /// A copy to the overlay port: the endpoint it is tunneled to and its VXLAN
    /// header's VNI (the frame itself leaves untagged inside the tunnel).
    pub tunnel: Option<TunnelDst>,
}

impl TxCopy {
    /// A copy to `port` with egress tag `tci` (not tunneled).
    pub const fn to(port: PortId, tci: Option<u16>) -> TxCopy {
        TxCopy {
            port,
            tci,
            tunnel: None,
        }
    }
}

/// Where a copy to the overlay is tunneled: the remote endpoint's UDP address and the
/// VNI of the VXLAN header the copy is sent behind ([`crate::wire::vxlan::header`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelDst {
    pub remote: std::net::SocketAddr,
    pub vni: crate::wire::vxlan::Vni,
}

/// A frame as it leaves: the bytes are `head`, then the egress tag of each copy (if
/// any), then `body`.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// The destination and source MACs (12 bytes).
    pub head: &'a [u8],
    /// From the EtherType behind any VLAN tag the switch consumed, to the end.
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// `data` without its in-band VLAN tag, whose EtherType is at `body_offset`.
    fn split(data: &'a [u8], body_offset: usize) -> Frame<'a> {
        Frame {
            head: data.get(..12).unwrap_or(data),
            body: data.get(body_offset..).unwrap_or(&[]),
        }
    }
}

/// What leaves for one forwarded frame ([`crate::Switch::output`]).
#[derive(Clone, Copy, Debug)]
pub struct Output<'a> {
    pub frame: Frame<'a>,
    /// The bytes are the switch's rewrite (checksums complete: no offload the frame
    /// arrived with applies to them); `false`: the bytes received.
    pub rewritten: bool,
    /// A rewrite was asked for and could not be made (too big, malformed, option 82
    /// already there): the received bytes go unchanged.
    pub rewrite_failed: bool,
    /// Each port's untagged VLAN.
    untagged: &'a [Option<Vid>],
    /// The overlay, for the copy to the overlay port.
    overlay: Option<&'a Overlay>,
    tunnel: Tunnel,
    out: PortSet,
    ingress: PortId,
    vid: Vid,
    pcp_dei: u8,
}

impl Output<'_> {
    /// Each copy, in port order: its port and egress tag (none where the VLAN is the
    /// port's untagged one). Never the ingress port. The overlay port's copy is one
    /// copy per tunnel destination (head-end replication for a flood), untagged.
    #[inline]
    pub fn copies(&self) -> impl Iterator<Item = TxCopy> + '_ {
        self.out
            .iter()
            .filter(move |p| *p != self.ingress)
            .flat_map(move |p| {
                let (plain, tunneled) = match self.overlay {
                    Some(o) if o.port == p => (None, Some(o.destinations(self.tunnel, self.vid))),
                    _ => {
                        let plain = self.untagged.get(p.index()).map(|untagged| {
                            TxCopy::to(p, egress_tci(*untagged, self.vid, self.pcp_dei))
                        });
                        (plain, None)
                    }
                };
                plain
                    .into_iter()
                    .chain(tunneled.into_iter().flatten().map(move |d| TxCopy {
                        port: p,
                        tci: None,
                        tunnel: Some(d),
                    }))
            })
    }
}

/// One originated frame as [`crate::Switch::drain_emitted`] hands it over.
#[derive(Clone, Copy, Debug)]
pub struct Emitted<'a> {
    pub copy: TxCopy,
    pub frame: Frame<'a>,
}

/// The tag (TCI) frames of `vid` carry when they leave a port whose untagged VLAN
/// is `untagged`: none there, else an 802.1Q tag with the frame's PCP and DEI.
#[inline]
pub fn egress_tci(untagged: Option<Vid>, vid: Vid, pcp_dei: u8) -> Option<u16> {
    if untagged == Some(vid) {
        None
    } else {
        Some((pcp_dei as u16) << 12 | vid.get())
    }
}

/// The switch's egress state: each port's untagged VLAN, rewrite buffers, option-82
/// ids, originated frames.
#[derive(Clone, Debug)]
pub(crate) struct Egress {
    untagged: Vec<Option<Vid>>,
    copy: Box<[u8]>,
    rewritten: Box<[u8]>,
    /// Option 82 circuit-id of each port: "switch/port".
    circuit_ids: Vec<Box<[u8]>>,
    /// Option 82 remote-id: the switch name.
    remote_id: Box<[u8]>,
    /// Each frame with the port it speaks for (the guest a RARP announces).
    queue: Vec<(TxCopy, Originated, PortId)>,
    emit_buf: [u8; EMIT_FRAME_MAX],
    pub(crate) emit_dropped: u64,
}

impl Egress {
    /// For a switch `name` with ports (name, untagged VLAN), in port order.
    pub(crate) fn new<'n>(
        name: &str,
        ports: impl Iterator<Item = (&'n str, Option<Vid>)> + Clone,
    ) -> Egress {
        Egress {
            untagged: ports.clone().map(|(_, u)| u).collect(),
            copy: vec![0; REWRITE_MAX].into(),
            rewritten: vec![0; REWRITE_MAX].into(),
            circuit_ids: ports
                .map(|(p, _)| format!("{name}/{p}").into_bytes().into())
                .collect(),
            remote_id: name.as_bytes().into(),
            queue: Vec::with_capacity(EMIT_CAPACITY),
            emit_buf: [0; EMIT_FRAME_MAX],
            emit_dropped: 0,
        }
    }

    /// Queues `frame`, which speaks for port `about`, to leave by `copy` (dropped
    /// and counted when the queue is full).
    pub(crate) fn originate(&mut self, copy: TxCopy, frame: Originated, about: PortId) {
        if self.queue.len() < EMIT_CAPACITY {
            self.queue.push((copy, frame, about));
        } else {
            self.emit_dropped += 1;
        }
    }

    /// Queues a RARP announcement of guest `guest`'s `mac` on `copy`'s port (the
    /// guest moved there).
    pub(crate) fn announce(&mut self, copy: TxCopy, mac: MacAddr, guest: PortId) {
        let frame = Originated::Rarp(announce::Announcement { mac });
        self.originate(copy, frame, guest);
    }

    /// Queues the announcement `frame` (a gratuitous ARP or unsolicited NA) of
    /// guest `guest` on `copy`'s port.
    pub(crate) fn announce_address(&mut self, copy: TxCopy, frame: Originated, guest: PortId) {
        self.originate(copy, frame, guest);
    }

    /// Keeps the queued frames whose port `keep` accepts (an apply forgets those
    /// of the ports it does not carry over).
    pub(crate) fn retain_emitted(&mut self, mut keep: impl FnMut(PortId) -> bool) {
        self.queue.retain(|(_, _, about)| keep(*about));
    }

    /// The option-82 rewrite of `data` from `ingress` into the rewrite buffer: the
    /// checksum completed first if it was left partial, then option 82 inserted or
    /// stripped. Returns the rewritten length, `None` when it cannot be made.
    fn rewrite(
        &mut self,
        what: Rewrite,
        ingress: PortId,
        data: &[u8],
        body_offset: usize,
        csum_partial: bool,
    ) -> Option<usize> {
        let copy = self.copy.get_mut(..data.len())?;
        copy.copy_from_slice(data);
        if csum_partial {
            // Not UDP/IPv4: the rewriter below refuses it anyway.
            let _ = dhcp::complete_udp_checksum(copy, body_offset);
        }
        let out = &mut self.rewritten[..];
        match what {
            Rewrite::InsertOption82 => {
                let circuit_id = self.circuit_ids.get(ingress.index())?;
                dhcp::insert_option82(copy, body_offset, circuit_id, &self.remote_id, out).ok()
            }
            Rewrite::StripOption82 => dhcp::strip_option82(copy, body_offset, out).ok(),
            Rewrite::None => None,
        }
    }
}

impl Egress {
    /// What leaves for a frame forwarded from `ingress` (see [`crate::Switch::output`]).
    #[inline]
    pub(crate) fn output<'a>(
        &'a mut self,
        overlay: Option<&'a Overlay>,
        ingress: PortId,
        fwd: &Forward,
        data: &'a [u8],
        csum_partial: bool,
    ) -> Output<'a> {
        let body_offset = fwd.body_offset as usize;
        let (frame, rewritten, rewrite_failed) = match fwd.rewrite {
            Rewrite::None => (Frame::split(data, body_offset), false, false),
            what => match self.rewrite(what, ingress, data, body_offset, csum_partial) {
                Some(n) => {
                    let bytes = self.rewritten.get(..n).unwrap_or(&[]);
                    (Frame::split(bytes, body_offset), true, false)
                }
                None => (Frame::split(data, body_offset), false, true),
            },
        };
        Output {
            frame,
            rewritten,
            rewrite_failed,
            untagged: &self.untagged,
            overlay,
            tunnel: fwd.tunnel,
            out: fwd.out,
            ingress,
            vid: fwd.vid,
            pcp_dei: fwd.pcp_dei,
        }
    }

    /// Hands every queued frame to `send`, in order, and empties the queue.
    pub(crate) fn drain(&mut self, mut send: impl FnMut(Emitted<'_>)) {
        for (copy, frame, _) in self.queue.drain(..) {
            let len = match frame {
                Originated::Rarp(a) => a.emit(&mut self.emit_buf),
                Originated::Garp(a) => a.emit(&mut self.emit_buf),
                Originated::UnsolicitedNa(a) => a.emit(&mut self.emit_buf),
                Originated::ArpReply(a) => a.emit(&mut self.emit_buf),
            };
            if let Ok(len) = len {
                let bytes = &self.emit_buf[..len];
                send(Emitted {
                    copy,
                    frame: Frame::split(bytes, 12),
                });
            }
        }
    }

    /// The queued frames, each with the port it speaks for.
    pub(crate) fn queued(&self) -> impl Iterator<Item = (TxCopy, Originated, PortId)> + '_ {
        self.queue.iter().copied()
    }
}
