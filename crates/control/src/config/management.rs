//! `[host.management]`, whole: its raw shape, its model (listeners, TLS files, the
//! syslog copy, the control socket, the web view, role members and bearer tokens), the roles
//! themselves, the checks of names, hashes and expiries, and its flattening for
//! diff. `rbac` builds on this module; this module depends on nothing of `rbac`.
//!
//! Invariant: a [`Management`] from a loaded configuration passed every check here
//! (TCP only with TLS, the web view only with TCP, absolute paths, one role per member, unique token names,
//! argon2id hashes within the cost bounds); a token's hash never appears in `Debug`
//! or in the flattened view (only a fingerprint does).

use super::check::Checker;
use super::flat::{Flat, list, opt, put};
use super::keys::{join_key, key_segment};
use super::value::{Converter, Poison};
use argon2::ARGON2ID_IDENT;
use argon2::password_hash::phc::PasswordHash;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// What a caller may do, by role.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads state and the audit log.
    Auditor,
    /// Reads state and operates the switch (recover ports, bindings, MAC reports).
    Operator,
    /// Everything, including the configuration and the management identities.
    Admin,
}

/// The roles, lowest first.
pub const ROLES: [Role; 3] = [Role::Auditor, Role::Operator, Role::Admin];

impl Role {
    /// The role's name in the configuration and the API: `"admin"`, `"operator"`,
    /// `"auditor"`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Auditor => "auditor",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A word that is not a role.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a role: expected \"admin\", \"operator\" or \"auditor\"")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        ROLES
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// The longest token name, in bytes.
pub const MAX_TOKEN_NAME_LEN: usize = 32;

/// The most memory (KiB) a token hash may ask of each verification: 1 GiB.
pub const MAX_HASH_MEMORY_KIB: u32 = 1 << 20;

/// The most passes a token hash may ask of each verification.
pub const MAX_HASH_PASSES: u32 = 64;

/// The most lanes a token hash may ask of each verification.
pub const MAX_HASH_LANES: u32 = 16;

/// A token name: `[A-Za-z0-9-]{1,32}`.
pub fn check_token_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("token name must not be empty".into());
    }
    if name.len() > MAX_TOKEN_NAME_LEN {
        return Err(format!(
            "token name is {} bytes long; at most {MAX_TOKEN_NAME_LEN} allowed",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "token name {name:?} contains {c:?}; allowed are ASCII letters, digits and '-'"
        ));
    }
    Ok(())
}

/// A configured token hash: an argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`)
/// with a salt, a hash, and a cost within [`MAX_HASH_MEMORY_KIB`],
/// [`MAX_HASH_PASSES`] and [`MAX_HASH_LANES`].
pub fn check_token_hash(hash: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected the argon2id PHC string printed by `portcullis token new` ($argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>)";
    let phc = PasswordHash::new(hash)
        .map_err(|e| format!("not an argon2 PHC string ({e}); {EXPECTED}"))?;
    if phc.algorithm != ARGON2ID_IDENT {
        return Err(format!(
            "the hash's algorithm is {:?}, not \"argon2id\"; {EXPECTED}",
            phc.algorithm.as_str()
        ));
    }
    if phc.salt.is_none() || phc.hash.is_none() {
        return Err(format!("the PHC string lacks its salt or hash; {EXPECTED}"));
    }
    let params = argon2::Params::try_from(&phc)
        .map_err(|e| format!("the hash's argon2 parameters are invalid ({e}); {EXPECTED}"))?;
    if params.m_cost() > MAX_HASH_MEMORY_KIB {
        return Err(format!(
            "the hash asks for m={} KiB per verification; at most {MAX_HASH_MEMORY_KIB} (1 GiB) allowed",
            params.m_cost()
        ));
    }
    if params.t_cost() > MAX_HASH_PASSES {
        return Err(format!(
            "the hash asks for t={} passes; at most {MAX_HASH_PASSES} allowed",
            params.t_cost()
        ));
    }
    if params.p_cost() > MAX_HASH_LANES {
        return Err(format!(
            "the hash asks for p={} lanes; at most {MAX_HASH_LANES} allowed",
            params.p_cost()
        ));
    }
    Ok(())
}

/// A token's expiry as the configuration writes it (a TOML offset date-time), in
/// seconds since the Unix epoch. A date-time without offset, a date or a time alone,
/// and instants before 1970 are refused.
pub fn expiry_unix(dt: &toml::value::Datetime) -> Result<u64, String> {
    let (Some(date), Some(time), Some(offset)) = (dt.date, dt.time, dt.offset) else {
        return Err(format!(
            "{dt} has no UTC offset: write a full date-time with an offset, e.g. 2027-01-01T00:00:00Z"
        ));
    };
    let offset_minutes = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i32::from(minutes),
    };
    let bad = |e: &dyn fmt::Display| format!("{dt} is not a valid date-time: {e}");
    let month = time::Month::try_from(date.month).map_err(|e| bad(&e))?;
    let day = time::Date::from_calendar_date(i32::from(date.year), month, date.day)
        .map_err(|e| bad(&e))?;
    // A leap second (:60) counts as the second before it.
    let second = time.second.unwrap_or(0).min(59);
    let clock = time::Time::from_hms(time.hour, time.minute, second).map_err(|e| bad(&e))?;
    let utc_offset =
        time::UtcOffset::from_whole_seconds(offset_minutes * 60).map_err(|e| bad(&e))?;
    let unix = time::PrimitiveDateTime::new(day, clock)
        .assume_offset(utc_offset)
        .unix_timestamp();
    u64::try_from(unix).map_err(|_| format!("{dt} is before 1970"))
}

/// [`expiry_unix`] of an RFC 3339 string (`2027-01-01T00:00:00Z`), for the CLI:
/// the same rules as the configuration's `expires`.
pub fn parse_expiry(s: &str) -> Result<u64, String> {
    let dt = toml::value::Datetime::from_str(s.trim()).map_err(|e| {
        format!("{s:?} is not an RFC 3339 date-time like 2027-01-01T00:00:00Z: {e}")
    })?;
    expiry_unix(&dt)
}

/// A local user or group name in `[host.management.roles]`: 1..=256 bytes, no
/// whitespace, control characters or ':' (the separator of /etc/passwd and
/// /etc/group, and of the daemon's `uid:N` / `gid:N` stand-ins for ids without a
/// name, which therefore can never match).
pub fn check_member_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name must not be empty".into());
    }
    if name.len() > 256 {
        return Err(format!(
            "name is {} bytes long; at most 256 allowed",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == ':')
    {
        return Err(format!(
            "{name:?} contains {c:?}; user and group names have no whitespace, control characters or ':'"
        ));
    }
    Ok(())
}

/// `[host.management]`: the API's listeners and identities. `Default` is nothing
/// configured: the Unix socket only, for root and the daemon's user.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Management {
    /// The API over TCP, with TLS only (then `tls` is set).
    pub tcp_listen: Option<SocketAddr>,
    /// The TCP listener's certificate chain and key (read by the daemon at start).
    pub tls: Option<TlsFiles>,
    /// The Prometheus endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Where audit records are forwarded, besides the audit log.
    pub audit_syslog: Option<SyslogTarget>,
    /// Local users and groups (the Unix socket's peer credentials) by role.
    pub roles: RoleMembers,
    /// `[[host.management.token]]`: bearer tokens for TCP callers, in file order.
    pub tokens: Vec<TokenSpec>,
    /// `socket_mode`: the control socket's permission bits (`None`:
    /// [`DEFAULT_SOCKET_MODE`]).
    pub socket_mode: Option<u32>,
    /// `socket_group`: the group that owns the control socket (`None`:
    /// [`DEFAULT_SOCKET_GROUP`], if it exists).
    pub socket_group: Option<String>,
    /// `web_view`: serve the read-only web page at `/ui/` on the TCP+TLS listener
    /// (needs `tcp_listen`; off by default).
    pub web_view: bool,
}

/// The control socket's mode when `socket_mode` is not set: owner and group may
/// connect, others may not.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// The control socket's group when `socket_group` is not set (used only if the
/// group exists; else the socket keeps the daemon's group and a warning is logged).
pub const DEFAULT_SOCKET_GROUP: &str = "portcullis";

impl Management {
    /// The control socket's permission bits.
    pub fn socket_mode(&self) -> u32 {
        self.socket_mode.unwrap_or(DEFAULT_SOCKET_MODE)
    }
}

/// `tls_cert` and `tls_key`: PEM files (absolute paths).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `audit_syslog`: a syslog daemon's socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SyslogTarget {
    /// `"unix:/dev/log"`: a local datagram socket.
    Unix(PathBuf),
    /// `"udp:198.18.0.1:514"`: a remote collector.
    Udp(SocketAddr),
}

impl fmt::Display for SyslogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyslogTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            SyslogTarget::Udp(a) => write!(f, "udp:{a}"),
        }
    }
}

/// `[host.management.roles]`: the members of each role.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RoleMembers {
    pub admin: Members,
    pub operator: Members,
    pub auditor: Members,
}

impl RoleMembers {
    /// The members of `role`.
    pub fn of(&self, role: Role) -> &Members {
        match role {
            Role::Admin => &self.admin,
            Role::Operator => &self.operator,
            Role::Auditor => &self.auditor,
        }
    }
    /// The members of `role`, to change.
    pub fn of_mut(&mut self, role: Role) -> &mut Members {
        match role {
            Role::Admin => &mut self.admin,
            Role::Operator => &mut self.operator,
            Role::Auditor => &mut self.auditor,
        }
    }
}

/// One role's local members, by name, in file order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Members {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

/// One `[[host.management.token]]`.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// `[A-Za-z0-9-]{1,32}`, unique; the `<name>` of `pcl_<name>_<secret>`.
    pub name: String,
    pub role: Role,
    /// The argon2id PHC string of the whole token.
    pub hash: String,
    /// Seconds since the Unix epoch from which the token is refused.
    pub expires_unix: Option<u64>,
}

impl fmt::Debug for TokenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The hash stays out of logs: it is what an offline guess is checked against.
        f.debug_struct("TokenSpec")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("expires_unix", &self.expires_unix)
            .finish_non_exhaustive()
    }
}

/// `[host.management]`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManagement {
    pub tcp_listen: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub metrics_listen: Option<String>,
    pub audit_syslog: Option<String>,
    pub socket_mode: Option<String>,
    pub socket_group: Option<String>,
    pub web_view: Option<bool>,
    /// Role name → members; the role names are checked in validation.
    #[serde(default)]
    pub roles: BTreeMap<String, RawMembers>,
    #[serde(default)]
    pub token: Vec<RawToken>,
}

/// One role of `[host.management.roles]`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMembers {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `[[host.management.token]]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub name: String,
    pub role: String,
    pub hash: String,
    pub expires: Option<toml::value::Datetime>,
}

/// Why a top-level `[management]` in the profile is refused.
pub(crate) const IN_PROFILE: &str = "management identities, TLS keys and listeners are host-specific: write them as [host.management] in the host binding";

// ---- conversion ----------------------------------------------------------------

impl Converter<'_> {
    /// `[host.management]`. (Names, hashes, paths and the pairing of the listener
    /// with its TLS files are stage 2's.)
    pub(crate) fn management(&mut self, raw: RawManagement) -> Management {
        const KEY: &str = "host.management";
        let tcp_listen = raw
            .tcp_listen
            .as_deref()
            .and_then(|s| self.socket_addr(&format!("{KEY}.tcp_listen"), s));
        if raw.tcp_listen.is_some() && tcp_listen.is_none() {
            self.poison.management_listen = true;
        }
        let metrics_listen = raw
            .metrics_listen
            .as_deref()
            .and_then(|s| self.socket_addr(&format!("{KEY}.metrics_listen"), s));
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            (Some(_), None) => {
                self.error(
                    &format!("{KEY}.tls_cert"),
                    "tls_cert without tls_key: give both the certificate chain and its private key",
                );
                self.poison.management_tls = true;
                None
            }
            (None, Some(_)) => {
                self.error(
                    &format!("{KEY}.tls_key"),
                    "tls_key without tls_cert: give both the certificate chain and its private key",
                );
                self.poison.management_tls = true;
                None
            }
            (None, None) => None,
        };
        let audit_syslog = raw.audit_syslog.as_deref().and_then(|s| {
            parse_syslog_target(s)
                .map_err(|m| self.error(&format!("{KEY}.audit_syslog"), m))
                .ok()
        });
        let socket_mode = raw.socket_mode.as_deref().and_then(|s| {
            parse_socket_mode(s)
                .map_err(|m| self.error(&format!("{KEY}.socket_mode"), m))
                .ok()
        });
        if let Some(g) = &raw.socket_group
            && let Err(m) = check_member_name(g)
        {
            self.error(&format!("{KEY}.socket_group"), format!("group {m}"));
        }
        let mut roles = RoleMembers::default();
        for (name, members) in raw.roles {
            match name.parse::<Role>() {
                Ok(role) => {
                    *roles.of_mut(role) = Members {
                        users: members.users,
                        groups: members.groups,
                    }
                }
                Err(e) => self.error(&join_key(&format!("{KEY}.roles"), &name), e.to_string()),
            }
        }
        let tokens = raw
            .token
            .into_iter()
            .enumerate()
            .map(|(j, t)| {
                let key = format!("{KEY}.token[{j}]");
                let role = self
                    .word(
                        &format!("{key}.role"),
                        &t.role,
                        "role",
                        &[
                            ("admin", Role::Admin),
                            ("operator", Role::Operator),
                            ("auditor", Role::Auditor),
                        ],
                    )
                    // Placeholder: the configuration is refused anyway.
                    .unwrap_or(Role::Auditor);
                let expires_unix = t.expires.as_ref().and_then(|dt| {
                    expiry_unix(dt)
                        .map_err(|m| self.error(&format!("{key}.expires"), m))
                        .ok()
                });
                TokenSpec {
                    name: t.name,
                    role,
                    hash: t.hash,
                    expires_unix,
                }
            })
            .collect();
        Management {
            tcp_listen,
            tls,
            metrics_listen,
            audit_syslog,
            roles,
            tokens,
            socket_mode,
            socket_group: raw.socket_group,
            web_view: raw.web_view.unwrap_or(false),
        }
    }

    /// A listener's `address:port` (IPv6 in brackets). (Port 0 is stage 2's.)
    fn socket_addr(&mut self, key: &str, s: &str) -> Option<SocketAddr> {
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    key,
                    format!(
                        "{s:?} is not an IP address and port: expected e.g. \"127.0.0.1:8443\" or \"[::1]:8443\""
                    ),
                );
                None
            }
        }
    }
}

/// `"unix:/absolute/path"` or `"udp:address:port"` (IPv6 in brackets).
pub(crate) fn parse_syslog_target(s: &str) -> Result<SyslogTarget, String> {
    let expected = "expected \"unix:/dev/log\" (a local socket) or \"udp:198.18.0.1:514\" (a collector's address and port)";
    if let Some(path) = s.strip_prefix("unix:") {
        return Ok(SyslogTarget::Unix(path.into()));
    }
    if let Some(addr) = s.strip_prefix("udp:") {
        return addr
            .parse::<SocketAddr>()
            .map(SyslogTarget::Udp)
            .map_err(|_| format!("{addr:?} is not an IP address and port; {expected}"));
    }
    Err(format!("{s:?} is not a syslog target: {expected}"))
}

/// `socket_mode`: an octal string of permission bits (`"0660"`, `"660"`, `"0o660"`)
/// that lets the owner read and write (the daemon's user, and root, must connect)
/// and has no bits beyond `0o777`.
pub(crate) fn parse_socket_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let mode = u32::from_str_radix(digits, 8)
        .ok()
        .filter(|_| !digits.is_empty() && digits.len() <= 4)
        .ok_or_else(|| format!("{s:?} is not an octal mode: expected e.g. \"0660\""))?;
    if mode > 0o777 {
        return Err(format!(
            "{s:?}: only permission bits (at most 0777) apply to a socket"
        ));
    }
    if mode & 0o600 != 0o600 {
        return Err(format!(
            "{s:?}: the owner must be able to read and write the socket (0600 at least)"
        ));
    }
    Ok(mode)
}

// ---- checks ----------------------------------------------------------------------

impl Checker<'_> {
    /// `[host.management]`: TCP only with TLS (and TLS only for TCP), the web view
    /// only on the TCP listener, absolute paths, no port 0, distinct listeners; each
    /// local user and group under one role; token names valid and unique, hashes
    /// argon2id PHC strings.
    pub(crate) fn management(&mut self, m: &Management, poison: &Poison) {
        const KEY: &str = "host.management";
        if m.web_view && m.tcp_listen.is_none() && !poison.management_listen {
            self.error(
                &format!("{KEY}.web_view"),
                "the web view is served on the API's TCP+TLS listener only: set tcp_listen, tls_cert and tls_key too, or remove web_view",
            );
        }
        match (&m.tcp_listen, &m.tls) {
            (Some(_), None) if !poison.management_tls => self.error(
                &format!("{KEY}.tcp_listen"),
                "the API over TCP is served with TLS only: set tls_cert and tls_key too",
            ),
            (None, Some(_)) if !poison.management_listen => self.error(
                &format!("{KEY}.tls_cert"),
                "tls_cert and tls_key are for the API over TCP: set tcp_listen too, or remove them",
            ),
            _ => {}
        }
        if let Some(tls) = &m.tls {
            for (field, path) in [("tls_cert", &tls.cert), ("tls_key", &tls.key)] {
                if !path.is_absolute() {
                    self.error(
                        &format!("{KEY}.{field}"),
                        format!(
                            "{:?} is not an absolute path; the daemon's working directory is not a place to rely on",
                            path.display().to_string()
                        ),
                    );
                }
            }
        }
        for (field, addr) in [
            ("tcp_listen", m.tcp_listen),
            ("metrics_listen", m.metrics_listen),
        ] {
            if addr.is_some_and(|a| a.port() == 0) {
                self.error(
                    &format!("{KEY}.{field}"),
                    "port 0 is not a port to listen on: give the port clients connect to",
                );
            }
        }
        if let (Some(api), Some(metrics)) = (m.tcp_listen, m.metrics_listen)
            && api == metrics
            && api.port() != 0
        {
            self.error(
                &format!("{KEY}.metrics_listen"),
                format!("{metrics} is also tcp_listen: the API and the metrics need two listeners"),
            );
        }
        match &m.audit_syslog {
            Some(SyslogTarget::Unix(path)) if !path.is_absolute() => self.error(
                &format!("{KEY}.audit_syslog"),
                format!(
                    "\"unix:{}\": the socket's path must be absolute, like \"unix:/dev/log\"",
                    path.display()
                ),
            ),
            Some(SyslogTarget::Udp(addr)) if addr.port() == 0 => self.error(
                &format!("{KEY}.audit_syslog"),
                format!("\"udp:{addr}\": port 0; syslog collectors listen on 514"),
            ),
            _ => {}
        }

        // Members, in file order, so the later of two entries is the one reported.
        let mut entries: Vec<(String, &str, &str, Role)> = Vec::new();
        for role in ROLES.into_iter().rev() {
            let members = m.roles.of(role);
            for (what, list) in [("user", &members.users), ("group", &members.groups)] {
                for (j, name) in list.iter().enumerate() {
                    let key = format!("{KEY}.roles.{}.{what}s[{j}]", role.name());
                    entries.push((key, what, name, role));
                }
            }
        }
        let file = self.sources.file_of(KEY);
        entries.sort_by_key(|(key, ..)| file.position_of(key).unwrap_or((usize::MAX, 0)));
        let mut seen: HashMap<(&str, &str), (Role, &str)> = HashMap::new();
        for (key, what, name, role) in &entries {
            if let Err(msg) = check_member_name(name) {
                self.error(key, format!("{what} {msg}"));
                continue;
            }
            match seen.get(&(*what, *name)) {
                Some((first_role, first_key)) => {
                    let first = self.sources.describe(first_key);
                    let msg = if first_role == role {
                        format!("{what} {name:?} is listed twice under {role} (first as {first})")
                    } else {
                        format!(
                            "{what} {name:?} already has role {first_role} ({first}); a {what} has one role"
                        )
                    };
                    self.error(key, msg);
                }
                None => {
                    seen.insert((what, name), (*role, key));
                }
            }
        }

        let mut names: HashMap<&str, usize> = HashMap::new();
        for (j, t) in m.tokens.iter().enumerate() {
            let key = format!("{KEY}.token[{j}]");
            if let Err(msg) = check_token_name(&t.name) {
                self.error(&format!("{key}.name"), msg);
            } else if let Some(first) = names.get(t.name.as_str()) {
                let first = self.sources.describe(&format!("{KEY}.token[{first}]"));
                self.error(
                    &format!("{key}.name"),
                    format!("token name {:?} is already used by {first}", t.name),
                );
            } else {
                names.insert(&t.name, j);
            }
            if let Err(msg) = check_token_hash(&t.hash) {
                self.error(&format!("{key}.hash"), msg);
            }
        }
    }
}

// ---- flattening for diff ---------------------------------------------------------

/// `[host.management]`, every setting under `management.…`: the listeners
/// (`management.tcp_listen`, `.tls_cert`, `.tls_key`, `.metrics_listen`), the
/// syslog copy (`management.audit_syslog_target`), the control socket
/// (`management.socket_mode`, `.socket_group`), the web view
/// (`management.web_view`), each role's members
/// (`management.roles.<role>.users`, `.groups`, sorted) and each token
/// (`management.token.<name>.role`, `.expires`, `.hash`). A token's hash is shown
/// as a fingerprint (`sha256:` and the first 16 hex digits of the SHA-256 of its
/// PHC string): replacing a token changes it, and the hash itself is never shown.
pub fn flatten_management(m: &Management) -> Flat {
    let mut f = Flat::new();
    put(&mut f, "management.tcp_listen", opt(m.tcp_listen));
    let tls = m.tls.as_ref();
    put(
        &mut f,
        "management.tls_cert",
        opt(tls.map(|t| t.cert.display())),
    );
    put(
        &mut f,
        "management.tls_key",
        opt(tls.map(|t| t.key.display())),
    );
    put(&mut f, "management.metrics_listen", opt(m.metrics_listen));
    put(
        &mut f,
        "management.audit_syslog_target",
        opt(m.audit_syslog.as_ref()),
    );
    put(
        &mut f,
        "management.socket_mode",
        format!("{:04o}", m.socket_mode()),
    );
    put(
        &mut f,
        "management.socket_group",
        m.socket_group.as_deref().unwrap_or(DEFAULT_SOCKET_GROUP),
    );
    put(&mut f, "management.web_view", m.web_view);
    for role in ROLES {
        let members = m.roles.of(role);
        for (what, names) in [("users", &members.users), ("groups", &members.groups)] {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            put(
                &mut f,
                &format!("management.roles.{}.{what}", role.name()),
                list(&names),
            );
        }
    }
    for t in &m.tokens {
        let prefix = format!("management.token.{}", key_segment(&t.name));
        put(&mut f, &format!("{prefix}.role"), t.role.name());
        put(&mut f, &format!("{prefix}.expires"), opt(t.expires_unix));
        use sha2::Digest;
        let digest = sha2::Sha256::digest(t.hash.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        put(&mut f, &format!("{prefix}.hash"), format!("sha256:{hex}"));
    }
    f
}

#[cfg(test)]
mod tests {
    #[test]
    fn socket_modes() {
        assert_eq!(super::parse_socket_mode("0660"), Ok(0o660));
        assert_eq!(super::parse_socket_mode("600"), Ok(0o600));
        assert_eq!(super::parse_socket_mode("0o666"), Ok(0o666));
        for bad in [
            "",
            "0o",
            "066",
            "0400",
            "4770",
            "0999",
            "rw-rw----",
            "00660",
        ] {
            assert!(super::parse_socket_mode(bad).is_err(), "{bad}");
        }
    }
}
