//! Role-based access control of the management API: the three roles and what
//! each may do, the mapping of local callers (Unix user and groups) and of TCP
//! callers (bearer tokens) to a role, and the making of new tokens.
//!
//! Invariants: only the argon2 hash of a token is ever configured or kept; a
//! bearer string is compared with it by the argon2 crate (constant time) and
//! never echoed in an error, a log or `Debug`. The verification cache holds SHA-256
//! digests of bearer strings, is bounded ([`TOKEN_CACHE_ENTRIES`]), belongs to one
//! [`Authorizer`] (a configuration change builds a new one, with an empty cache),
//! and a cached token's expiry is still checked on every call.

use crate::config::Management;
pub use crate::config::management::{
    MAX_HASH_LANES, MAX_HASH_MEMORY_KIB, MAX_HASH_PASSES, MAX_TOKEN_NAME_LEN, ROLES, Role,
    UnknownRole, check_member_name, check_token_hash, check_token_name, expiry_unix, parse_expiry,
};
use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// One kind of API access; each route of the API requires one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// The switch's state: ports, MAC table, bindings, counters, events.
    Read,
    /// The audit log.
    ReadAudit,
    /// Runtime operations that change the switch's state but not its configuration.
    Operate,
    /// Configuration and management identities.
    Administer,
}

impl Role {
    /// Whether this role grants `p`: admin all four; operator `Read` and `Operate`;
    /// auditor `Read` and `ReadAudit`.
    pub fn allows(self, p: Permission) -> bool {
        match self {
            Role::Admin => true,
            Role::Operator => matches!(p, Permission::Read | Permission::Operate),
            Role::Auditor => matches!(p, Permission::Read | Permission::ReadAudit),
        }
    }
}

/// Every bearer token starts with this.
pub const TOKEN_PREFIX: &str = "pcl_";
/// Random bytes in a token's secret (written as twice as many hex digits).
pub const TOKEN_SECRET_BYTES: usize = 32;
/// How many verified tokens an [`Authorizer`] remembers (by SHA-256 of the bearer
/// string), to spare the argon2 work on every request.
pub const TOKEN_CACHE_ENTRIES: usize = 64;

/// Why a bearer token was refused. The messages name the token (its name is not
/// secret) and never contain its secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not of the form `pcl_<name>_<64 hex digits>`.
    #[error("malformed bearer token: expected pcl_<name>_<secret>")]
    Malformed,
    /// No token of that name is configured.
    #[error("unknown token {0:?}")]
    Unknown(String),
    /// The token verified but its `expires` has passed.
    #[error("token {0:?} has expired")]
    Expired(String),
    /// The secret does not match the configured hash.
    #[error("token {0:?} does not match its configured hash")]
    Mismatch(String),
}

/// One configured token, as the authorizer keeps it.
#[derive(Clone)]
struct TokenEntry {
    role: Role,
    hash: String,
    expires_unix: Option<u64>,
}

/// A verified token, remembered by SHA-256 of its bearer string.
#[derive(Clone)]
struct CachedToken {
    name: String,
    role: Role,
    expires_unix: Option<u64>,
}

/// The verified tokens, oldest first; at most [`TOKEN_CACHE_ENTRIES`].
#[derive(Default)]
struct TokenCache {
    entries: HashMap<[u8; 32], CachedToken>,
    order: VecDeque<[u8; 32]>,
}

impl TokenCache {
    fn get(&self, key: &[u8; 32]) -> Option<CachedToken> {
        self.entries.get(key).cloned()
    }

    fn insert(&mut self, key: [u8; 32], token: CachedToken) {
        if self.entries.insert(key, token).is_some() {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > TOKEN_CACHE_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Decides the role of a caller from `[host.management]`. Built anew whenever
/// the configuration changes; clones share one verification cache.
#[derive(Clone)]
pub struct Authorizer {
    owner_uid: u32,
    users: HashMap<String, Role>,
    groups: HashMap<String, Role>,
    tokens: HashMap<String, TokenEntry>,
    cache: Arc<Mutex<TokenCache>>,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tokens: Vec<(&str, Role)> = self
            .tokens
            .iter()
            .map(|(n, t)| (n.as_str(), t.role))
            .collect();
        tokens.sort();
        f.debug_struct("Authorizer")
            .field("owner_uid", &self.owner_uid)
            .field("users", &self.users)
            .field("groups", &self.groups)
            .field("tokens", &tokens)
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    /// `owner_uid`: the daemon's own user, which (like root, uid 0) is always admin.
    ///
    /// A name listed under several roles (a configuration that validation refuses)
    /// gets the lowest of them.
    pub fn new(m: &Management, owner_uid: u32) -> Authorizer {
        let mut users = HashMap::new();
        let mut groups = HashMap::new();
        for role in ROLES.into_iter().rev() {
            let members = m.roles.of(role);
            for u in &members.users {
                users.insert(u.clone(), role);
            }
            for g in &members.groups {
                groups.insert(g.clone(), role);
            }
        }
        let mut tokens = HashMap::new();
        for t in &m.tokens {
            // Like the members: with a duplicate name (refused by validation), the
            // lowest role wins.
            let entry = TokenEntry {
                role: t.role,
                hash: t.hash.clone(),
                expires_unix: t.expires_unix,
            };
            tokens
                .entry(t.name.clone())
                .and_modify(|e: &mut TokenEntry| {
                    if entry.role < e.role {
                        *e = entry.clone();
                    }
                })
                .or_insert(entry);
        }
        Authorizer {
            owner_uid,
            users,
            groups,
            tokens,
            cache: Arc::default(),
        }
    }

    /// The role of a local caller: uid 0 and `owner_uid` → Admin; else by user
    /// name, then by group (the highest role among the groups'), else `None`.
    pub fn role_of_local(&self, uid: u32, user: &str, groups: &[String]) -> Option<Role> {
        if uid == 0 || uid == self.owner_uid {
            return Some(Role::Admin);
        }
        if let Some(role) = self.users.get(user) {
            return Some(*role);
        }
        groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .max()
            .copied()
    }

    /// Checks a bearer token `pcl_<name>_<secret>` against the configured hash of
    /// `<name>` (one argon2 verification, or none when the token was verified
    /// before), and its expiry against `now_unix`. Returns the token's name and role.
    ///
    /// The argon2 work takes tens of milliseconds: call this off the async
    /// executor (`spawn_blocking`).
    pub fn verify_token(&self, bearer: &str, now_unix: u64) -> Result<(String, Role), TokenError> {
        let (name, _secret) = split_token(bearer).ok_or(TokenError::Malformed)?;
        let key: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
        let cached = self.lock_cache().get(&key);
        let token = match cached {
            Some(t) => t,
            None => {
                let Some(entry) = self.tokens.get(name) else {
                    // As much work as a wrong secret, so that the time of the
                    // answer does not tell which token names exist.
                    if let Ok(phc) = PasswordHash::new(&DUMMY_HASH) {
                        let _ = Argon2::default().verify_password(bearer.as_bytes(), &phc);
                    }
                    return Err(TokenError::Unknown(name.to_owned()));
                };
                let phc = PasswordHash::new(&entry.hash)
                    .map_err(|_| TokenError::Mismatch(name.to_owned()))?;
                Argon2::default()
                    .verify_password(bearer.as_bytes(), &phc)
                    .map_err(|_| TokenError::Mismatch(name.to_owned()))?;
                let t = CachedToken {
                    name: name.to_owned(),
                    role: entry.role,
                    expires_unix: entry.expires_unix,
                };
                self.lock_cache().insert(key, t.clone());
                t
            }
        };
        match token.expires_unix {
            Some(end) if now_unix >= end => Err(TokenError::Expired(token.name)),
            _ => Ok((token.name, token.role)),
        }
    }

    /// How many verified tokens are remembered (for tests and metrics).
    pub fn cached_tokens(&self) -> usize {
        self.lock_cache().len()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        // The cache holds no invariant a panicking holder could break.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A hash (the default parameters, like every token's) that an unknown token name is
/// verified against.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    Argon2::default()
        .hash_password(b"pcl_unknown-token-name")
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// `pcl_<name>_<secret>` → (name, secret) when the name is a valid token name
/// and the secret is [`TOKEN_SECRET_BYTES`] bytes in lower-case hex.
fn split_token(bearer: &str) -> Option<(&str, &str)> {
    let rest = bearer.strip_prefix(TOKEN_PREFIX)?;
    let (name, secret) = rest.split_once('_')?;
    check_token_name(name).ok()?;
    let hex_ok = secret.len() == 2 * TOKEN_SECRET_BYTES
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    hex_ok.then_some((name, secret))
}

/// A new token for `name`: `pcl_<name>_<64 hex digits>` from 32 bytes of OS
/// randomness, and its argon2id PHC hash (the argon2 crate's default parameters,
/// a random salt). The whole token string is what is hashed.
pub fn new_token(name: &str) -> Result<(String, String), String> {
    check_token_name(name)?;
    let mut secret = [0u8; TOKEN_SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|e| format!("no OS randomness: {e}"))?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("{TOKEN_PREFIX}{name}_{hex}");
    let hash = Argon2::default()
        .hash_password(token.as_bytes())
        .map_err(|e| format!("cannot hash the token: {e}"))?
        .to_string();
    Ok((token, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Members, RoleMembers, TokenSpec};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    /// Tokens are slow to hash: make each test's once.
    fn token_of(name: &str) -> (String, String) {
        static TOKENS: OnceLock<Mutex<HashMap<String, (String, String)>>> = OnceLock::new();
        let map = TOKENS.get_or_init(Mutex::default);
        let mut map = map.lock().unwrap();
        map.entry(name.to_owned())
            .or_insert_with(|| new_token(name).unwrap())
            .clone()
    }

    fn members(users: &[&str], groups: &[&str]) -> Members {
        Members {
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn management() -> Management {
        Management {
            roles: RoleMembers {
                admin: members(&["alice"], &["pc-admin"]),
                operator: members(&["bob"], &["pc-operator"]),
                auditor: members(&["carol"], &["pc-auditor"]),
            },
            ..Management::default()
        }
    }

    #[test]
    fn permission_table() {
        use Permission::*;
        let all = [Read, ReadAudit, Operate, Administer];
        let table = [
            (Role::Admin, [true, true, true, true]),
            (Role::Operator, [true, false, true, false]),
            (Role::Auditor, [true, true, false, false]),
        ];
        for (role, row) in table {
            for (p, want) in all.into_iter().zip(row) {
                assert_eq!(role.allows(p), want, "{role} {p:?}");
            }
        }
    }

    #[test]
    fn role_names_round_trip() {
        for r in ROLES {
            assert_eq!(r.name().parse::<Role>(), Ok(r));
            assert_eq!(r.to_string(), r.name());
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.name())
            );
        }
        let e = "root".parse::<Role>().unwrap_err();
        assert!(e.to_string().contains("\"admin\""), "{e}");
        assert!("Admin".parse::<Role>().is_err());
        assert!(Role::Auditor < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn local_callers() {
        let a = Authorizer::new(&management(), 990);
        let none: &[String] = &[];
        assert_eq!(a.role_of_local(0, "root", none), Some(Role::Admin));
        assert_eq!(a.role_of_local(990, "portcullis", none), Some(Role::Admin));
        assert_eq!(a.role_of_local(1000, "alice", none), Some(Role::Admin));
        assert_eq!(a.role_of_local(1001, "bob", none), Some(Role::Operator));
        assert_eq!(a.role_of_local(1002, "carol", none), Some(Role::Auditor));
        // By group.
        let g = strings(&["users", "pc-operator"]);
        assert_eq!(a.role_of_local(1003, "dave", &g), Some(Role::Operator));
        // The highest of several groups, whatever their order.
        let g = strings(&["pc-auditor", "pc-admin", "pc-operator"]);
        assert_eq!(a.role_of_local(1003, "dave", &g), Some(Role::Admin));
        let g = strings(&["pc-operator", "pc-auditor"]);
        assert_eq!(a.role_of_local(1003, "dave", &g), Some(Role::Operator));
        // The user's own entry comes first, even when a group would give more.
        let g = strings(&["pc-admin"]);
        assert_eq!(a.role_of_local(1002, "carol", &g), Some(Role::Auditor));
        // Nobody.
        assert_eq!(a.role_of_local(1004, "eve", &strings(&["users"])), None);
        assert_eq!(
            a.role_of_local(1004, "uid:1004", &strings(&["gid:7"])),
            None
        );
        // Nothing configured: only root and the owner.
        let empty = Authorizer::new(&Management::default(), 990);
        assert_eq!(empty.role_of_local(1000, "alice", &g), None);
        assert_eq!(empty.role_of_local(0, "root", none), Some(Role::Admin));
    }

    #[test]
    fn a_name_under_two_roles_gets_the_lowest() {
        let mut m = management();
        m.roles.admin.users.push("bob".into());
        m.roles.auditor.groups.push("pc-admin".into());
        let a = Authorizer::new(&m, 990);
        assert_eq!(a.role_of_local(1001, "bob", &[]), Some(Role::Operator));
        assert_eq!(
            a.role_of_local(1003, "dave", &strings(&["pc-admin"])),
            Some(Role::Auditor)
        );
    }

    fn with_token(name: &str, role: Role, expires_unix: Option<u64>) -> (Management, String) {
        let (token, hash) = token_of(name);
        let mut m = management();
        m.tokens.push(TokenSpec {
            name: name.into(),
            role,
            hash,
            expires_unix,
        });
        (m, token)
    }

    #[test]
    fn new_tokens_have_the_documented_form() {
        let (token, hash) = token_of("ci-bot");
        let (name, secret) = split_token(&token).unwrap();
        assert_eq!(name, "ci-bot");
        assert_eq!(secret.len(), 64);
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        check_token_hash(&hash).unwrap();
        // Two tokens for one name differ.
        let (again, hash2) = new_token("ci-bot").unwrap();
        assert_ne!(again, token);
        assert_ne!(hash2, hash);
        assert!(new_token("ci_bot").is_err());
        assert!(new_token("").is_err());
    }

    #[test]
    fn tokens_verify_with_their_role() {
        let (m, token) = with_token("ci-bot", Role::Operator, None);
        let a = Authorizer::new(&m, 990);
        assert_eq!(
            a.verify_token(&token, 1_800_000_000),
            Ok(("ci-bot".into(), Role::Operator))
        );
        assert_eq!(a.cached_tokens(), 1);
        // Again, from the cache; clones share it.
        let b = a.clone();
        assert_eq!(
            b.verify_token(&token, 1_800_000_000),
            Ok(("ci-bot".into(), Role::Operator))
        );
        assert_eq!(b.cached_tokens(), 1);
        // A new authorizer (configuration change) starts empty.
        assert_eq!(Authorizer::new(&m, 990).cached_tokens(), 0);
    }

    #[test]
    fn a_wrong_secret_is_a_mismatch() {
        let (m, token) = with_token("ci-bot", Role::Admin, None);
        let a = Authorizer::new(&m, 990);
        // Same name, another secret (last digit changed).
        let mut wrong = token.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        let e = a.verify_token(&wrong, 0).unwrap_err();
        assert_eq!(e, TokenError::Mismatch("ci-bot".into()));
        assert!(!e.to_string().contains(&wrong[12..]), "{e}");
        // Another token of the same name, made elsewhere.
        let (other, _) = new_token("ci-bot").unwrap();
        assert_eq!(
            a.verify_token(&other, 0),
            Err(TokenError::Mismatch("ci-bot".into()))
        );
        assert_eq!(a.cached_tokens(), 0, "failures are not cached");
        // A token of another name, valid for that name, is unknown here.
        let (stranger, _) = token_of("deploy");
        assert_eq!(
            a.verify_token(&stranger, 0),
            Err(TokenError::Unknown("deploy".into()))
        );
    }

    #[test]
    fn a_token_renamed_in_the_bearer_does_not_verify() {
        // The hash covers the whole string, name included: ci-bot's secret under
        // another configured name with the same hash does not pass as that name.
        let (mut m, token) = with_token("ci-bot", Role::Auditor, None);
        let hash = m.tokens[0].hash.clone();
        m.tokens.push(TokenSpec {
            name: "admin-bot".into(),
            role: Role::Admin,
            hash,
            expires_unix: None,
        });
        let a = Authorizer::new(&m, 990);
        let renamed = token.replacen("ci-bot", "admin-bot", 1);
        assert_eq!(
            a.verify_token(&renamed, 0),
            Err(TokenError::Mismatch("admin-bot".into()))
        );
    }

    #[test]
    fn expired_tokens_are_refused_also_from_the_cache() {
        let (m, token) = with_token("ci-bot", Role::Operator, Some(2_000));
        let a = Authorizer::new(&m, 990);
        assert_eq!(
            a.verify_token(&token, 1_999),
            Ok(("ci-bot".into(), Role::Operator))
        );
        assert_eq!(a.cached_tokens(), 1);
        assert_eq!(
            a.verify_token(&token, 2_000),
            Err(TokenError::Expired("ci-bot".into()))
        );
        // Not cached yet, and already expired.
        let b = Authorizer::new(&m, 990);
        assert_eq!(
            b.verify_token(&token, 5_000),
            Err(TokenError::Expired("ci-bot".into()))
        );
    }

    #[test]
    fn malformed_bearers() {
        let (m, token) = with_token("ci-bot", Role::Admin, None);
        let a = Authorizer::new(&m, 990);
        let secret = &token["pcl_ci-bot_".len()..];
        for bad in [
            String::new(),
            "pcl_".into(),
            "pcl_ci-bot".into(),
            "pcl_ci-bot_".into(),
            format!("PCL_ci-bot_{secret}"),
            format!("ci-bot_{secret}"),
            format!("pcl__{secret}"),
            format!("pcl_ci bot_{secret}"),
            format!("pcl_ci-bot_{}", secret.to_uppercase()),
            format!("pcl_ci-bot_{secret}0"),
            format!("pcl_ci-bot_{}", &secret[1..]),
            format!("pcl_{}_{secret}", "a".repeat(33)),
            format!("Bearer {token}"),
            format!("{token} "),
        ] {
            assert_eq!(
                a.verify_token(&bad, 0),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = TokenCache::default();
        let t = CachedToken {
            name: "x".into(),
            role: Role::Auditor,
            expires_unix: None,
        };
        for i in 0..(TOKEN_CACHE_ENTRIES + 10) {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.insert(key, t.clone());
        }
        assert_eq!(cache.len(), TOKEN_CACHE_ENTRIES);
        assert_eq!(cache.order.len(), TOKEN_CACHE_ENTRIES);
        // The oldest went first.
        assert!(cache.get(&[0u8; 32]).is_none());
        let mut newest = [0u8; 32];
        newest[..8].copy_from_slice(&((TOKEN_CACHE_ENTRIES + 9) as u64).to_le_bytes());
        assert!(cache.get(&newest).is_some());
    }

    #[test]
    fn debug_shows_no_hash() {
        let (m, _) = with_token("ci-bot", Role::Admin, None);
        let a = Authorizer::new(&m, 990);
        let shown = format!("{a:?}");
        assert!(
            shown.contains("ci-bot") && !shown.contains("argon2"),
            "{shown}"
        );
    }

    #[test]
    fn token_names() {
        for ok in ["a", "ci-bot", "A-9", &"x".repeat(32)] {
            assert_eq!(check_token_name(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", "ci_bot", "ci bot", "é", "a.b", &"x".repeat(33)] {
            assert!(check_token_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_hashes() {
        let (_, hash) = token_of("ci-bot");
        assert_eq!(check_token_hash(&hash), Ok(()));
        let cases = [
            ("", "not an argon2 PHC string"),
            ("secret", "not an argon2 PHC string"),
            (
                "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
                "not an argon2 PHC string",
            ),
            (
                "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
                "not \"argon2id\"",
            ),
            ("$argon2id$v=19$m=19456,t=2,p=1", "lacks its salt or hash"),
            (
                "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
                "at most 1048576",
            ),
            (
                "$argon2id$v=19$m=19456,t=1000,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
                "t=1000",
            ),
            (
                "$argon2id$v=19$m=19456,t=2,p=1,x=3$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
                "parameters are invalid",
            ),
        ];
        for (hash, needle) in cases {
            let e = check_token_hash(hash).unwrap_err();
            assert!(e.contains(needle), "{hash:?}: {e}");
        }
    }

    #[test]
    fn expiries() {
        assert_eq!(parse_expiry("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_expiry("2027-01-01T00:00:00Z"), Ok(1_798_761_600));
        assert_eq!(parse_expiry("2027-01-01T01:00:00+01:00"), Ok(1_798_761_600));
        assert_eq!(parse_expiry("2026-12-31T19:00:00-05:00"), Ok(1_798_761_600));
        assert_eq!(parse_expiry("2027-01-01 00:00:00Z"), Ok(1_798_761_600));
        assert_eq!(parse_expiry("2016-12-31T23:59:60Z"), Ok(1_483_228_799));
        for (bad, needle) in [
            ("2027-01-01T00:00:00", "no UTC offset"),
            ("2027-01-01", "no UTC offset"),
            ("00:00:00", "no UTC offset"),
            ("1969-12-31T23:59:59Z", "before 1970"),
            ("2027-02-30T00:00:00Z", "not an RFC 3339"),
            ("tomorrow", "not an RFC 3339"),
            ("", "not an RFC 3339"),
        ] {
            let e = parse_expiry(bad).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn member_names() {
        for ok in ["alice", "portcullis-admin", "svc$", "domain.user", "ünï"] {
            assert_eq!(check_member_name(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", "a b", "uid:1000", "a\tb", "x\u{7}", &"x".repeat(257)] {
            assert!(check_member_name(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// Arbitrary bearers never panic and never verify (the one configured
        /// token's secret is never guessed).
        #[test]
        fn arbitrary_bearers_never_verify(s in any::<String>(), tail in any::<String>()) {
            let (m, _) = with_token("ci-bot", Role::Admin, None);
            let a = Authorizer::new(&m, 990);
            prop_assert!(a.verify_token(&s, 0).is_err());
            let named = format!("pcl_ci-bot_{tail}");
            prop_assert!(a.verify_token(&named, 0).is_err());
            prop_assert_eq!(a.cached_tokens(), 0);
        }
    }

    proptest! {
        // Each case costs one argon2 verification.
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Well-formed bearers for a configured name with a wrong secret are
        /// refused after verification; for an unknown name, without.
        #[test]
        fn well_formed_wrong_bearers_never_verify(hexish in "[0-9a-f]{64}") {
            let (m, token) = with_token("ci-bot", Role::Admin, None);
            let a = Authorizer::new(&m, 990);
            let near = format!("pcl_ci-bot_{hexish}");
            prop_assume!(near != token);
            prop_assert_eq!(a.verify_token(&near, 0), Err(TokenError::Mismatch("ci-bot".into())));
            let other = format!("pcl_other_{hexish}");
            prop_assert_eq!(a.verify_token(&other, 0), Err(TokenError::Unknown("other".into())));
        }
    }

    proptest! {
        /// Expiry and hash checks never panic on arbitrary text.
        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            let _ = parse_expiry(&s);
            let _ = check_token_hash(&s);
            let _ = check_token_name(&s);
            let _ = check_member_name(&s);
        }
    }
}
