//! `depends_on`: the services to start first and the condition to wait
//! for (started, healthy, completed successfully). Whether the names exist
//! and form no cycle is checked in [`super::references`].

use std::collections::BTreeMap;

use super::service::{Area, Ctx, key_what};
use crate::compose::model::{Dependency, DependencyCondition, Service};
use crate::source::decode::{Cx, Fields};
use crate::source::node::{Node, Value};

pub(super) const AREA: Area = Area {
    keys: &["depends_on"],
    decode,
};

fn decode(f: &Fields<'_>, s: &mut Ctx<'_, '_>, svc: &mut Service) {
    if let Some(n) = f.get("depends_on") {
        svc.depends_on = depends_on(n, &key_what(s.what, "depends_on"), s.cx);
    }
}

fn depends_on(n: &Node, what: &str, cx: &mut Cx<'_>) -> BTreeMap<String, Dependency> {
    let mut out = BTreeMap::new();
    match &n.value {
        Value::Seq(items) => {
            for i in items {
                if let Some(s) = cx.text(i, what) {
                    out.insert(s, Dependency::default());
                }
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                let name = k.as_str().unwrap_or_default().to_owned();
                let mut d = Dependency::default();
                let w = format!("{what}.{name}");
                if let Some(f) = cx.fields(v, &w, &["condition", "required", "restart"], &[], false)
                {
                    if let Some(c) = f
                        .get("condition")
                        .and_then(|c| cx.text(c, &format!("{w}.condition")))
                    {
                        d.condition = match c.as_str() {
                            "service_started" => DependencyCondition::ServiceStarted,
                            "service_healthy" => DependencyCondition::ServiceHealthy,
                            "service_completed_successfully" => {
                                DependencyCondition::ServiceCompletedSuccessfully
                            }
                            other => {
                                cx.error(
                                    f.get("condition").map_or(v.pos, |c| c.pos),
                                    format!("{w}: condition {other:?} is not service_started, service_healthy or service_completed_successfully"),
                                );
                                d.condition
                            }
                        };
                    }
                    if let Some(r) = f.get("required") {
                        d.required = cx.boolean(r, &format!("{w}.required")).unwrap_or(true);
                    }
                    if let Some(r) = f.get("restart") {
                        d.restart = cx.boolean(r, &format!("{w}.restart")).unwrap_or(false);
                    }
                }
                out.insert(name, d);
            }
        }
        _ => cx.error(n.pos, format!("{what} must be a list or a mapping")),
    }
    out
}
