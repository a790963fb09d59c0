//! Loading and validating a whole fleet repo: `fleet.toml`, every stack's
//! compose file, `.env`, `env_file`s and relatively bound files. Every
//! problem is collected (never just the first) as `path:line:col: message`,
//! with paths relative to the repo root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::compose::load::{self as compose_load, StackFiles};
use crate::compose::{ComposeFile, PortMapping, Protocol, dotenv};
use crate::fleet::{
    Fleet, HealthPolicy, HostDef, OnFailure, Probe, ProbeCheck, RolloutPolicy, Selector, StackDef,
    Wave,
};
use crate::limits::{MAX_NAME_LEN, MAX_REPO_FILE_BYTES, MAX_STACK_FILES_BYTES};
use crate::source::node::{Node, Pos, Value};
use crate::source::{Cx, Diagnostic, Diagnostics, toml as toml_src, yaml};

pub const FLEET_FILE: &str = "fleet.toml";
/// Compose file names looked for in a stack directory, in compose's order.
pub const COMPOSE_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];
/// Default per-attempt probe timeout.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the repo's files come from: a directory, or a git tree.
pub trait RepoSource {
    /// Reads a file by its path relative to the repo root (`/`-separated,
    /// already normalised). Err(NotFound) when it does not exist.
    fn read(&self, rel: &str) -> Result<Vec<u8>, SourceError>;
    /// Whether `rel` is a directory.
    fn is_dir(&self, rel: &str) -> bool;
    /// Files (not directories) below `rel`, recursively, as repo-relative paths.
    fn files_under(&self, rel: &str) -> Result<Vec<String>, SourceError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} is larger than {MAX_REPO_FILE_BYTES} bytes")]
    TooLarge(String),
    #[error("{0} points outside the repository")]
    Escapes(String),
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
}

/// A fleet repo checked out in a directory.
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    pub fn new(root: &Path) -> Result<Self, SourceError> {
        let root = root.canonicalize().map_err(|e| SourceError::Io {
            path: root.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { root })
    }

    fn resolve(&self, rel: &str) -> Result<PathBuf, SourceError> {
        let p = self.root.join(rel);
        let real = p.canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SourceError::NotFound(rel.to_owned())
            } else {
                SourceError::Io {
                    path: rel.to_owned(),
                    reason: e.to_string(),
                }
            }
        })?;
        if !real.starts_with(&self.root) {
            return Err(SourceError::Escapes(rel.to_owned()));
        }
        Ok(real)
    }
}

impl RepoSource for DirSource {
    fn read(&self, rel: &str) -> Result<Vec<u8>, SourceError> {
        let p = self.resolve(rel)?;
        let io = |e: std::io::Error| SourceError::Io {
            path: rel.to_owned(),
            reason: e.to_string(),
        };
        let meta = std::fs::metadata(&p).map_err(io)?;
        if meta.is_dir() {
            return Err(SourceError::Io {
                path: rel.to_owned(),
                reason: "is a directory".into(),
            });
        }
        if meta.len() > MAX_REPO_FILE_BYTES {
            return Err(SourceError::TooLarge(rel.to_owned()));
        }
        std::fs::read(&p).map_err(io)
    }

    fn is_dir(&self, rel: &str) -> bool {
        self.resolve(rel).is_ok_and(|p| p.is_dir())
    }

    fn files_under(&self, rel: &str) -> Result<Vec<String>, SourceError> {
        let base = self.resolve(rel)?;
        let mut out = Vec::new();
        let mut todo = vec![(base, rel.trim_end_matches('/').to_owned())];
        while let Some((dir, rel_dir)) = todo.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| SourceError::Io {
                path: rel_dir.clone(),
                reason: e.to_string(),
            })?;
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let child_rel = format!("{rel_dir}/{name}");
                let real = self.resolve(&child_rel)?;
                if real.is_dir() {
                    todo.push((real, child_rel));
                } else {
                    out.push(child_rel);
                }
                if out.len() > 10_000 {
                    return Err(SourceError::TooLarge(rel.to_owned()));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A fleet repo held in memory (a git tree read into a map, tests, fuzzing).
#[derive(Debug, Clone, Default)]
pub struct MemSource(pub BTreeMap<String, Vec<u8>>);

impl RepoSource for MemSource {
    fn read(&self, rel: &str) -> Result<Vec<u8>, SourceError> {
        match self.0.get(rel) {
            Some(b) if b.len() as u64 > MAX_REPO_FILE_BYTES => {
                Err(SourceError::TooLarge(rel.to_owned()))
            }
            Some(b) => Ok(b.clone()),
            None => Err(SourceError::NotFound(rel.to_owned())),
        }
    }

    fn is_dir(&self, rel: &str) -> bool {
        let prefix = format!("{rel}/");
        self.0.keys().any(|k| k.starts_with(&prefix))
    }

    fn files_under(&self, rel: &str) -> Result<Vec<String>, SourceError> {
        let prefix = format!("{rel}/");
        Ok(self
            .0
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect())
    }
}

/// One stack, loaded and decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedStack {
    pub compose: ComposeFile,
    /// The compose file's path, relative to the repo.
    pub compose_path: String,
    /// Files bound relatively, by path relative to the stack directory.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Every published port with where it was written.
    pub ports: Vec<(String, PortMapping, Pos)>,
}

/// A valid fleet repo (warnings may remain).
#[derive(Debug, Clone, PartialEq)]
pub struct Repo {
    pub fleet: Fleet,
    pub stacks: BTreeMap<String, LoadedStack>,
    pub warnings: Diagnostics,
}

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

fn whole_file(diags: &mut Vec<Diagnostic>, file: &str, message: String) {
    diags.push(Diagnostic {
        file: file.to_owned(),
        line: 0,
        col: 0,
        severity: crate::source::Severity::Error,
        message,
    });
}

fn read_text(src: &dyn RepoSource, rel: &str) -> Result<String, String> {
    let bytes = src.read(rel).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| format!("{rel} is not valid UTF-8"))
}

/// Normalises a repo-relative path, refusing absolute paths and `..` that
/// would leave the repo.
pub fn normalise_rel(p: &str) -> Result<String, String> {
    let path = Path::new(p);
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!("{p:?} leaves the repository"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{p:?} must be relative to the repository root"));
            }
        }
    }
    if parts.is_empty() {
        return Err(format!(
            "{p:?} is the repository root, not a stack directory"
        ));
    }
    Ok(parts.join("/"))
}

/// Host, stack and wave names: DNS-label-like, as compose project names.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63.min(MAX_NAME_LEN)
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
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

fn decode_fleet(
    root: &Node,
    cx: &mut Cx<'_>,
    stack_pos: &mut BTreeMap<String, Pos>,
) -> Option<Fleet> {
    let top = cx.fields(
        root,
        "fleet.toml",
        &["fleet", "hosts", "stacks", "rollout"],
        &[],
        false,
    )?;
    let mut ok = true;
    let name = match top.get("fleet") {
        Some(f) => cx
            .fields(f, "[fleet]", &["name"], &[], false)
            .and_then(|f| match f.get("name") {
                Some(n) => {
                    let s = cx.string(n, "fleet name")?;
                    if !valid_name(&s) {
                        cx.error(n.pos, format!("invalid fleet name {s:?} (lowercase letters, digits, `-`, `_`; at most 63)"));
                    }
                    Some(s)
                }
                None => {
                    cx.error(f.node.pos, "[fleet] needs `name`");
                    None
                }
            }),
        None => {
            cx.error(Pos { line: 1, col: 1 }, "fleet.toml needs a [fleet] table with `name`");
            None
        }
    };
    let mut hosts = BTreeMap::new();
    if let Some(h) = top.get("hosts") {
        for (k, v) in cx.entries(h, "[hosts]").unwrap_or_default() {
            let host = k.as_str().unwrap_or_default().to_owned();
            if !valid_name(&host) {
                cx.error(k.pos, format!("invalid host name {host:?} (lowercase letters, digits, `-`, `_`; at most 63)"));
                ok = false;
            }
            let mut def = HostDef::default();
            if let Some(f) = cx.fields(v, &format!("host `{host}`"), &["labels"], &[], false)
                && let Some(l) = f.get("labels")
            {
                for (lk, lv) in cx
                    .entries(l, &format!("host `{host}` labels"))
                    .unwrap_or_default()
                {
                    let key = lk.as_str().unwrap_or_default().to_owned();
                    if !valid_label(&key) {
                        cx.error(lk.pos, format!("invalid label key {key:?}"));
                    }
                    match cx.string(lv, &format!("label `{key}` of host `{host}`")) {
                            Some(val) if valid_label_value(&val) => {
                                def.labels.insert(key, val);
                            }
                            Some(val) => cx.error(lv.pos, format!("invalid label value {val:?} (no spaces, commas, `=`, `!` or parentheses)")),
                            None => {}
                        }
                }
            }
            hosts.insert(host, def);
        }
    }
    let mut stacks = BTreeMap::new();
    if let Some(s) = top.get("stacks") {
        for (k, v) in cx.entries(s, "[stacks]").unwrap_or_default() {
            let stack = k.as_str().unwrap_or_default().to_owned();
            stack_pos.insert(stack.clone(), k.pos);
            if !valid_name(&stack) {
                cx.error(k.pos, format!("invalid stack name {stack:?} (it becomes the compose project: lowercase letters, digits, `-`, `_`)"));
                ok = false;
            }
            match decode_stack(v, &stack, cx) {
                Some(def) => {
                    stacks.insert(stack, def);
                }
                None => ok = false,
            }
        }
    }
    if stacks.is_empty() && top.get("stacks").is_none() {
        cx.warning(root.pos, "fleet.toml declares no stacks");
    }
    let rollout = match top.get("rollout") {
        Some(r) => decode_rollout(r, cx),
        None => Some(RolloutPolicy {
            waves: vec![Wave {
                name: "all".into(),
                hosts: Selector::all(),
                max_parallel: None,
                approval: false,
            }],
            on_failure: OnFailure::Halt,
        }),
    };
    // Keep going with what decoded, so the stacks' files are checked too;
    // the errors recorded so far already make the repo invalid.
    let _ = ok;
    Some(Fleet {
        name: name.unwrap_or_default(),
        hosts,
        stacks,
        rollout: rollout.unwrap_or_else(|| RolloutPolicy {
            waves: Vec::new(),
            on_failure: OnFailure::Halt,
        }),
    })
}

fn valid_label(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_NAME_LEN
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_label_value(v: &str) -> bool {
    v.len() <= MAX_NAME_LEN
        && !v
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ',' | '=' | '!' | '(' | ')'))
}

fn selector(n: &Node, what: &str, cx: &mut Cx<'_>) -> Option<Selector> {
    let s = cx.string(n, what)?;
    match Selector::parse(&s) {
        Ok(sel) => Some(sel),
        Err(e) => {
            // Point at the character inside the string (after the quote).
            let col = n.pos.col + 1 + u32::try_from(e.offset).unwrap_or(0);
            cx.error(
                Pos {
                    line: n.pos.line,
                    col,
                },
                format!("{what}: {}", e.message),
            );
            None
        }
    }
}

fn decode_stack(v: &Node, stack: &str, cx: &mut Cx<'_>) -> Option<StackDef> {
    let what = format!("stack `{stack}`");
    let f = cx.fields(
        v,
        &what,
        &["path", "hosts", "after", "health", "remove_volumes"],
        &[],
        false,
    )?;
    let path = match f.get("path") {
        Some(p) => {
            let s = cx.string(p, &format!("{what}: `path`"))?;
            match normalise_rel(&s) {
                Ok(n) => n,
                Err(e) => {
                    cx.error(p.pos, format!("{what}: path {e}"));
                    return None;
                }
            }
        }
        None => {
            cx.error(
                v.pos,
                format!("{what} needs `path` (e.g. \"stacks/{stack}\")"),
            );
            return None;
        }
    };
    let hosts = match f.get("hosts") {
        Some(h) => selector(h, &format!("{what}: `hosts`"), cx)?,
        None => {
            cx.error(
                v.pos,
                format!("{what} needs `hosts`, a label selector (\"\" for every host)"),
            );
            return None;
        }
    };
    let after = match f.get("after") {
        Some(a) => cx
            .strings(a, &format!("{what}: `after`"), false)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut health = HealthPolicy::default();
    if let Some(h) = f.get("health") {
        let hw = format!("{what}: health");
        let hf = cx.fields(h, &hw, &["deadline", "min_healthy", "probes"], &[], false);
        let hf = hf.as_ref();
        let mut durations_ok = true;
        if let Some(d) = hf.and_then(|f| f.get("deadline")) {
            match cx.duration(d, &format!("{hw}.deadline")) {
                Some(v) => health.deadline = v,
                None => durations_ok = false,
            }
        }
        if let Some(d) = hf.and_then(|f| f.get("min_healthy")) {
            match cx.duration(d, &format!("{hw}.min_healthy")) {
                Some(v) => health.min_healthy = v,
                None => durations_ok = false,
            }
        }
        let pos_of = |k: &str| hf.and_then(|f| f.get(k)).map_or(h.pos, |d| d.pos);
        if health.deadline.is_zero() {
            cx.error(pos_of("deadline"), format!("{hw}.deadline must be above 0"));
        }
        if durations_ok && health.min_healthy > health.deadline {
            cx.error(
                pos_of("min_healthy"),
                format!(
                    "{hw}: min_healthy ({}) is longer than deadline ({}); the stack could never pass",
                    crate::duration::format(health.min_healthy),
                    crate::duration::format(health.deadline)
                ),
            );
        }
        if let Some(p) = hf.and_then(|f| f.get("probes")) {
            for item in cx.seq(p, &format!("{hw}.probes")).unwrap_or_default() {
                if let Some(probe) = decode_probe(item, &hw, cx) {
                    health.probes.push(probe);
                }
            }
        }
    }
    let remove_volumes = match f.get("remove_volumes") {
        Some(r) => cx
            .boolean(r, &format!("{what}: `remove_volumes`"))
            .unwrap_or(false),
        None => false,
    };
    Some(StackDef {
        name: stack.to_owned(),
        path,
        hosts,
        after,
        health,
        remove_volumes,
    })
}

fn decode_probe(item: &Node, hw: &str, cx: &mut Cx<'_>) -> Option<Probe> {
    let pw = format!("{hw}.probes");
    let f = cx.fields(
        item,
        &pw,
        &["service", "http", "tcp", "timeout"],
        &[],
        false,
    )?;
    let Some(service) = f
        .get("service")
        .and_then(|s| cx.string(s, &format!("{pw}.service")))
    else {
        cx.error(item.pos, format!("{pw}: a probe needs `service`"));
        return None;
    };
    let check = match (f.get("http"), f.get("tcp")) {
        (Some(h), None) => {
            let url = cx.string(h, &format!("{pw}.http"))?;
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            match rest {
                Some(r) if !r.is_empty() && !r.starts_with('/') => ProbeCheck::Http { url },
                _ => {
                    cx.error(
                        h.pos,
                        format!("{pw}: {url:?} is not an http:// or https:// URL"),
                    );
                    return None;
                }
            }
        }
        (None, Some(t)) => {
            let address = cx.string(t, &format!("{pw}.tcp"))?;
            let valid = address
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !valid {
                cx.error(t.pos, format!("{pw}: {address:?} is not host:port"));
                return None;
            }
            ProbeCheck::Tcp { address }
        }
        (Some(_), Some(_)) => {
            cx.error(
                item.pos,
                format!("{pw}: a probe has either `http` or `tcp`, not both"),
            );
            return None;
        }
        (None, None) => {
            cx.error(item.pos, format!("{pw}: a probe needs `http` or `tcp`"));
            return None;
        }
    };
    let timeout = match f.get("timeout") {
        Some(t) => {
            let d = cx.duration(t, &format!("{pw}.timeout"))?;
            if d.is_zero() {
                cx.error(t.pos, format!("{pw}.timeout must be above 0"));
            }
            d
        }
        None => DEFAULT_PROBE_TIMEOUT,
    };
    Some(Probe {
        service,
        check,
        timeout,
    })
}

fn decode_rollout(r: &Node, cx: &mut Cx<'_>) -> Option<RolloutPolicy> {
    let f = cx.fields(r, "[rollout]", &["waves", "on_failure"], &[], false)?;
    let on_failure = match f.get("on_failure") {
        Some(o) => match cx.string(o, "rollout.on_failure")?.as_str() {
            "halt" => OnFailure::Halt,
            "rollback" => OnFailure::Rollback,
            other => {
                cx.error(
                    o.pos,
                    format!("rollout.on_failure {other:?} is not \"halt\" or \"rollback\""),
                );
                OnFailure::Halt
            }
        },
        None => OnFailure::Halt,
    };
    let mut waves = Vec::new();
    let mut ok = true;
    match f.get("waves") {
        Some(w) => {
            let items = cx.seq(w, "rollout.waves")?;
            if items.is_empty() {
                cx.error(
                    w.pos,
                    "rollout.waves is empty; omit it for one wave holding every host",
                );
                ok = false;
            }
            let mut names = BTreeSet::new();
            for item in items {
                let Some(wf) = cx.fields(
                    item,
                    "a rollout wave",
                    &["name", "hosts", "max_parallel", "approval"],
                    &[],
                    false,
                ) else {
                    ok = false;
                    continue;
                };
                let Some(name) = wf.get("name").and_then(|n| cx.string(n, "wave name")) else {
                    cx.error(item.pos, "a rollout wave needs `name`");
                    ok = false;
                    continue;
                };
                if !valid_name(&name) {
                    cx.error(item.pos, format!("invalid wave name {name:?}"));
                }
                if !names.insert(name.clone()) {
                    cx.error(item.pos, format!("wave `{name}` is declared twice"));
                }
                let hosts = match wf.get("hosts") {
                    Some(h) => match selector(h, &format!("wave `{name}`: `hosts`"), cx) {
                        Some(s) => s,
                        None => {
                            ok = false;
                            continue;
                        }
                    },
                    None => {
                        cx.error(item.pos, format!("wave `{name}` needs `hosts`"));
                        ok = false;
                        continue;
                    }
                };
                let max_parallel = match wf.get("max_parallel") {
                    Some(m) => {
                        match cx.int_in(m, &format!("wave `{name}`: max_parallel"), 1, 10_000) {
                            Some(v) => Some(v as u32),
                            None => {
                                ok = false;
                                None
                            }
                        }
                    }
                    None => None,
                };
                let approval = match wf.get("approval") {
                    Some(a) => cx
                        .boolean(a, &format!("wave `{name}`: approval"))
                        .unwrap_or(false),
                    None => false,
                };
                waves.push(Wave {
                    name,
                    hosts,
                    max_parallel,
                    approval,
                });
            }
        }
        None => waves.push(Wave {
            name: "all".into(),
            hosts: Selector::all(),
            max_parallel: None,
            approval: false,
        }),
    }
    ok.then_some(RolloutPolicy { waves, on_failure })
}

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

fn load_stack(
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

/// Checks that need the whole fleet: references, cycles, waves, ports.
fn check_fleet(
    fleet: &Fleet,
    stacks: &BTreeMap<String, LoadedStack>,
    stack_pos: &BTreeMap<String, Pos>,
    root: &Node,
    cx: &mut Cx<'_>,
) {
    let at = |s: &str| stack_pos.get(s).copied().unwrap_or_default();
    for (name, def) in &fleet.stacks {
        for a in &def.after {
            if a == name {
                cx.error(at(name), format!("stack `{name}` is after itself"));
            } else if !fleet.stacks.contains_key(a) {
                cx.error(
                    at(name),
                    format!("stack `{name}` is after `{a}`, which is not a stack"),
                );
            }
        }
        let matched: Vec<&String> = fleet
            .hosts
            .iter()
            .filter(|(_, h)| def.hosts.matches(&h.labels))
            .map(|(n, _)| n)
            .collect();
        if matched.is_empty() && !fleet.hosts.is_empty() {
            cx.warning(
                at(name),
                format!(
                    "stack `{name}`: selector {:?} matches no host",
                    def.hosts.as_str()
                ),
            );
        }
    }
    let graph: BTreeMap<&str, Vec<&str>> = fleet
        .stacks
        .iter()
        .map(|(n, d)| {
            (
                n.as_str(),
                d.after
                    .iter()
                    .map(String::as_str)
                    .filter(|a| *a != n && fleet.stacks.contains_key(*a))
                    .collect(),
            )
        })
        .collect();
    if let Some(cycle) = compose_load::find_cycle(&graph) {
        let first = cycle.first().copied().unwrap_or_default();
        cx.error(
            at(first),
            format!("`after` forms a cycle: {}", cycle.join(" -> ")),
        );
    }
    let rollout_pos = root
        .get("rollout")
        .map_or(Pos { line: 1, col: 1 }, |r| r.pos);
    for (host, def) in &fleet.hosts {
        let host_pos = root
            .get("hosts")
            .and_then(|h| match &h.value {
                Value::Map(e) => e
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(host))
                    .map(|(k, _)| k.pos),
                _ => None,
            })
            .unwrap_or(rollout_pos);
        if !fleet
            .rollout
            .waves
            .iter()
            .any(|w| w.hosts.matches(&def.labels))
        {
            cx.error(
                host_pos,
                format!("host `{host}` is in no rollout wave, so it would never be updated"),
            );
        }
        let on_host: BTreeSet<&str> = fleet
            .stacks
            .iter()
            .filter(|(_, s)| s.hosts.matches(&def.labels))
            .map(|(n, _)| n.as_str())
            .collect();
        for s in &on_host {
            for a in &fleet.stacks[*s].after {
                if fleet.stacks.contains_key(a) && !on_host.contains(a.as_str()) {
                    cx.error(
                        at(s),
                        format!(
                            "stack `{s}` is after `{a}`, but host `{host}` gets `{s}` without `{a}`"
                        ),
                    );
                }
            }
        }
        // The same host port published twice on one host.
        let mut seen: Vec<(&str, &str, &PortMapping, &str, Pos)> = Vec::new();
        for s in &on_host {
            let Some(loaded) = stacks.get(*s) else {
                continue;
            };
            for (svc, p, pos) in &loaded.ports {
                let Some(port) = p.published else { continue };
                for (os, osvc, op, ofile, opos) in &seen {
                    if op.published == Some(port)
                        && op.protocol == p.protocol
                        && ips_overlap(&op.host_ip, &p.host_ip)
                    {
                        let mut fcx = Cx::new(loaded.compose_path.clone(), cx.diags);
                        fcx.error(
                            *pos,
                            format!(
                                "host `{host}`: {}/{} port {port} is published by `{s}`/`{svc}` and already by `{os}`/`{osvc}` ({ofile}:{}:{})",
                                p.host_ip.as_deref().unwrap_or("0.0.0.0"),
                                proto(p.protocol),
                                opos.line,
                                opos.col
                            ),
                        );
                    }
                }
                seen.push((s, svc, p, &loaded.compose_path, *pos));
            }
        }
    }
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

fn ips_overlap(a: &Option<String>, b: &Option<String>) -> bool {
    let any = |x: &Option<String>| x.as_deref().is_none_or(|s| s == "0.0.0.0" || s == "::");
    any(a) || any(b) || a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_paths() {
        assert_eq!(normalise_rel("stacks/./web/").as_deref(), Ok("stacks/web"));
        assert!(normalise_rel("../x").is_err());
        assert!(normalise_rel("/abs").is_err());
        assert!(normalise_rel(".").is_err());
    }

    #[test]
    fn names() {
        assert!(valid_name("gpu-box_1"));
        assert!(!valid_name("Gpu"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
    }
}
