//! The whole repo: `fleet.toml` first, then each stack's directory, then
//! the checks across the fleet; every problem is collected and sorted.

use std::collections::BTreeMap;
use std::path::Path;

use super::checks::check_fleet;
use super::fleet_toml::decode_fleet;
use super::source::{DirSource, RepoSource, read_text};
use super::stack::load_stack;
use super::{FLEET_FILE, Repo};
use crate::source::node::Pos;
use crate::source::{Cx, Diagnostic, Diagnostics, toml as toml_src};

/// Loads a fleet repo from a directory.
pub fn load_dir(root: &Path) -> Result<Repo, Diagnostics> {
    match DirSource::new(root) {
        Ok(src) => load(&src),
        Err(e) => Err(Diagnostics(vec![Diagnostic {
            file: root.display().to_string(),
            line: 0,
            col: 0,
            severity: crate::source::Severity::Error,
            message: e.to_string(),
        }])),
    }
}

pub(super) fn whole_file(diags: &mut Vec<Diagnostic>, file: &str, message: String) {
    diags.push(Diagnostic {
        file: file.to_owned(),
        line: 0,
        col: 0,
        severity: crate::source::Severity::Error,
        message,
    });
}

/// Loads and validates the whole repo.
pub fn load(src: &dyn RepoSource) -> Result<Repo, Diagnostics> {
    let mut diags: Vec<Diagnostic> = Vec::new();
    let text = match read_text(src, FLEET_FILE) {
        Ok(t) => t,
        Err(e) => {
            whole_file(
                &mut diags,
                FLEET_FILE,
                format!("cannot read the fleet file: {e}"),
            );
            return Err(Diagnostics(diags));
        }
    };
    let root = match toml_src::parse(&text) {
        Ok(n) => n,
        Err(errs) => {
            for e in errs {
                diags.push(Diagnostic {
                    file: FLEET_FILE.into(),
                    line: e.pos.line,
                    col: e.pos.col,
                    severity: crate::source::Severity::Error,
                    message: e.message,
                });
            }
            return Err(Diagnostics(diags));
        }
    };
    let mut stack_pos: BTreeMap<String, Pos> = BTreeMap::new();
    let fleet = {
        let mut cx = Cx::new(FLEET_FILE, &mut diags);
        decode_fleet(&root, &mut cx, &mut stack_pos)
    };
    let Some(fleet) = fleet else {
        let mut d = Diagnostics(diags);
        d.sort();
        return Err(d);
    };
    let mut stacks = BTreeMap::new();
    for (name, def) in &fleet.stacks {
        let pos = stack_pos.get(name).copied().unwrap_or_default();
        if let Some(loaded) = load_stack(src, name, def, pos, &mut diags) {
            stacks.insert(name.clone(), loaded);
        }
    }
    {
        let mut cx = Cx::new(FLEET_FILE, &mut diags);
        check_fleet(&fleet, &stacks, &stack_pos, &root, &mut cx);
    }
    let mut all = Diagnostics(diags);
    all.sort();
    if all.has_errors() {
        return Err(all);
    }
    Ok(Repo {
        fleet,
        stacks,
        warnings: all,
    })
}
