//! A tunnel port: the overlay's UDP socket on the underlay (VXLAN, RFC 7348 §5).
//!
//! - Receiving: each datagram becomes one frame whose bytes are the UDP payload (the
//!   tunnel header, then the inner frame) and whose [`RxFrame::peer`](crate::RxFrame)
//!   is the sender's address; the data plane checks both. `recvmmsg(2)` takes a
//!   batch per call; a datagram larger than a slot is skipped and counted.
//! - Sending: each copy pushed with [`TxOptions::tunnel`] is one datagram — the
//!   header the data plane gave, then the frame — to its remote endpoint. A GSO
//!   super-frame is cut into segments in software *before* encapsulation (each
//!   segment its own datagram, checksums complete), and a partial checksum is
//!   completed: nothing inside a tunnel relies on an offload. Consecutive datagrams
//!   of equal size to one endpoint (a super-frame's segments) leave in one
//!   `sendmsg` with `UDP_SEGMENT` (the kernel's UDP GSO cuts them again, in the
//!   driver or in software); the rest leave by `sendmmsg(2)`.
//! - Size: the socket refuses a datagram above the underlay's path MTU (`EMSGSIZE`,
//!   counted as too big) unless the port was opened with `fragment`, where the
//!   kernel fragments it (IP_PMTUDISC_DONT).
//!
//! Invariants: a push never blocks and never allocates once the queue has grown
//! (the arena and descriptors are allocated at open); a full queue is flushed to
//! the kernel first, never dropped silently; failures are counted in [`TxStats`].

use crate::frame::{
    FrameDesc, RxBatch, TxOptions, VlanTag, VnetHdr, complete_l4_checksum, write_frame,
};
use crate::gso::{Segmenter, SoftwareOffload};
use crate::{IoError, RxLosses, RxQueue, TxError, TxQueue, TxStats};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

/// Receive buffers per `recv` (each a datagram, or a train of them through UDP GRO).
pub const RX_BATCH: usize = 32;
/// A receive buffer: a train of datagrams the kernel coalesced (UDP GRO), at most
/// 64 KiB, or one datagram (jumbo frames and their header fit).
pub const RX_SLOT: usize = 64 * 1024;
/// The largest single datagram sent (larger copies are refused as too big).
pub const TX_DATAGRAM_MAX: usize = 16 * 1024;
/// `UDP_GRO` (linux/udp.h).
const UDP_GRO: libc::c_int = 104;
/// Bytes of datagrams queued before a push flushes them to the kernel.
const TX_ARENA: usize = 4 * 1024 * 1024;
/// Datagrams queued before a push flushes them.
const TX_DATAGRAMS: usize = 2048;
/// The most datagrams in one UDP GSO send (the kernel's UDP_MAX_SEGMENTS is 64 or
/// more) and the most bytes (a UDP datagram's limit).
const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_BYTES: usize = 65_000;
/// `UDP_SEGMENT` (linux/udp.h), not in every libc release.
const UDP_SEGMENT: libc::c_int = 103;

/// How to open a tunnel port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanOptions {
    /// The local endpoint: address and UDP port (4789).
    pub local: SocketAddr,
    /// Send and receive on this underlay interface only (`SO_BINDTODEVICE`).
    pub interface: Option<String>,
    /// Let the kernel fragment datagrams above the path MTU (else they are refused
    /// and counted as too big).
    pub fragment: bool,
}

/// The receiving side of a tunnel port.
pub struct VxlanRx {
    sock: Arc<UdpSocket>,
    buf: Box<[u8]>,
    names: Box<[libc::sockaddr_storage]>,
    descs: Vec<FrameDesc>,
    truncated: u64,
    /// The control messages of each buffer (the UDP GRO segment size).
    cmsgs: Box<[[u64; 8]]>,
    /// Trains of TCP segments merged back into super-frames.
    pub merged: u64,
}

/// The sending side of a tunnel port.
pub struct VxlanTx {
    sock: Arc<UdpSocket>,
    arena: Vec<u8>,
    pending: Vec<(u32, u32, SocketAddr)>,
    /// The tunnel of the copy being pushed (read by `push_plain_frame`).
    current: Option<crate::frame::Tunnel>,
    segmenter: Segmenter,
    stats: TxStats,
    gso: bool,
    label: String,
}

impl std::fmt::Debug for VxlanRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VxlanRx").finish_non_exhaustive()
    }
}
impl std::fmt::Debug for VxlanTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VxlanTx")
            .field("label", &self.label)
            .finish()
    }
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> bool {
    // SAFETY: passes a pointer to a live c_int and its size; the kernel reads it
    // during the call only.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Opens the tunnel port: a UDP socket bound to `opts.local` (and its interface).
pub fn open_vxlan(opts: &VxlanOptions) -> Result<(VxlanRx, VxlanTx), IoError> {
    let label = format!(
        "vxlan {}{}",
        opts.local,
        opts.interface
            .as_deref()
            .map_or(String::new(), |i| format!(" on {i}"))
    );
    let sock = UdpSocket::bind(opts.local).map_err(|e| IoError::os(&label, "bind(udp)", e))?;
    sock.set_nonblocking(true)
        .map_err(|e| IoError::os(&label, "fcntl(O_NONBLOCK)", e))?;
    let fd = sock.as_raw_fd();
    if let Some(ifname) = &opts.interface {
        let name = ifname.as_bytes();
        // SAFETY: passes the name's bytes and their length; the kernel copies them
        // during the call.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(IoError::last_os(&label, "setsockopt(SO_BINDTODEVICE)"));
        }
    }
    // Room for bursts (privileged first; else what the sysctl limits allow).
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if !setsockopt_int(fd, libc::SOL_SOCKET, force, 8 << 20) {
            let _ = setsockopt_int(fd, libc::SOL_SOCKET, plain, 8 << 20);
        }
    }
    let pmtu = if opts.fragment {
        libc::IP_PMTUDISC_DONT
    } else {
        libc::IP_PMTUDISC_DO
    };
    let ok = match opts.local {
        SocketAddr::V4(_) => setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, pmtu),
        SocketAddr::V6(_) => setsockopt_int(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            if opts.fragment {
                libc::IPV6_PMTUDISC_DONT
            } else {
                libc::IPV6_PMTUDISC_DO
            },
        ),
    };
    if !ok {
        return Err(IoError::last_os(&label, "setsockopt(IP_MTU_DISCOVER)"));
    }
    let sock = Arc::new(sock);
    let rx = VxlanRx {
        sock: sock.clone(),
        buf: vec![0; RX_BATCH * RX_SLOT].into(),
        // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
        names: vec![unsafe { std::mem::zeroed::<libc::sockaddr_storage>() }; RX_BATCH].into(),
        descs: Vec::with_capacity(RX_BATCH * 64),
        truncated: 0,
        cmsgs: vec![[0u64; 8]; RX_BATCH].into(),
        merged: 0,
    };
    // Trains of datagrams from one sender arrive as one buffer (the kernel's UDP
    // GRO), cut apart — and TCP segments merged back — in `recv`. Optional: without
    // it every datagram is its own buffer.
    let _ = setsockopt_int(rx.sock.as_raw_fd(), libc::SOL_UDP, UDP_GRO, 1);
    let tx = VxlanTx {
        sock,
        arena: Vec::with_capacity(TX_ARENA),
        pending: Vec::with_capacity(TX_DATAGRAMS),
        current: None,
        segmenter: Segmenter::new(),
        stats: TxStats::default(),
        gso: true,
        label,
    };
    Ok((rx, tx))
}

impl VxlanRx {
    /// The address the socket is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sock.local_addr()
    }
}

/// The IP address of a socket address the kernel filled in.
fn peer_ip(ss: &libc::sockaddr_storage) -> Option<IpAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which is
            // smaller than sockaddr_storage and has no stricter alignment.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::from(
                u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let v6 = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            // A v4-mapped sender on a dual-stack socket is its IPv4 address.
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

impl RxQueue for VxlanRx {
    fn fd(&self) -> Option<RawFd> {
        Some(self.sock.as_raw_fd())
    }

    fn recv(&mut self) -> Result<RxBatch<'_>, IoError> {
        self.descs.clear();
        let base = self.buf.as_mut_ptr();
        let mut iovs: [libc::iovec; RX_BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; RX_BATCH];
        // SAFETY: mmsghdr is plain old data; zeroed is valid, filled in below.
        let mut msgs: [libc::mmsghdr; RX_BATCH] = unsafe { std::mem::zeroed() };
        for (i, iov) in iovs.iter_mut().enumerate() {
            // SAFETY: slot i lies inside `buf` (RX_BATCH * RX_SLOT bytes).
            iov.iov_base = unsafe { base.add(i * RX_SLOT) }.cast();
            iov.iov_len = RX_SLOT;
        }
        for (i, m) in msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            m.msg_hdr.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = std::mem::size_of::<[u64; 8]>();
        }
        // SAFETY: every msghdr points at a live iovec over its own slot of `buf` and
        // at its own sockaddr_storage, all alive for the call; the kernel writes at
        // most iov_len / msg_namelen bytes there.
        let n = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                RX_BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => {
                    Ok(RxBatch::empty())
                }
                _ => Err(IoError::os("vxlan", "recvmmsg", e)),
            };
        }
        for (i, m) in msgs.iter().take(n as usize).enumerate() {
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                self.truncated += 1;
                continue;
            }
            let len = (m.msg_len as usize).min(RX_SLOT);
            let peer = peer_ip(&self.names[i]);
            let train = gro_segment_size(&m.msg_hdr).filter(|g| *g > 0 && *g < len);
            let slot = &mut self.buf[i * RX_SLOT..i * RX_SLOT + len];
            match train {
                None => self.descs.push(FrameDesc {
                    offset: (i * RX_SLOT) as u32,
                    len: len as u32,
                    tag: None,
                    csum_partial: false,
                    vnet: None,
                    peer,
                }),
                Some(size) => {
                    let base = (i * RX_SLOT) as u32;
                    for (off, len, vnet) in split_train(slot, size, &mut self.merged) {
                        self.descs.push(FrameDesc {
                            offset: base + off as u32,
                            len: len as u32,
                            tag: None,
                            csum_partial: false,
                            vnet,
                            peer,
                        });
                    }
                }
            }
        }
        Ok(RxBatch::new(&self.buf, &self.descs))
    }

    fn take_error(&mut self) -> Option<std::io::Error> {
        self.sock.take_error().ok().flatten()
    }

    fn losses(&self) -> RxLosses {
        RxLosses {
            kernel_drops: 0,
            truncated: self.truncated,
        }
    }
}

/// The UDP GRO segment size the kernel reported with a buffer, if it is a train.
fn gro_segment_size(hdr: &libc::msghdr) -> Option<usize> {
    // SAFETY: the kernel filled the control buffer and set msg_controllen; the
    // CMSG_* macros walk only within it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return usize::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

/// The inner IP header offset (after the VXLAN and Ethernet headers).
const INNER_IP: usize = 8 + 14;

/// Offsets in a VXLAN datagram of a TCP segment a train may merge — IPv4 without
/// options, or IPv6 whose next header is TCP: (TCP header, payload, IPv6?). Checks
/// the headers only, not the IP length field.
fn tcp_headers(d: &[u8]) -> Option<(usize, usize, bool)> {
    const IP: usize = INNER_IP;
    let (tcp, v6) = match d.get(IP - 2..IP)? {
        [0x08, 0x00] if *d.get(IP)? == 0x45 && *d.get(IP + 9)? == 6 => {
            // Not a fragment (MF clear, offset 0).
            if u16::from_be_bytes([d[IP + 6], d[IP + 7]]) & 0x3fff != 0 {
                return None;
            }
            (IP + 20, false)
        }
        [0x86, 0xdd] if *d.get(IP)? >> 4 == 6 && *d.get(IP + 6)? == 6 => (IP + 40, true),
        _ => return None,
    };
    let doff = (*d.get(tcp + 12)? >> 4) as usize * 4;
    let payload = tcp + doff;
    (doff >= 20 && payload <= d.len()).then_some((tcp, payload, v6))
}

/// [`tcp_headers`] of a whole datagram: its IP length says exactly the rest, and it
/// carries payload.
fn tcp_segment(d: &[u8]) -> Option<(usize, usize, bool)> {
    let (tcp, pay, v6) = tcp_headers(d)?;
    let ip = INNER_IP;
    let field = u16::from_be_bytes([
        d[ip + if v6 { 4 } else { 2 }],
        d[ip + if v6 { 5 } else { 3 }],
    ]);
    let end = ip + usize::from(field) + if v6 { 40 } else { 0 };
    (end == d.len() && pay < d.len()).then_some((tcp, pay, v6))
}

fn seq_of(d: &[u8], tcp: usize) -> u32 {
    u32::from_be_bytes([d[tcp + 4], d[tcp + 5], d[tcp + 6], d[tcp + 7]])
}

/// Whether segment `next` continues the train whose first segment's headers are
/// `first` (through the TCP options): the same VXLAN and Ethernet headers, the same
/// IP header but for the length (and IPv4's id and checksum), the same TCP header but
/// for the sequence number (`seq`, the train's next) and the checksum; flags ACK, or
/// ACK|PSH; at most `mss` bytes of payload.
fn continues(first: &[u8], next: &[u8], seq: u32, mss: usize) -> bool {
    let Some((tcp, pay, v6)) = tcp_segment(next) else {
        return false;
    };
    if pay != first.len() || next.len() - pay > mss {
        return false;
    }
    let ip = INNER_IP;
    let same = |r: std::ops::Range<usize>| first.get(r.clone()) == next.get(r);
    let ip_same = if v6 {
        same(0..ip + 4) && same(ip + 6..tcp)
    } else {
        same(0..ip + 2) && same(ip + 6..ip + 10) && same(ip + 12..tcp)
    };
    ip_same
        && same(tcp..tcp + 4)
        && same(tcp + 8..tcp + 13)
        && same(tcp + 14..tcp + 16)
        && same(tcp + 18..pay)
        && seq_of(next, tcp) == seq
        && matches!(next[tcp + 13], 0x10 | 0x18)
}

/// A frame cut from a train: offset, length, the GSO header of a merged one.
type TrainFrame = (usize, usize, Option<VnetHdr>);

/// A super-frame being merged from a train: where it is in the buffer, its MSS,
/// the next sequence number, how many segments it holds.
#[derive(Clone, Copy)]
struct Merging {
    start: usize,
    end: usize,
    /// The TCP header's offset, and the payload's (the headers' length).
    tcp: usize,
    hdrs: usize,
    v6: bool,
    mss: usize,
    seq: u32,
    count: u32,
}

/// Cuts a UDP GRO train (`buf`: datagrams of `size` bytes, the last maybe shorter)
/// into its datagrams, merging runs of TCP segments (IPv4 or IPv6) of one flow back
/// into super-frames in place — the first segment's headers, then every payload; the
/// IP length (and IPv4's checksum) fixed — each with the virtio-net header of a GSO frame
/// (offsets from the inner frame, which starts after the VXLAN header). Frames only
/// move towards the start of `buf`. Returns (offset, length, header) of each datagram
/// or super-frame, VXLAN header first, in order.
fn split_train(buf: &mut [u8], size: usize, merged: &mut u64) -> Vec<TrainFrame> {
    let mut out = Vec::with_capacity(buf.len() / size.max(1) + 1);
    let mut cur: Option<Merging> = None;
    let mut write_at = 0;
    let mut at = 0;
    while at < buf.len() {
        let len = size.min(buf.len() - at);
        let (ds, de) = (at, at + len);
        at = de;
        if let Some(m) = cur.as_mut() {
            let (head, tail) = buf.split_at(ds);
            let next = &tail[..len];
            let limit = INNER_IP + usize::from(u16::MAX) + if m.v6 { 40 } else { 0 };
            let fits = m.end - m.start + len - m.hdrs <= limit;
            if fits && continues(&head[m.start..m.start + m.hdrs], next, m.seq, m.mss) {
                let n = len - m.hdrs;
                let push = next[m.tcp + 13] == 0x18;
                buf.copy_within(ds + m.hdrs..de, m.end);
                m.end += n;
                m.seq = m.seq.wrapping_add(n as u32);
                m.count += 1;
                if push || n < m.mss {
                    // The train ends with this segment (PSH kept on the whole).
                    if push {
                        buf[m.start + m.tcp + 13] = 0x18;
                    }
                    write_at = finish(buf, cur.take(), &mut out, merged);
                }
                continue;
            }
            write_at = finish(buf, cur.take(), &mut out, merged);
        }
        // This datagram starts a frame of its own, moved down behind the last.
        buf.copy_within(ds..de, write_at);
        let d = &buf[write_at..write_at + len];
        match tcp_segment(d) {
            Some((tcp, pay, v6)) if d[tcp + 13] == 0x10 => {
                let mss = len - pay;
                cur = Some(Merging {
                    start: write_at,
                    end: write_at + len,
                    tcp,
                    hdrs: pay,
                    v6,
                    mss,
                    seq: seq_of(d, tcp).wrapping_add(mss as u32),
                    count: 1,
                });
            }
            _ => {
                out.push((write_at, len, None));
                write_at += len;
            }
        }
    }
    finish(buf, cur, &mut out, merged);
    out
}

/// Ends the super-frame `m` (one segment stays as it is): fixes its IPv4 length and
/// checksum and records it with its GSO header. Returns where the next frame goes.
fn finish(
    buf: &mut [u8],
    m: Option<Merging>,
    out: &mut Vec<TrainFrame>,
    merged: &mut u64,
) -> usize {
    let Some(m) = m else {
        return out.last().map_or(0, |(o, l, _)| o + l);
    };
    if m.count < 2 {
        out.push((m.start, m.end - m.start, None));
        return m.end;
    }
    let f = &mut buf[m.start..m.end];
    let ip = INNER_IP;
    let gso_type = if m.v6 {
        let payload_len = (f.len() - ip - 40) as u16;
        f[ip + 4..ip + 6].copy_from_slice(&payload_len.to_be_bytes());
        VnetHdr::GSO_TCPV6
    } else {
        let total = (f.len() - ip) as u16;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        f[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
        let sum = ipv4_header_checksum(&f[ip..ip + 20]);
        f[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
        VnetHdr::GSO_TCPV4
    };
    *merged += 1;
    out.push((
        m.start,
        m.end - m.start,
        Some(VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type,
            hdr_len: (m.hdrs - 8) as u16,
            gso_size: m.mss as u16,
            csum_start: (m.tcp - 8) as u16,
            csum_offset: 16,
        }),
    ));
    m.end
}

/// The RFC 791 header checksum of `h` (its checksum field zero).
fn ipv4_header_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl VxlanTx {
    /// Sends `count` datagrams of `pending` from `first` as one UDP GSO send.
    fn send_gso(&mut self, first: usize, count: usize) -> bool {
        let (off, len, dst) = self.pending[first];
        let total: usize = self.pending[first..first + count]
            .iter()
            .map(|p| p.1 as usize)
            .sum();
        let mut iov = libc::iovec {
            // SAFETY (pointer only): the run's datagrams are contiguous in the arena.
            iov_base: self.arena[off as usize..].as_mut_ptr().cast(),
            iov_len: total,
        };
        let (mut name, namelen) = sockaddr(dst);
        let mut cbuf = [0u64; 4]; // CMSG_SPACE(sizeof(u16)), 8-aligned
        // SAFETY: msghdr is plain old data; zeroed is valid, filled in below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = namelen;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is a pure size computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as usize;
        // SAFETY: the control buffer is CMSG_SPACE(2) bytes, 8-aligned and alive;
        // CMSG_FIRSTHDR points into it, and the u16 fits CMSG_LEN(2).
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_UDP;
            (*c).cmsg_type = UDP_SEGMENT;
            (*c).cmsg_len = libc::CMSG_LEN(2) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), len as u16);
        }
        // SAFETY: msg points at live buffers (arena run, name, control) for the call.
        let r = unsafe { libc::sendmsg(self.sock.as_raw_fd(), &msg, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(
                e.raw_os_error(),
                Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT)
            ) {
                // No UDP GSO here: send them one by one from now on.
                self.gso = false;
                return false;
            }
            self.count_failure(&e, count);
            return true;
        }
        self.stats.sent += count as u64;
        true
    }

    fn count_failure(&mut self, e: &std::io::Error, count: usize) {
        if e.raw_os_error() == Some(libc::EMSGSIZE) {
            self.stats.too_big += count as u64;
        } else {
            self.stats.send_errors += count as u64;
        }
    }

    /// Sends `pending[range]` with sendmmsg, one datagram each.
    fn send_each(&mut self, from: usize, to: usize) {
        let mut i = from;
        while i < to {
            let n = (to - i).min(64);
            let mut names: [(libc::sockaddr_storage, libc::socklen_t); 64] =
                // SAFETY: plain old data; zeroed is valid.
                unsafe { std::mem::zeroed() };
            let mut iovs: [libc::iovec; 64] = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; 64];
            // SAFETY: plain old data; zeroed is valid, filled in below.
            let mut msgs: [libc::mmsghdr; 64] = unsafe { std::mem::zeroed() };
            for k in 0..n {
                let (off, len, dst) = self.pending[i + k];
                names[k] = sockaddr(dst);
                iovs[k].iov_base = self.arena[off as usize..].as_mut_ptr().cast();
                iovs[k].iov_len = len as usize;
            }
            for k in 0..n {
                msgs[k].msg_hdr.msg_name = (&mut names[k].0 as *mut libc::sockaddr_storage).cast();
                msgs[k].msg_hdr.msg_namelen = names[k].1;
                msgs[k].msg_hdr.msg_iov = &mut iovs[k];
                msgs[k].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: each msghdr points at a live name and iovec over the arena,
            // alive for the call; the kernel only reads them.
            let r =
                unsafe { libc::sendmmsg(self.sock.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
            if r <= 0 {
                // The first datagram failed: count it and go on with the next.
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    self.stats.send_errors += (to - i) as u64;
                    return;
                }
                self.count_failure(&e, 1);
                i += 1;
            } else {
                self.stats.sent += r as u64;
                i += r as usize;
            }
        }
    }
}

/// `dst` as a sockaddr for the kernel.
fn sockaddr(dst: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: plain old data; zeroed is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match dst {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is aligned for it.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

impl SoftwareOffload for VxlanTx {
    fn segmenter(&mut self) -> &mut Segmenter {
        &mut self.segmenter
    }
    fn tx_counters(&mut self) -> &mut TxStats {
        &mut self.stats
    }
    fn push_plain_frame(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        complete_checksum: bool,
    ) -> Result<(), TxError> {
        let Some(t) = self.current else {
            self.stats.send_errors += 1;
            return Err(TxError::NoTunnel);
        };
        let frame_len = crate::frame::frame_len(head, tag, body);
        let len = t.header.len() + frame_len;
        if frame_len < crate::ETH_HLEN || len > TX_DATAGRAM_MAX {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        if self.pending.len() >= TX_DATAGRAMS || self.arena.len() + len > TX_ARENA {
            let _ = self.flush();
        }
        let at = self.arena.len();
        self.arena.extend_from_slice(&t.header);
        self.arena.resize(at + len, 0);
        if write_frame(&mut self.arena[at + t.header.len()..], head, tag, body).is_none() {
            self.arena.truncate(at);
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        if complete_checksum {
            complete_l4_checksum(&mut self.arena[at + t.header.len()..]);
        }
        self.pending.push((at as u32, len as u32, t.remote));
        Ok(())
    }
}

impl TxQueue for VxlanTx {
    fn push_with(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        opts: TxOptions,
    ) -> Result<(), TxError> {
        self.current = opts.tunnel;
        let r = self.push_offloaded(head, tag, body, opts);
        self.current = None;
        r
    }

    fn flush(&mut self) -> Result<(), IoError> {
        let n = self.pending.len();
        let mut i = 0;
        let mut single_from = 0;
        while i < n {
            // A run: datagrams of one size to one endpoint (the last may be shorter).
            let (_, len, dst) = self.pending[i];
            let mut j = i + 1;
            let mut bytes = len as usize;
            while j < n && j - i < GSO_MAX_SEGMENTS {
                let (_, l, d) = self.pending[j];
                if d != dst || l > len || bytes + l as usize > GSO_MAX_BYTES {
                    break;
                }
                bytes += l as usize;
                j += 1;
                if l < len {
                    break;
                }
            }
            if self.gso && j - i > 1 {
                self.send_each(single_from, i);
                single_from = i;
                if self.send_gso(i, j - i) {
                    single_from = j;
                }
            }
            i = j;
        }
        self.send_each(single_from, n);
        self.pending.clear();
        self.arena.clear();
        Ok(())
    }

    fn tx_stats(&self) -> TxStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Tunnel;

    fn pair() -> ((VxlanRx, VxlanTx), (VxlanRx, VxlanTx)) {
        let o = |fragment| VxlanOptions {
            local: "127.0.0.1:0".parse().unwrap(),
            interface: None,
            fragment,
        };
        (
            open_vxlan(&o(false)).unwrap(),
            open_vxlan(&o(true)).unwrap(),
        )
    }

    fn frame(n: usize, fill: u8) -> Vec<u8> {
        let mut f = vec![fill; n];
        f[12] = 0x08;
        f[13] = 0x06;
        f
    }

    fn recv_all(rx: &mut VxlanRx, want: usize) -> Vec<(Vec<u8>, Option<IpAddr>)> {
        let mut got = Vec::new();
        for _ in 0..200 {
            let b = rx.recv().unwrap();
            got.extend(b.iter().map(|f| (f.data.to_vec(), f.peer)));
            if got.len() >= want {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        got
    }

    #[test]
    fn a_copy_is_one_datagram_header_then_frame_and_names_its_sender() {
        let ((_, mut a_tx), (mut b_rx, _)) = pair();
        let hdr = [0x08, 0, 0, 0, 0, 0x27, 0x1a, 0];
        let t = Tunnel {
            remote: b_rx.local_addr().unwrap(),
            header: hdr,
        };
        let f = frame(60, 0xab);
        let opts = TxOptions {
            tunnel: Some(t),
            ..TxOptions::default()
        };
        a_tx.push_with(&f[..12], None, &f[12..], opts).unwrap();
        a_tx.push_with(&f[..12], None, &f[12..], opts).unwrap();
        a_tx.flush().unwrap();
        let got = recv_all(&mut b_rx, 2);
        assert_eq!(got.len(), 2);
        let mut want = hdr.to_vec();
        want.extend_from_slice(&f);
        assert_eq!(got[0].0, want);
        assert_eq!(got[0].1, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(a_tx.tx_stats().sent, 2);
    }

    #[test]
    fn a_copy_without_a_tunnel_is_refused_and_counted() {
        let ((_, mut a_tx), _) = pair();
        let f = frame(60, 1);
        let r = a_tx.push_with(&f[..12], None, &f[12..], TxOptions::default());
        assert_eq!(r, Err(TxError::NoTunnel));
        assert_eq!(a_tx.tx_stats().send_errors, 1);
    }

    #[test]
    fn equal_datagrams_to_one_endpoint_arrive_one_by_one_through_udp_gso() {
        let ((_, mut a_tx), (mut b_rx, _)) = pair();
        let t = Tunnel {
            remote: b_rx.local_addr().unwrap(),
            header: [0x08, 0, 0, 0, 0, 0, 1, 0],
        };
        let opts = TxOptions {
            tunnel: Some(t),
            ..TxOptions::default()
        };
        for i in 0..10u8 {
            let f = frame(if i == 9 { 100 } else { 1000 }, i);
            a_tx.push_with(&f[..12], None, &f[12..], opts).unwrap();
        }
        a_tx.flush().unwrap();
        let got = recv_all(&mut b_rx, 10);
        let lens: Vec<usize> = got.iter().map(|(d, _)| d.len()).collect();
        assert_eq!(lens, [[1008; 9].as_slice(), &[108]].concat());
        for (i, (d, _)) in got.iter().enumerate() {
            assert_eq!(d[8], i as u8, "datagram {i} in order, whole");
        }
        assert_eq!(a_tx.tx_stats().sent, 10);
    }

    /// A train of `n` TCP/IPv4 segments of one flow, `mss` bytes each (the last
    /// `last`), in VXLAN datagrams: (the datagrams, the whole payload).
    fn train(n: usize, mss: usize, last: usize, seq0: u32) -> (Vec<Vec<u8>>, Vec<u8>) {
        train_of(false, n, mss, last, seq0)
    }

    fn train_of(v6: bool, n: usize, mss: usize, last: usize, seq0: u32) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut all = Vec::new();
        let mut dgs = Vec::new();
        let mut seq = seq0;
        for k in 0..n {
            let len = if k + 1 == n { last } else { mss };
            let payload: Vec<u8> = (0..len).map(|i| (i + k * 7) as u8).collect();
            let mut f = vec![0x08, 0, 0, 0, 0, 0x27, 0x1a, 0];
            let et = if v6 { 0x86dd_u16 } else { 0x0800 }.to_be_bytes();
            f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, et[0], et[1]]);
            let mut ip = Vec::new();
            if v6 {
                let (a, b) = (
                    [0xfd, 0, 0, 0xc6, 0, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    [0xfd; 16],
                );
                etherparse::PacketBuilder::ipv6(a, b, 64)
                    .tcp(40000, 5201, seq, 512)
                    .ack(77)
                    .write(&mut ip, &payload)
                    .unwrap();
            } else {
                etherparse::PacketBuilder::ipv4([198, 18, 10, 1], [198, 18, 10, 2], 64)
                    .tcp(40000, 5201, seq, 512)
                    .ack(77)
                    .write(&mut ip, &payload)
                    .unwrap();
                ip[4..6].copy_from_slice(&(k as u16 + 100).to_be_bytes()); // the IPv4 id
            }
            f.extend_from_slice(&ip);
            all.extend_from_slice(&payload);
            seq = seq.wrapping_add(len as u32);
            dgs.push(f);
        }
        (dgs, all)
    }

    fn run(dgs: &[Vec<u8>], size: usize) -> (Vec<u8>, Vec<TrainFrame>) {
        let mut buf: Vec<u8> = dgs.concat();
        let mut merged = 0;
        let out = split_train(&mut buf, size, &mut merged);
        (buf, out)
    }

    #[test]
    fn a_train_of_one_flow_becomes_one_gso_super_frame() {
        let (dgs, payload) = train(5, 1000, 300, u32::MAX - 1500);
        let size = dgs[0].len();
        let (buf, out) = run(&dgs, size);
        assert_eq!(out.len(), 1, "{out:?}");
        let (off, len, vnet) = out[0];
        let f = &buf[off..off + len];
        let inner = &f[8..];
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&inner[14..]).unwrap();
        assert_eq!(ip.total_len() as usize, inner.len() - 14);
        assert_eq!(ip.to_header().calc_header_checksum(), ip.header_checksum());
        assert_eq!(&inner[14 + 20 + 20..], &payload[..]);
        let v = vnet.unwrap();
        assert_eq!(
            (
                v.gso_type,
                v.gso_size,
                v.hdr_len,
                v.csum_start,
                v.csum_offset
            ),
            (VnetHdr::GSO_TCPV4, 1000, 54, 34, 16)
        );
        // Cut again by the switch's own segmenter: the same segments' payloads.
        let mut seg = Segmenter::new();
        let mut again = Vec::new();
        seg.segment(&inner[..12], None, &inner[12..], v, |s| {
            again.extend_from_slice(&s[54..]);
            Ok(())
        })
        .unwrap();
        assert_eq!(again, payload);
    }

    #[test]
    fn a_train_of_tcp_over_ipv6_becomes_one_gso_super_frame() {
        let (dgs, payload) = train_of(true, 4, 1200, 10, 5);
        let (buf, out) = run(&dgs, dgs[0].len());
        assert_eq!(out.len(), 1, "{out:?}");
        let (off, len, vnet) = out[0];
        let inner = &buf[off + 8..off + len];
        let ip = etherparse::Ipv6HeaderSlice::from_slice(&inner[14..]).unwrap();
        assert_eq!(ip.payload_length() as usize, inner.len() - 14 - 40);
        assert_eq!(&inner[14 + 40 + 20..], &payload[..]);
        let v = vnet.unwrap();
        assert_eq!(
            (v.gso_type, v.gso_size, v.hdr_len, v.csum_start),
            (VnetHdr::GSO_TCPV6, 1200, 74, 54)
        );
        let mut again = Vec::new();
        Segmenter::new()
            .segment(&inner[..12], None, &inner[12..], v, |s| {
                again.extend_from_slice(&s[74..]);
                Ok(())
            })
            .unwrap();
        assert_eq!(again, payload);
    }

    #[test]
    fn another_flow_a_push_or_other_traffic_ends_the_train() {
        let (mut dgs, _) = train(4, 1000, 1000, 1);
        // Segment 3 is of another flow (its source port).
        let (other, _) = train(1, 1000, 1000, 9);
        let mut o = other[0].clone();
        o[8 + 14 + 20] ^= 1;
        dgs.insert(2, o);
        let size = dgs[0].len();
        let (_, out) = run(&dgs, size);
        let lens: Vec<(usize, bool)> = out.iter().map(|(_, l, v)| (*l, v.is_some())).collect();
        // [1+2 merged], [the other flow's segment], [3+4 merged]: a train ends at
        // the first segment that does not continue it, and that one starts the next.
        assert_eq!(lens[0], (8 + 14 + 40 + 2000, true), "{lens:?}");
        assert_eq!(lens[1], (size, false));
        assert_eq!(lens.len(), 3);

        // A PSH ends the train it closes; what follows starts another.
        let (mut dgs, _) = train(4, 1000, 1000, 1);
        dgs[1][8 + 14 + 20 + 13] = 0x18;
        let (buf, out) = run(&dgs, size);
        assert_eq!(out.len(), 2);
        let first = &buf[out[0].0..out[0].0 + out[0].1];
        assert_eq!(first[8 + 14 + 20 + 13], 0x18, "PSH kept");
        assert!(out[1].2.is_some());

        // Not TCP, or a fragment: as they came.
        let mut udp = dgs[0].clone();
        udp[8 + 14 + 9] = 17;
        let (_, out) = run(&[udp.clone(), udp], size);
        assert!(out.iter().all(|(_, l, v)| *l == size && v.is_none()));
    }

    proptest::proptest! {
        #[test]
        fn any_train_splits_without_panic_and_keeps_every_byte_of_payload(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            size in 1usize..700,
        ) {
            let mut buf = bytes.clone();
            let mut merged = 0;
            let out = split_train(&mut buf, size, &mut merged);
            let total: usize = out.iter().map(|(_, l, _)| l).sum();
            proptest::prop_assert!(total <= bytes.len());
            for (o, l, _) in &out {
                proptest::prop_assert!(o + l <= buf.len());
            }
            if merged == 0 {
                proptest::prop_assert_eq!(total, bytes.len());
            }
        }
    }

    #[test]
    fn garbage_and_short_datagrams_are_handed_over_as_they_came() {
        let ((mut a_rx, _), _) = pair();
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(&[1, 2, 3], a_rx.local_addr().unwrap()).unwrap();
        s.send_to(&[], a_rx.local_addr().unwrap()).unwrap();
        let got = recv_all(&mut a_rx, 2);
        assert_eq!(got.iter().map(|g| g.0.len()).collect::<Vec<_>>(), [3, 0]);
    }
}
