//! `portcullis capture`, the API side: the frames the running switch drops on a
//! port's ingress, captured live by the daemon (`POST /v1/ports/{name}/capture`),
//! decoded from its answer, and the summary printed. The files are written by
//! `crate::capture` (a pcap through `portcullis_io::pcap`).
//!
//! Invariant: a malformed answer is an error, never a panic.

use super::ApiOpts;
use anyhow::{Context, bail};
use clap::Args;
use portcullis_api::{CaptureRequest, Method};
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
pub struct Dropped {
    pub time_ns: u64,
    pub reason: String,
    pub orig_len: u32,
    pub seq: u64,
    pub data: Vec<u8>,
}

/// Asks the daemon for a capture of `args.port`'s drops: (snaplen, frames, lost).
pub fn fetch(args: &CaptureArgs, api: &ApiOpts) -> anyhow::Result<(u32, Vec<Dropped>, u64)> {
    let req = CaptureRequest {
        count: args.count,
        seconds: args.seconds,
        snaplen: args.snaplen,
    };
    let path = format!("/v1/ports/{}/capture", args.port);
    let answer = api.call(Method::POST, &path, Some(serde_json::to_value(req)?))?;
    decode(&answer)
}

/// The daemon's answer → (snaplen, frames, lost).
pub(crate) fn decode(v: &serde_json::Value) -> anyhow::Result<(u32, Vec<Dropped>, u64)> {
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

/// Frames per reason, and the number lost; the frames are in `path`, their
/// reasons in `reasons`.
pub fn summary(
    out: &mut dyn Write,
    port: &str,
    (path, reasons): (&Path, &Path),
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
        reasons.display()
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
    use proptest::prelude::*;

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
