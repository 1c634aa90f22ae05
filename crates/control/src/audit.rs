//! The audit log: one JSON line per mutating API call (accepted, failed or
//! refused), hash-chained and fsync'd before the call is answered.
//!
//! Format: each line is an [`AuditRecord`] serialized as JSON, fields in
//! declaration order, `hash` last. Canonically, `hash` is the hex SHA-256 of the
//! record's line *as written* with the value of `hash` empty (`…,"hash":""}`), and
//! `prev` is the `hash` of the record before it (`"0"` × 64 for the first one);
//! `seq` counts from 1. Hashing the bytes as written (rather than a
//! re-serialization) makes the check independent of how a reader orders JSON keys.
//!
//! [`verify`] reads a log from the start and names the first line that is wrong:
//! an edited record fails its own hash; a removed, inserted or reordered one breaks
//! `seq` (checked first) or `prev`; a record edited *and* re-hashed breaks the `prev`
//! of the line after it. A last line without its newline is a truncated record.
//! Limitation: removing records from the *end* of the log leaves a valid, shorter
//! chain; only an external copy of the last hash (or the record count) detects that.

use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One audited call: the log's line format, which the API shows as stored.
pub use portcullis_api::AuditRecord;

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why the audit log cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "audit log {path}: its last record does not verify ({reason}); run `portcullis audit verify --file {path}` and move the file aside after inspection"
    )]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "audit log {path}: an earlier write failed ({reason}); no further records are written until restart"
    )]
    Broken { path: PathBuf, reason: String },
    #[error("audit log: cannot serialize a record: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The first bad record [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", where_(*line, *seq))]
pub struct VerifyError {
    /// 1-based line number (0 if the file cannot be read at all).
    pub line: usize,
    /// The record's `seq`, if the line parsed.
    pub seq: Option<u64>,
    pub reason: String,
}

fn where_(line: usize, seq: Option<u64>) -> String {
    match (line, seq) {
        (0, _) => String::new(),
        (l, Some(s)) => format!("record at line {l} (seq {s}): "),
        (l, None) => format!("record at line {l}: "),
    }
}

/// An open audit log, ready to append.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    next_seq: u64,
    prev: String,
    /// Set after a failed write: the file may hold a partial line.
    broken: Option<String>,
    /// A copy of each record, sent after it is on disk.
    forward: Option<crate::syslog::SyslogForwarder>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

const HASH_KEY: &str = ",\"hash\":\"";

/// Checks one line (without its newline): parses it and checks its own hash.
fn check_line(line: &str) -> Result<AuditRecord, (Option<u64>, String)> {
    let rec: AuditRecord =
        serde_json::from_str(line).map_err(|e| (None, format!("not an audit record: {e}")))?;
    let seq = Some(rec.seq);
    let pos = line
        .rfind(HASH_KEY)
        .filter(|p| line[p + HASH_KEY.len()..].len() == 64 + 2 && line.ends_with("\"}"))
        .ok_or((
            seq,
            "not in canonical form (hash is not the last field)".to_string(),
        ))?;
    let unhashed = format!("{}\"\"}}", &line[..pos + HASH_KEY.len() - 1]);
    let want = sha256_hex(unhashed.as_bytes());
    if want != rec.hash {
        return Err((seq, "hash mismatch: the record was edited".into()));
    }
    Ok(rec)
}

/// Verifies the whole chain of the log at `path`; returns the number of records.
pub fn verify(path: &Path) -> Result<usize, VerifyError> {
    let file = File::open(path).map_err(|e| VerifyError {
        line: 0,
        seq: None,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    let mut reader = BufReader::new(file);
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1u64;
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| VerifyError {
                line: line_no + 1,
                seq: None,
                reason: format!("read error: {e}"),
            })?;
        if n == 0 {
            return Ok(line_no);
        }
        line_no += 1;
        let bad = |seq: Option<u64>, reason: String| VerifyError {
            line: line_no,
            seq,
            reason,
        };
        if buf.last() != Some(&b'\n') {
            return Err(bad(None, "truncated record (no end of line)".into()));
        }
        buf.pop();
        let line = std::str::from_utf8(&buf).map_err(|_| bad(None, "not UTF-8".into()))?;
        let rec = check_line(line).map_err(|(seq, reason)| bad(seq, reason))?;
        if rec.seq != expected_seq {
            return Err(bad(
                Some(rec.seq),
                format!(
                    "seq {} where {expected_seq} was expected: a record was removed, inserted or reordered",
                    rec.seq
                ),
            ));
        }
        if rec.prev != prev {
            return Err(bad(
                Some(rec.seq),
                "prev does not match the previous record's hash: a record was removed, inserted, reordered or re-hashed".into(),
            ));
        }
        prev = rec.hash;
        expected_seq += 1;
    }
}

/// Reads every record that parses, in file order, for display (no verification);
/// also returns how many lines did not parse.
pub fn read_records(path: &Path) -> std::io::Result<(Vec<AuditRecord>, usize)> {
    let reader = BufReader::new(File::open(path)?);
    let mut out = Vec::new();
    let mut bad = 0;
    for line in reader.lines() {
        match serde_json::from_str::<AuditRecord>(&line?) {
            Ok(r) => out.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((out, bad))
}

/// The last line of `file` (without its newline), or `None` for an empty file.
fn last_line(file: &mut File) -> std::io::Result<Option<Result<String, String>>> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    const CHUNK: u64 = 8192;
    loop {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        pos = start;
        // A newline before the final byte starts the last line.
        let body = &tail[..tail.len() - 1];
        if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
            tail.drain(..=i);
            break;
        }
        if pos == 0 {
            break;
        }
    }
    if tail.last() != Some(&b'\n') {
        return Ok(Some(Err("truncated record (no end of line)".into())));
    }
    tail.pop();
    Ok(Some(
        String::from_utf8(tail).map_err(|_| "not UTF-8".to_string()),
    ))
}

impl AuditLog {
    /// Opens (or creates, mode 0600) the log and continues its chain. Refuses a log
    /// whose last record does not verify on its own (truncated, garbage, edited).
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        if !existed {
            // Make the new file's directory entry durable too.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            }
        }
        let (next_seq, prev) = match last_line(&mut file).map_err(io)? {
            None => (1, GENESIS.to_string()),
            Some(line) => {
                let rec = line
                    .and_then(|l| check_line(&l).map_err(|(_, r)| r))
                    .map_err(|reason| AuditError::Damaged {
                        path: path.to_path_buf(),
                        reason,
                    })?;
                (rec.seq + 1, rec.hash)
            }
        };
        Ok(AuditLog {
            path: path.to_path_buf(),
            file,
            next_seq,
            prev,
            broken: None,
            forward: None,
        })
    }

    /// Forwards a copy of every record appended from now on (None: stop).
    pub fn set_forward(&mut self, forward: Option<crate::syslog::SyslogForwarder>) {
        self.forward = forward;
    }

    /// The sequence number of the last record (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Records that could not be forwarded.
    pub fn forward_failures(&self) -> u64 {
        self.forward.as_ref().map_or(0, |f| f.failed)
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record and syncs it to disk before returning it.
    pub fn append(
        &mut self,
        user: &str,
        role: &str,
        source: &str,
        action: &str,
        args: serde_json::Value,
        result: &str,
    ) -> Result<AuditRecord, AuditError> {
        if let Some(reason) = &self.broken {
            return Err(AuditError::Broken {
                path: self.path.clone(),
                reason: reason.clone(),
            });
        }
        let mut rec = AuditRecord {
            seq: self.next_seq,
            time: format_rfc3339(SystemTime::now()),
            user: user.into(),
            role: role.into(),
            source: source.into(),
            action: action.into(),
            args,
            result: result.into(),
            prev: self.prev.clone(),
            hash: String::new(),
        };
        let unhashed = serde_json::to_string(&rec)?;
        rec.hash = sha256_hex(unhashed.as_bytes());
        let mut line = serde_json::to_string(&rec)?;
        line.push('\n');
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            self.broken = Some(source.to_string());
            return Err(AuditError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.next_seq += 1;
        self.prev = rec.hash.clone();
        if let Some(f) = &mut self.forward {
            f.send(&rec.time, &line);
        }
        Ok(rec)
    }
}

/// `SystemTime` as RFC 3339 in UTC with milliseconds.
pub fn format_rfc3339(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Milliseconds since the Unix epoch of an RFC 3339 time (`2026-11-26T21:51:50Z`,
/// with optional fraction and `±HH:MM` offset) or of a date (`2026-11-26`, midnight
/// UTC).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |a: &str| -> Option<i64> {
        a.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| a.parse().ok())
            .flatten()
    };
    let date = s.get(..10)?;
    let (y, m, d) = (
        num(date.get(..4)?)?,
        num(date.get(5..7)?)?,
        num(date.get(8..10)?)?,
    );
    if &date[4..5] != "-" || &date[7..8] != "-" || !(1..=12).contains(&m) || !(1..=31).contains(&d)
    {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hh, mm, ss) = (
        num(rest.get(..2)?)?,
        num(rest.get(3..5)?)?,
        num(rest.get(6..8)?)?,
    );
    if &rest[2..3] != ":" || &rest[5..6] != ":" || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    ms += (hh * 3600 + mm * 60 + ss) * 1000;
    let mut rest = &rest[8..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let f = &frac[..digits];
        let padded = format!("{:0<3}", &f[..f.len().min(3)]);
        ms += num(&padded)?;
        rest = &frac[digits..];
    }
    match rest {
        "Z" | "z" => Some(ms),
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (oh, om) = (num(rest.get(1..3)?)?, num(rest.get(4..6)?)?);
            if rest.len() != 6 || &rest[3..4] != ":" {
                return None;
            }
            Some(ms - sign * (oh * 3600 + om * 60) * 1000)
        }
    }
}

/// Howard Hinnant's days-from-civil (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn log_with(n: usize) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("audit.log");
        let mut log = AuditLog::open(&path).unwrap();
        for i in 1..=n {
            log.append(
                "uid:0",
                "admin",
                "unix:pid=1,uid=0",
                "binding.add",
                serde_json::json!({ "ip": format!("10.0.0.{i}"), "vlan": 10 }),
                "ok",
            )
            .unwrap();
        }
        (dir, path)
    }

    mod tempdir {
        /// A scratch directory removed on drop.
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let d = std::env::temp_dir()
                    .join(format!("portcullis-audit-test-{}-{n}", std::process::id()));
                let _ = std::fs::remove_dir_all(&d);
                std::fs::create_dir_all(&d).unwrap();
                Dir(d)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut s = lines.join("\n");
        s.push('\n');
        std::fs::write(path, s).unwrap();
    }

    #[test]
    fn five_records_verify_and_the_file_is_private() {
        let (_d, path) = log_with(5);
        assert_eq!(verify(&path), Ok(5));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let l = lines(&path);
        let first: AuditRecord = serde_json::from_str(&l[0]).unwrap();
        assert_eq!((first.seq, first.prev.as_str()), (1, GENESIS));
        assert!(first.time.ends_with('Z') && first.time.len() == 24);
    }

    #[test]
    fn an_edited_record_is_named() {
        let (_d, path) = log_with(5);
        let mut l = lines(&path);
        l[2] = l[2].replace("10.0.0.3", "10.0.0.9");
        write_lines(&path, &l);
        let e = verify(&path).unwrap_err();
        assert_eq!((e.line, e.seq), (3, Some(3)), "{e}");
        assert!(e.reason.contains("edited"), "{e}");
    }

    #[test]
    fn an_edited_and_rehashed_record_breaks_the_next_prev() {
        let (_d, path) = log_with(5);
        let mut l = lines(&path);
        let mut r: AuditRecord = serde_json::from_str(&l[2]).unwrap();
        r.result = "refused: nope".into();
        r.hash = String::new();
        r.hash = sha256_hex(serde_json::to_string(&r).unwrap().as_bytes());
        l[2] = serde_json::to_string(&r).unwrap();
        write_lines(&path, &l);
        let e = verify(&path).unwrap_err();
        assert_eq!((e.line, e.seq), (4, Some(4)), "{e}");
        assert!(e.reason.contains("prev"), "{e}");
    }

    #[test]
    fn a_removed_record_is_named_at_the_line_it_left() {
        let (_d, path) = log_with(5);
        let mut l = lines(&path);
        l.remove(1);
        write_lines(&path, &l);
        // Line 2 now holds seq 3: the first bad line is 2.
        let e = verify(&path).unwrap_err();
        assert_eq!((e.line, e.seq), (2, Some(3)), "{e}");
        // The first record removed: line 1 holds seq 2.
        let mut l = lines(&path);
        l.remove(0);
        write_lines(&path, &l);
        assert_eq!(verify(&path).unwrap_err().line, 1);
    }

    #[test]
    fn swapped_records_are_named() {
        let (_d, path) = log_with(5);
        let mut l = lines(&path);
        l.swap(1, 2);
        write_lines(&path, &l);
        let e = verify(&path).unwrap_err();
        assert_eq!((e.line, e.seq), (2, Some(3)), "{e}");
    }

    #[test]
    fn a_renumbered_record_is_caught_by_its_hash_or_prev() {
        let (_d, path) = log_with(3);
        let mut l = lines(&path);
        l.remove(1);
        l[1] = l[1].replace("\"seq\":3", "\"seq\":2");
        write_lines(&path, &l);
        assert_eq!(verify(&path).unwrap_err().line, 2);
    }

    #[test]
    fn truncation_and_garbage_are_errors_and_open_refuses_them() {
        let (_d, path) = log_with(3);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 10]).unwrap();
        let e = verify(&path).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.reason.contains("truncated"), "{e}");
        assert!(matches!(
            AuditLog::open(&path),
            Err(AuditError::Damaged { .. })
        ));

        let mut garbage = full.clone();
        garbage.extend_from_slice(b"hello\n");
        std::fs::write(&path, &garbage).unwrap();
        let e = verify(&path).unwrap_err();
        assert_eq!((e.line, e.seq), (4, None), "{e}");
        assert!(AuditLog::open(&path).is_err());

        // Cut after a whole line: a valid, shorter chain (documented limitation).
        let two = full.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(1);
        std::fs::write(&path, &full[..=two.unwrap().0]).unwrap();
        assert_eq!(verify(&path), Ok(2));
    }

    #[test]
    fn reopening_continues_the_chain() {
        let (_d, path) = log_with(2);
        let mut log = AuditLog::open(&path).unwrap();
        let r = log
            .append(
                "uid:65534",
                "none",
                "unix:pid=9,uid=65534",
                "port.recover",
                serde_json::json!({ "port": "vm1" }),
                "refused: only root or the daemon's user may recover a port",
            )
            .unwrap();
        assert_eq!(r.seq, 3);
        drop(log);
        assert_eq!(verify(&path), Ok(3));
        let (recs, bad) = read_records(&path).unwrap();
        assert_eq!((recs.len(), bad), (3, 0));
        assert_eq!(recs[2], r);
        // A long record spanning several read chunks is found as the last line.
        let mut log = AuditLog::open(&path).unwrap();
        log.append(
            "uid:0",
            "admin",
            "s",
            "a",
            serde_json::json!("x".repeat(20_000)),
            "ok",
        )
        .unwrap();
        drop(log);
        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!(
            log.append("uid:0", "admin", "s", "a", serde_json::Value::Null, "ok")
                .unwrap()
                .seq,
            5
        );
        assert_eq!(verify(&path), Ok(5));
    }

    #[test]
    fn an_empty_or_missing_log() {
        let d = tempdir::Dir::new();
        let path = d.0.join("audit.log");
        assert_eq!(verify(&path).unwrap_err().line, 0);
        std::fs::write(&path, "").unwrap();
        assert_eq!(verify(&path), Ok(0));
    }

    #[test]
    fn times_round_trip() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_729_910_123);
        let s = format_rfc3339(t);
        assert_eq!(s, "2026-11-26T21:51:50.123Z");
        assert_eq!(parse_rfc3339(&s), Some(1_795_729_910_123));
        assert_eq!(
            parse_rfc3339("2026-11-26T22:51:50.123+01:00"),
            Some(1_795_729_910_123)
        );
        assert_eq!(parse_rfc3339("2026-11-26"), Some(1_795_651_200_000));
        assert_eq!(
            format_rfc3339(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z").map(|m| m / 1000),
            Some(1_709_164_800)
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-11-26T25:00:00Z",
            "2026-11-26T10:00:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
