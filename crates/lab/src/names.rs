//! Naming scheme: every namespace and interface the lab creates starts with
//! `pcl` + the creating process id in base 36 (5 characters, zero padded) + the
//! lab's decimal counter within that process, followed by a kind letter and a
//! decimal object index, e.g. `pcl009ix0h3`. The pid lets [`crate::Lab::cleanup_stale`]
//! find leftovers of dead processes; the counters make names unique within one.

use crate::LabError;

/// The prefix shared by every object any lab creates.
pub const NAME_PREFIX: &str = "pcl";
/// Width of the base-36 pid field that follows [`NAME_PREFIX`].
pub const PID_WIDTH: usize = 5;
/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn base36(mut n: u32, width: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    while out.len() < width {
        out.push(b'0');
    }
    out.reverse();
    out.into_iter().map(char::from).collect()
}

/// The name prefix of everything created by labs in process `pid`,
/// e.g. `pid_prefix(12345) == "pcl009ix"`.
pub fn pid_prefix(pid: u32) -> String {
    format!("{NAME_PREFIX}{}", base36(pid, PID_WIDTH))
}

/// The creating pid encoded in a lab object name, if `name` follows the scheme
/// (`pcl`, 5 base-36 digits, then a decimal lab counter).
pub fn parse_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let field = rest.get(..PID_WIDTH)?;
    if !rest[PID_WIDTH..].starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut pid: u64 = 0;
    for b in field.bytes() {
        let d = DIGITS.iter().position(|x| *x == b)? as u64;
        pid = pid * 36 + d;
    }
    u32::try_from(pid).ok()
}

/// True if `name` was created by the lab whose id is `lab_id` (the id followed by a
/// kind letter, so lab `…1` does not claim lab `…12`'s objects).
pub(crate) fn belongs_to_lab(name: &str, lab_id: &str) -> bool {
    name.strip_prefix(lab_id)
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_lowercase()))
}

/// Builds an interface name `<lab_id><kind><idx>` and checks the 15-byte limit.
pub(crate) fn if_name(lab_id: &str, kind: char, idx: u32) -> Result<String, LabError> {
    let n = format!("{lab_id}{kind}{idx}");
    if n.len() > IFNAME_MAX {
        return Err(LabError::InvalidArg(format!(
            "interface name `{n}` would exceed {IFNAME_MAX} bytes (too many labs/objects in one process)"
        )));
    }
    Ok(n)
}

/// Keeps `[A-Za-z0-9_-]`, maps everything else to `_`, truncates to `max` bytes.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_roundtrip() {
        for pid in [0u32, 1, 35, 36, 12345, 4_194_304, 60_466_175] {
            let p = pid_prefix(pid);
            assert_eq!(p.len(), NAME_PREFIX.len() + PID_WIDTH, "{p}");
            assert_eq!(parse_pid(&format!("{p}0h1")), Some(pid));
        }
        assert_eq!(pid_prefix(12345), "pcl009ix");
    }

    #[test]
    fn parse_rejects_foreign_names() {
        for n in [
            "eth0",
            "pcl",
            "pcl0000",
            "pcl00001",
            "pcl0000xh1",
            "pclABCDE0",
            "pcl00001h0",
        ] {
            assert_eq!(parse_pid(n), None, "{n}");
        }
    }

    #[test]
    fn lab_membership_is_exact() {
        assert!(belongs_to_lab("pcl009ix1h0", "pcl009ix1"));
        assert!(belongs_to_lab("pcl009ix1n0-x", "pcl009ix1"));
        assert!(!belongs_to_lab("pcl009ix12h0", "pcl009ix1"));
        assert!(!belongs_to_lab("pcl009ix1", "pcl009ix1"));
    }

    #[test]
    fn names_fit() {
        let id = format!("{}{}", pid_prefix(4_194_304), 999);
        assert_eq!(if_name(&id, 'h', 999).unwrap().len(), 15);
        assert!(if_name(&id, 'h', 1000).is_err());
        assert_eq!(sanitize("a b/c-d_é", 64), "a_b_c-d__");
        assert_eq!(sanitize("abcdef", 3), "abc");
    }
}
