//! `convoy validate`: the offline check of a fleet repo.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use convoy_shared::render::{Plan, plan};
use convoy_shared::repo::load_dir;
use convoy_shared::source::Diagnostics;

/// Exit code for a usage error (clap uses the same).
pub const EXIT_USAGE: u8 = 2;

pub fn run(path: &Path, json: bool, want_plan: bool) -> ExitCode {
    if !path.is_dir() {
        eprintln!(
            "convoy validate: {} is not a directory (give the fleet repo's root)",
            path.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let result = load_dir(path);
    let mut out = std::io::stdout().lock();
    let (ok, diags, the_plan) = match &result {
        Ok(repo) => (true, repo.warnings.clone(), want_plan.then(|| plan(repo))),
        Err(d) => (false, d.clone(), None),
    };
    let written = if json {
        let v = serde_json::json!({
            "valid": ok,
            "problems": diags.0,
            "plan": the_plan,
        });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        )
    } else {
        print_text(&mut out, ok, &diags, the_plan.as_ref())
    };
    if written.is_err() {
        return ExitCode::from(EXIT_USAGE);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_text(
    out: &mut impl Write,
    ok: bool,
    diags: &Diagnostics,
    the_plan: Option<&Plan>,
) -> std::io::Result<()> {
    // Problems go to stderr (so stdout stays the plan), one per line.
    for d in &diags.0 {
        eprintln!("{d}");
    }
    if !ok {
        let n = diags.errors().count();
        eprintln!(
            "invalid: {n} problem{}; nothing would be rolled out",
            if n == 1 { "" } else { "s" }
        );
        return Ok(());
    }
    let Some(p) = the_plan else {
        writeln!(out, "valid")?;
        return Ok(());
    };
    writeln!(out, "fleet {}", p.fleet)?;
    for (host, state) in &p.hosts {
        writeln!(out, "host {host}  revision {}", short(&state.revision))?;
        if state.stacks.is_empty() {
            writeln!(out, "  (no stacks)")?;
        }
        for s in &state.stacks {
            let services: Vec<&str> = s.compose.services.keys().map(String::as_str).collect();
            writeln!(
                out,
                "  stack {}  revision {}  services: {}",
                s.name,
                short(&s.revision),
                services.join(", ")
            )?;
        }
    }
    writeln!(out, "rollout")?;
    for (i, w) in p.waves.iter().enumerate() {
        let par = w
            .max_parallel
            .map_or_else(|| "all at once".to_owned(), |m| format!("max_parallel {m}"));
        let appr = if w.approval {
            ", waits for approval"
        } else {
            ""
        };
        let hosts = if w.hosts.is_empty() {
            "(no hosts)".to_owned()
        } else {
            w.hosts.join(", ")
        };
        writeln!(
            out,
            "  wave {} {} [{}] ({par}{appr}): {hosts}",
            i + 1,
            w.name,
            w.selector
        )?;
    }
    Ok(())
}

fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}
