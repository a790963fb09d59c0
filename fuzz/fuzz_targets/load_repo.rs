//! Fuzzes the whole loader: fleet.toml, a compose file, the stack's .env
//! and an env_file, split out of one input at NUL bytes. Whatever the input,
//! loading must return Ok or located diagnostics — never panic, hang or
//! blow up memory — and a valid repo must render.
#![no_main]

use std::collections::BTreeMap;

use convoy_shared::render::plan;
use convoy_shared::repo::{MemSource, load};
use libfuzzer_sys::fuzz_target;

const FLEET: &str = "[fleet]\nname = \"f\"\n[hosts.h]\nlabels = { a = \"b\" }\n[stacks.s]\npath = \"s\"\nhosts = \"a=b\"\n";

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let compose = parts.next().unwrap_or_default();
    let fleet = parts.next();
    let env = parts.next();
    let env_file = parts.next();
    let mut files = BTreeMap::new();
    files.insert(
        "fleet.toml".to_owned(),
        fleet.map_or_else(|| FLEET.as_bytes().to_vec(), <[u8]>::to_vec),
    );
    files.insert("s/compose.yaml".to_owned(), compose.to_vec());
    if let Some(e) = env {
        files.insert("s/.env".to_owned(), e.to_vec());
    }
    if let Some(e) = env_file {
        files.insert("s/app.env".to_owned(), e.to_vec());
    }
    match load(&MemSource(files)) {
        Ok(repo) => {
            let p = plan(&repo);
            for state in p.hosts.values() {
                assert_eq!(state.revision.len(), 64);
            }
        }
        Err(diags) => assert!(diags.has_errors()),
    }
});
