//! Frame views shared by every backend: [`VlanTag`], [`VnetHdr`], [`RxFrame`],
//! [`RxBatch`] and the byte layout used when a frame is queued for sending.
//!
//! Invariants:
//! - A [`RxBatch`] is a base byte slice plus a slice of descriptors; every descriptor
//!   lies inside the base slice (the backend that builds the batch guarantees it), so
//!   [`RxBatch::get`] never slices out of bounds for an index below [`RxBatch::len`].
//! - A frame handed to a [`crate::TxQueue`] is laid out as `head`, then the 4-byte tag
//!   (`tpid`, `tci`, both big-endian) when a tag is given, then `body`
//!   ([`write_frame`]).

use std::iter::FusedIterator;

/// Length of an Ethernet header without VLAN tags (destination, source, ethertype).
pub const ETH_HLEN: usize = 14;
/// Length of one 802.1Q/802.1ad tag on the wire.
pub const VLAN_HLEN: usize = 4;

/// An 802.1Q/802.1ad tag as recovered from packet metadata (or parsed in-band by the
/// caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// Tag protocol identifier (0x8100 for 802.1Q, 0x88a8 for 802.1ad).
    pub tpid: u16,
    /// Tag control information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    pub tci: u16,
}

impl VlanTag {
    /// TPID of an 802.1Q customer tag.
    pub const TPID_8021Q: u16 = 0x8100;
    /// TPID of an 802.1ad service tag.
    pub const TPID_8021AD: u16 = 0x88a8;

    /// An 802.1Q tag with the given VLAN id (low 12 bits used) and priority (low 3 bits).
    pub fn dot1q(vid: u16, pcp: u8) -> VlanTag {
        VlanTag {
            tpid: Self::TPID_8021Q,
            tci: (u16::from(pcp & 0x7) << 13) | (vid & 0x0fff),
        }
    }

    /// The VLAN id (low 12 bits of the TCI).
    pub fn vid(self) -> u16 {
        self.tci & 0x0fff
    }

    /// The priority code point (top 3 bits of the TCI).
    pub fn pcp(self) -> u8 {
        (self.tci >> 13) as u8
    }

    /// The tag as it appears on the wire: TPID then TCI, big-endian.
    pub fn to_bytes(self) -> [u8; VLAN_HLEN] {
        let [a, b] = self.tpid.to_be_bytes();
        let [c, d] = self.tci.to_be_bytes();
        [a, b, c, d]
    }
}

/// One received frame. `tag` is `Some` when the kernel stripped an outer VLAN tag into
/// metadata (AF_PACKET on veth does this); the tag is then absent from `data`. `data`
/// starts at the destination MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFrame<'a> {
    /// The frame bytes from the destination MAC on (no FCS).
    pub data: &'a [u8],
    /// The outer VLAN tag the kernel removed from `data`, if any.
    pub tag: Option<VlanTag>,
    /// The TCP/UDP checksum is not filled in yet (`TP_STATUS_CSUMNOTREADY`: the
    /// sender offloaded it). Send copies with [`TxOptions::complete_checksum`].
    pub csum_partial: bool,
    /// The virtio-net header the kernel delivered with the frame, when the port
    /// receives them (AF_PACKET with `PACKET_VNET_HDR`): a GSO super-frame's
    /// segmentation request and/or a partial checksum. Pass it on with
    /// [`TxOptions::offload`]. Its offsets are the sender's claims, not checked.
    pub vnet: Option<VnetHdr>,
    /// A tunnel port ([`crate::vxlan`]): the address the datagram came from; `data`
    /// is the UDP payload (tunnel header, then the inner frame). `None` elsewhere.
    pub peer: Option<std::net::IpAddr>,
}

impl RxFrame<'_> {
    /// Whether the frame is a GSO super-frame (to be cut into segments of
    /// `gso_size` payload bytes before it reaches a wire or a stack that cannot take
    /// it whole).
    pub fn is_gso(&self) -> bool {
        self.vnet.is_some_and(VnetHdr::is_gso)
    }
}

/// `struct virtio_net_hdr` (10 bytes, the legacy layout in host byte order, as
/// AF_PACKET's `PACKET_VNET_HDR` and TAP's `IFF_VNET_HDR` use it): the offloads a
/// frame still needs, carried beside the frame bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VnetHdr {
    /// [`VnetHdr::F_NEEDS_CSUM`], [`VnetHdr::F_DATA_VALID`].
    pub flags: u8,
    /// [`VnetHdr::GSO_NONE`], [`VnetHdr::GSO_TCPV4`], [`VnetHdr::GSO_TCPV6`],
    /// [`VnetHdr::GSO_UDP_L4`] (or [`VnetHdr::GSO_UDP`]), possibly with
    /// [`VnetHdr::GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers (Ethernet to the end of TCP/UDP) of a GSO frame.
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS for TCP).
    pub gso_size: u16,
    /// Where checksumming starts (the L4 header), from the destination MAC.
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum is stored.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Size on the wire of the header (`sizeof(struct virtio_net_hdr)`).
    pub const LEN: usize = 10;
    /// The L4 checksum is partial: sum from `csum_start`, store at `csum_offset`.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// The checksum was verified already (receive side only).
    pub const F_DATA_VALID: u8 = 2;
    /// Not a GSO frame.
    pub const GSO_NONE: u8 = 0;
    /// TCP over IPv4 segmentation.
    pub const GSO_TCPV4: u8 = 1;
    /// UDP fragmentation (UFO, obsolete: refused).
    pub const GSO_UDP: u8 = 3;
    /// TCP over IPv6 segmentation.
    pub const GSO_TCPV6: u8 = 4;
    /// UDP segmentation (USO: one datagram per segment).
    pub const GSO_UDP_L4: u8 = 5;
    /// Flag bit: the TCP sender set ECN's CWR (kept on the first segment only).
    pub const GSO_ECN: u8 = 0x80;

    /// Reads a header from the first [`VnetHdr::LEN`] bytes of `b`.
    pub fn from_bytes(b: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; Self::LEN] = b.get(..Self::LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// The header as the kernel reads it.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// The segmentation type without the ECN bit.
    pub fn gso_kind(self) -> u8 {
        self.gso_type & !Self::GSO_ECN
    }

    /// Whether the frame is to be segmented.
    pub fn is_gso(self) -> bool {
        self.gso_kind() != Self::GSO_NONE
    }

    /// Whether the L4 checksum is left partial.
    pub fn needs_csum(self) -> bool {
        self.flags & Self::F_NEEDS_CSUM != 0
    }

    /// Whether the frame needs anything done (segmentation or a checksum).
    pub fn needs_work(self) -> bool {
        self.is_gso() || self.needs_csum()
    }
}

/// Where one frame of a batch lies in the batch's base slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameDesc {
    pub(crate) offset: u32,
    pub(crate) len: u32,
    pub(crate) tag: Option<VlanTag>,
    pub(crate) csum_partial: bool,
    pub(crate) vnet: Option<VnetHdr>,
    /// The datagram's sender (tunnel ports only).
    pub(crate) peer: Option<std::net::IpAddr>,
}

impl FrameDesc {
    fn end(self) -> usize {
        self.offset as usize + self.len as usize
    }
}

/// Frames handed over by one [`crate::RxQueue::recv`] call; valid until the next `recv`
/// on that queue (the borrow checker enforces it). Cheap to copy and to iterate more
/// than once.
#[derive(Clone, Copy, Debug)]
pub struct RxBatch<'a> {
    base: &'a [u8],
    descs: &'a [FrameDesc],
}

impl<'a> RxBatch<'a> {
    /// A batch without frames.
    pub fn empty() -> RxBatch<'a> {
        RxBatch {
            base: &[],
            descs: &[],
        }
    }

    /// Builds a batch; every descriptor must lie inside `base`.
    pub(crate) fn new(base: &'a [u8], descs: &'a [FrameDesc]) -> RxBatch<'a> {
        debug_assert!(descs.iter().all(|d| d.end() <= base.len()));
        RxBatch { base, descs }
    }

    /// Number of frames in the batch.
    pub fn len(&self) -> usize {
        self.descs.len()
    }

    /// Whether the batch holds no frame.
    pub fn is_empty(&self) -> bool {
        self.descs.is_empty()
    }

    /// The `i`-th frame.
    ///
    /// # Panics
    /// If `i >= self.len()` (like slice indexing).
    pub fn get(&self, i: usize) -> RxFrame<'a> {
        frame_at(self.base, self.descs[i])
    }

    /// Iterates the frames in arrival order.
    pub fn iter(&self) -> RxBatchIter<'a> {
        RxBatchIter {
            base: self.base,
            descs: self.descs.iter(),
        }
    }
}

impl<'a> IntoIterator for RxBatch<'a> {
    type Item = RxFrame<'a>;
    type IntoIter = RxBatchIter<'a>;
    fn into_iter(self) -> RxBatchIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &RxBatch<'a> {
    type Item = RxFrame<'a>;
    type IntoIter = RxBatchIter<'a>;
    fn into_iter(self) -> RxBatchIter<'a> {
        self.iter()
    }
}

fn frame_at(base: &[u8], d: FrameDesc) -> RxFrame<'_> {
    RxFrame {
        data: &base[d.offset as usize..d.end()],
        tag: d.tag,
        csum_partial: d.csum_partial,
        vnet: d.vnet,
        peer: d.peer,
    }
}

/// Iterator over the frames of an [`RxBatch`].
#[derive(Clone, Debug)]
pub struct RxBatchIter<'a> {
    base: &'a [u8],
    descs: std::slice::Iter<'a, FrameDesc>,
}

impl<'a> Iterator for RxBatchIter<'a> {
    type Item = RxFrame<'a>;
    fn next(&mut self) -> Option<RxFrame<'a>> {
        self.descs.next().map(|d| frame_at(self.base, *d))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.descs.size_hint()
    }
}

impl DoubleEndedIterator for RxBatchIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.descs.next_back().map(|d| frame_at(self.base, *d))
    }
}

impl ExactSizeIterator for RxBatchIter<'_> {}
impl FusedIterator for RxBatchIter<'_> {}

/// Length on the wire of `head`, the optional tag and `body`.
pub(crate) fn frame_len(head: &[u8], tag: Option<VlanTag>, body: &[u8]) -> usize {
    head.len() + if tag.is_some() { VLAN_HLEN } else { 0 } + body.len()
}

/// Writes `head`, the tag (if any) and `body` to the start of `dst`; returns the number
/// of bytes written, or `None` (writing nothing) when `dst` is too short.
pub(crate) fn write_frame(
    dst: &mut [u8],
    head: &[u8],
    tag: Option<VlanTag>,
    body: &[u8],
) -> Option<usize> {
    let total = frame_len(head, tag, body);
    let dst = dst.get_mut(..total)?;
    let (h, rest) = dst.split_at_mut(head.len());
    h.copy_from_slice(head);
    let rest = match tag {
        Some(t) => {
            let (t_bytes, rest) = rest.split_at_mut(VLAN_HLEN);
            t_bytes.copy_from_slice(&t.to_bytes());
            rest
        }
        None => rest,
    };
    rest.copy_from_slice(body);
    Some(total)
}

/// Whether the frame's outer ethertype is 802.1Q (0x8100): the kernel lets such frames
/// exceed MTU + Ethernet header by one tag (`packet_extra_vlan_len_allowed`); other
/// frames, 802.1ad-tagged ones included, get no extra room.
pub(crate) fn outer_is_tagged(tag: Option<VlanTag>, body: &[u8]) -> bool {
    match tag {
        Some(t) => t.tpid == VlanTag::TPID_8021Q,
        None => matches!(body, [0x81, 0x00, ..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    #[test]
    fn untagged_frame_is_head_then_body() {
        let mut buf = [0xffu8; 32];
        let n = write_frame(&mut buf, &HEAD, None, &[0x08, 0x00, 0xaa]).unwrap();
        assert_eq!(n, 15);
        assert_eq!(&buf[..12], &HEAD);
        assert_eq!(&buf[12..15], &[0x08, 0x00, 0xaa]);
        assert_eq!(buf[15], 0xff, "nothing written past the frame");
    }

    #[test]
    fn tag_is_inserted_after_the_addresses() {
        let mut buf = [0u8; 32];
        let tag = VlanTag::dot1q(10, 5);
        assert_eq!(tag.tci, 0xa00a);
        let n = write_frame(&mut buf, &HEAD, Some(tag), &[0x08, 0x06, 0xbb]).unwrap();
        assert_eq!(n, 19);
        assert_eq!(&buf[..12], &HEAD);
        assert_eq!(&buf[12..16], &[0x81, 0x00, 0xa0, 0x0a]);
        assert_eq!(&buf[16..19], &[0x08, 0x06, 0xbb]);
    }

    #[test]
    fn qinq_tag_bytes() {
        let t = VlanTag {
            tpid: 0x88a8,
            tci: 0x0123,
        };
        assert_eq!(t.to_bytes(), [0x88, 0xa8, 0x01, 0x23]);
        assert_eq!(t.vid(), 0x123);
        assert_eq!(t.pcp(), 0);
    }

    #[test]
    fn too_short_destination_writes_nothing() {
        let mut buf = [0u8; 18];
        assert_eq!(
            write_frame(&mut buf, &HEAD, Some(VlanTag::dot1q(1, 0)), &[1, 2, 3]),
            None
        );
        assert_eq!(buf, [0u8; 18]);
        assert_eq!(frame_len(&HEAD, Some(VlanTag::dot1q(1, 0)), &[1, 2, 3]), 19);
    }

    #[test]
    fn outer_tag_detection() {
        assert!(outer_is_tagged(Some(VlanTag::dot1q(1, 0)), &[8, 0]));
        assert!(outer_is_tagged(None, &[0x81, 0x00, 0, 1, 8, 0]));
        assert!(!outer_is_tagged(None, &[0x88, 0xa8, 0, 1]));
        let stag = VlanTag {
            tpid: VlanTag::TPID_8021AD,
            tci: 1,
        };
        assert!(!outer_is_tagged(Some(stag), &[0x81, 0x00]));
        assert!(!outer_is_tagged(None, &[0x08, 0x00]));
        assert!(!outer_is_tagged(None, &[0x81]));
    }

    #[test]
    fn batch_views_and_iteration() {
        let base = b"aaaabbbbbbcc";
        let descs = [
            FrameDesc {
                offset: 0,
                len: 4,
                tag: None,
                csum_partial: false,
                vnet: None,
                peer: None,
            },
            FrameDesc {
                offset: 4,
                len: 6,
                tag: Some(VlanTag::dot1q(7, 0)),
                csum_partial: false,
                vnet: None,
                peer: None,
            },
            FrameDesc {
                offset: 10,
                len: 2,
                tag: None,
                csum_partial: false,
                vnet: None,
                peer: None,
            },
        ];
        let batch = RxBatch::new(base, &descs);
        assert_eq!(batch.len(), 3);
        assert!(!batch.is_empty());
        assert_eq!(batch.get(1).data, b"bbbbbb");
        assert_eq!(batch.get(1).tag.map(VlanTag::vid), Some(7));
        let it = batch.iter();
        let mut again = it.clone();
        assert_eq!(it.len(), 3);
        let datas: Vec<&[u8]> = it.map(|f| f.data).collect();
        assert_eq!(datas, vec![&b"aaaa"[..], b"bbbbbb", b"cc"]);
        assert_eq!(again.next_back().unwrap().data, b"cc");
        assert_eq!((&batch).into_iter().count(), 3);
        assert!(RxBatch::empty().is_empty());
        assert_eq!(RxBatch::empty().iter().next(), None);
    }
}

/// Options for one queued copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOptions {
    /// Fill in the TCP or UDP checksum of the copy. For frames received with a
    /// partial checksum ([`RxFrame::csum_partial`]): their sender left the checksum
    /// to the NIC (TX checksum offload on a veth or TAP), and a frame sent on through
    /// an AF_PACKET socket or a TAP would otherwise arrive with a wrong one.
    pub complete_checksum: bool,
    /// The offloads the frame still needs, as received ([`RxFrame::vnet`]): a port
    /// that takes virtio-net headers gets the frame whole with a header the backend
    /// derives from the frame's own headers (the received offsets are not trusted);
    /// any other port gets it segmented ([`crate::gso`]) and/or checksummed in
    /// software. `None` or a header asking for nothing: a plain frame.
    pub offload: Option<VnetHdr>,
    /// A tunnel port ([`crate::vxlan`]) only: where the copy goes and the tunnel
    /// header it goes behind. Other ports ignore it.
    pub tunnel: Option<Tunnel>,
}

/// A copy's tunnel: the remote endpoint's UDP address and the header (the data
/// plane's, `wire::vxlan::header`) put in front of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub remote: std::net::SocketAddr,
    pub header: [u8; 8],
}

/// RFC 1071 one's-complement sum of `data`, added to `sum`.
fn ones_sum(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Computes and writes the TCP or UDP checksum (RFC 793, RFC 768, RFC 8200 §8.1) of
/// an Ethernet frame carrying IPv4 or IPv6 (no extension headers), with at most one
/// VLAN tag. Returns false — and changes nothing — for anything else or anything
/// that does not fit. Never panics.
pub fn complete_l4_checksum(frame: &mut [u8]) -> bool {
    let be16 = |b: &[u8], at: usize| b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]));
    let Some(mut ethertype) = be16(frame, 12) else {
        return false;
    };
    let mut l3 = 14;
    if ethertype == 0x8100 || ethertype == 0x88a8 {
        let Some(inner) = be16(frame, 16) else {
            return false;
        };
        ethertype = inner;
        l3 = 18;
    }
    let (proto, l4, l4_len, pseudo) = match ethertype {
        0x0800 => {
            let Some(&vihl) = frame.get(l3) else {
                return false;
            };
            let ihl = usize::from(vihl & 0x0f) * 4;
            let (Some(total), Some(frag)) = (be16(frame, l3 + 2), be16(frame, l3 + 6)) else {
                return false;
            };
            if vihl >> 4 != 4 || ihl < 20 || frag & 0x3fff != 0 || usize::from(total) < ihl {
                return false;
            }
            let Some(addrs) = frame.get(l3 + 12..l3 + 20) else {
                return false;
            };
            let Some(&proto) = frame.get(l3 + 9) else {
                return false;
            };
            let l4_len = usize::from(total) - ihl;
            let sum = ones_sum(u32::from(proto) + l4_len as u32, addrs);
            (proto, l3 + ihl, l4_len, sum)
        }
        0x86dd => {
            let (Some(plen), Some(&proto)) = (be16(frame, l3 + 4), frame.get(l3 + 6)) else {
                return false;
            };
            let Some(addrs) = frame.get(l3 + 8..l3 + 40) else {
                return false;
            };
            let l4_len = usize::from(plen);
            let sum = ones_sum(u32::from(proto) + l4_len as u32, addrs);
            (proto, l3 + 40, l4_len, sum)
        }
        _ => return false,
    };
    let field = match proto {
        6 if l4_len >= 20 => l4 + 16,
        17 if l4_len >= 8 => l4 + 6,
        _ => return false,
    };
    if frame.len() < l4 + l4_len {
        return false;
    }
    frame[field] = 0;
    frame[field + 1] = 0;
    let mut c = fold(ones_sum(pseudo, &frame[l4..l4 + l4_len]));
    if proto == 17 && c == 0 {
        c = 0xffff; // RFC 768: a computed 0 is sent as all ones
    }
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod checksum_tests {
    use super::*;

    /// A UDP/IPv4 frame as a sender with checksum offload hands it over: the field
    /// holds only the pseudo-header sum.
    fn udp_frame(tagged: bool) -> (Vec<u8>, u16) {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        if tagged {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let payload = b"portcullis!";
        let udp_len = 8 + payload.len() as u16;
        let total = 20 + udp_len;
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            17,
            0,
            0,
            198,
            18,
            0,
            1,
            198,
            18,
            0,
            2,
        ];
        let c = fold(ones_sum(0, &ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[
            0x13,
            0x88,
            0x00,
            0x09,
            (udp_len >> 8) as u8,
            udp_len as u8,
            0xab,
            0xcd,
        ]);
        f.extend_from_slice(payload);
        // The right checksum, computed the long way for comparison.
        let mut pseudo = vec![
            198,
            18,
            0,
            1,
            198,
            18,
            0,
            2,
            0,
            17,
            (udp_len >> 8) as u8,
            udp_len as u8,
        ];
        let l4 = f.len() - udp_len as usize;
        let mut seg = f[l4..].to_vec();
        seg[6] = 0;
        seg[7] = 0;
        pseudo.extend_from_slice(&seg);
        (f, fold(ones_sum(0, &pseudo)))
    }

    #[test]
    fn fills_in_udp_checksums_tagged_or_not() {
        for tagged in [false, true] {
            let (mut f, want) = udp_frame(tagged);
            assert!(complete_l4_checksum(&mut f));
            let at = f.len() - 11 - 2;
            assert_eq!(u16::from_be_bytes([f[at], f[at + 1]]), want);
        }
    }

    #[test]
    fn refuses_what_it_cannot_do_and_never_panics() {
        let (f, _) = udp_frame(false);
        for cut in 0..f.len() {
            let mut g = f[..cut].to_vec();
            let before = g.clone();
            if !complete_l4_checksum(&mut g) {
                assert_eq!(g, before, "unchanged when refused");
            }
        }
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.resize(60, 0);
        assert!(!complete_l4_checksum(&mut arp));
    }
}
