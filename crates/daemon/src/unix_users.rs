//! Names of local callers: the user name of a uid and the names of all the groups
//! the user is in, from the system's user database (NSS: /etc/passwd, /etc/group,
//! LDAP, …), for `[host.management.roles]`.
//!
//! Invariant: a lookup never fails and never panics. An id without a name becomes
//! `uid:N` / `gid:N` (names with ':' are refused in the configuration, so such a
//! stand-in never matches a role); group lists are capped at [`MAX_GROUPS`]. The
//! reentrant libc lookups and their growing buffers are the `nix` crate's.
//!
//! The lookups may block (NSS can ask a directory server): call them from a
//! blocking thread (`tokio::task::spawn_blocking`).

use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::CString;

/// The most groups looked up for one user (Linux's `NGROUPS_MAX`).
pub const MAX_GROUPS: usize = 65_536;

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

/// The user database's name and primary group of `uid` (`getpwuid_r`), `None`
/// when the uid has no entry or the lookup fails.
fn user_entry(uid: u32) -> Option<(String, u32)> {
    let u = User::from_uid(Uid::from_raw(uid)).ok()??;
    Some((u.name, u.gid.as_raw()))
}

/// The name of `gid` (`getgrgid_r`), `None` when it has none or the lookup fails.
fn group_name(gid: u32) -> Option<String> {
    Some(Group::from_gid(Gid::from_raw(gid)).ok()??.name)
}

/// The id of the group named `name` (`getgrnam_r`), `None` when there is no such
/// group or the lookup fails.
pub fn group_id(name: &str) -> Option<u32> {
    Some(Group::from_name(name).ok()??.gid.as_raw())
}

/// `getgrouplist(user, gid)`: the ids of the groups `user` is in (including
/// `gid`), at most [`MAX_GROUPS`]; empty when the lookup fails.
fn group_ids(user: &str, gid: u32) -> Vec<u32> {
    let Ok(c_user) = CString::new(user) else {
        return Vec::new();
    };
    nix::unistd::getgrouplist(&c_user, Gid::from_raw(gid))
        .map(|gs| gs.into_iter().take(MAX_GROUPS).map(Gid::as_raw).collect())
        .unwrap_or_default()
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
