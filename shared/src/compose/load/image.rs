//! `image`: what the service runs. (Convoy runs prebuilt images; `build`,
//! `pull_policy` and `platform` belong here when they are supported.)

use super::service::{Area, Ctx, key_what};
use crate::compose::model::Service;
use crate::source::decode::Fields;

pub(super) const AREA: Area = Area {
    keys: &["image"],
    decode,
};

fn decode(f: &Fields<'_>, s: &mut Ctx<'_, '_>, svc: &mut Service) {
    let (what, cx) = (s.what, &mut *s.cx);
    match f
        .get("image")
        .and_then(|n| cx.text(n, &key_what(what, "image")))
    {
        Some(img) if !img.trim().is_empty() => {
            if img.chars().any(char::is_whitespace) {
                cx.error(
                    f.get("image").map_or(f.node.pos, |n| n.pos),
                    format!("{what}: image {img:?} contains whitespace"),
                );
            }
            svc.image = img;
        }
        _ => cx.error(
            f.node.pos,
            format!(
                "{what} has no `image` (Convoy runs prebuilt images; `build` is not supported)"
            ),
        ),
    }
}
