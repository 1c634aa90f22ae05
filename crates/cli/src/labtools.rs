//! Traffic tools the demo runs inside lab namespaces (`ip netns exec NS portcullis
//! lab …`), so that the demo needs nothing but the kernel and iproute2: an ICMP
//! echo client, raw frame senders (forged ARP replies and MAC floods, and any frame
//! `portcullis trace --frame` can describe, such as a rogue IPv6 Router
//! Advertisement) and a sniffer that counts
//! unicast frames addressed to other stations. Their output is one JSON line.

use anyhow::{Context, bail};
use clap::Subcommand;
use portcullis_dataplane::MacAddr;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum Tool {
    /// ICMP echo: prints {"sent":N,"received":M}.
    Ping {
        /// The address to ping.
        dst: Ipv4Addr,
        /// Echo requests to send.
        #[arg(long, default_value_t = 3)]
        count: u32,
        /// How long to wait for each reply.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
    },
    /// Send raw Ethernet frames (an ARP reply claiming `--ip` for `--src` when
    /// ethertype is ARP; zero payload otherwise).
    SendFrame {
        /// The interface to send on.
        #[arg(long, default_value = "eth0")]
        iface: String,
        /// The frames' source MAC.
        #[arg(long)]
        src: MacAddr,
        /// The frames' destination MAC.
        #[arg(long, default_value = "ff:ff:ff:ff:ff:ff")]
        dst: MacAddr,
        /// The address the ARP reply claims.
        #[arg(long, default_value = "198.18.0.1")]
        ip: Ipv4Addr,
        /// Frames to send.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Use a different made-up source MAC for every frame (a MAC flood, as
        /// macof does), derived from `--src`.
        #[arg(long)]
        vary_src: bool,
    },
    /// Send `--count` copies of a frame given as a description, in the language of
    /// `portcullis trace --frame` (docs/trace.md), e.g. a Router Advertisement:
    /// "src=… dst=33:33:00:00:00:01 type=ra src-ip=fe80::66 prefix=fd00:198:18:66::/64".
    SendDescribed {
        /// The interface to send on.
        #[arg(long, default_value = "eth0")]
        iface: String,
        /// The frame, described as `portcullis trace --frame` takes it.
        #[arg(long)]
        frame: String,
        /// Copies to send.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Count frames for `secs` seconds: prints {"frames":N,"unicast_to_others":M}.
    Sniff {
        /// The interface to listen on.
        #[arg(long, default_value = "eth0")]
        iface: String,
        /// How long to listen, in seconds.
        #[arg(long, default_value_t = 2.0)]
        secs: f64,
    },
}

pub fn run(tool: Tool) -> anyhow::Result<()> {
    match tool {
        Tool::Ping {
            dst,
            count,
            timeout_ms,
        } => {
            let received = icmp_ping(dst, count, Duration::from_millis(timeout_ms))?;
            println!(
                "{}",
                serde_json::json!({ "sent": count, "received": received })
            );
        }
        Tool::SendFrame {
            iface,
            src,
            dst,
            ip,
            count,
            vary_src,
        } => {
            let (_rx, mut tx) = portcullis_io::open_af_packet(&iface, &Default::default())?;
            for i in 0..count {
                let mut src = src;
                if vary_src {
                    // Locally administered unicast MACs, one per frame.
                    src.0[0] = 0x02;
                    src.0[4] = (i >> 8) as u8;
                    src.0[5] = i as u8;
                }
                let frame = arp_reply(src, dst, ip);
                tx.push(&frame[..12], None, &frame[12..])
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                tx.flush()?;
                std::thread::sleep(Duration::from_millis(20));
            }
            println!("{}", serde_json::json!({ "sent": count }));
        }
        Tool::SendDescribed {
            iface,
            frame,
            count,
        } => {
            let frame =
                crate::trace::build_frame(&frame).map_err(|e| anyhow::anyhow!("--frame: {e}"))?;
            let (_rx, mut tx) = portcullis_io::open_af_packet(&iface, &Default::default())?;
            for _ in 0..count {
                tx.push(&frame[..12], None, &frame[12..])
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                tx.flush()?;
                std::thread::sleep(Duration::from_millis(20));
            }
            println!("{}", serde_json::json!({ "sent": count }));
        }
        Tool::Sniff { iface, secs } => {
            let me = MacAddr(portcullis_io::interface_mac(&iface)?);
            let (mut rx, _tx) = portcullis_io::open_af_packet(&iface, &Default::default())?;
            let fd = rx.fd().context("sniffer has no fd")?;
            let end = Instant::now() + Duration::from_secs_f64(secs);
            let (mut frames, mut others) = (0u64, 0u64);
            while Instant::now() < end {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut pfd, 1, 20) };
                for f in rx.recv()?.iter() {
                    frames += 1;
                    if f.data.len() >= 6 {
                        let dst = MacAddr::from_slice(&f.data[..6]);
                        if !dst.is_group() && dst != me {
                            others += 1;
                        }
                    }
                }
            }
            println!(
                "{}",
                serde_json::json!({ "frames": frames, "unicast_to_others": others })
            );
        }
    }
    Ok(())
}

use portcullis_dataplane::arp::{ArpOp, ArpView};
use portcullis_io::{RxQueue, TxQueue};

/// An ARP reply (RFC 826) from `src` claiming `ip`.
fn arp_reply(src: MacAddr, dst: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0; 60];
    f[..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    let reply = ArpView {
        oper: ArpOp::Reply,
        sender_mac: src,
        sender_ip: ip,
        target_mac: dst,
        target_ip: ip,
    };
    reply
        .emit(&mut f[14..])
        .expect("60 bytes hold an ARP packet");
    f
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends `count` ICMP echo requests (RFC 792) over a raw socket and counts the
/// matching replies.
fn icmp_ping(dst: Ipv4Addr, count: u32, timeout: Duration) -> anyhow::Result<u32> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd < 0 {
        bail!(
            "raw ICMP socket: {} (run as root)",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: fd is a fresh socket we own; OwnedFd closes it once.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let id = (std::process::id() & 0xffff) as u16;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(dst).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut received = 0;
    for seq in 0..count as u16 {
        let mut pkt = vec![8u8, 0, 0, 0];
        pkt.extend_from_slice(&id.to_be_bytes());
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(b"portcullis-lab-ping-payload-0123");
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
        // SAFETY: pkt and addr are valid for the given lengths during the call.
        let n = unsafe {
            libc::sendto(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            // No route or neighbour failure: count as lost.
            std::thread::sleep(timeout);
            continue;
        }
        let end = Instant::now() + timeout;
        'wait: while let Some(left) = end.checked_duration_since(Instant::now()) {
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&sock),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            if unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) } <= 0 {
                break;
            }
            let mut buf = [0u8; 1500];
            // SAFETY: buf is valid for writes of buf.len() bytes.
            let n = unsafe { libc::recv(pfd.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                continue;
            }
            let b = &buf[..n as usize];
            let ihl = ((b[0] & 0x0f) as usize) * 4;
            if b.len() >= ihl + 8 && b[12..16] == dst.octets() {
                let icmp = &b[ihl..];
                if icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() && icmp[6..8] == seq.to_be_bytes()
                {
                    received += 1;
                    break 'wait;
                }
            }
        }
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_checksum_of_a_known_packet() {
        // Echo request id 1 seq 1, no payload: checksum 0xf7fd.
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
    }

    #[test]
    fn arp_reply_layout() {
        let f = arp_reply(
            "52:54:00:00:00:01".parse().unwrap(),
            MacAddr::BROADCAST,
            Ipv4Addr::new(198, 18, 0, 7),
        );
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 2]);
        assert_eq!(&f[28..32], &[198, 18, 0, 7]);
    }
}
