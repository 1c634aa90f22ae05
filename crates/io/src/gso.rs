//! Software offloads: what a NIC would do for a frame whose sender left work
//! undone, for ports that cannot take the work along in a virtio-net header.
//!
//! - [`Segmenter`]: cuts a GSO super-frame (TCP over IPv4/IPv6, UDP segmentation)
//!   into wire-sized frames the way the kernel's `tcp_gso_segment` /
//!   `__udp_gso_segment` do: the headers are copied into every segment; IPv4 ids
//!   count up from the super-frame's; TCP sequence numbers advance by the payload;
//!   FIN and PSH stay on the last segment, CWR on the first; IP lengths, the IPv4
//!   header checksum and the TCP/UDP checksum are computed for each segment.
//! - [`SoftwareOffload`]: the one way a backend that cannot take a super-frame or
//!   a partial checksum along sends it — cut here, each segment queued by the
//!   backend, counted in its [`TxStats`].
//! - [`prepare_offload`]: the virtio-net header to send a frame with to a port that
//!   takes one, derived from the frame's own headers (the received header's offsets
//!   are the sending guest's claims and are not trusted), with the checksum field set
//!   to the pseudo-header sum the receiving end completes.
//!
//! Invariants: nothing here panics on any input (bad headers, lengths or segment
//! sizes are an [`OffloadError`]); a segment is at most `hdr_len + gso_size` bytes;
//! a segment size below [`MIN_GSO_SIZE`] is refused, which bounds the segments of
//! one frame to 1024; [`Segmenter`] reuses one buffer, so once grown to one
//! segment it does not allocate again.

use crate::frame::{ETH_HLEN, VLAN_HLEN, VlanTag, VnetHdr};
use crate::{TxError, TxOptions, TxStats};

/// Smallest segment payload accepted: a guest asking for tinier segments would make
/// the switch cut a 64 KiB frame into thousands (Linux's TCP never goes below an
/// MSS of 88 bytes).
pub const MIN_GSO_SIZE: u16 = 64;
/// Largest super-frame: a 65,535-byte IP packet behind an Ethernet header and two
/// VLAN tags.
pub const MAX_GSO_FRAME: usize = 65_535 + ETH_HLEN + 2 * VLAN_HLEN;
/// Bytes of a frame that [`Segmenter`] and the backends look at to find its
/// headers: Ethernet with two tags (22), IPv4 with options (60) or IPv6 (40), TCP with
/// options (60).
pub(crate) const MAX_HEADERS: usize = 192;

/// Why a frame's offload request cannot be carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// Not IPv4 or IPv6 (without extension headers) carrying TCP or UDP, or an IPv4
    /// fragment.
    #[error("not a TCP or UDP frame over IPv4 or IPv6")]
    NotTcpUdp,
    /// Headers cut short, or lengths that contradict the frame.
    #[error("truncated or inconsistent headers")]
    Malformed,
    /// The GSO type does not match the frame (e.g. TCPV4 on an IPv6 frame, UFO).
    #[error("GSO type does not match the frame")]
    TypeMismatch,
    /// Segment size below [`MIN_GSO_SIZE`].
    #[error("GSO segment size out of range")]
    BadGsoSize,
}

/// Where the headers of a TCP or UDP frame lie, from the destination MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4Layout {
    /// Start of the IP header.
    pub l3: usize,
    /// Start of the TCP/UDP header.
    pub l4: usize,
    /// Start of the TCP/UDP payload (the length of all headers).
    pub payload: usize,
    /// End of the IP packet (the rest of the frame, if any, is padding).
    pub end: usize,
    /// IPv6 (else IPv4).
    pub ipv6: bool,
    /// TCP (else UDP).
    pub tcp: bool,
}

impl L4Layout {
    /// Offset of the L4 checksum field from the L4 header.
    pub fn csum_offset(&self) -> usize {
        if self.tcp { 16 } else { 6 }
    }

    fn proto(&self) -> u8 {
        if self.tcp { 6 } else { 17 }
    }
}

fn be16(b: &[u8], at: usize) -> Result<u16, OffloadError> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or(OffloadError::Malformed)
}

/// Finds the headers of a TCP or UDP frame (Ethernet, up to two VLAN tags in-band,
/// IPv4 without fragmentation or IPv6 without extension headers). `hdrs` holds the
/// frame's first bytes (at least up to the end of the L4 header); `frame_len` is the
/// length of the whole frame.
pub fn l4_layout(hdrs: &[u8], frame_len: usize) -> Result<L4Layout, OffloadError> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(hdrs, 12)?;
    for _ in 0..2 {
        if ethertype == VlanTag::TPID_8021Q || ethertype == VlanTag::TPID_8021AD {
            ethertype = be16(hdrs, l3 + 2)?;
            l3 += VLAN_HLEN;
        }
    }
    let (l4, end, proto, ipv6) = match ethertype {
        0x0800 => {
            let vihl = *hdrs.get(l3).ok_or(OffloadError::Malformed)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return Err(OffloadError::Malformed);
            }
            let total = usize::from(be16(hdrs, l3 + 2)?);
            if be16(hdrs, l3 + 6)? & 0x3fff != 0 {
                return Err(OffloadError::NotTcpUdp); // a fragment
            }
            let proto = *hdrs.get(l3 + 9).ok_or(OffloadError::Malformed)?;
            if total < ihl {
                return Err(OffloadError::Malformed);
            }
            (l3 + ihl, l3 + total, proto, false)
        }
        0x86dd => {
            let v = *hdrs.get(l3).ok_or(OffloadError::Malformed)?;
            if v >> 4 != 6 {
                return Err(OffloadError::Malformed);
            }
            let plen = usize::from(be16(hdrs, l3 + 4)?);
            let proto = *hdrs.get(l3 + 6).ok_or(OffloadError::Malformed)?;
            (l3 + 40, l3 + 40 + plen, proto, true)
        }
        _ => return Err(OffloadError::NotTcpUdp),
    };
    let payload = match proto {
        6 => {
            let doff = usize::from(*hdrs.get(l4 + 12).ok_or(OffloadError::Malformed)? >> 4) * 4;
            if doff < 20 {
                return Err(OffloadError::Malformed);
            }
            l4 + doff
        }
        17 => l4 + 8,
        _ => return Err(OffloadError::NotTcpUdp),
    };
    if payload > end || end > frame_len || payload > hdrs.len() {
        return Err(OffloadError::Malformed);
    }
    Ok(L4Layout {
        l3,
        l4,
        payload,
        end,
        ipv6,
        tcp: proto == 6,
    })
}

/// One's-complement sum of `data` (RFC 1071), 32 bits at a time, added to `sum`.
/// Fold with [`fold`].
pub(crate) fn sum_words(mut sum: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        sum += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    match *chunks.remainder() {
        [a, b, c] => sum + u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        [a, b] => sum + u64::from(u16::from_be_bytes([a, b])),
        [a] => sum + (u64::from(a) << 8),
        _ => sum,
    }
}

/// Folds a [`sum_words`] sum to 16 bits (not complemented).
pub(crate) fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The pseudo-header sum (RFC 793 §3.1, RFC 8200 §8.1) of the L4 segment of
/// `l4_len` bytes in the IP packet whose header is at `hdrs[lay.l3..]`.
fn pseudo_sum(hdrs: &[u8], lay: &L4Layout, l4_len: usize) -> u64 {
    let addrs = if lay.ipv6 {
        &hdrs[lay.l3 + 8..lay.l3 + 40]
    } else {
        &hdrs[lay.l3 + 12..lay.l3 + 20]
    };
    sum_words(u64::from(lay.proto()) + l4_len as u64, addrs)
}

/// Checks a GSO request against the frame's layout.
fn check_gso(req: VnetHdr, lay: &L4Layout) -> Result<(), OffloadError> {
    let ok = match req.gso_kind() {
        VnetHdr::GSO_TCPV4 => lay.tcp && !lay.ipv6,
        VnetHdr::GSO_TCPV6 => lay.tcp && lay.ipv6,
        VnetHdr::GSO_UDP_L4 => !lay.tcp,
        _ => false,
    };
    if !ok {
        return Err(OffloadError::TypeMismatch);
    }
    if req.gso_size < MIN_GSO_SIZE {
        return Err(OffloadError::BadGsoSize);
    }
    Ok(())
}

/// The virtio-net header to send a frame with to a port that takes one, for the
/// offloads `req` asks for; sets the frame's L4 checksum field to the pseudo-header
/// sum (what a partially checksummed frame carries). `hdrs` is the frame's start (at
/// least its headers: up to 192 bytes), `frame_len` its full length. A
/// request for nothing gives the all-zero header and changes nothing.
pub fn prepare_offload(
    hdrs: &mut [u8],
    frame_len: usize,
    req: VnetHdr,
) -> Result<VnetHdr, OffloadError> {
    if !req.needs_work() {
        return Ok(VnetHdr::default());
    }
    let lay = l4_layout(hdrs, frame_len)?;
    let mut out = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_NONE,
        hdr_len: lay.payload as u16,
        gso_size: 0,
        csum_start: lay.l4 as u16,
        csum_offset: lay.csum_offset() as u16,
    };
    if req.is_gso() {
        check_gso(req, &lay)?;
        out.gso_type = req.gso_type & !VnetHdr::GSO_ECN
            | if lay.tcp {
                req.gso_type & VnetHdr::GSO_ECN
            } else {
                0
            };
        out.gso_size = req.gso_size;
    }
    let field = lay.l4 + lay.csum_offset();
    let sum = fold(pseudo_sum(hdrs, &lay, lay.end - lay.l4));
    hdrs[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(out)
}

/// Writes the first bytes of the frame `head`, `tag`, `body` into `out` (at most
/// `out.len()`); returns how many.
pub(crate) fn frame_prefix(
    out: &mut [u8],
    head: &[u8],
    tag: Option<VlanTag>,
    body: &[u8],
) -> usize {
    let mut n = 0;
    let tag_bytes = tag.map(VlanTag::to_bytes);
    for part in [head, tag_bytes.as_ref().map_or(&[][..], |t| &t[..]), body] {
        let k = part.len().min(out.len() - n);
        out[n..n + k].copy_from_slice(&part[..k]);
        n += k;
    }
    n
}

/// Cuts GSO super-frames into segments in a reused buffer (see the [module
/// docs](self)).
#[derive(Debug, Default)]
pub struct Segmenter {
    buf: Vec<u8>,
}

impl Segmenter {
    /// A segmenter whose buffer grows on first use.
    pub fn new() -> Segmenter {
        Segmenter::default()
    }

    /// [`Segmenter::segment`] of one contiguous frame.
    pub fn segment_frame(
        &mut self,
        frame: &[u8],
        req: VnetHdr,
        emit: impl FnMut(&[u8]) -> Result<(), TxError>,
    ) -> Result<usize, TxError> {
        let Some((head, body)) = frame.split_at_checked(12) else {
            return Err(TxError::BadOffload(OffloadError::Malformed));
        };
        self.segment(head, None, body, req, emit)
    }

    /// Cuts the super-frame `head` (12 bytes of addresses), `tag` (inserted
    /// in-band), `body` into segments of at most `req.gso_size` payload bytes and
    /// hands each complete frame, checksums included, to `emit` in order. Stops at
    /// the first error `emit` returns and returns it. Returns the number of segments
    /// emitted. A request that is not GSO is refused ([`OffloadError::TypeMismatch`]).
    pub fn segment(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        req: VnetHdr,
        mut emit: impl FnMut(&[u8]) -> Result<(), TxError>,
    ) -> Result<usize, TxError> {
        let bad = TxError::BadOffload;
        if head.len() != 12 {
            return Err(bad(OffloadError::Malformed));
        }
        let pre = 12 + if tag.is_some() { VLAN_HLEN } else { 0 };
        let frame_len = pre + body.len();
        let mut hdrs = [0u8; MAX_HEADERS];
        let n = frame_prefix(&mut hdrs, head, tag, body);
        let lay = l4_layout(&hdrs[..n], frame_len).map_err(bad)?;
        check_gso(req, &lay).map_err(bad)?;
        let mss = usize::from(req.gso_size);
        let hlen = lay.payload;
        let total = lay.end - hlen;
        let count = total.div_ceil(mss).max(1);
        if self.buf.len() < hlen + mss {
            self.buf.resize(hlen + mss, 0);
        }
        let ip_id = u16::from_be_bytes([hdrs[lay.l3 + 4], hdrs[lay.l3 + 5]]);
        let seq = u32::from_be_bytes(
            hdrs.get(lay.l4 + 4..lay.l4 + 8)
                .and_then(|s| s.try_into().ok())
                .unwrap_or([0; 4]),
        );
        let flags = hdrs[lay.l4 + 13];
        let l4_hlen = hlen - lay.l4;
        for i in 0..count {
            let from = hlen + i * mss;
            let len = mss.min(lay.end - from);
            let seg_len = hlen + len;
            let seg = &mut self.buf[..seg_len];
            seg[..hlen].copy_from_slice(&hdrs[..hlen]);
            // `from >= hlen >= pre`: the payload lies in `body`.
            seg[hlen..].copy_from_slice(&body[from - pre..from - pre + len]);
            let l3 = lay.l3;
            if lay.ipv6 {
                let plen = (seg_len - l3 - 40) as u16;
                seg[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
            } else {
                let tot = (seg_len - l3) as u16;
                seg[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
                let id = ip_id.wrapping_add(i as u16);
                seg[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
                seg[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
                let ihl = lay.l4 - l3;
                let c = !fold(sum_words(0, &seg[l3..l3 + ihl]));
                seg[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
            }
            let l4 = lay.l4;
            let l4_len = l4_hlen + len;
            if lay.tcp {
                let s = seq.wrapping_add((i * mss) as u32);
                seg[l4 + 4..l4 + 8].copy_from_slice(&s.to_be_bytes());
                let mut f = flags;
                if i + 1 < count {
                    f &= !(0x01 | 0x08); // FIN, PSH: last segment only
                }
                if i > 0 {
                    f &= !0x80; // CWR: first segment only
                }
                seg[l4 + 13] = f;
            } else {
                seg[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            }
            let field = l4 + lay.csum_offset();
            seg[field..field + 2].copy_from_slice(&[0, 0]);
            let sum = sum_words(pseudo_sum(seg, &lay, l4_len), &seg[l4..]);
            let mut c = !fold(sum);
            if !lay.tcp && c == 0 {
                c = 0xffff; // RFC 768: a computed 0 is sent as all ones
            }
            seg[field..field + 2].copy_from_slice(&c.to_be_bytes());
            emit(seg)?;
        }
        Ok(count)
    }
}

/// A transmit queue that does the sender's offloads itself: it can queue plain
/// frames, owns a [`Segmenter`] and counts into [`TxStats`]. AF_XDP, TAP without
/// virtio-net headers, the in-memory queue and AF_PACKET without TSO all send
/// through [`SoftwareOffload::push_offloaded`] or
/// [`SoftwareOffload::push_in_segments`], so the fallback is written once.
pub(crate) trait SoftwareOffload {
    fn segmenter(&mut self) -> &mut Segmenter;
    fn tx_counters(&mut self) -> &mut TxStats;
    /// Queues one complete frame: `head` is its 12 bytes of addresses, `body` the
    /// rest (any VLAN tag is already in it); checksums are filled in unless
    /// `complete_checksum` asks the queue to fill in the TCP/UDP one.
    fn push_plain_frame(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        complete_checksum: bool,
    ) -> Result<(), TxError>;

    /// Cuts the super-frame into segments ([`Segmenter::segment`]) and queues each;
    /// counts the segments queued and a refused offload request.
    fn push_in_segments(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        req: VnetHdr,
    ) -> Result<(), TxError> {
        let mut seg = std::mem::take(self.segmenter());
        let r = seg.segment(head, tag, body, req, |s| {
            let (h, b) = s.split_at(12);
            self.push_plain_frame(h, None, b, false)?;
            self.tx_counters().gso_segments += 1;
            Ok(())
        });
        *self.segmenter() = seg;
        if let Err(TxError::BadOffload(_)) = r {
            self.tx_counters().bad_offload += 1;
        }
        r.map(|_| ())
    }

    /// Queues a frame with every offload it asks for done in software: a
    /// super-frame in segments, a partial checksum completed.
    fn push_offloaded(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        opts: TxOptions,
    ) -> Result<(), TxError> {
        match opts.offload {
            Some(v) if v.is_gso() => self.push_in_segments(head, tag, body, v),
            v => {
                let complete = opts.complete_checksum || v.is_some_and(VnetHdr::needs_csum);
                self.push_plain_frame(head, tag, body, complete)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A TCP/IPv4 or TCP/IPv6 super-frame with `payload` bytes (pattern), as a
    /// sender with TSO hands it over (checksum field = pseudo-header sum).
    pub(crate) fn tcp_super_frame(ipv6: bool, payload: usize, flags: u8) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        let tcp_hlen = 32; // with 12 bytes of options (NOP NOP timestamp)
        let l4_len = tcp_hlen + payload;
        if ipv6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4_len as u16).to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        } else {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
            f.extend_from_slice(&[
                0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
            ]);
        }
        f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
        f.extend_from_slice(&0xfffff000u32.to_be_bytes());
        f.extend_from_slice(&7u32.to_be_bytes());
        f.extend_from_slice(&[(tcp_hlen as u8 / 4) << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        f.extend((0..payload).map(|i| (i % 251) as u8));
        if !ipv6 {
            set_ip_checksum(&mut f);
        }
        f
    }

    fn set_ip_checksum(f: &mut [u8]) {
        let c = !fold(sum_words(0, &f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }

    fn req(ipv6: bool, mss: u16) -> VnetHdr {
        VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: if ipv6 {
                VnetHdr::GSO_TCPV6
            } else {
                VnetHdr::GSO_TCPV4
            },
            gso_size: mss,
            ..VnetHdr::default()
        }
    }

    #[test]
    fn layout_of_tcp_frames() {
        let f = tcp_super_frame(false, 3000, 0x18);
        let l = l4_layout(&f, f.len()).unwrap();
        assert_eq!((l.l3, l.l4, l.payload, l.end), (14, 34, 66, f.len()));
        assert!(l.tcp && !l.ipv6);
        let f = tcp_super_frame(true, 10, 0x18);
        let l = l4_layout(&f, f.len()).unwrap();
        assert_eq!((l.l3, l.l4, l.payload, l.end), (14, 54, 86, f.len()));
    }

    #[test]
    fn segments_carry_seq_ids_flags_and_lengths() {
        let f = tcp_super_frame(false, 2500, 0x19 | 0x80); // FIN PSH ACK CWR
        let mut segs: Vec<Vec<u8>> = Vec::new();
        let n = Segmenter::new()
            .segment_frame(&f, req(false, 1000), |s| {
                segs.push(s.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 3);
        let lens: Vec<usize> = segs.iter().map(|s| s.len() - 66).collect();
        assert_eq!(lens, vec![1000, 1000, 500]);
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(u16::from_be_bytes([s[16], s[17]]) as usize, s.len() - 14);
            assert_eq!(u16::from_be_bytes([s[18], s[19]]), 0x1234 + i as u16);
            let seq = u32::from_be_bytes(s[38..42].try_into().unwrap());
            assert_eq!(seq, 0xfffff000u32.wrapping_add(1000 * i as u32));
            let flags = s[47];
            assert_eq!(flags & 0x10, 0x10, "ACK everywhere");
            assert_eq!(flags & 0x09 != 0, i == 2, "FIN/PSH on the last only");
            assert_eq!(flags & 0x80 != 0, i == 0, "CWR on the first only");
            assert_eq!(&s[66..], &f[66 + 1000 * i..66 + 1000 * i + lens[i]]);
        }
    }

    #[test]
    fn bad_requests_are_errors() {
        let f = tcp_super_frame(false, 500, 0x10);
        let mut seg = Segmenter::new();
        let ok = |_: &[u8]| Ok(());
        assert_eq!(
            seg.segment_frame(&f, req(true, 100), ok),
            Err(TxError::BadOffload(OffloadError::TypeMismatch))
        );
        assert_eq!(
            seg.segment_frame(&f, req(false, 10), ok),
            Err(TxError::BadOffload(OffloadError::BadGsoSize))
        );
        assert_eq!(
            seg.segment_frame(&f[..40], req(false, 100), ok),
            Err(TxError::BadOffload(OffloadError::Malformed))
        );
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(
            seg.segment_frame(&arp, req(false, 100), ok),
            Err(TxError::BadOffload(OffloadError::NotTcpUdp))
        );
        // emit's error stops the walk.
        let mut calls = 0;
        assert_eq!(
            seg.segment_frame(&f, req(false, 100), |_| {
                calls += 1;
                Err(TxError::RingFull)
            }),
            Err(TxError::RingFull)
        );
        assert_eq!(calls, 1);
    }

    #[test]
    fn prepare_offload_derives_the_header_from_the_frame() {
        let mut f = tcp_super_frame(true, 3000, 0x18);
        let len = f.len();
        let mut r = req(true, 1400);
        r.csum_start = 9999; // the sender's claims are ignored
        r.hdr_len = 1;
        let h = prepare_offload(&mut f, len, r).unwrap();
        assert_eq!(
            h,
            VnetHdr {
                flags: VnetHdr::F_NEEDS_CSUM,
                gso_type: VnetHdr::GSO_TCPV6,
                hdr_len: 86,
                gso_size: 1400,
                csum_start: 54,
                csum_offset: 16,
            }
        );
        assert_eq!(
            prepare_offload(&mut f, len, VnetHdr::default()),
            Ok(VnetHdr::default())
        );
        assert_eq!(
            prepare_offload(&mut f, len, req(false, 1400)),
            Err(OffloadError::TypeMismatch)
        );
    }

    /// A UDP/IPv4 super-frame (USO) with `payload` bytes.
    fn udp_super_frame(payload: usize) -> Vec<u8> {
        let mut f = vec![
            0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0,
        ];
        f.extend_from_slice(&((28 + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 9, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
        f.extend_from_slice(&[0x13, 0x88, 0x00, 0x35]);
        f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend((0..payload).map(|i| (i * 7 % 256) as u8));
        set_ip_checksum(&mut f);
        f
    }

    /// Checks one segment with etherparse (an independent implementation): IPv4
    /// header checksum, TCP/UDP checksum. Returns (seq or 0, flags or 0, ip id,
    /// payload).
    fn check_segment(seg: &[u8]) -> (u32, u8, u16, Vec<u8>) {
        use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
        let p = PacketHeaders::from_ethernet_slice(seg).expect("segment parses");
        let payload = p.payload.slice().to_vec();
        let (id, src4, src6) = match p.net.as_ref().expect("IP") {
            NetHeaders::Ipv4(h, _) => {
                assert_eq!(
                    h.header_checksum,
                    h.calc_header_checksum(),
                    "IPv4 header checksum"
                );
                (h.identification, Some(h), None)
            }
            NetHeaders::Ipv6(h, _) => (0, None, Some(h)),
            NetHeaders::Arp(_) => panic!("ARP"),
        };
        match p.transport.expect("L4") {
            TransportHeader::Tcp(t) => {
                let want = match (src4, src6) {
                    (Some(h), _) => t.calc_checksum_ipv4(h, &payload).unwrap(),
                    (_, Some(h)) => t.calc_checksum_ipv6(h, &payload).unwrap(),
                    _ => unreachable!(),
                };
                assert_eq!(t.checksum, want, "TCP checksum");
                let flags = seg[seg.len() - payload.len() - t.header_len() + 13];
                (t.sequence_number, flags, id, payload)
            }
            TransportHeader::Udp(u) => {
                let want = match (src4, src6) {
                    (Some(h), _) => u.calc_checksum_ipv4(h, &payload).unwrap(),
                    (_, Some(h)) => u.calc_checksum_ipv6(h, &payload).unwrap(),
                    _ => unreachable!(),
                };
                assert_eq!(u.checksum, want, "UDP checksum");
                assert_eq!(usize::from(u.length), 8 + payload.len());
                (0, 0, id, payload)
            }
            _ => panic!("not TCP/UDP"),
        }
    }

    #[test]
    fn udp_segmentation_gives_one_datagram_per_segment() {
        let f = udp_super_frame(3000);
        let r = VnetHdr {
            gso_type: VnetHdr::GSO_UDP_L4,
            gso_size: 1200,
            ..VnetHdr::default()
        };
        let mut out = Vec::new();
        Segmenter::new()
            .segment_frame(&f, r, |s| {
                out.push(check_segment(s));
                Ok(())
            })
            .unwrap();
        let lens: Vec<usize> = out.iter().map(|o| o.3.len()).collect();
        assert_eq!(lens, vec![1200, 1200, 600]);
        let ids: Vec<u16> = out.iter().map(|o| o.2).collect();
        assert_eq!(ids, vec![9, 10, 11]);
        let joined: Vec<u8> = out.into_iter().flat_map(|o| o.3).collect();
        assert_eq!(joined, f[42..]);
    }

    #[test]
    fn the_pseudo_header_sum_completes_to_a_valid_checksum() {
        for ipv6 in [false, true] {
            let mut f = tcp_super_frame(ipv6, 777, 0x18);
            let len = f.len();
            let h = prepare_offload(&mut f, len, req(ipv6, 1000)).unwrap();
            // What the receiving end (a NIC, the kernel) does with NEEDS_CSUM.
            let start = usize::from(h.csum_start);
            let at = start + usize::from(h.csum_offset);
            let c = !fold(sum_words(0, &f[start..]));
            f[at..at + 2].copy_from_slice(&c.to_be_bytes());
            check_segment(&f);
        }
        let mut u = udp_super_frame(100);
        let len = u.len();
        let csum_only = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            ..VnetHdr::default()
        };
        let h = prepare_offload(&mut u, len, csum_only).unwrap();
        assert_eq!((h.gso_type, h.csum_start, h.csum_offset), (0, 34, 6));
        let c = !fold(sum_words(0, &u[34..]));
        u[40..42].copy_from_slice(&c.to_be_bytes());
        check_segment(&u);
    }

    #[test]
    fn tagged_super_frames_keep_their_tag_in_every_segment() {
        let f = tcp_super_frame(false, 3000, 0x18);
        let tag = VlanTag::dot1q(10, 3);
        let mut segs = Vec::new();
        Segmenter::new()
            .segment(&f[..12], Some(tag), &f[12..], req(false, 1448), |s| {
                segs.push(s.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(segs.len(), 3);
        for s in &segs {
            assert_eq!(&s[12..16], &tag.to_bytes());
            check_segment(s);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

        /// Random payload sizes, MSS and flags: the segments reassemble to the
        /// payload, each carries at most MSS bytes (all but the last exactly MSS),
        /// checksums verify independently, sequence numbers are contiguous and
        /// FIN/PSH appear on the last segment only, CWR on the first only.
        #[test]
        fn segments_reassemble_and_verify(
            ipv6 in proptest::bool::ANY,
            payload in 0usize..20_000,
            mss in MIN_GSO_SIZE..9_000u16,
            flags in proptest::num::u8::ANY,
            tagged in proptest::bool::ANY,
        ) {
            let f = tcp_super_frame(ipv6, payload, flags);
            let tag = tagged.then(|| VlanTag::dot1q(20, 0));
            let mut out = Vec::new();
            let n = Segmenter::new()
                .segment(&f[..12], tag, &f[12..], req(ipv6, mss), |s| {
                    assert!(s.len() <= f.len() + 4);
                    out.push(check_segment(s));
                    Ok(())
                })
                .unwrap();
            let mss = usize::from(mss);
            proptest::prop_assert_eq!(n, payload.div_ceil(mss).max(1));
            proptest::prop_assert_eq!(out.len(), n);
            let mut seq = 0xfffff000u32;
            let mut joined = Vec::new();
            for (i, (s, fl, id, p)) in out.iter().enumerate() {
                let last = i + 1 == n;
                proptest::prop_assert!(p.len() <= mss);
                if !last {
                    proptest::prop_assert_eq!(p.len(), mss);
                }
                proptest::prop_assert_eq!(*s, seq);
                seq = seq.wrapping_add(p.len() as u32);
                proptest::prop_assert_eq!(fl & 0x09, if last { flags & 0x09 } else { 0 });
                proptest::prop_assert_eq!(fl & 0x80, if i == 0 { flags & 0x80 } else { 0 });
                proptest::prop_assert_eq!(fl & 0x76, flags & 0x76);
                if !ipv6 {
                    proptest::prop_assert_eq!(*id, 0x1234u16.wrapping_add(i as u16));
                }
                joined.extend_from_slice(p);
            }
            let hlen = if ipv6 { 86 } else { 66 };
            proptest::prop_assert_eq!(&joined[..], &f[hlen..]);
        }

        /// Whatever the bytes and the request: no panic, and any segment emitted is
        /// within hdr_len + gso_size.
        #[test]
        fn arbitrary_input_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            gso_type in proptest::num::u8::ANY,
            gso_size in proptest::num::u16::ANY,
            flags in proptest::num::u8::ANY,
        ) {
            let r = VnetHdr { flags, gso_type, gso_size, ..VnetHdr::default() };
            let mut seg = Segmenter::new();
            let _ = seg.segment_frame(&bytes, r, |s| {
                assert!(s.len() <= MAX_HEADERS + usize::from(gso_size));
                Ok(())
            });
            let mut b = bytes.clone();
            let len = b.len();
            let _ = prepare_offload(&mut b, len, r);
            let _ = l4_layout(&bytes, bytes.len());
        }
    }
}
