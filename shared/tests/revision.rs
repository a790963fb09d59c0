//! Property tests: a stack's revision is invariant under reordering and
//! reformatting of the files, and changes under any real change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use convoy_shared::compose::interpolate::interpolate;
use convoy_shared::render::render_host;
use convoy_shared::repo::{MemSource as Mem, load};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Svc {
    name: String,
    image: String,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    port: Option<(u16, u16)>,
}

fn svc() -> impl Strategy<Value = Svc> {
    (
        "[a-z][a-z0-9]{0,6}",
        "[a-z]{1,8}(:[0-9]{1,2})?",
        prop::collection::btree_map("[A-Z][A-Z0-9_]{0,6}", "[a-zA-Z0-9 ./-]{0,10}", 0..4),
        prop::collection::btree_map("[a-z][a-z.]{0,6}", "[a-z0-9]{0,6}", 0..3),
        prop::option::of((1024u16..60000, 1u16..1024)),
    )
        .prop_map(|(name, image, env, labels, port)| Svc {
            name,
            image,
            env,
            labels,
            port,
        })
}

/// Writes the services as YAML; `variant` picks key order, block or flow
/// style, list or map form, and comments, none of which may change the
/// revision.
fn yaml(services: &[Svc], variant: u8) -> String {
    let mut out = String::new();
    if variant & 1 == 1 {
        out.push_str("# a comment that does not matter\n");
    }
    out.push_str("services:\n");
    let mut order: Vec<&Svc> = services.iter().collect();
    if variant & 2 == 2 {
        order.reverse();
    }
    for s in order {
        out.push_str(&format!("  {}:\n", s.name));
        let mut lines = vec![format!("    image: \"{}\"\n", s.image)];
        if !s.env.is_empty() {
            let mut e = String::from("    environment:\n");
            if variant & 4 == 4 {
                for (k, v) in s.env.iter().rev() {
                    e.push_str(&format!("      - '{k}={v}'\n"));
                }
            } else {
                for (k, v) in &s.env {
                    e.push_str(&format!("      {k}: \"{v}\"\n"));
                }
            }
            lines.push(e);
        }
        if !s.labels.is_empty() {
            let items: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("\"{k}\": \"{v}\""))
                .collect();
            lines.push(format!("    labels: {{ {} }}\n", items.join(", ")));
        }
        if let Some((p, t)) = s.port {
            if variant & 8 == 8 {
                lines.push(format!(
                    "    ports:\n      - target: {t}\n        published: {p}\n"
                ));
            } else {
                lines.push(format!("    ports: [\"{p}:{t}\"]\n"));
            }
        }
        if variant & 2 == 2 {
            lines.reverse();
        }
        for l in lines {
            out.push_str(&l);
        }
    }
    out
}

const FLEET: &str = "[fleet]\nname = \"p\"\n[hosts.h]\nlabels = { a = \"b\" }\n[stacks.s]\npath = \"s\"\nhosts = \"a=b\"\n";
const FLEET_REORDERED: &str = "# reordered\n[stacks.s]\nhosts = \"a=b\"\npath = \"./s/\"\n\n[hosts.h]\nlabels = {a=\"b\"}\n[fleet]\nname = \"p\"\n";

fn revision(fleet: &str, compose: &str) -> Result<(String, String), String> {
    let mut files = BTreeMap::new();
    files.insert("fleet.toml".to_owned(), fleet.as_bytes().to_vec());
    files.insert("s/compose.yaml".to_owned(), compose.as_bytes().to_vec());
    let repo = load(&Mem(files)).map_err(|d| d.to_string())?;
    let state = render_host(&repo, "h").unwrap();
    Ok((state.revision, state.stacks[0].revision.clone()))
}

fn unique(services: Vec<Svc>) -> Vec<Svc> {
    let mut seen = std::collections::BTreeSet::new();
    let mut ports = std::collections::BTreeSet::new();
    services
        .into_iter()
        .filter(|s| seen.insert(s.name.clone()))
        .map(|mut s| {
            if let Some((p, _)) = s.port
                && !ports.insert(p)
            {
                s.port = None;
            }
            s
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn revision_ignores_order_and_formatting(services in prop::collection::vec(svc(), 1..5), variant in 0u8..16) {
        let services = unique(services);
        let base = revision(FLEET, &yaml(&services, 0)).unwrap();
        let other = revision(FLEET_REORDERED, &yaml(&services, variant)).unwrap();
        prop_assert_eq!(base, other);
    }

    #[test]
    fn revision_changes_with_any_real_change(services in prop::collection::vec(svc(), 1..5), which in 0usize..4) {
        let services = unique(services);
        let base = revision(FLEET, &yaml(&services, 0)).unwrap();
        let mut changed = services.clone();
        let s = &mut changed[0];
        match which {
            0 => s.image.push_str("-x"),
            1 => { s.env.insert("ZZ_NEW".into(), "1".into()); }
            2 => { s.labels.insert("zz.new".into(), "1".into()); }
            _ => s.port = Some(match s.port { Some((p, t)) => (p, t + 1), None => (61000, 80) }),
        }
        let after = revision(FLEET, &yaml(&changed, 0)).unwrap();
        prop_assert_ne!(&base.0, &after.0);
        prop_assert_ne!(&base.1, &after.1);
    }

    #[test]
    fn health_policy_changes_the_revision(secs in 11u64..600) {
        let compose = "services:\n  a:\n    image: x\n";
        let base = revision(FLEET, compose).unwrap();
        let fleet = format!("{FLEET}[stacks.s.health]\ndeadline = \"{secs}s\"\n");
        let after = revision(&fleet, compose).unwrap();
        prop_assert_eq!(secs == 120, base == after);
    }

    /// `$$` is compose's escape: escaping every `$` gives the text back.
    #[test]
    fn dollar_escapes_round_trip(s in "[ -~]{0,40}") {
        let escaped = s.replace('$', "$$");
        let out = interpolate(&escaped, &|_| None).unwrap();
        prop_assert_eq!(out.value, s);
        prop_assert!(out.unset.is_empty());
    }

    /// Text without `$` is never changed.
    #[test]
    fn plain_text_is_untouched(s in "[^$]{0,40}") {
        prop_assert_eq!(interpolate(&s, &|_| Some("x".into())).unwrap().value, s);
    }
}
