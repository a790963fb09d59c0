//! One stack's directory: finds its compose file, reads its `.env` (which
//! feeds interpolation, and nothing else, as in compose), interpolates and
//! decodes the compose file (`compose::load`), checks the stack's probes
//! name its services, and collects the files bound relatively so they ship
//! with the desired state (bounded by `MAX_STACK_FILES_BYTES`).

use std::collections::BTreeMap;

use super::load::whole_file;
use super::source::{RepoSource, SourceError, normalise_rel, read_text};
use super::{COMPOSE_FILES, FLEET_FILE, LoadedStack};
use crate::compose::dotenv;
use crate::compose::load::{self as compose_load, StackFiles};
use crate::fleet::StackDef;
use crate::limits::MAX_STACK_FILES_BYTES;
use crate::source::node::Pos;
use crate::source::{Cx, Diagnostic, yaml};

struct Files<'a> {
    src: &'a dyn RepoSource,
    dir: String,
}

impl StackFiles for Files<'_> {
    fn read(&self, rel: &str) -> Result<String, String> {
        let joined = normalise_rel(&format!("{}/{}", self.dir, rel))?;
        if !joined.starts_with(&format!("{}/", self.dir)) {
            return Err(format!("{rel:?} leaves the stack directory"));
        }
        read_text(self.src, &joined)
    }
}

pub(super) fn load_stack(
    src: &dyn RepoSource,
    name: &str,
    def: &StackDef,
    pos: Pos,
    diags: &mut Vec<Diagnostic>,
) -> Option<LoadedStack> {
    let mut cx = Cx::new(FLEET_FILE, diags);
    if !src.is_dir(&def.path) {
        cx.error(
            pos,
            format!(
                "stack `{name}`: path {:?} is not a directory of the repository",
                def.path
            ),
        );
        return None;
    }
    let Some(compose_path) = COMPOSE_FILES
        .iter()
        .map(|f| format!("{}/{f}", def.path))
        .find(|p| src.read(p).is_ok() || matches!(src.read(p), Err(SourceError::TooLarge(_))))
    else {
        cx.error(pos, format!("stack `{name}`: no compose.yaml (or compose.yml, docker-compose.yaml, docker-compose.yml) in {}", def.path));
        return None;
    };
    drop(cx);
    let text = match read_text(src, &compose_path) {
        Ok(t) => t,
        Err(e) => {
            whole_file(diags, &compose_path, e);
            return None;
        }
    };
    // The stack's .env feeds interpolation (and nothing else), as in compose.
    let env_path = format!("{}/.env", def.path);
    let mut env: BTreeMap<String, Option<String>> = BTreeMap::new();
    match read_text(src, &env_path) {
        Ok(t) => match dotenv::parse(&t, &|_| None) {
            Ok(vars) => env.extend(vars),
            Err(errs) => {
                let mut cx = Cx::new(env_path.clone(), diags);
                for e in errs {
                    cx.error(
                        Pos {
                            line: e.line,
                            col: 1,
                        },
                        e.message,
                    );
                }
            }
        },
        Err(e) if !e.contains("does not exist") => whole_file(diags, &env_path, e),
        Err(_) => {}
    }
    let vars = |k: &str| env.get(k).cloned().flatten();
    let mut cx = Cx::new(compose_path.clone(), diags);
    let mut tree = match yaml::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            cx.error(e.pos, e.message);
            return None;
        }
    };
    crate::compose::interpolate::interpolate_tree(&mut tree, &vars, &mut cx);
    let files_src = Files {
        src,
        dir: def.path.clone(),
    };
    let decoded = compose_load::decode(&tree, name, &vars, &files_src, &mut cx);
    // Probes must name services of the stack.
    for p in &def.health.probes {
        if !decoded.compose.services.contains_key(&p.service) {
            let mut fcx = Cx::new(FLEET_FILE, cx.diags);
            fcx.error(
                pos,
                format!(
                    "stack `{name}`: probe for service `{}`, which is not in {compose_path}",
                    p.service
                ),
            );
        }
    }
    // Relatively bound files ship with the desired state.
    let mut files = BTreeMap::new();
    let mut total: u64 = 0;
    for b in &decoded.binds {
        let rel = format!("{}/{}", def.path, b.rel);
        let rel = rel.trim_end_matches("/.").to_owned();
        let listed = if src.is_dir(&rel) {
            src.files_under(&rel)
        } else {
            src.read(&rel).map(|_| vec![rel.clone()])
        };
        match listed {
            Ok(paths) => {
                for p in paths {
                    match src.read(&p) {
                        Ok(bytes) => {
                            total += bytes.len() as u64;
                            let key = p.strip_prefix(&format!("{}/", def.path)).unwrap_or(&p).to_owned();
                            files.insert(key, bytes);
                        }
                        Err(e) => cx.error(b.pos, format!("bind mount source: {e}")),
                    }
                }
            }
            Err(SourceError::NotFound(_)) => cx.error(
                b.pos,
                format!("bind mount source ./{} does not exist in the stack directory (relative sources ship from the repo)", b.rel),
            ),
            Err(e) => cx.error(b.pos, format!("bind mount source: {e}")),
        }
    }
    if total > MAX_STACK_FILES_BYTES {
        cx.error(Pos { line: 1, col: 1 }, format!("files bound from the stack directory total {total} bytes; the limit is {MAX_STACK_FILES_BYTES}"));
    }
    Some(LoadedStack {
        compose: decoded.compose,
        compose_path,
        files,
        ports: decoded.port_pos,
    })
}
