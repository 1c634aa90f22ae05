//! `portcullis capture`: the frames the running switch drops on a port's ingress,
//! captured live by the daemon (`crate::client::capture`) and written to a
//! classic pcap with their reasons beside it in `FILE.reasons` (the format of
//! `portcullis replay --dropped`: index in FILE, the frame's number among the drops
//! the capture saw, reason — tab-separated).
//!
//! Invariants: the files are written only once the daemon answered (a refused or
//! failed capture leaves no file behind); every frame written has its reason line,
//! in the same order.

use crate::client::ApiOpts;
use crate::client::capture::{CaptureArgs, Dropped, fetch, summary};
use anyhow::Context;
use portcullis_io::pcap::{LINKTYPE_ETHERNET, PcapWriter};
use std::io::{self, Write};
use std::path::Path;

/// `portcullis capture`.
pub fn run(args: &CaptureArgs, api: &ApiOpts) -> anyhow::Result<()> {
    let (snaplen, frames, lost) = fetch(args, api)?;
    write_files(&args.write, snaplen, &frames)?;
    summary(
        &mut io::stdout().lock(),
        &args.port,
        (&args.write, &crate::replay::reasons_path(&args.write)),
        &frames,
        lost,
    )?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_io::pcap::PcapReader;

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
        let (snaplen, frames, lost) = crate::client::capture::decode(&answer()).unwrap();
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
        let reasons_path = crate::replay::reasons_path(&path);
        summary(&mut out, "vm1", (&path, &reasons_path), &frames, lost).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("3 dropped frames captured, 2 lost"), "{out}");
        assert!(out.contains("forged_transmit  2"), "{out}");
        assert!(out.contains("mac_acl_deny     1"), "{out}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
