//! Names of local callers: the user name of a uid and the names of all the groups
//! the user is in, from the system's user database (NSS: /etc/passwd, /etc/group,
//! LDAP, …), for `[host.management.roles]`.
//!
//! Invariant: a lookup never fails and never panics. An id without a name becomes
//! `uid:N` / `gid:N` (names with ':' are refused in the configuration, so such a
//! stand-in never matches a role); buffers grow on `ERANGE` up to a bound, and group
//! lists are capped at [`MAX_GROUPS`].
//!
//! The lookups may block (NSS can ask a directory server): call them from a
//! blocking thread (`tokio::task::spawn_blocking`).

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;

/// The most groups looked up for one user (Linux's `NGROUPS_MAX`).
pub const MAX_GROUPS: usize = 65_536;
/// The largest buffer given to `getpwuid_r` / `getgrgid_r`.
const MAX_BUFFER: usize = 1 << 20;
/// The first buffer size when `sysconf` gives none.
const FIRST_BUFFER: usize = 1024;

/// The user name of `uid` (or `uid:N`) and the names of all its groups: the
/// caller's `gid` first (the peer credentials' group), then the user's primary
/// group in the user database and its supplementary groups there, in the
/// database's order, each once (a group without a name as `gid:N`).
pub fn user_and_groups(uid: u32, gid: u32) -> (String, Vec<String>) {
    let user = user_entry(uid);
    let mut gids = vec![gid];
    if let Some((name, primary)) = &user {
        for g in group_ids(name, *primary) {
            if !gids.contains(&g) {
                gids.push(g);
            }
        }
    }
    let groups = gids
        .into_iter()
        .map(|g| group_name(g).unwrap_or_else(|| format!("gid:{g}")))
        .collect();
    let name = user.map_or_else(|| format!("uid:{uid}"), |(name, _)| name);
    (name, groups)
}

/// The first buffer size for a `_r` lookup, from `sysconf(name)`.
fn first_buffer(name: libc::c_int) -> usize {
    // SAFETY: sysconf only reads its argument; it has no memory effects.
    let n = unsafe { libc::sysconf(name) };
    usize::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_BUFFER).contains(n))
        .unwrap_or(FIRST_BUFFER)
}

/// `getpwuid_r(uid)`'s `pw_name` and `pw_gid`, `None` when the uid has no entry
/// or the lookup fails.
fn user_entry(uid: u32) -> Option<(String, u32)> {
    let mut buf: Vec<libc::c_char> = vec![0; first_buffer(libc::_SC_GETPW_R_SIZE_MAX)];
    loop {
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `pwd` is writable storage for
        // one passwd, `buf` is writable for `buf.len()` bytes, `result` is a valid
        // out-pointer. On success `result` points to `pwd`, whose string fields
        // point into `buf`; both outlive their use below.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                pwd.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < MAX_BUFFER {
            let len = (buf.len() * 2).min(MAX_BUFFER);
            buf = vec![0; len];
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        // SAFETY: `result` is non-null, so `pwd` was initialised by getpwuid_r and
        // `pw_name` is a NUL-terminated string inside `buf`, which is still alive.
        let (name, primary) = unsafe { (CStr::from_ptr((*result).pw_name), (*result).pw_gid) };
        return Some((name.to_string_lossy().into_owned(), primary));
    }
}

/// `getgrgid_r(gid)`'s `gr_name`, `None` when the gid has no entry or the
/// lookup fails.
fn group_name(gid: u32) -> Option<String> {
    let mut buf: Vec<libc::c_char> = vec![0; first_buffer(libc::_SC_GETGR_R_SIZE_MAX)];
    loop {
        let mut grp = MaybeUninit::<libc::group>::uninit();
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `user_entry`: valid writable storage for one group, a buffer
        // of `buf.len()` bytes, and a valid out-pointer.
        let rc = unsafe {
            libc::getgrgid_r(
                gid,
                grp.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < MAX_BUFFER {
            let len = (buf.len() * 2).min(MAX_BUFFER);
            buf = vec![0; len];
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        // SAFETY: `result` is non-null, so `grp` was initialised and `gr_name` is a
        // NUL-terminated string inside `buf`, which is still alive.
        let name = unsafe { CStr::from_ptr((*result).gr_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// The id of the group `name` (`getgrnam_r`), `None` when there is no such group
/// or the lookup fails.
pub fn group_id(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    let mut buf: Vec<libc::c_char> = vec![0; first_buffer(libc::_SC_GETGR_R_SIZE_MAX)];
    loop {
        let mut grp = MaybeUninit::<libc::group>::uninit();
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: `c_name` is a NUL-terminated string; otherwise as in `group_name`:
        // valid writable storage for one group, a buffer of `buf.len()` bytes, and a
        // valid out-pointer.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                grp.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < MAX_BUFFER {
            let len = (buf.len() * 2).min(MAX_BUFFER);
            buf = vec![0; len];
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        // SAFETY: `result` is non-null, so `grp` was initialised by the call.
        return Some(unsafe { (*result).gr_gid });
    }
}

/// `getgrouplist(user, gid)`: the ids of the groups `user` is in (including
/// `gid`), at most [`MAX_GROUPS`]; empty when the lookup fails.
fn group_ids(user: &str, gid: u32) -> Vec<u32> {
    let Ok(c_user) = CString::new(user) else {
        return Vec::new();
    };
    let mut len: usize = 64;
    loop {
        let mut groups: Vec<libc::gid_t> = vec![0; len];
        let mut n = libc::c_int::try_from(len).unwrap_or(libc::c_int::MAX);
        // SAFETY: `c_user` is a NUL-terminated string; `groups` is writable for `n`
        // entries, and `n` is a valid in/out count that getgrouplist updates.
        let rc = unsafe { libc::getgrouplist(c_user.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        let wanted = usize::try_from(n).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(wanted.min(len));
            return groups;
        }
        // Too small: glibc sets `n` to the number needed (other C libraries may
        // not, so grow at least twofold), up to the bound.
        if len >= MAX_GROUPS {
            // A user in more groups than Linux allows: keep what fits.
            groups.truncate(len);
            return groups;
        }
        len = wanted.max(len * 2).min(MAX_GROUPS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_root() {
        let (user, groups) = user_and_groups(0, 0);
        assert_eq!(user, "root");
        assert_eq!(groups.first().map(String::as_str), Some("root"));
    }

    #[test]
    fn the_current_user_is_named_with_its_groups() {
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let (user, groups) = user_and_groups(uid, gid);
        assert!(!user.is_empty());
        assert!(!groups.is_empty(), "the primary group is always listed");
        let mut unique = groups.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), groups.len(), "each group once: {groups:?}");
    }

    /// Every membership /etc/group states for a user of /etc/passwd is found.
    #[test]
    fn supplementary_groups_from_etc_group() {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let users: Vec<(&str, u32, u32)> = passwd
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some((
                    *f.first()?,
                    f.get(2)?.parse().ok()?,
                    f.get(3)?.parse().ok()?,
                ))
            })
            .collect();
        let mut checked = 0;
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            let (Some(name), Some(members)) = (f.first(), f.get(3)) else {
                continue;
            };
            for member in members.split(',').filter(|m| !m.is_empty()) {
                let Some((user, uid, gid)) = users.iter().find(|u| u.0 == member) else {
                    continue;
                };
                if users.iter().filter(|u| u.1 == *uid).count() > 1 {
                    continue; // two names for one uid: getpwuid picks one
                }
                let (found, groups) = user_and_groups(*uid, *gid);
                assert_eq!(&found, user);
                assert!(
                    groups.iter().any(|g| g == name),
                    "{user} is in {name}: {groups:?}"
                );
                checked += 1;
            }
        }
        eprintln!("{checked} memberships checked");
    }

    #[test]
    fn unknown_ids_get_stand_in_names() {
        // Ids no system uses (just below the "nobody" range of 32-bit ids).
        let (user, groups) = user_and_groups(4_000_000_123, 4_000_000_321);
        assert_eq!(user, "uid:4000000123");
        assert_eq!(groups, ["gid:4000000321"]);
    }

    #[test]
    fn a_caller_with_another_gid_keeps_its_database_groups() {
        // root calling with a gid that has no name (after setgid, say): that gid
        // first, then root's own primary group from the database.
        let (user, groups) = user_and_groups(0, 4_000_000_321);
        assert_eq!(user, "root");
        assert_eq!(groups[0], "gid:4000000321");
        assert!(groups.contains(&"root".to_owned()), "{groups:?}");
    }
}
