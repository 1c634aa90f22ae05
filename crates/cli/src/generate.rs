//! `portcullis generate man|completions DIR`: the manual pages (one per command,
//! `portcullis.1`, `portcullis-show.1`, `portcullis-show-ports.1` …) and the shell
//! completions (bash, zsh, fish), generated from the CLI's own definitions, so they
//! never disagree with `--help`. The Debian package ships what this writes.
//!
//! Invariant: only files in `DIR` are written (created if missing); hidden commands
//! (the lab's traffic tools) get no page.

use clap::{Command, CommandFactory, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum What {
    /// Manual pages (section 1), one per command.
    Man {
        /// The directory to write them to.
        dir: PathBuf,
    },
    /// Completion scripts for bash (`portcullis`), zsh (`_portcullis`) and fish
    /// (`portcullis.fish`).
    Completions {
        /// The directory to write them to.
        dir: PathBuf,
    },
}

pub fn run<C: CommandFactory>(what: What) -> anyhow::Result<()> {
    let cmd = C::command();
    match what {
        What::Man { dir } => {
            std::fs::create_dir_all(&dir)?;
            let n = man_pages(&cmd, "", &dir)?;
            println!("{n} manual pages in {}", dir.display());
        }
        What::Completions { dir } => {
            std::fs::create_dir_all(&dir)?;
            let mut cmd = cmd;
            for shell in [
                clap_complete::Shell::Bash,
                clap_complete::Shell::Zsh,
                clap_complete::Shell::Fish,
            ] {
                let path = clap_complete::generate_to(shell, &mut cmd, "portcullis", &dir)?;
                println!("{}", path.display());
            }
        }
    }
    Ok(())
}

/// Writes `cmd`'s page (named after its path, `prefix`) and its subcommands'
/// pages; how many.
fn man_pages(cmd: &Command, prefix: &str, dir: &Path) -> anyhow::Result<usize> {
    let name = if prefix.is_empty() {
        cmd.get_name().to_string()
    } else {
        format!("{prefix}-{}", cmd.get_name())
    };
    let page = cmd.clone().name(name.clone());
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.1")), out)?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        n += man_pages(sub, &name, dir)?;
    }
    Ok(n)
}
