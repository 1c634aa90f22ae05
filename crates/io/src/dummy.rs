//! Dummy netdevs, made through rtnetlink (`RTM_NEWLINK` with `IFLA_INFO_KIND`
//! `dummy`, what `ip link add NAME type dummy` sends): an interface that carries
//! nothing but exists, with an MTU tools can read at `/sys/class/net/<name>/mtu`.
//! The daemon makes one named after the switch for callers of the ovs-vsctl front
//! that look the bridge up there (Proxmox's `read_bridge_mtu`).
//!
//! Invariant: [`ensure_dummy`] never changes an interface it did not create — an
//! existing interface of that name is left as it is and reported, not replaced.

use crate::IoError;
use crate::netdev;
use std::os::fd::AsRawFd;

const NLMSG_HDRLEN: usize = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const NLA_F_NESTED: u16 = 1 << 15;

/// What [`ensure_dummy`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DummyOutcome {
    /// It made the dummy interface and set it up.
    Created,
    /// An interface of that name existed already: left as it is.
    Existed,
}

/// Appends one netlink attribute (`rtattr`), padded to 4 bytes.
fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// The `RTM_NEWLINK` request that creates the dummy `name` (exclusively).
pub(crate) fn newlink_request(name: &str, seq: u32) -> Vec<u8> {
    let mut b = vec![0u8; NLMSG_HDRLEN];
    // struct ifinfomsg: family, pad, type, index, flags, change — all zero.
    b.extend_from_slice(&[0u8; 16]);
    let mut ifname = name.as_bytes().to_vec();
    ifname.push(0);
    attr(&mut b, IFLA_IFNAME, &ifname);
    let mut kind = Vec::new();
    attr(&mut kind, IFLA_INFO_KIND, b"dummy\0");
    attr(&mut b, IFLA_LINKINFO | NLA_F_NESTED, &kind);
    let len = b.len() as u32;
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    b[6..8].copy_from_slice(&flags.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b
}

/// The errno of the kernel's `NLMSG_ERROR` answer (0: success), if `b` is one.
pub(crate) fn ack_errno(b: &[u8]) -> Option<i32> {
    if b.len() < NLMSG_HDRLEN + 4 {
        return None;
    }
    let kind = u16::from_ne_bytes([b[4], b[5]]);
    if kind != libc::NLMSG_ERROR as u16 {
        return None;
    }
    let e = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
    Some(-e)
}

/// Makes the dummy interface `name` and sets it up, unless an interface of that
/// name exists (then it is left untouched).
pub fn ensure_dummy(name: &str) -> Result<DummyOutcome, IoError> {
    netdev::validate_name(name)?;
    if netdev::interface_exists(name) {
        return Ok(DummyOutcome::Existed);
    }
    let fd = netdev::socket(
        libc::AF_NETLINK,
        libc::SOCK_RAW,
        libc::NETLINK_ROUTE,
        name,
        "socket(AF_NETLINK)",
    )?;
    let req = newlink_request(name, 1);
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value (the kernel).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `req` and `sa` are valid for the lengths given during the call.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&sa as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(IoError::last_os(name, "sendto(RTM_NEWLINK)"));
    }
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is valid for writes of its length during the call.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(IoError::last_os(name, "recv(RTM_NEWLINK ack)"));
    }
    match ack_errno(&buf[..n as usize]) {
        Some(0) => {}
        Some(libc::EEXIST) => return Ok(DummyOutcome::Existed),
        Some(e) => {
            return Err(IoError::os(
                name,
                "RTM_NEWLINK (type dummy)",
                std::io::Error::from_raw_os_error(e),
            ));
        }
        None => {
            return Err(IoError::os(
                name,
                "RTM_NEWLINK (type dummy)",
                std::io::Error::other("no acknowledgement from the kernel"),
            ));
        }
    }
    netdev::set_link_up(name)?;
    Ok(DummyOutcome::Created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_what_ip_link_add_type_dummy_sends() {
        let b = newlink_request("vmbr1", 7);
        assert_eq!(b.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), libc::RTM_NEWLINK);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        // IFLA_IFNAME "vmbr1\0" right after the ifinfomsg.
        let a = &b[32..];
        assert_eq!(u16::from_ne_bytes([a[0], a[1]]), 10);
        assert_eq!(u16::from_ne_bytes([a[2], a[3]]), IFLA_IFNAME);
        assert_eq!(&a[4..10], b"vmbr1\0");
        // Then IFLA_LINKINFO { IFLA_INFO_KIND "dummy\0" }.
        let l = &a[12..];
        assert_eq!(
            u16::from_ne_bytes([l[2], l[3]]),
            IFLA_LINKINFO | NLA_F_NESTED
        );
        assert_eq!(u16::from_ne_bytes([l[6], l[7]]), IFLA_INFO_KIND);
        assert_eq!(&l[8..14], b"dummy\0");
    }

    #[test]
    fn acks_give_the_errno() {
        let mut ack = vec![0u8; 36];
        ack[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        assert_eq!(ack_errno(&ack), Some(0));
        ack[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(ack_errno(&ack), Some(libc::EEXIST));
        assert_eq!(ack_errno(&ack[..10]), None);
    }
}
