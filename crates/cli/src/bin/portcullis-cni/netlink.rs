//! The few rtnetlink requests the plugin makes (RFC 3549, `rtnetlink(7)`): create a
//! veth pair whose peer is born in the container's namespace, look a link up by
//! name, bring it up, give it addresses and routes, delete it.
//!
//! Invariants: every request asks for the kernel's acknowledgement and its error is
//! returned as the OS error (`EEXIST`, `ENODEV` …), never ignored; nothing here runs
//! `ip`. A socket for another network namespace is opened on a thread of its own
//! that enters the namespace with `setns(2)` and ends right after: the plugin's own
//! threads never change namespace, and the socket stays bound to the namespace it
//! was made in.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_NET_NS_FD: u16 = 28;
const VETH_INFO_PEER: u16 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;

/// A link as the kernel describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    /// `aa:bb:cc:dd:ee:ff`, lower case.
    pub mac: String,
}

/// One netlink message being built: header, fixed part, attributes.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Msg {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(fixed);
        pad(&mut buf);
        Msg { buf }
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        pad(&mut self.buf);
    }

    fn str_attr(&mut self, ty: u16, s: &str) {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(ty, &data);
    }

    /// Opens a nested attribute; [`Msg::end`] closes it.
    fn begin(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// `struct ifinfomsg` with an index and flags.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

fn family(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A NETLINK_ROUTE socket in one network namespace.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// A socket in this process's network namespace.
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh socket nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Netlink {
            fd,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    /// A socket in the network namespace `netns` (a file such as
    /// `/var/run/netns/NAME` or `/proc/PID/ns/net`), made on a thread that enters
    /// the namespace and ends.
    pub fn open_in(netns: &Path) -> io::Result<Netlink> {
        let ns = std::fs::File::open(netns)?;
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns(2) on an open namespace file; it changes only this
                // thread, which makes the socket and then ends.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Netlink::open()
            })
            .join()
            .map_err(|_| io::Error::other("the namespace thread panicked"))?
        })
    }

    /// Sends `msg` and waits for its acknowledgement; answers the messages that
    /// came before it (a GET's reply).
    fn request(&mut self, msg: Msg) -> io::Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = msg.finish(seq);
        // SAFETY: `bytes` is valid for reads of its length; the kernel is the
        // default destination of an unbound netlink socket's send.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut replies = Vec::new();
        loop {
            // SAFETY: `buf` is valid for writes of its length during the call.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut b = &self.buf[..n as usize];
            while b.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let kind = u16::from_ne_bytes([b[4], b[5]]);
                let mseq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                if len < NLMSG_HDRLEN || len > b.len() {
                    return Err(io::Error::other("a malformed netlink answer"));
                }
                if mseq == seq {
                    if kind == NLMSG_ERROR {
                        let code = b
                            .get(16..20)
                            .map(|s| i32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
                            .ok_or_else(|| io::Error::other("a short netlink error"))?;
                        return if code == 0 {
                            Ok(replies)
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    replies.push(b[..len].to_vec());
                }
                let step = (len + 3) & !3;
                b = b.get(step..).unwrap_or_default();
            }
        }
    }

    /// Creates the veth pair `host` (here) — `peer` (born in the namespace `netns`,
    /// an open namespace file), both with `mtu` if given. `EEXIST` if either name
    /// is taken.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        netns: RawFd,
        mtu: Option<u32>,
    ) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifinfomsg(0, 0, 0));
        m.str_attr(IFLA_IFNAME, host);
        if let Some(mtu) = mtu {
            m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        let info = m.begin(IFLA_LINKINFO);
        m.str_attr(IFLA_INFO_KIND, "veth");
        let data = m.begin(IFLA_INFO_DATA);
        let p = m.begin(VETH_INFO_PEER);
        m.buf.extend_from_slice(&ifinfomsg(0, 0, 0));
        m.str_attr(IFLA_IFNAME, peer);
        m.attr(IFLA_NET_NS_FD, &(netns as u32).to_ne_bytes());
        if let Some(mtu) = mtu {
            m.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        m.end(p);
        m.end(data);
        m.end(info);
        self.request(m).map(drop)
    }

    /// The link named `name`, or `None` when there is none.
    pub fn link(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut m = Msg::new(RTM_GETLINK, 0, &ifinfomsg(0, 0, 0));
        m.str_attr(IFLA_IFNAME, name);
        let replies = match self.request(m) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(msg) = replies.first() else {
            return Ok(None);
        };
        let bad = || io::Error::other("a malformed RTM_NEWLINK answer");
        let fixed = msg.get(NLMSG_HDRLEN..NLMSG_HDRLEN + 16).ok_or_else(bad)?;
        let index = u32::from_ne_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let mut mac = String::new();
        let mut a = msg.get(NLMSG_HDRLEN + 16..).unwrap_or_default();
        while a.len() >= 4 {
            let len = u16::from_ne_bytes([a[0], a[1]]) as usize;
            let ty = u16::from_ne_bytes([a[2], a[3]]) & !NLA_F_NESTED;
            if len < 4 || len > a.len() {
                return Err(bad());
            }
            if ty == IFLA_ADDRESS {
                mac = a[4..len]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":");
            }
            a = a.get((len + 3) & !3..).unwrap_or_default();
        }
        Ok(Some(Link { index, mac }))
    }

    /// Brings the link `index` up.
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let up = libc::IFF_UP as u32;
        self.request(Msg::new(RTM_NEWLINK, 0, &ifinfomsg(index, up, up)))
            .map(drop)
    }

    /// Deletes the link `name` (a veth takes its peer with it); `false` when there
    /// was none.
    pub fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        let mut m = Msg::new(RTM_DELLINK, 0, &ifinfomsg(0, 0, 0));
        m.str_attr(IFLA_IFNAME, name);
        match self.request(m) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds `ip/prefix` to the link `index`.
    pub fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> io::Result<()> {
        let mut fixed = [0u8; 8];
        fixed[0] = family(&ip);
        fixed[1] = prefix;
        fixed[3] = RT_SCOPE_UNIVERSE;
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &fixed);
        m.attr(IFA_LOCAL, &octets(&ip));
        m.attr(IFA_ADDRESS, &octets(&ip));
        self.request(m).map(drop)
    }

    /// Adds the route `dst/prefix` out of the link `index`, via `gw` if given (else
    /// on-link).
    pub fn add_route(
        &mut self,
        index: u32,
        dst: IpAddr,
        prefix: u8,
        gw: Option<IpAddr>,
    ) -> io::Result<()> {
        let fixed = [
            family(&dst),
            prefix,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            if gw.is_some() {
                RT_SCOPE_UNIVERSE
            } else {
                RT_SCOPE_LINK
            },
            RTN_UNICAST,
            0,
            0,
            0,
            0,
        ];
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &fixed);
        if prefix > 0 {
            m.attr(RTA_DST, &octets(&dst));
        }
        if let Some(gw) = gw {
            m.attr(RTA_GATEWAY, &octets(&gw));
        }
        m.attr(RTA_OIF, &index.to_ne_bytes());
        self.request(m).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_veth_request_nests_the_peer_with_its_namespace() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE, &ifinfomsg(0, 0, 0));
        m.str_attr(IFLA_IFNAME, "pc0");
        let info = m.begin(IFLA_LINKINFO);
        m.str_attr(IFLA_INFO_KIND, "veth");
        m.end(info);
        let b = m.finish(7);
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        assert_eq!(b.len() % 4, 0);
        assert_eq!(u32::from_ne_bytes([b[8], b[9], b[10], b[11]]), 7);
        // IFLA_IFNAME "pc0\0" right after the 16-byte ifinfomsg.
        assert_eq!(&b[32..40], &[8, 0, 3, 0, b'p', b'c', b'0', 0]);
        // The nested LINKINFO holds the 12-byte "veth\0" kind: 4 + 12 bytes.
        assert_eq!(u16::from_ne_bytes([b[40], b[41]]), 16);
        assert_eq!(
            u16::from_ne_bytes([b[42], b[43]]),
            IFLA_LINKINFO | NLA_F_NESTED
        );
    }
}
