//! Link-state monitoring through rtnetlink (RTMGRP_LINK, RFC 3549): the kernel
//! tells us when an interface's carrier or administrative state changes, so a
//! failed uplink is noticed in microseconds instead of at the next poll.
//!
//! Invariant: reading never blocks (the socket is non-blocking) and never panics on
//! any message; a message that does not parse is skipped.

use crate::IoError;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;

/// One link change: the interface index, and whether it can carry frames now
/// (administratively up and with carrier: IFF_UP and IFF_RUNNING).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkChange {
    pub ifindex: u32,
    pub up: bool,
    /// The interface was deleted (RTM_DELLINK).
    pub gone: bool,
}

/// A subscription to the kernel's link notifications.
#[derive(Debug)]
pub struct LinkMonitor {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl LinkMonitor {
    /// Subscribes to RTMGRP_LINK.
    pub fn open() -> Result<LinkMonitor, IoError> {
        let os = |op: &'static str| IoError::Os {
            iface: "rtnetlink".into(),
            op,
            source: std::io::Error::last_os_error(),
        };
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(os("socket(AF_NETLINK)"));
        }
        // SAFETY: `fd` is a fresh socket nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = libc::RTMGRP_LINK as u32;
        // SAFETY: `sa` is a valid sockaddr_nl for the duration of the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(os("bind(RTMGRP_LINK)"));
        }
        Ok(LinkMonitor {
            fd,
            buf: vec![0; 64 * 1024],
        })
    }

    /// The fd to poll for readability.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads every pending notification, calling `f` for each link change.
    pub fn read(&mut self, mut f: impl FnMut(LinkChange)) {
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
            if n <= 0 {
                return; // EAGAIN (nothing more), or an error: the next poll retries
            }
            parse(&self.buf[..n as usize], &mut f);
        }
    }
}

/// Parses a buffer of netlink messages.
pub fn parse(mut b: &[u8], f: &mut impl FnMut(LinkChange)) {
    let u16_at = |b: &[u8], at: usize| b.get(at..at + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]));
    let u32_at = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
    };
    while b.len() >= NLMSG_HDRLEN {
        let (Some(len), Some(kind)) = (u32_at(b, 0), u16_at(b, 4)) else {
            return;
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            return;
        }
        let msg = &b[..len];
        if (kind == libc::RTM_NEWLINK || kind == libc::RTM_DELLINK)
            && msg.len() >= NLMSG_HDRLEN + IFINFOMSG_LEN
        {
            // struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32
            if let (Some(index), Some(flags)) =
                (u32_at(msg, NLMSG_HDRLEN + 4), u32_at(msg, NLMSG_HDRLEN + 8))
            {
                let up = flags & libc::IFF_UP as u32 != 0 && flags & libc::IFF_RUNNING as u32 != 0;
                f(LinkChange {
                    ifindex: index,
                    up: up && kind == libc::RTM_NEWLINK,
                    gone: kind == libc::RTM_DELLINK,
                });
            }
        }
        let step = (len + 3) & !3; // NLMSG_ALIGN
        if step >= b.len() {
            return;
        }
        b = &b[step..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, index: u32, flags: u32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&32u32.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[0, 0, 1, 0]);
        m.extend_from_slice(&index.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m
    }

    #[test]
    fn parses_link_messages_and_ignores_garbage() {
        let running = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
        let mut b = msg(libc::RTM_NEWLINK, 7, running);
        b.extend(msg(libc::RTM_NEWLINK, 8, libc::IFF_UP as u32));
        b.extend(msg(libc::RTM_DELLINK, 9, running));
        let mut seen = vec![];
        parse(&b, &mut |c| seen.push(c));
        assert_eq!(
            seen,
            vec![
                LinkChange {
                    ifindex: 7,
                    up: true,
                    gone: false
                },
                LinkChange {
                    ifindex: 8,
                    up: false,
                    gone: false
                },
                LinkChange {
                    ifindex: 9,
                    up: false,
                    gone: true
                },
            ]
        );
        for cut in 0..b.len() {
            parse(&b[..cut], &mut |_| {});
        }
        parse(&[0xff; 64], &mut |_| {});
    }
}
