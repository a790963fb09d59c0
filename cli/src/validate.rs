//! `convoy validate`: the offline check of a fleet repo. Exit 0 valid,
//! 1 invalid, 2 usage (kept as they were documented before the CLI-wide
//! codes of [`crate::exit`], which agree).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::exit::USAGE as EXIT_USAGE;
use crate::output::{Format, Ui};
use crate::style::Tone;

use convoy_shared::render::{Plan, plan};
use convoy_shared::repo::load_dir;
use convoy_shared::source::Diagnostics;

pub fn run(path: &Path, ui: &Ui, want_plan: bool) -> ExitCode {
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
    let written = if ui.format == Format::Table {
        print_text(&mut out, ui, ok, &diags, the_plan.as_ref())
    } else {
        let v = serde_json::json!({
            "valid": ok,
            "problems": diags.0,
            "plan": the_plan,
        });
        match ui.render(&v, |_, _| String::new()) {
            Ok(text) => out.write_all(text.as_bytes()),
            Err(e) => {
                ui.error(&format!("{e:#}"));
                return ExitCode::from(EXIT_USAGE);
            }
        }
    };
    // A reader that went away (`| head`) is not a usage error.
    if written.is_err_and(|e| e.kind() != std::io::ErrorKind::BrokenPipe) {
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
    ui: &Ui,
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
            "{}: {n} problem{}; nothing would be rolled out",
            ui.err.paint("invalid", Tone::Bad),
            if n == 1 { "" } else { "s" }
        );
        return Ok(());
    }
    let Some(p) = the_plan else {
        writeln!(out, "{}", ui.out.paint("valid", Tone::Good))?;
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
