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

use crate::frame::{FrameDesc, RxBatch, TxOptions, VlanTag, complete_l4_checksum, write_frame};
use crate::gso::{Segmenter, SoftwareOffload};
use crate::{IoError, RxLosses, RxQueue, TxError, TxQueue, TxStats};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

/// Datagrams taken per `recv`.
pub const RX_BATCH: usize = 64;
/// The largest datagram received whole (jumbo frames and their header fit).
pub const RX_SLOT: usize = 16 * 1024;
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
        descs: Vec::with_capacity(RX_BATCH),
        truncated: 0,
    };
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
            self.descs.push(FrameDesc {
                offset: (i * RX_SLOT) as u32,
                len: m.msg_len.min(RX_SLOT as u32),
                tag: None,
                csum_partial: false,
                vnet: None,
                peer: peer_ip(&self.names[i]),
            });
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
        if frame_len < crate::ETH_HLEN || len > RX_SLOT {
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
