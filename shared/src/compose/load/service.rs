//! One service: which keys it may have and which area decodes each.
//!
//! Every supported service key belongs to exactly one area file (`image.rs`,
//! `ports.rs`, ...), which lists it in its `KEYS` and decodes it in its
//! `decode`. `AREAS` runs them in order; that order is also the order
//! the keys are listed in an "unknown key" error, and where it matters for
//! meaning it is compose's (`env_file` before `environment`, in
//! `environment.rs`). A compose key that no area lists is refused: with
//! "not supported" if [`super::spec::COMPOSE_SERVICE_KEYS`] names it, as
//! unknown (a misspelling) otherwise.

use super::{
    Decoded, StackFiles, command, container, depends_on, deploy, environment, healthcheck, image,
    networks, ports, spec, volumes,
};
use crate::compose::model::Service;
use crate::source::decode::{Cx, Fields};
use crate::source::node::Node;

/// What an area decoder works with besides the service's fields.
pub(super) struct Ctx<'a, 'd> {
    /// The service's name.
    pub name: &'a str,
    /// `service `NAME``, the start of every message about it.
    pub what: &'a str,
    /// The stack's variables (`.env`), for `environment` entries without a
    /// value and for `env_file` interpolation.
    pub vars: &'a dyn Fn(&str) -> Option<String>,
    pub files: &'a dyn StackFiles,
    pub cx: &'a mut Cx<'d>,
    /// Where bind sources and published ports are recorded for the
    /// repo-wide checks.
    pub out: &'a mut Decoded,
}

/// `service `NAME`: `KEY`` for messages about one key.
pub(super) fn key_what(what: &str, key: &str) -> String {
    format!("{what}: `{key}`")
}

/// A group of service keys and the function that decodes them into the
/// [`Service`] (each key it finds; absent keys leave the default).
pub(super) struct Area {
    pub keys: &'static [&'static str],
    pub decode: fn(&Fields<'_>, &mut Ctx<'_, '_>, &mut Service),
}

/// Every area, in decoding order.
pub(super) const AREAS: &[Area] = &[
    image::AREA,
    command::AREA,
    environment::AREA,
    ports::AREA,
    volumes::AREA,
    networks::AREA,
    depends_on::AREA,
    healthcheck::AREA,
    container::AREA,
    deploy::AREA,
];

/// The service keys Convoy supports (README "Compose support"), in the
/// order errors list them.
pub fn service_keys() -> Vec<&'static str> {
    AREAS.iter().flat_map(|a| a.keys.iter().copied()).collect()
}

/// Service keys of the compose specification that Convoy rejects.
pub fn unsupported_service_keys() -> Vec<&'static str> {
    let supported = service_keys();
    spec::COMPOSE_SERVICE_KEYS
        .iter()
        .copied()
        .filter(|k| !supported.contains(k))
        .collect()
}

/// Decodes one service; `None` when it is not a mapping.
pub(super) fn service(
    node: &Node,
    name: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    files: &dyn StackFiles,
    cx: &mut Cx<'_>,
    out: &mut Decoded,
) -> Option<Service> {
    let what = format!("service `{name}`");
    let f = cx.fields(
        node,
        &what,
        &service_keys(),
        &unsupported_service_keys(),
        true,
    )?;
    let mut svc = Service::default();
    let mut ctx = Ctx {
        name,
        what: &what,
        vars,
        files,
        cx,
        out,
    };
    for area in AREAS {
        (area.decode)(&f, &mut ctx, &mut svc);
    }
    Some(svc)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_key_has_one_area_and_is_a_compose_key() {
        let keys = service_keys();
        let unique: BTreeSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "a key in two areas: {keys:?}");
        for k in &keys {
            assert!(
                spec::COMPOSE_SERVICE_KEYS.contains(k),
                "`{k}` is not a compose service key (a typo, or add it to spec.rs)"
            );
        }
        for k in unsupported_service_keys() {
            assert!(!keys.contains(&k));
        }
    }
}
