//! `volumes`: a service's mounts (short `SOURCE:TARGET[:OPTS]` and long
//! syntax; bind, named volume, tmpfs) and the top-level named volume
//! definitions. A relative bind source (`./conf`) is normalised inside the
//! stack dir and recorded, so the repo loader can ship the files it names.

use super::BindSource;
use super::service::{Area, Ctx, key_what};
use crate::compose::model::{MountKind, Service, VolumeDef, VolumeMount};
use crate::source::decode::{Cx, Fields, parse_bytes};
use crate::source::node::{Node, Value};

pub(super) const AREA: Area = Area {
    keys: &["volumes"],
    decode,
};

fn decode(f: &Fields<'_>, s: &mut Ctx<'_, '_>, svc: &mut Service) {
    let what = key_what(s.what, "volumes");
    if let Some(n) = f.get("volumes")
        && let Some(items) = s.cx.seq(n, &what)
    {
        for item in items {
            if let Some(m) = volume_mount(item, &what, s.cx) {
                if m.relative
                    && let Some(src) = &m.source
                {
                    s.out.binds.push(BindSource {
                        rel: src.clone(),
                        pos: item.pos,
                    });
                }
                svc.volumes.push(m);
            }
        }
    }
}

/// A top-level `volumes:` entry (null = a default local volume).
pub(super) fn volume_def(v: &Node, name: &str, cx: &mut Cx<'_>) -> Option<VolumeDef> {
    if matches!(v.value, Value::Null) {
        return Some(VolumeDef::default());
    }
    let what = format!("volume `{name}`");
    let f = cx.fields(
        v,
        &what,
        &["driver", "external", "name", "driver_opts", "labels"],
        &[],
        true,
    )?;
    let mut def = VolumeDef::default();
    if let Some(n) = f.get("driver") {
        def.driver = cx.text(n, &format!("{what}: `driver`"));
    }
    if let Some(n) = f.get("external") {
        def.external = cx
            .boolean(n, &format!("{what}: `external`"))
            .unwrap_or(false);
    }
    if let Some(n) = f.get("name") {
        def.name = cx.text(n, &format!("{what}: `name`"));
    }
    if let Some(n) = f.get("driver_opts") {
        def.driver_opts = cx
            .string_map(n, &format!("{what}: `driver_opts`"))
            .unwrap_or_default();
    }
    if let Some(n) = f.get("labels") {
        def.labels = cx
            .string_map(n, &format!("{what}: `labels`"))
            .unwrap_or_default();
    }
    Some(def)
}

fn is_host_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with('.') || s.starts_with('~')
}

/// Normalises a relative bind source (`./conf`, `../x` is rejected later).
fn normalise_relative(s: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for seg in s.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("bind source {s:?} leaves the stack directory"));
                }
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Ok(".".to_owned());
    }
    Ok(parts.join("/"))
}

fn bind_or_volume(source: &str, what: &str) -> Result<(MountKind, String, bool), String> {
    if source.starts_with('~') {
        return Err(format!(
            "{what}: `~` paths are not supported (the agent's home is not yours); use an absolute path"
        ));
    }
    if source.starts_with('/') {
        Ok((MountKind::Bind, source.to_owned(), false))
    } else if source.starts_with('.') {
        Ok((
            MountKind::Bind,
            normalise_relative(source).map_err(|e| format!("{what}: {e}"))?,
            true,
        ))
    } else {
        Ok((MountKind::Volume, source.to_owned(), false))
    }
}

fn volume_mount(item: &Node, what: &str, cx: &mut Cx<'_>) -> Option<VolumeMount> {
    match &item.value {
        Value::Str(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            let (source, target, opts) = match parts.as_slice() {
                [t] => (None, *t, ""),
                // `SOURCE:TARGET` or `TARGET:MODE`.
                [a, b] if b.starts_with('/') => (Some(*a), *b, ""),
                [a, b] => (None, *a, *b),
                [a, b, o] => (Some(*a), *b, *o),
                _ => {
                    cx.error(item.pos, format!("{what}: invalid volume {s:?}"));
                    return None;
                }
            };
            if !target.starts_with('/') {
                cx.error(
                    item.pos,
                    format!("{what}: the container path in {s:?} must be absolute"),
                );
                return None;
            }
            let mut m = VolumeMount {
                kind: MountKind::Volume,
                source: None,
                target: target.to_owned(),
                read_only: false,
                relative: false,
                tmpfs_size: None,
                nocopy: false,
            };
            if let Some(src) = source {
                match bind_or_volume(src, what) {
                    Ok((kind, src, rel)) => {
                        m.kind = kind;
                        m.source = Some(src);
                        m.relative = rel;
                    }
                    Err(e) => {
                        cx.error(item.pos, e);
                        return None;
                    }
                }
            }
            for o in opts.split(',').filter(|o| !o.is_empty()) {
                match o {
                    "ro" => m.read_only = true,
                    "rw" => m.read_only = false,
                    "nocopy" if m.kind == MountKind::Volume => m.nocopy = true,
                    other => {
                        cx.error(
                            item.pos,
                            format!(
                                "{what}: mount option {other:?} is not supported (ro, rw, nocopy)"
                            ),
                        );
                    }
                }
            }
            Some(m)
        }
        Value::Map(_) => {
            let f = cx.fields(
                item,
                what,
                &[
                    "type",
                    "source",
                    "target",
                    "read_only",
                    "bind",
                    "volume",
                    "tmpfs",
                ],
                &["consistency", "image", "npipe"],
                true,
            )?;
            let kind = match f
                .get("type")
                .and_then(|t| cx.text(t, &format!("{what}.type")))
            {
                Some(t) if t == "volume" => MountKind::Volume,
                Some(t) if t == "bind" => MountKind::Bind,
                Some(t) if t == "tmpfs" => MountKind::Tmpfs,
                Some(t) => {
                    cx.error(
                        item.pos,
                        format!("{what}: type {t:?} is not supported (volume, bind, tmpfs)"),
                    );
                    return None;
                }
                None => {
                    cx.error(
                        item.pos,
                        format!("{what}: a long-syntax volume needs `type`"),
                    );
                    return None;
                }
            };
            let Some(target) = f
                .get("target")
                .and_then(|t| cx.text(t, &format!("{what}.target")))
            else {
                cx.error(
                    item.pos,
                    format!("{what}: a long-syntax volume needs `target`"),
                );
                return None;
            };
            if !target.starts_with('/') {
                cx.error(
                    item.pos,
                    format!("{what}: target {target:?} must be an absolute path"),
                );
                return None;
            }
            let mut m = VolumeMount {
                kind,
                source: None,
                target,
                read_only: f
                    .get("read_only")
                    .and_then(|r| cx.boolean(r, &format!("{what}.read_only")))
                    .unwrap_or(false),
                relative: false,
                tmpfs_size: None,
                nocopy: false,
            };
            let source = f
                .get("source")
                .and_then(|s| cx.text(s, &format!("{what}.source")));
            match (kind, source) {
                (MountKind::Tmpfs, Some(_)) => {
                    cx.error(item.pos, format!("{what}: a tmpfs mount has no `source`"));
                }
                (MountKind::Bind, None) => {
                    cx.error(item.pos, format!("{what}: a bind mount needs `source`"));
                    return None;
                }
                (MountKind::Bind, Some(src)) => {
                    if !src.starts_with('/') && !src.starts_with('.') {
                        cx.error(item.pos, format!("{what}: bind source {src:?} must be an absolute path or start with ./"));
                        return None;
                    }
                    match bind_or_volume(&src, what) {
                        Ok((_, s, rel)) => {
                            m.source = Some(s);
                            m.relative = rel;
                        }
                        Err(e) => {
                            cx.error(item.pos, e);
                            return None;
                        }
                    }
                }
                (MountKind::Volume, Some(src)) => {
                    if is_host_path(&src) {
                        cx.error(
                            item.pos,
                            format!(
                                "{what}: volume source {src:?} looks like a path; use type: bind"
                            ),
                        );
                    }
                    m.source = Some(src);
                }
                _ => {}
            }
            if let Some(b) = f.get("bind") {
                if kind != MountKind::Bind {
                    cx.error(b.pos, format!("{what}: `bind` options on a {kind:?} mount"));
                } else if let Some(bf) = cx.fields(
                    b,
                    &format!("{what}.bind"),
                    &["create_host_path"],
                    &["propagation", "selinux", "recursive"],
                    false,
                ) && let Some(c) = bf.get("create_host_path")
                {
                    cx.boolean(c, &format!("{what}.bind.create_host_path"));
                }
            }
            if let Some(v) = f.get("volume") {
                if kind != MountKind::Volume {
                    cx.error(
                        v.pos,
                        format!("{what}: `volume` options on a {kind:?} mount"),
                    );
                } else if let Some(vf) = cx.fields(
                    v,
                    &format!("{what}.volume"),
                    &["nocopy"],
                    &["subpath"],
                    false,
                ) {
                    m.nocopy = vf
                        .get("nocopy")
                        .and_then(|n| cx.boolean(n, &format!("{what}.volume.nocopy")))
                        .unwrap_or(false);
                }
            }
            if let Some(t) = f.get("tmpfs") {
                if kind != MountKind::Tmpfs {
                    cx.error(
                        t.pos,
                        format!("{what}: `tmpfs` options on a {kind:?} mount"),
                    );
                } else if let Some(tf) =
                    cx.fields(t, &format!("{what}.tmpfs"), &["size"], &["mode"], false)
                    && let Some(sz) = tf.get("size")
                {
                    match sz.scalar_text().map(|s| parse_bytes(&s)) {
                        Some(Ok(b)) => m.tmpfs_size = Some(b),
                        Some(Err(e)) => cx.error(sz.pos, format!("{what}.tmpfs.size: {e}")),
                        None => cx.error(sz.pos, format!("{what}.tmpfs.size must be a size")),
                    }
                }
            }
            Some(m)
        }
        _ => {
            cx.error(
                item.pos,
                format!("{what}: each entry must be a string or a mapping"),
            );
            None
        }
    }
}
