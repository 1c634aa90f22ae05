//! `portcullis token new`: makes a bearer token for a TCP caller of the API and
//! prints it once, with the `[[host.management.token]]` table that configures it.
//!
//! Invariant: the token is printed once, to stdout, and kept nowhere; what goes
//! into the configuration is its argon2id hash. The name and the expiry follow
//! the configuration's own rules (`portcullis_control::rbac`), so a printed table
//! always loads.

use anyhow::{Context, bail};
use clap::Subcommand;
use portcullis_control::rbac::{self, Role};
use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Make a new token: prints the token (store it now) and the
    /// [[host.management.token]] table to add to the host binding.
    New {
        /// The token's name: 1 to 32 ASCII letters, digits and '-', unique in the
        /// configuration.
        name: String,
        /// What the token may do: admin, operator or auditor.
        #[arg(long)]
        role: Role,
        /// When the token stops working (RFC 3339 with an offset, e.g.
        /// 2027-01-01T00:00:00Z). Default: never.
        #[arg(long)]
        expires: Option<String>,
    },
}

/// Runs `portcullis token …`: the token on stdout's first line, the
/// configuration table after it, a reminder on stderr.
pub fn run(cmd: TokenCmd) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    new_token_to(cmd, now, &mut stdout.lock(), &mut stderr.lock())?;
    Ok(ExitCode::SUCCESS)
}

/// [`run`] writing to `out` and `err`, with the clock passed in.
fn new_token_to(
    cmd: TokenCmd,
    now_unix: u64,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let TokenCmd::New {
        name,
        role,
        expires,
    } = cmd;
    rbac::check_token_name(&name).map_err(anyhow::Error::msg)?;
    let expires = match expires {
        None => None,
        Some(text) => {
            let text = text.trim().to_owned();
            let unix = rbac::parse_expiry(&text).map_err(anyhow::Error::msg)?;
            if unix <= now_unix {
                bail!("--expires {text} has already passed: the token would never work");
            }
            Some(text)
        }
    };
    let (token, hash) = rbac::new_token(&name).map_err(anyhow::Error::msg)?;
    writeln!(out, "{token}").context("cannot write the token")?;
    writeln!(out).context("cannot write the token")?;
    write!(
        out,
        "{}",
        config_table(&name, role, &hash, expires.as_deref())
    )
    .context("cannot write the configuration table")?;
    out.flush().context("cannot write the token")?;
    writeln!(
        err,
        "store the token now; only its hash is kept. Add the table to [host.management] in the host binding."
    )
    .context("cannot write to stderr")?;
    Ok(())
}

/// The `[[host.management.token]]` table. `expires` has passed
/// [`rbac::parse_expiry`], so it is a valid TOML offset date-time as written;
/// the name and the PHC hash contain no character that needs quoting.
fn config_table(name: &str, role: Role, hash: &str, expires: Option<&str>) -> String {
    let mut table = format!(
        "[[host.management.token]]\nname = \"{name}\"\nrole = \"{role}\"\nhash = \"{hash}\"\n"
    );
    if let Some(e) = expires {
        table.push_str(&format!("expires = {e}\n"));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_control::rbac::{Authorizer, TokenError};

    const BASE: &str = "[switch]\nname = \"t\"\n";

    fn new(name: &str, role: Role, expires: Option<&str>, now: u64) -> anyhow::Result<String> {
        let mut out = Vec::new();
        let mut err = Vec::new();
        new_token_to(
            TokenCmd::New {
                name: name.into(),
                role,
                expires: expires.map(str::to_owned),
            },
            now,
            &mut out,
            &mut err,
        )?;
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("only its hash is kept"), "{err}");
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_printed_table_loads_and_verifies_the_printed_token() {
        let out = new(
            "ci-bot",
            Role::Operator,
            Some("2027-01-01 01:00:00+01:00"),
            0,
        )
        .unwrap();
        let (token, table) = out.split_once('\n').unwrap();
        assert!(token.starts_with("pcl_ci-bot_"), "{token}");
        assert!(!table.contains(token), "the token is printed once");
        let config = portcullis_control::parse_str(&format!("{BASE}{table}"), "t.toml", None)
            .unwrap_or_else(|e| panic!("{e}\n{table}"));
        let m = &config.host.management;
        assert_eq!(m.tokens.len(), 1);
        assert_eq!(m.tokens[0].expires_unix, Some(1_798_761_600));
        let a = Authorizer::new(m, 990);
        assert_eq!(
            a.verify_token(token, 1_798_761_599),
            Ok(("ci-bot".into(), Role::Operator))
        );
        assert_eq!(
            a.verify_token(token, 1_798_761_600),
            Err(TokenError::Expired("ci-bot".into()))
        );
    }

    #[test]
    fn without_expiry() {
        let out = new("audit-export", Role::Auditor, None, 0).unwrap();
        let table = out.split_once('\n').unwrap().1;
        assert!(!table.contains("expires"), "{table}");
        assert!(table.contains("role = \"auditor\""), "{table}");
        let config = portcullis_control::parse_str(&format!("{BASE}{table}"), "t.toml", None)
            .unwrap_or_else(|e| panic!("{e}\n{table}"));
        assert_eq!(config.host.management.tokens[0].expires_unix, None);
    }

    #[test]
    fn bad_names_and_expiries_are_refused_before_any_token() {
        for (name, expires, needle) in [
            ("ci_bot", None, "token name"),
            ("", None, "must not be empty"),
            ("ci-bot", Some("2027-01-01T00:00:00"), "no UTC offset"),
            ("ci-bot", Some("next year"), "RFC 3339"),
            ("ci-bot", Some("2020-01-01T00:00:00Z"), "already passed"),
        ] {
            let e = new(name, Role::Admin, expires, 1_700_000_000).unwrap_err();
            assert!(e.to_string().contains(needle), "{name} {expires:?}: {e}");
        }
    }

    #[test]
    fn roles_parse_from_the_command_line() {
        use clap::Parser;
        #[derive(Parser, Debug)]
        struct Cli {
            #[command(subcommand)]
            cmd: TokenCmd,
        }
        let cli = Cli::try_parse_from(["x", "new", "ci-bot", "--role", "operator"]).unwrap();
        let TokenCmd::New { role, .. } = cli.cmd;
        assert_eq!(role, Role::Operator);
        let e = Cli::try_parse_from(["x", "new", "ci-bot", "--role", "root"]).unwrap_err();
        assert!(e.to_string().contains("not a role"), "{e}");
    }
}
