//! `convoy completions SHELL` and `convoy man [--out DIR]`: generated from
//! the clap model itself ([`crate::args::Cli`]), so they never drift from
//! the real flags.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory;

use crate::args::Cli;
use crate::output::write_out;

/// The completion script for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "convoy", &mut buf);
    write_out(&String::from_utf8_lossy(&buf))
}

/// One man page per command, depth first: `convoy.1`, `convoy-rollout.1`,
/// `convoy-context-add.1`, ... as (file name, roff text).
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        let man = clap_mangen::Man::new(cmd.clone());
        let mut buf = Vec::new();
        man.render(&mut buf)?;
        out.push((man.get_filename(), buf));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub.clone(), out)?;
        }
        Ok(())
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building gives each subcommand its display name (`convoy-rollout`).
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, &mut out).context("rendering the man pages")?;
    Ok(out)
}

/// `convoy man`: the top page on stdout, or every page into `out`.
pub fn man(out: Option<&Path>) -> anyhow::Result<()> {
    let pages = man_pages()?;
    let Some(dir) = out else {
        let top = pages.first().map(|(_, t)| t.as_slice()).unwrap_or_default();
        return write_out(&String::from_utf8_lossy(top));
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written: Vec<PathBuf> = Vec::new();
    for (name, text) in &pages {
        let path = dir.join(name);
        convoy_kit::fsx::write_atomic(&path, text, 0o644)
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    write_out(&format!(
        "wrote {} man pages to {} (man -l {}, or add it to MANPATH)\n",
        written.len(),
        dir.display(),
        dir.join("convoy.1").display()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn there_is_a_page_for_every_command_and_subcommand() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "convoy.1",
            "convoy-rollout.1",
            "convoy-context.1",
            "convoy-context-add.1",
            "convoy-tokens-create.1",
            "convoy-completions.1",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let top = String::from_utf8_lossy(&pages[0].1);
        assert!(
            top.starts_with(".ie \\n(.g .ds Aq") || top.contains(".TH convoy"),
            "{top}"
        );
        // The exit codes are in the page, as in --help.
        assert!(top.contains("Exit codes"), "{top}");
        Cli::command().debug_assert();
    }
}
