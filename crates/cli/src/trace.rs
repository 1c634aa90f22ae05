//! `portcullis trace`: one frame through the switch a configuration builds, offline,
//! stage by stage (like OVS's `ofproto/trace`): what each stage decided and what
//! decided it, then the verdict. The frame is given as hex, as a description
//! (`--frame "src=… dst=… type=arp …"`), or as the Nth frame of a pcap file — then
//! the frames before it are replayed first, so the trace sees the MAC table,
//! bindings, counters and rate limiters they left.
//!
//! Owns the frame-description language ([`build_frame`]: Ethernet, ARP, IPv4/UDP/TCP/
//! ICMP, DHCP, IPv6, ND messages (RFC 4861) and DHCPv6 (RFC 8415) with IPv6
//! extension headers) and hex input
//! ([`parse_hex`]); the steps and their wording come from the data plane
//! (`portcullis_dataplane::trace`), the offline switch from `replay.rs`.
//!
//! Invariants: the verdict printed is `Switch::process_traced`'s, which is
//! `Switch::process`'s on the same state; a description or hex string that does not
//! parse is a message naming the token and exit code 2, never a panic.

use crate::replay::{Capture, Failure, OfflineSwitch, bad, describe_frame, finish, verdict_json};
use anyhow::anyhow;
use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
use dhcproto::{Encodable, Encoder};
use portcullis_dataplane::trace::{Trace, describe_verdict};
use portcullis_dataplane::wire::{dhcpv6, icmpv6, nd};
use portcullis_dataplane::{IngressFrame, MacAddr};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["hex", "frame", "pcap"])))]
pub struct TraceArgs {
    /// The profile (TOML); it may also hold the host binding.
    #[arg(long, short, required_unless_present = "live", conflicts_with = "live")]
    pub config: Option<PathBuf>,
    /// Trace against the running daemon's live state instead (on a copy of the
    /// switch: nothing is learned or counted); `--hex` or `--frame` only.
    #[arg(long)]
    pub live: bool,
    /// The host binding (TOML with a [host] table), if not in --config.
    #[arg(long)]
    pub host: Option<PathBuf>,
    /// The port the frame is received on (a port name: vm1, uplink1).
    #[arg(long)]
    pub port: String,
    /// The frame as hex, from the destination MAC on (spaces, ':' and '-' allowed).
    #[arg(long)]
    pub hex: Option<String>,
    /// The frame described: "src=52:54:00:00:00:01 dst=ff:ff:ff:ff:ff:ff vlan=10
    /// type=arp sender-ip=198.18.10.1 target-ip=198.18.10.2" (see docs/trace.md).
    #[arg(long)]
    pub frame: Option<String>,
    /// A pcap file: trace its frame --index, after replaying the frames before it.
    #[arg(long, requires = "index")]
    pub pcap: Option<PathBuf>,
    /// The frame of --pcap to trace (0-based).
    #[arg(long, requires = "pcap")]
    pub index: Option<usize>,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `portcullis trace`. Exit code 0, or 2 for bad input (the message on stderr).
pub fn run(args: &TraceArgs) -> anyhow::Result<ExitCode> {
    let r = trace(args, &mut io::stdout().lock());
    finish(r, &mut io::stderr())
}

/// The trace itself; output to `out`.
pub(crate) fn trace(args: &TraceArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let Some(config) = &args.config else {
        return Err(bad(anyhow!(
            "--config is needed to trace offline (or --live)"
        )));
    };
    let mut sw = OfflineSwitch::load(config, args.host.as_deref())?;
    let port = sw.port(&args.port)?;
    let mut context = None;
    let frame = match (&args.hex, &args.frame, &args.pcap, args.index) {
        (Some(h), _, _, _) => parse_hex(h).map_err(|e| bad(anyhow!("--hex: {e}")))?,
        (_, Some(d), _, _) => build_frame(d).map_err(|e| bad(anyhow!("--frame: {e}")))?,
        (_, _, Some(path), Some(index)) => {
            let capture = Capture::read(path)?;
            let Some(p) = capture.packets.get(index) else {
                return Err(bad(anyhow!(
                    "{}: --index {index}, but the capture has {} frames (0-based)",
                    path.display(),
                    capture.packets.len()
                )));
            };
            for (i, q) in capture.packets[..index].iter().enumerate() {
                sw.advance(capture.time(i));
                sw.process(port, &q.data);
            }
            let _ = sw.sw.drain_events().count();
            sw.advance(capture.time(index));
            context = Some(format!(
                "frame {index} of {}, after replaying frames 0..{index} on {}",
                path.display(),
                args.port
            ));
            p.data.clone()
        }
        _ => return Err(bad(anyhow!("give --hex, --frame or --pcap with --index"))),
    };
    let mut t = Trace::new();
    let now = sw.now;
    let v = sw.sw.process_traced(
        now,
        port,
        &IngressFrame {
            data: &frame,
            tag: None,
        },
        &mut t,
    );
    let steps = t.explain(&sw.sw);
    let events: Vec<portcullis_dataplane::Event> = sw.sw.drain_events().collect();
    if args.json {
        let j = serde_json::json!({
            "port": args.port,
            "time_ns": now.0,
            "frame": describe_frame(&frame),
            "bytes": frame.len(),
            "context": context,
            "stages": steps,
            "verdict": verdict_json(&sw.sw, &v),
            "events": serde_json::to_value(&events).unwrap_or_default(),
        });
        writeln!(out, "{j}")?;
        return Ok(());
    }
    writeln!(
        out,
        "frame: {} ({} bytes) on {} at {:.6} s",
        describe_frame(&frame),
        frame.len(),
        args.port,
        now.0 as f64 / 1e9
    )?;
    if let Some(c) = context {
        writeln!(out, "       {c}")?;
    }
    for (i, s) in steps.iter().enumerate() {
        let decision = match s.reason {
            Some(r) => format!("{} {r}", s.decision),
            None => s.decision.to_string(),
        };
        writeln!(
            out,
            "{:>3}. {:<18} {:<8} {}",
            i + 1,
            s.title,
            decision,
            s.text
        )?;
    }
    for e in &events {
        let text = serde_json::to_string(&e.kind).unwrap_or_default();
        writeln!(out, "     event {text}")?;
    }
    writeln!(out, "verdict: {}", describe_verdict(&sw.sw, &v))?;
    Ok(())
}

/// A hex string (optionally `0x`-prefixed, with spaces, ':' or '-' between bytes)
/// as bytes.
pub(crate) fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let mut digits = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            ' ' | '\t' | '\n' | ':' | '-' => {}
            c => match c.to_digit(16) {
                Some(d) => digits.push(d as u8),
                None => return Err(format!("{c:?} at position {i} is not a hex digit")),
            },
        }
    }
    if digits.is_empty() {
        return Err("no bytes".into());
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "{} hex digits: an odd number (two per byte)",
            digits.len()
        ));
    }
    Ok(digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}

/// The keys of a frame description.
const KEYS: &[&str] = &[
    "src",
    "dst",
    "vlan",
    "pcp",
    "type",
    "len",
    "op",
    "sender-mac",
    "sender-ip",
    "target-mac",
    "target-ip",
    "src-ip",
    "dst-ip",
    "proto",
    "src-port",
    "dst-port",
    "ttl",
    "msg",
    "chaddr",
    "ciaddr",
    "yiaddr",
    "requested-ip",
    "lease",
    "xid",
    "payload",
    "target",
    "dest",
    "flags",
    "sllao",
    "tllao",
    "prefix",
    "router-lifetime",
    "client-id",
    "ia-addr",
    "ext",
];

/// What a description's `type=` asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Arp,
    Ipv4,
    Ipv6,
    Dhcp,
    /// An ND message (RFC 4861): its ICMPv6 type.
    Nd(u8),
    Dhcpv6,
    Raw(u16),
}

/// The tokens of a description, checked as they are used.
struct Fields<'a> {
    map: BTreeMap<&'a str, &'a str>,
}

impl<'a> Fields<'a> {
    fn parse(s: &'a str) -> Result<Fields<'a>, String> {
        let mut map = BTreeMap::new();
        for tok in s.split_whitespace() {
            let Some((k, v)) = tok.split_once('=') else {
                return Err(format!("{tok:?} is not key=value"));
            };
            if !KEYS.contains(&k) {
                return Err(format!("unknown key {k:?} (keys: {})", KEYS.join(", ")));
            }
            if v.is_empty() {
                return Err(format!("{k}= has no value"));
            }
            if map.insert(k, v).is_some() {
                return Err(format!("{k} is given twice"));
            }
        }
        Ok(Fields { map })
    }

    fn take(&mut self, k: &str) -> Option<&'a str> {
        self.map.remove(k)
    }

    fn get<T>(
        &mut self,
        k: &str,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, String> {
        match self.take(k) {
            None => Ok(None),
            Some(v) => parse(v)
                .map(Some)
                .ok_or_else(|| format!("{k}={v}: not {what}")),
        }
    }

    fn mac(&mut self, k: &str) -> Result<Option<MacAddr>, String> {
        self.get(k, "a MAC address (52:54:00:00:00:01)", |v| v.parse().ok())
    }
    fn ip4(&mut self, k: &str) -> Result<Option<Ipv4Addr>, String> {
        self.get(k, "an IPv4 address", |v| v.parse().ok())
    }
    fn num<T: TryFrom<u64>>(&mut self, k: &str, max: u64) -> Result<Option<T>, String> {
        let what = format!("a number 0..={max}");
        self.get(k, &what, |v| {
            let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
                Some(h) => u64::from_str_radix(h, 16).ok()?,
                None => v.parse().ok()?,
            };
            (n <= max).then_some(n).and_then(|n| T::try_from(n).ok())
        })
    }

    /// Keys left over: given, but not for this frame type.
    fn finish(self, kind: &str) -> Result<(), String> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(format!("{k}= does not apply to type={kind}")),
        }
    }
}

fn need<T>(v: Option<T>, k: &str, kind: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("type={kind} needs {k}="))
}

/// Builds a frame from a description: whitespace-separated `key=value` tokens (see
/// docs/trace.md). Errors name the token.
pub(crate) fn build_frame(desc: &str) -> Result<Vec<u8>, String> {
    let mut f = Fields::parse(desc)?;
    let src = f.mac("src")?.ok_or("src= is required (the source MAC)")?;
    let dst = f
        .mac("dst")?
        .ok_or("dst= is required (the destination MAC)")?;
    let vlan: Option<u16> = f.num("vlan", 4094)?;
    let pcp: Option<u8> = f.num("pcp", 7)?;
    if pcp.is_some() && vlan.is_none() {
        return Err("pcp= needs vlan= (use vlan=0 for a priority tag)".into());
    }
    let len: Option<usize> = f.num("len", MAX_FRAME as u64)?;
    let type_text = f.take("type").unwrap_or("ipv4");
    let kind = match type_text {
        "arp" => Kind::Arp,
        "ipv4" | "ip" | "udp" | "tcp" | "icmp" => Kind::Ipv4,
        "ipv6" => Kind::Ipv6,
        "dhcp" => Kind::Dhcp,
        "rs" => Kind::Nd(icmpv6::msg_type::ROUTER_SOLICITATION),
        "ra" => Kind::Nd(icmpv6::msg_type::ROUTER_ADVERTISEMENT),
        "ns" => Kind::Nd(icmpv6::msg_type::NEIGHBOR_SOLICITATION),
        "na" => Kind::Nd(icmpv6::msg_type::NEIGHBOR_ADVERTISEMENT),
        "redirect" => Kind::Nd(icmpv6::msg_type::REDIRECT),
        "dhcpv6" => Kind::Dhcpv6,
        "lldp" => Kind::Raw(0x88cc),
        t => {
            let n = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(h) => u16::from_str_radix(h, 16).ok(),
                None => t.parse().ok(),
            };
            Kind::Raw(n.ok_or_else(|| {
                format!(
                    "type={t}: not arp, ipv4, udp, tcp, icmp, ipv6, dhcp, rs, ra, ns, na, redirect, dhcpv6, lldp or an EtherType (0x88b5)"
                )
            })?)
        }
    };
    let (ethertype, body) = match kind {
        Kind::Arp => (0x0806, arp_body(&mut f, src, dst)?),
        Kind::Ipv4 => (0x0800, ipv4_body(&mut f, type_text)?),
        Kind::Ipv6 => (0x86dd, ipv6_body(&mut f)?),
        Kind::Dhcp => (0x0800, dhcp_body(&mut f, src)?),
        Kind::Nd(t) => (0x86dd, nd_body(&mut f, t, type_text, src)?),
        Kind::Dhcpv6 => (0x86dd, dhcpv6_body(&mut f, src, dst)?),
        Kind::Raw(t) => {
            let payload = match f.take("payload") {
                Some(h) => parse_hex(h).map_err(|e| format!("payload={h}: {e}"))?,
                None => Vec::new(),
            };
            (t, payload)
        }
    };
    f.finish(type_text)?;
    let mut frame = Vec::with_capacity(64);
    frame.extend_from_slice(&dst.0);
    frame.extend_from_slice(&src.0);
    if let Some(v) = vlan {
        let tci = u16::from(pcp.unwrap_or(0)) << 13 | v;
        frame.extend_from_slice(&0x8100u16.to_be_bytes());
        frame.extend_from_slice(&tci.to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(&body);
    // The minimum Ethernet frame (60 bytes without FCS), plus the tag if any.
    let want = len.unwrap_or(if vlan.is_some() { 64 } else { 60 });
    if want > frame.len() {
        frame.resize(want, 0);
    } else if len.is_some() && want < frame.len() {
        return Err(format!(
            "len={want}: the frame described is already {} bytes",
            frame.len()
        ));
    }
    Ok(frame)
}

/// The longest frame a description may ask for (a jumbo frame).
const MAX_FRAME: usize = 9216;

fn arp_body(f: &mut Fields<'_>, src: MacAddr, dst: MacAddr) -> Result<Vec<u8>, String> {
    let op: u16 = match f.take("op").unwrap_or("request") {
        "request" => 1,
        "reply" => 2,
        n => n
            .parse()
            .map_err(|_| format!("op={n}: not request, reply or a number"))?,
    };
    let sender_mac = f.mac("sender-mac")?.unwrap_or(src);
    let sender_ip = f.ip4("sender-ip")?.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let target_mac = f
        .mac("target-mac")?
        .unwrap_or(if op == 2 { dst } else { MacAddr([0; 6]) });
    let target_ip = need(f.ip4("target-ip")?, "target-ip", "arp")?;
    let arp = portcullis_dataplane::arp::ArpView {
        oper: op.into(),
        sender_mac,
        sender_ip,
        target_mac,
        target_ip,
    };
    let mut a = vec![0; arp.buffer_len()];
    arp.emit(&mut a).map_err(|e| e.name().to_string())?;
    Ok(a)
}

/// The transport protocol of an IP description: from `type=` or `proto=`.
fn proto(f: &mut Fields<'_>, type_text: &str) -> Result<Option<u8>, String> {
    let given = f.take("proto");
    let p = match (type_text, given) {
        ("udp", None) | (_, Some("udp")) => 17,
        ("tcp", None) | (_, Some("tcp")) => 6,
        ("icmp", None) | (_, Some("icmp")) => 1,
        (_, Some("icmpv6")) => 58,
        (_, None) => return Ok(None),
        (_, Some(n)) => n
            .parse()
            .map_err(|_| format!("proto={n}: not udp, tcp, icmp, icmpv6 or a protocol number"))?,
    };
    Ok(Some(p))
}

/// IPv4 or IPv6 headers (from `builder`) and what follows them.
fn ip_payload(
    f: &mut Fields<'_>,
    builder: etherparse::PacketBuilderStep<etherparse::IpHeaders>,
    proto: Option<u8>,
) -> Result<Vec<u8>, String> {
    let sport: Option<u16> = f.num("src-port", 65535)?;
    let dport: Option<u16> = f.num("dst-port", 65535)?;
    let ports = (sport.unwrap_or(1024), dport.unwrap_or(1024));
    let mut out = Vec::new();
    let r = match proto {
        Some(17) => builder.udp(ports.0, ports.1).write(&mut out, &[]),
        Some(6) => builder.tcp(ports.0, ports.1, 1, 1024).write(&mut out, &[]),
        other => {
            if sport.is_some() || dport.is_some() {
                return Err("src-port=/dst-port= need proto=udp or tcp".into());
            }
            match other {
                Some(1) => builder.icmpv4_echo_request(1, 1).write(&mut out, &[]),
                Some(58) => builder.icmpv6_echo_request(1, 1).write(&mut out, &[]),
                p => builder.write(&mut out, etherparse::IpNumber(p.unwrap_or(253)), &[]),
            }
        }
    };
    r.map_err(|e| format!("cannot build the packet: {e}"))?;
    Ok(out)
}

fn ipv4_body(f: &mut Fields<'_>, type_text: &str) -> Result<Vec<u8>, String> {
    let kind = type_text;
    let sip = need(f.ip4("src-ip")?, "src-ip", kind)?;
    let dip = need(f.ip4("dst-ip")?, "dst-ip", kind)?;
    let ttl: u8 = f.num("ttl", 255)?.unwrap_or(64);
    let proto = proto(f, type_text)?;
    let b = etherparse::PacketBuilder::ipv4(sip.octets(), dip.octets(), ttl);
    ip_payload(f, b, proto)
}

fn ipv6_body(f: &mut Fields<'_>) -> Result<Vec<u8>, String> {
    let ip6 = |f: &mut Fields<'_>, k: &str| -> Result<Ipv6Addr, String> {
        let v = f.get(k, "an IPv6 address", |v| v.parse::<Ipv6Addr>().ok())?;
        need(v, k, "ipv6")
    };
    let sip = ip6(f, "src-ip")?;
    let dip = ip6(f, "dst-ip")?;
    let ttl: u8 = f.num("ttl", 255)?.unwrap_or(64);
    let proto = proto(f, "ipv6")?;
    let b = etherparse::PacketBuilder::ipv6(sip.octets(), dip.octets(), ttl);
    ip_payload(f, b, proto)
}

fn dhcp_body(f: &mut Fields<'_>, src: MacAddr) -> Result<Vec<u8>, String> {
    let msg = need(f.take("msg"), "msg", "dhcp")?;
    let kind = match msg {
        "discover" => MessageType::Discover,
        "offer" => MessageType::Offer,
        "request" => MessageType::Request,
        "decline" => MessageType::Decline,
        "ack" => MessageType::Ack,
        "nak" => MessageType::Nak,
        "release" => MessageType::Release,
        "inform" => MessageType::Inform,
        m => {
            return Err(format!(
                "msg={m}: not discover, offer, request, decline, ack, nak, release or inform"
            ));
        }
    };
    let server = matches!(
        kind,
        MessageType::Offer | MessageType::Ack | MessageType::Nak
    );
    let chaddr = f.mac("chaddr")?.unwrap_or(src);
    let ciaddr = f.ip4("ciaddr")?.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let yiaddr = f.ip4("yiaddr")?.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let xid: u32 = f.num("xid", u64::from(u32::MAX))?.unwrap_or(1);
    let lease: Option<u32> = f.num("lease", u64::from(u32::MAX))?;
    let (def_src, def_dst, sport, dport) = if server {
        (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 67, 68)
    } else {
        (ciaddr, Ipv4Addr::BROADCAST, 68, 67)
    };
    let sip = f.ip4("src-ip")?.unwrap_or(def_src);
    let dip = f.ip4("dst-ip")?.unwrap_or(def_dst);
    let mut m = Message::new_with_id(
        xid,
        ciaddr,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &chaddr.0,
    );
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    if server {
        m.set_opcode(Opcode::BootReply);
        if !sip.is_unspecified() {
            m.opts_mut().insert(DhcpOption::ServerIdentifier(sip));
        }
        if kind != MessageType::Nak {
            m.opts_mut()
                .insert(DhcpOption::AddressLeaseTime(lease.unwrap_or(3600)));
        }
    } else if let Some(l) = lease {
        m.opts_mut().insert(DhcpOption::AddressLeaseTime(l));
    }
    if let Some(ip) = f.ip4("requested-ip")? {
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
    }
    let mut payload = Vec::new();
    m.encode(&mut Encoder::new(&mut payload))
        .map_err(|e| format!("cannot encode the DHCP message: {e}"))?;
    let mut out = Vec::new();
    etherparse::PacketBuilder::ipv4(sip.octets(), dip.octets(), 64)
        .udp(sport, dport)
        .write(&mut out, &payload)
        .map_err(|e| format!("cannot build the packet: {e}"))?;
    Ok(out)
}

impl Fields<'_> {
    fn ip6(&mut self, k: &str) -> Result<Option<Ipv6Addr>, String> {
        self.get(k, "an IPv6 address", |v| v.parse().ok())
    }

    /// A link-layer address option's MAC: `k=MAC`, `k=none` (left out), or absent
    /// (`default`).
    fn lladdr(&mut self, k: &str, default: Option<MacAddr>) -> Result<Option<MacAddr>, String> {
        match self.take(k) {
            None => Ok(default),
            Some("none") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("{k}={v}: not a MAC address or none")),
        }
    }

    /// `flags=` as a set of letters from `allowed` (or `none`); `default` if absent.
    fn flag_letters(&mut self, allowed: &str, default: &str) -> Result<String, String> {
        match self.take("flags") {
            None => Ok(default.to_string()),
            Some("none") => Ok(String::new()),
            Some(v) if v.chars().all(|c| allowed.contains(c)) => Ok(v.to_string()),
            Some(v) => Err(format!(
                "flags={v}: letters from {allowed:?}, or none (e.g. flags={allowed})"
            )),
        }
    }
}

/// `ext=`: IPv6 extension headers to put before the upper layer, in order:
/// `hbh` (Hop-by-Hop Options, first only), `dest` (Destination Options), `frag` (a
/// Fragment header: the first fragment, more fragments to follow).
fn ext_headers(f: &mut Fields<'_>) -> Result<Vec<u8>, String> {
    let Some(v) = f.take("ext") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, h) in v.split(',').enumerate() {
        out.push(match h {
            "hbh" if i == 0 => 0,
            "hbh" => return Err(format!("ext={v}: hbh must come first (RFC 8200 §4.1)")),
            "dest" => 60,
            "frag" => 44,
            _ => return Err(format!("ext={v}: {h:?} is not hbh, dest or frag")),
        });
    }
    Ok(out)
}

/// Puts the extension headers `exts` (next-header numbers, see [`ext_headers`])
/// between the IPv6 header and the upper layer of `packet`, chaining next headers
/// and fixing the payload length. The upper layer's checksum stays valid: its
/// pseudo-header does not cover them (RFC 8200 §8.1).
fn insert_ext(packet: &[u8], exts: &[u8]) -> Vec<u8> {
    let (hdr, upper) = packet.split_at(40);
    let mut out = hdr.to_vec();
    let upper_nh = hdr[6];
    if let Some(first) = exts.first() {
        out[6] = *first;
    }
    for (i, e) in exts.iter().enumerate() {
        let next = exts.get(i + 1).copied().unwrap_or(upper_nh);
        match e {
            // Fragment offset 0, M = 1, identification 1.
            44 => out.extend_from_slice(&[next, 0, 0, 1, 0, 0, 0, 1]),
            // Hop-by-Hop or Destination Options: one PadN filling 8 octets.
            _ => out.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]),
        }
    }
    out.extend_from_slice(upper);
    let plen = u16::try_from(out.len() - 40).unwrap_or(u16::MAX);
    out[4..6].copy_from_slice(&plen.to_be_bytes());
    out
}

/// Sets the hop limit of `packet` if `ttl=` is given.
fn set_hop_limit(f: &mut Fields<'_>, packet: &mut [u8]) -> Result<(), String> {
    if let Some(h) = f.num::<u8>("ttl", 255)? {
        packet[7] = h;
    }
    Ok(())
}

/// An ND message (RFC 4861 §4), hop limit 255 and a valid checksum, with its
/// link-layer address option from the frame's source MAC unless told otherwise.
fn nd_body(f: &mut Fields<'_>, msg: u8, kind: &str, src: MacAddr) -> Result<Vec<u8>, String> {
    use icmpv6::msg_type;
    use nd::{NdMessage, NdOption, PrefixInfo};
    let sip = need(f.ip6("src-ip")?, "src-ip", kind)?;
    let unspecified = sip.is_unspecified();
    let target = |f: &mut Fields<'_>| need(f.ip6("target")?, "target", kind);
    let mut options = Vec::new();
    let sllao = |f: &mut Fields<'_>, options: &mut Vec<NdOption<'_>>| -> Result<(), String> {
        // A DAD probe (from ::) carries no source link-layer address (§7.2.2).
        if let Some(m) = f.lladdr("sllao", (!unspecified).then_some(src))? {
            options.push(NdOption::SourceLinkLayer(m));
        }
        Ok(())
    };
    let (message, default_dst) = match msg {
        msg_type::ROUTER_SOLICITATION => {
            sllao(f, &mut options)?;
            (NdMessage::RouterSolicitation, Some(ALL_ROUTERS))
        }
        msg_type::ROUTER_ADVERTISEMENT => {
            let letters = f.flag_letters("mo", "")?;
            let lifetime: u16 = f.num("router-lifetime", 65535)?.unwrap_or(1800);
            sllao(f, &mut options)?;
            if let Some(p) = f.take("prefix") {
                let bad = || format!("prefix={p}: not an IPv6 prefix (fd00:198:18:10::/64)");
                let (a, l) = p.split_once('/').ok_or_else(bad)?;
                let prefix: Ipv6Addr = a.parse().map_err(|_| bad())?;
                let prefix_len: u8 = l.parse().ok().filter(|l| *l <= 128).ok_or_else(bad)?;
                options.push(NdOption::PrefixInformation(PrefixInfo {
                    prefix_len,
                    on_link: true,
                    autonomous: true,
                    valid_lifetime: 86400,
                    preferred_lifetime: 14400,
                    prefix,
                }));
            }
            let flags =
                (u8::from(letters.contains('m')) << 7) | (u8::from(letters.contains('o')) << 6);
            let ra = nd::RouterAdvertisement {
                cur_hop_limit: 64,
                flags,
                router_lifetime: lifetime,
                reachable_time: 0,
                retrans_timer: 0,
            };
            (NdMessage::RouterAdvertisement(ra), Some(ALL_NODES))
        }
        msg_type::NEIGHBOR_SOLICITATION => {
            let target = target(f)?;
            sllao(f, &mut options)?;
            let dst = nd::solicited_node(&target);
            (NdMessage::NeighborSolicitation { target }, Some(dst))
        }
        msg_type::NEIGHBOR_ADVERTISEMENT => {
            let target = target(f)?;
            let letters = f.flag_letters("rso", "o")?;
            if let Some(m) = f.lladdr("tllao", Some(src))? {
                options.push(NdOption::TargetLinkLayer(m));
            }
            let na = NdMessage::NeighborAdvertisement {
                router: letters.contains('r'),
                solicited: letters.contains('s'),
                override_flag: letters.contains('o'),
                target,
            };
            (na, Some(ALL_NODES))
        }
        _ => {
            let target = target(f)?;
            let destination = need(f.ip6("dest")?, "dest", kind)?;
            if let Some(m) = f.lladdr("tllao", None)? {
                options.push(NdOption::TargetLinkLayer(m));
            }
            let r = NdMessage::Redirect {
                target,
                destination,
            };
            (r, None)
        }
    };
    let dip = match (f.ip6("dst-ip")?, default_dst) {
        (Some(d), _) | (None, Some(d)) => d,
        (None, None) => return Err(format!("type={kind} needs dst-ip=")),
    };
    let exts = ext_headers(f)?;
    let emit = nd::NdEmit {
        src: sip,
        dst: dip,
        message,
        options: &options,
    };
    let mut out = vec![0; emit.buffer_len()];
    emit.emit(&mut out)
        .map_err(|e| format!("cannot build the ND message: {}", e.name()))?;
    set_hop_limit(f, &mut out)?;
    Ok(insert_ext(&out, &exts))
}

/// ff02::1, all nodes.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ff02::2, all routers.
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// ff02::1:2, All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
const ALL_DHCP_AGENTS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// A DUID-LL (RFC 8415 §11.4) of `mac`.
fn duid_ll(mac: MacAddr) -> [u8; 10] {
    let mut d = [0, 3, 0, 1, 0, 0, 0, 0, 0, 0];
    d[4..].copy_from_slice(&mac.0);
    d
}

/// A DHCPv6 message (RFC 8415) in UDP: a client's from 546 to 547 (to
/// ff02::1:2 unless `dst-ip=`), a server's from 547 to 546 with its Server
/// Identifier (DUID-LL of the source MAC); the Client Identifier is a DUID-LL of
/// `client-id=` (default: the client, i.e. the source MAC of a client message and
/// the destination MAC of a server message); `ia-addr=` adds an IA_NA with that
/// address for `lease=` seconds.
fn dhcpv6_body(f: &mut Fields<'_>, src: MacAddr, dst: MacAddr) -> Result<Vec<u8>, String> {
    use dhcpv6::{Dhcpv6Emit, Dhcpv6OptionOut, MessageType as M};
    let msg = need(f.take("msg"), "msg", "dhcpv6")?;
    let t = match msg {
        "solicit" => M::Solicit,
        "advertise" => M::Advertise,
        "request" => M::Request,
        "confirm" => M::Confirm,
        "renew" => M::Renew,
        "rebind" => M::Rebind,
        "reply" => M::Reply,
        "release" => M::Release,
        "decline" => M::Decline,
        "reconfigure" => M::Reconfigure,
        "information-request" => M::InformationRequest,
        m => {
            return Err(format!(
                "msg={m}: not solicit, advertise, request, confirm, renew, rebind, reply, release, decline, reconfigure or information-request"
            ));
        }
    };
    let server = t.is_server_message();
    let sip = need(f.ip6("src-ip")?, "src-ip", "dhcpv6")?;
    let dip = match f.ip6("dst-ip")? {
        Some(d) => d,
        None if !server => ALL_DHCP_AGENTS,
        None => return Err(format!("msg={msg} needs dst-ip= (the client's address)")),
    };
    let (sport, dport) = if server { (547, 546) } else { (546, 547) };
    let sport: u16 = f.num("src-port", 65535)?.unwrap_or(sport);
    let dport: u16 = f.num("dst-port", 65535)?.unwrap_or(dport);
    let xid: u32 = f.num("xid", 0xff_ffff)?.unwrap_or(1);
    let lease: u32 = f.num("lease", u64::from(u32::MAX))?.unwrap_or(3600);
    let client = f
        .mac("client-id")?
        .unwrap_or(if server { dst } else { src });
    let client_duid = duid_ll(client);
    let server_duid = duid_ll(src);
    let ia = f.ip6("ia-addr")?.map(|a| [(a, lease, lease)]);
    let mut options = vec![Dhcpv6OptionOut::ClientId(&client_duid)];
    if server {
        options.push(Dhcpv6OptionOut::ServerId(&server_duid));
    }
    if let Some(addresses) = &ia {
        options.push(Dhcpv6OptionOut::IaNa {
            iaid: 1,
            t1: 0,
            t2: 0,
            addresses,
        });
    }
    let m = Dhcpv6Emit {
        msg_type: t,
        transaction_id: xid,
        options: &options,
    };
    let mut payload = vec![0; m.buffer_len()];
    let n = m
        .emit(&mut payload)
        .map_err(|e| format!("cannot build the DHCPv6 message: {}", e.name()))?;
    payload.truncate(n);
    let exts = ext_headers(f)?;
    let mut out = vec![0; 48 + payload.len()];
    dhcpv6::emit_udp(&mut out, &sip, &dip, sport, dport, &payload)
        .map_err(|e| format!("cannot build the packet: {}", e.name()))?;
    set_hop_limit(f, &mut out)?;
    Ok(insert_ext(&out, &exts))
}
