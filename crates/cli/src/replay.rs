//! `portcullis replay`: every frame of a pcap file through the switch a
//! configuration builds, offline — no daemon, no privileges, no interface — with
//! the verdict of each frame, or counts per verdict and drop reason, and the dropped
//! frames written to a pcap file with their reasons beside it.
//!
//! Owns the offline switch shared with `portcullis trace` ([`OfflineSwitch`]: the
//! configuration loaded and compiled, the switch built at time 0, a port found by
//! name, a capture fed in file order) and the one-line frame description both
//! commands print ([`describe_frame`]).
//!
//! Invariants: the verdicts printed are `Switch::process`'s on the state the earlier
//! frames of the file left (file order; the clock is the pcap timestamp less the
//! first one's, never going backwards); between frames the switch is ticked as the
//! runtime does between batches, and a held DHCPACK's binding is taken as committed
//! (there is no binding store offline). Bad input — configuration, capture, port,
//! output path — is one clear message and exit code 2, never a panic. See
//! `docs/trace.md`.

use anyhow::{Context as _, anyhow};
use portcullis_dataplane::trace::describe_verdict;
use portcullis_dataplane::{
    DropReason, FrameView, IngressFrame, MacAddr, PortId, PortRole, Switch, Timestamp, Verdict,
};
use portcullis_io::pcap::{
    LINKTYPE_ETHERNET, MAX_RECORD_LEN, PcapPacket, PcapReader, PcapWriter, link_type_name,
};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code for bad input (as clap uses for a bad command line).
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(clap::Args, Debug, Clone)]
pub struct ReplayArgs {
    /// The profile (TOML); it may also hold the host binding.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The host binding (TOML with a [host] table), if not in --config.
    #[arg(long)]
    pub host: Option<PathBuf>,
    /// The port every frame of the file is received on (a port name: vm1, uplink1);
    /// with --ingress-by-src-mac, the port of the frames no guest sends.
    #[arg(long)]
    pub port: String,
    /// Each frame whose source MAC is a guest port's MAC (its configured or current
    /// MAC) is received on that guest port; the others on --port.
    #[arg(long)]
    pub ingress_by_src_mac: bool,
    /// The capture (pcap, Ethernet link type; pcapng must be converted first).
    pub pcap: PathBuf,
    /// Write the dropped frames to this pcap file, and their reasons to
    /// FILE.reasons (one line per frame: index in FILE, index in the input, reason).
    #[arg(long, value_name = "FILE")]
    pub dropped: Option<PathBuf>,
    /// Print counts per verdict and per drop reason instead of one line per frame.
    #[arg(long)]
    pub summary: bool,
    /// JSON: one object per frame (JSON Lines), or one object with --summary.
    #[arg(long)]
    pub json: bool,
    /// Also print the events each frame caused (MAC learned, violations, …).
    #[arg(long)]
    pub events: bool,
}

/// Why a command failed: what the user gave (exit 2), or writing the output.
#[derive(Debug)]
pub(crate) enum Failure {
    Input(anyhow::Error),
    Output(io::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Output(e)
    }
}

/// Makes an error a bad-input failure.
pub(crate) fn bad(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Input(e.into())
}

/// Prints a failure and gives the exit code: 2 for bad input; an output error is
/// returned for the caller (exit 1).
pub(crate) fn finish(r: Result<(), Failure>, err: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Failure::Input(e)) => {
            // Nothing more can be done if stderr is gone.
            let _ = writeln!(err, "error: {e:#}");
            Ok(ExitCode::from(EXIT_BAD_INPUT))
        }
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(Failure::Output(e)) => Err(anyhow!("writing the output: {e}")),
    }
}

/// `portcullis replay`. Exit code 0, or 2 for bad input (the message on stderr).
pub fn run(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let r = replay(args, &mut io::stdout().lock());
    finish(r, &mut io::stderr())
}

/// A switch built from a configuration, run offline.
#[derive(Debug)]
pub(crate) struct OfflineSwitch {
    pub sw: Switch,
    /// The latest time given to the switch.
    pub now: Timestamp,
}

impl OfflineSwitch {
    /// Loads and compiles the configuration and builds its switch at time 0.
    pub fn load(config: &Path, host: Option<&Path>) -> Result<OfflineSwitch, Failure> {
        let (_, compiled) =
            portcullis_control::load_compiled(config, host).map_err(|e| bad(anyhow!("{e}")))?;
        let sw = Switch::new(&compiled.spec, Timestamp(0)).map_err(|e| {
            bad(anyhow!(
                "{}: the switch cannot be built: {e}",
                config.display()
            ))
        })?;
        Ok(OfflineSwitch {
            sw,
            now: Timestamp(0),
        })
    }

    /// The port named `name`, or an error listing the ports.
    pub fn port(&self, name: &str) -> Result<PortId, Failure> {
        self.sw.port_id(name).ok_or_else(|| {
            let names: Vec<&str> = self.sw.ports().iter().map(|p| p.name.as_str()).collect();
            bad(anyhow!(
                "no port {name:?} in this configuration (ports: {})",
                names.join(", ")
            ))
        })
    }

    /// Moves the clock to `t` (never backwards) and does the runtime's
    /// between-batch housekeeping.
    pub fn advance(&mut self, t: Timestamp) -> Timestamp {
        self.now = self.now.max(t);
        self.sw.tick(self.now);
        self.now
    }

    /// The guest port whose MAC (configured or current) is `src`, if any.
    pub fn guest_with_mac(&self, src: MacAddr) -> Option<PortId> {
        self.sw
            .ports()
            .iter()
            .find(|p| {
                p.role == PortRole::Guest
                    && (p.effective_mac == Some(src) || p.initial_mac == Some(src))
            })
            .map(|p| p.id)
    }

    /// Processes one frame as the runtime does: a held ACK's binding is taken as
    /// committed (and the frame as sent).
    pub fn process(&mut self, port: PortId, data: &[u8]) -> Verdict {
        let rx = IngressFrame { data, tag: None };
        let v = self.sw.process(self.now, port, &rx);
        if let Verdict::Hold(f, b) = v {
            self.sw
                .release_held(port, &f, &b, data.len(), true, self.now);
        }
        v
    }
}

/// The frames of a capture, in file order.
#[derive(Debug)]
pub(crate) struct Capture {
    pub packets: Vec<PcapPacket>,
    pub snaplen: u32,
}

impl Capture {
    /// Reads a whole pcap file of Ethernet frames.
    pub fn read(path: &Path) -> Result<Capture, Failure> {
        let at = |e: anyhow::Error| bad(e.context(path.display().to_string()));
        let file =
            std::fs::File::open(path).map_err(|e| at(anyhow!("cannot open the capture: {e}")))?;
        let reader = PcapReader::new(io::BufReader::new(file)).map_err(|e| at(e.into()))?;
        let h = reader.header();
        if h.link_type != LINKTYPE_ETHERNET {
            return Err(at(anyhow!(
                "link type {} ({}): replay needs Ethernet frames (link type 1)",
                h.link_type,
                link_type_name(h.link_type)
            )));
        }
        let packets = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| at(e.into()))?;
        Ok(Capture {
            packets,
            snaplen: if h.snaplen == 0 {
                MAX_RECORD_LEN
            } else {
                h.snaplen
            },
        })
    }

    /// The switch time of packet `i`: its timestamp less the first packet's.
    pub fn time(&self, i: usize) -> Timestamp {
        let first = self.packets.first().map_or(0, |p| p.ts_ns);
        Timestamp(
            self.packets
                .get(i)
                .map_or(0, |p| p.ts_ns.saturating_sub(first)),
        )
    }
}

/// One frame in a line: addresses, VLAN tag, EtherType and what it carries
/// ("52:54:00:00:00:01 → ff:ff:ff:ff:ff:ff ARP who-has 198.18.10.2 tell
/// 198.18.10.1"). Never fails: what does not parse is said so.
pub(crate) fn describe_frame(data: &[u8]) -> String {
    let rx = IngressFrame { data, tag: None };
    let Ok(v) = FrameView::parse(&rx) else {
        return format!("malformed frame ({} bytes)", data.len());
    };
    let mut s = format!("{} → {}", v.src, v.dst);
    if let Some(t) = v.outer {
        match t.tpid {
            0x8100 => {
                let _ = write!(s, " vlan {}", t.vid);
            }
            tpid => {
                let _ = write!(s, " tag 0x{tpid:04x} vid {}", t.vid);
            }
        }
        if t.pcp_dei >> 1 != 0 {
            let _ = write!(s, " pcp {}", t.pcp_dei >> 1);
        }
    }
    let l3 = data.get(v.body_offset as usize + 2..).unwrap_or(&[]);
    s.push(' ');
    s.push_str(&describe_l3(v.ethertype, l3));
    s
}

fn describe_l3(ethertype: u16, l3: &[u8]) -> String {
    use portcullis_dataplane::arp::{self, ArpOp};
    match ethertype {
        0x0806 => match arp::parse(l3) {
            Ok(a) => match a.oper {
                ArpOp::Request if a.is_probe() => format!("ARP probe who-has {}", a.target_ip),
                ArpOp::Request => format!("ARP who-has {} tell {}", a.target_ip, a.sender_ip),
                ArpOp::Reply => format!("ARP reply {} is-at {}", a.sender_ip, a.sender_mac),
                ArpOp::Other(n) => format!("ARP op {n} {} {}", a.sender_ip, a.sender_mac),
            },
            Err(_) => "ARP (malformed)".into(),
        },
        0x0800 => describe_ipv4(l3),
        0x86dd => match etherparse::SlicedPacket::from_ip(l3) {
            Ok(p) => {
                let (src, dst) = match &p.net {
                    Some(etherparse::NetSlice::Ipv6(ip)) => (
                        ip.header().source_addr().to_string(),
                        ip.header().destination_addr().to_string(),
                    ),
                    _ => ("?".into(), "?".into()),
                };
                format!("IPv6 {src} → {dst}{}", describe_transport(&p.transport))
            }
            Err(_) => "IPv6 (malformed)".into(),
        },
        t => match portcullis_dataplane::trace::ethertype_name(t) {
            Some(n) if t <= 1500 => format!("802.3 length {t} ({n})"),
            Some(n) => format!("{n} (0x{t:04x})"),
            None => format!("EtherType 0x{t:04x}"),
        },
    }
}

fn describe_ipv4(l3: &[u8]) -> String {
    use portcullis_dataplane::dhcp;
    let Ok(p) = etherparse::SlicedPacket::from_ip(l3) else {
        return "IPv4 (malformed)".into();
    };
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        return "IPv4 (malformed)".into();
    };
    let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
    if let Ok(u) = dhcp::ipv4_udp(l3)
        && matches!((u.sport, u.dport), (67 | 68, 67 | 68))
        && let Some(payload) = l3.get(u.payload.clone())
    {
        return match dhcp::parse(payload) {
            Ok(m) => {
                let kind = m
                    .message_type
                    .map_or("BOOTP".to_string(), |t| format!("{t:?}").to_uppercase());
                let mut s = format!("IPv4 {src} → {dst} DHCP {kind} chaddr {}", m.chaddr);
                if !m.yiaddr.is_unspecified() {
                    let _ = write!(s, " yiaddr {}", m.yiaddr);
                }
                s
            }
            Err(_) => format!("IPv4 {src} → {dst} DHCP (malformed)"),
        };
    }
    format!("IPv4 {src} → {dst}{}", describe_transport(&p.transport))
}

fn describe_transport(t: &Option<etherparse::TransportSlice<'_>>) -> String {
    use etherparse::TransportSlice;
    match t {
        Some(TransportSlice::Udp(u)) => {
            format!(" UDP {} → {}", u.source_port(), u.destination_port())
        }
        Some(TransportSlice::Tcp(t)) => {
            format!(" TCP {} → {}", t.source_port(), t.destination_port())
        }
        Some(TransportSlice::Icmpv4(_)) => " ICMP".into(),
        Some(TransportSlice::Icmpv6(i)) => match i.type_u8() {
            133 => " ICMPv6 router solicitation".into(),
            134 => " ICMPv6 router advertisement".into(),
            135 => " ICMPv6 neighbor solicitation".into(),
            136 => " ICMPv6 neighbor advertisement".into(),
            137 => " ICMPv6 redirect".into(),
            _ => " ICMPv6".into(),
        },
        Some(TransportSlice::Igmp(_)) => " IGMP".into(),
        None => String::new(),
    }
}

/// A verdict as JSON: action, output ports and VLAN, or the drop reason.
pub(crate) fn verdict_json(sw: &Switch, v: &Verdict) -> serde_json::Value {
    let ports = |f: &portcullis_dataplane::Forward| -> Vec<String> {
        f.out
            .iter()
            .filter_map(|p| sw.port(p).map(|p| p.name.clone()))
            .collect()
    };
    match v {
        Verdict::Forward(f) => serde_json::json!({
            "action": "forward", "out": ports(f), "vlan": f.vid.get(),
            "rewrite": format!("{:?}", f.rewrite).to_lowercase(),
        }),
        Verdict::Hold(f, b) => serde_json::json!({
            "action": "hold", "out": ports(f), "vlan": f.vid.get(),
            "rewrite": format!("{:?}", f.rewrite).to_lowercase(),
            "binding": {
                "ip": b.ip.to_string(), "mac": b.mac.to_string(),
                "port": sw.port(b.port).map(|p| p.name.clone()),
                "vlan": b.vid.get(), "lease_secs": b.lease_secs,
            },
        }),
        Verdict::Drop(r) => serde_json::json!({ "action": "drop", "reason": r.name() }),
    }
}

/// Counts per verdict and per drop reason.
#[derive(Debug)]
struct Summary {
    frames: u64,
    forward: u64,
    hold: u64,
    drop: u64,
    reasons: [u64; DropReason::COUNT],
}

impl Default for Summary {
    fn default() -> Summary {
        Summary {
            frames: 0,
            forward: 0,
            hold: 0,
            drop: 0,
            reasons: [0; DropReason::COUNT],
        }
    }
}

impl Summary {
    fn add(&mut self, v: &Verdict) {
        self.frames += 1;
        match v {
            Verdict::Forward(_) => self.forward += 1,
            Verdict::Hold(..) => self.hold += 1,
            Verdict::Drop(r) => {
                self.drop += 1;
                self.reasons[*r as usize] += 1;
            }
        }
    }

    fn reasons(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.reasons[*r as usize]))
            .filter(|(_, n)| *n > 0)
    }

    fn write(&self, out: &mut dyn Write, json: bool) -> io::Result<()> {
        if json {
            let reasons: serde_json::Map<String, serde_json::Value> = self
                .reasons()
                .map(|(r, n)| (r.name().to_string(), n.into()))
                .collect();
            let v = serde_json::json!({
                "frames": self.frames, "forward": self.forward, "hold": self.hold,
                "drop": self.drop, "drop_reasons": reasons,
            });
            return writeln!(out, "{v}");
        }
        writeln!(out, "frames   {}", self.frames)?;
        writeln!(out, "forward  {}", self.forward)?;
        writeln!(out, "hold     {}", self.hold)?;
        writeln!(out, "drop     {}", self.drop)?;
        for (r, n) in self.reasons() {
            writeln!(out, "  {:<26} {n}", r.name())?;
        }
        Ok(())
    }
}

/// The dropped-frames file and its reasons file.
struct DroppedWriter {
    pcap: PcapWriter<io::BufWriter<std::fs::File>>,
    reasons: io::BufWriter<std::fs::File>,
    count: u64,
}

impl DroppedWriter {
    fn create(path: &Path, snaplen: u32) -> Result<DroppedWriter, Failure> {
        let reasons_path = reasons_path(path);
        let open = |p: &Path| {
            std::fs::File::create(p)
                .map(io::BufWriter::new)
                .with_context(|| format!("cannot create {}", p.display()))
                .map_err(bad)
        };
        let pcap = PcapWriter::new(open(path)?, LINKTYPE_ETHERNET, snaplen)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(bad)?;
        Ok(DroppedWriter {
            pcap,
            reasons: open(&reasons_path)?,
            count: 0,
        })
    }

    fn add(&mut self, index: usize, p: &PcapPacket, reason: DropReason) -> io::Result<()> {
        self.pcap.write_packet(p.ts_ns, p.orig_len, &p.data)?;
        writeln!(self.reasons, "{}\t{index}\t{}", self.count, reason.name())?;
        self.count += 1;
        Ok(())
    }

    fn finish(self) -> io::Result<()> {
        self.pcap.finish()?;
        let mut r = self.reasons;
        r.flush()
    }
}

/// Where `--dropped FILE` puts the reasons: `FILE.reasons`.
pub(crate) fn reasons_path(pcap: &Path) -> PathBuf {
    let mut s = pcap.as_os_str().to_owned();
    s.push(".reasons");
    PathBuf::from(s)
}

/// The replay itself; output to `out`.
pub(crate) fn replay(args: &ReplayArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let mut sw = OfflineSwitch::load(&args.config, args.host.as_deref())?;
    let port = sw.port(&args.port)?;
    let capture = Capture::read(&args.pcap)?;
    let mut dropped = match &args.dropped {
        Some(p) => Some((DroppedWriter::create(p, capture.snaplen)?, p)),
        None => None,
    };
    let mut summary = Summary::default();
    for (i, p) in capture.packets.iter().enumerate() {
        let now = sw.advance(capture.time(i));
        let ingress = match p.data.get(6..12) {
            Some(src) if args.ingress_by_src_mac => {
                sw.guest_with_mac(MacAddr::from_slice(src)).unwrap_or(port)
            }
            _ => port,
        };
        let v = sw.process(ingress, &p.data);
        summary.add(&v);
        if let (Some((d, path)), Verdict::Drop(r)) = (dropped.as_mut(), v) {
            d.add(i, p, r)
                .with_context(|| format!("writing {}", path.display()))
                .map_err(bad)?;
        }
        let events: Vec<portcullis_dataplane::Event> = sw.sw.drain_events().collect();
        if args.summary {
            continue;
        }
        let secs = now.0 as f64 / 1e9;
        if args.json {
            let mut line = serde_json::json!({
                "index": i, "time_ns": now.0, "frame": describe_frame(&p.data),
                "bytes": p.data.len(), "verdict": verdict_json(&sw.sw, &v),
            });
            if args.ingress_by_src_mac {
                line["port"] = sw.sw.port(ingress).map(|p| p.name.clone()).into();
            }
            if args.events {
                line["events"] = serde_json::to_value(&events).unwrap_or_default();
            }
            writeln!(out, "{line}")?;
        } else {
            let on = if args.ingress_by_src_mac {
                format!("{}: ", sw.sw.port(ingress).map_or("?", |p| p.name.as_str()))
            } else {
                String::new()
            };
            writeln!(
                out,
                "{i:>5} {secs:>12.6}  {on}{} ⇒ {}",
                describe_frame(&p.data),
                describe_verdict(&sw.sw, &v)
            )?;
            if args.events {
                for e in &events {
                    let text = serde_json::to_string(&e.kind).unwrap_or_default();
                    writeln!(out, "{:>20}event {text}", "")?;
                }
            }
        }
    }
    if let Some((d, path)) = dropped {
        d.finish()
            .with_context(|| format!("writing {}", path.display()))
            .map_err(bad)?;
    }
    if args.summary {
        summary.write(out, args.json)?;
    }
    Ok(())
}
