//! `portcullis capture`: the frames the running switch drops on a port's ingress,
//! captured live by the daemon (`POST /v1/ports/{name}/capture`) and written to a
//! classic pcap with their reasons beside it in `FILE.reasons` (the format of
//! `portcullis replay --dropped`: index in FILE, the frame's number among the drops
//! the capture saw, reason — tab-separated).
//!
//! Invariants: the files are written only once the daemon answered (a refused or
//! failed capture leaves no file behind); every frame written has its reason line,
//! in the same order; a malformed answer is an error, never a panic.

use anyhow::{Context, bail};
use clap::Args;
use portcullis_io::pcap::{LINKTYPE_ETHERNET, PcapWriter};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct CaptureArgs {
    /// The port whose drops to capture (a port name: vm1, uplink1).
    #[arg(long)]
    pub port: String,
    /// Capture only the frames the switch drops (received on the port and dropped
    /// by its ingress verdict). This is the only mode, and the default.
    #[arg(long)]
    pub drops_only: bool,
    /// Stop after this many drops (1..=100000; the daemon's default 1000).
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds (1..=300; the daemon's default 10).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Bytes kept of each frame (1..=65535; the daemon's default 256).
    #[arg(long)]
    pub snaplen: Option<u32>,
    /// The pcap file to write; the reasons go to FILE.reasons.
    #[arg(long, short = 'w')]
    pub write: PathBuf,
}

/// One frame of the daemon's answer, decoded.
#[derive(Debug, PartialEq, Eq)]
struct Dropped {
    time_ns: u64,
    reason: String,
    orig_len: u32,
    seq: u64,
    data: Vec<u8>,
}

/// `portcullis capture`.
pub fn run(args: &CaptureArgs, api: &crate::manage::ApiOpts) -> anyhow::Result<()> {
    let mut body = serde_json::Map::new();
    if let Some(n) = args.count {
        body.insert("count".into(), n.into());
    }
    if let Some(s) = args.seconds {
        body.insert("seconds".into(), s.into());
    }
    if let Some(l) = args.snaplen {
        body.insert("snaplen".into(), l.into());
    }
    let path = format!("/v1/ports/{}/capture", args.port);
    let answer = api.call(
        hyper::Method::POST,
        &path,
        Some(serde_json::Value::Object(body)),
    )?;
    let (snaplen, frames, lost) = decode(&answer)?;
    write_files(&args.write, snaplen, &frames)?;
    summary(
        &mut io::stdout().lock(),
        &args.port,
        &args.write,
        &frames,
        lost,
    )?;
    Ok(())
}

/// The daemon's answer → (snaplen, frames, lost).
fn decode(v: &serde_json::Value) -> anyhow::Result<(u32, Vec<Dropped>, u64)> {
    let snaplen = v["snaplen"]
        .as_u64()
        .and_then(|s| u32::try_from(s).ok())
        .context("the daemon's answer has no snaplen")?;
    let lost = v["lost"]
        .as_u64()
        .context("the daemon's answer has no lost count")?;
    let frames = v["frames"]
        .as_array()
        .context("the daemon's answer has no frames")?
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let field = |k: &str| f[k].as_u64().with_context(|| format!("frame {i}: no {k}"));
            Ok(Dropped {
                time_ns: field("time_ns")?,
                orig_len: u32::try_from(field("orig_len")?)
                    .with_context(|| format!("frame {i}: orig_len too big"))?,
                seq: field("seq")?,
                reason: f["reason"]
                    .as_str()
                    .with_context(|| format!("frame {i}: no reason"))?
                    .to_string(),
                data: parse_hex(
                    f["hex"]
                        .as_str()
                        .with_context(|| format!("frame {i}: no hex"))?,
                )
                .with_context(|| format!("frame {i}"))?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((snaplen, frames, lost))
}

fn parse_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("hex of odd length {}", s.len());
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .with_context(|| format!("{:?} is not a hex byte", String::from_utf8_lossy(p)))
        })
        .collect()
}

/// The pcap and its reasons file.
fn write_files(path: &Path, snaplen: u32, frames: &[Dropped]) -> anyhow::Result<()> {
    let reasons_path = crate::replay::reasons_path(path);
    let open = |p: &Path| {
        std::fs::File::create(p)
            .map(io::BufWriter::new)
            .with_context(|| format!("cannot create {}", p.display()))
    };
    let mut pcap = PcapWriter::new(open(path)?, LINKTYPE_ETHERNET, snaplen)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut reasons = open(&reasons_path)?;
    for (i, f) in frames.iter().enumerate() {
        pcap.write_packet(f.time_ns, f.orig_len, &f.data)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(reasons, "{i}\t{}\t{}", f.seq, f.reason)
            .with_context(|| format!("cannot write {}", reasons_path.display()))?;
    }
    pcap.finish()
        .and_then(|mut w| w.flush())
        .with_context(|| format!("cannot write {}", path.display()))?;
    reasons
        .flush()
        .with_context(|| format!("cannot write {}", reasons_path.display()))?;
    Ok(())
}

/// Frames per reason, and the number lost.
fn summary(
    out: &mut dyn Write,
    port: &str,
    path: &Path,
    frames: &[Dropped],
    lost: u64,
) -> io::Result<()> {
    let mut per_reason: BTreeMap<&str, u64> = BTreeMap::new();
    for f in frames {
        *per_reason.entry(f.reason.as_str()).or_default() += 1;
    }
    writeln!(
        out,
        "{port}: {} dropped frame{} captured, {lost} lost -> {} (reasons in {})",
        frames.len(),
        if frames.len() == 1 { "" } else { "s" },
        path.display(),
        crate::replay::reasons_path(path).display()
    )?;
    let width = per_reason.keys().map(|r| r.len()).max().unwrap_or(0);
    for (reason, n) in per_reason {
        writeln!(out, "  {reason:<width$}  {n}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_io::pcap::PcapReader;
    use proptest::prelude::*;

    fn answer() -> serde_json::Value {
        serde_json::json!({
            "port": "vm1",
            "snaplen": 4,
            "lost": 2,
            "frames": [
                { "time_ns": 1_000, "reason": "forged_transmit", "orig_len": 60, "seq": 0, "hex": "52540000" },
                { "time_ns": 2_000, "reason": "mac_acl_deny", "orig_len": 64, "seq": 3, "hex": "ffffffff" },
                { "time_ns": 3_000, "reason": "forged_transmit", "orig_len": 60, "seq": 4, "hex": "0102" },
            ],
        })
    }

    #[test]
    fn the_files_hold_every_frame_and_its_reason_in_order() {
        let dir = std::env::temp_dir().join(format!("pcl-capture-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("drops.pcap");
        let (snaplen, frames, lost) = decode(&answer()).unwrap();
        assert_eq!((snaplen, lost), (4, 2));
        write_files(&path, snaplen, &frames).unwrap();
        let mut r = PcapReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(r.header().snaplen, 4);
        let mut got = Vec::new();
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            got.push((p.ts_ns, p.orig_len, p.data));
        }
        assert_eq!(
            got,
            vec![
                (1_000, 60, vec![0x52, 0x54, 0, 0]),
                (2_000, 64, vec![0xff; 4]),
                (3_000, 60, vec![1, 2]),
            ]
        );
        let reasons = std::fs::read_to_string(dir.join("drops.pcap.reasons")).unwrap();
        assert_eq!(
            reasons,
            "0\t0\tforged_transmit\n1\t3\tmac_acl_deny\n2\t4\tforged_transmit\n"
        );
        let mut out = Vec::new();
        summary(&mut out, "vm1", &path, &frames, lost).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("3 dropped frames captured, 2 lost"), "{out}");
        assert!(out.contains("forged_transmit  2"), "{out}");
        assert!(out.contains("mac_acl_deny     1"), "{out}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_malformed_answer_is_an_error() {
        for bad in [
            serde_json::json!({}),
            serde_json::json!({ "snaplen": 4, "lost": 0 }),
            serde_json::json!({ "snaplen": 4, "lost": 0, "frames": [{ "time_ns": 1, "reason": "x", "orig_len": 1, "seq": 0, "hex": "zz" }] }),
            serde_json::json!({ "snaplen": 4, "lost": 0, "frames": [{ "time_ns": 1, "reason": "x", "orig_len": 1, "seq": 0, "hex": "abc" }] }),
            serde_json::json!({ "snaplen": 4, "lost": 0, "frames": [{ "reason": "x", "orig_len": 1, "seq": 0, "hex": "ab" }] }),
        ] {
            assert!(decode(&bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// Hex decoding takes every byte string back, and refuses what is not hex
        /// without panicking.
        #[test]
        fn hex_round_trips(data in proptest::collection::vec(any::<u8>(), 0..64), junk in ".{0,16}") {
            let s: String = data.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(parse_hex(&s).unwrap(), data);
            let _ = parse_hex(&junk);
        }
    }
}
