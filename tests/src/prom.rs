//! A strict parser of the Prometheus text exposition format 0.0.4, for
//! checking `/metrics` end to end (panics on anything malformed: every
//! family has HELP then TYPE before its samples in one contiguous block,
//! label values unescape, values parse, no duplicate series).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Exposition {
    pub help: BTreeMap<String, String>,
    pub types: BTreeMap<String, String>,
    pub series: Vec<Series>,
}

impl Exposition {
    /// Series of `name` whose labels include `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Series> {
        self.series
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one series matching; panics unless exactly one does.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses (and checks) an exposition.
pub fn parse(text: &str) -> Exposition {
    let mut exp = Exposition::default();
    let mut current: Option<String> = None;
    let mut closed: BTreeSet<String> = BTreeSet::new();
    assert!(text.ends_with('\n'), "exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(is_name(name), "{line}");
            if let Some(prev) = current.replace(name.to_string()) {
                closed.insert(prev);
            }
            assert!(!closed.contains(name), "family {name} appears twice");
            assert!(
                exp.help.insert(name.into(), help.into()).is_none(),
                "two HELP for {name}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(
                current.as_deref(),
                Some(name),
                "TYPE right after HELP: {line}"
            );
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            assert!(
                exp.types.insert(name.into(), kind.into()).is_none(),
                "two TYPE for {name}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "unexpected line {line:?}"
        );
        let (name_end, has_labels) = match line.find(['{', ' ']) {
            Some(i) => (i, line.as_bytes()[i] == b'{'),
            None => panic!("no value: {line}"),
        };
        let name = &line[..name_end];
        assert!(is_name(name), "{line}");
        assert_eq!(
            current.as_deref(),
            Some(name),
            "sample outside its family: {line}"
        );
        assert!(exp.types.contains_key(name), "sample before TYPE: {line}");
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if has_labels {
            let mut chars = rest[1..].char_indices().peekable();
            let mut key = String::new();
            loop {
                let (i, c) = chars.next().expect("unterminated label set");
                match c {
                    '}' => {
                        rest = &rest[1 + i + 1..];
                        break;
                    }
                    ',' if key.is_empty() => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                        let mut value = String::new();
                        loop {
                            let (_, c) = chars.next().expect("unterminated label value");
                            match c {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('\\') => value.push('\\'),
                                    Some('"') => value.push('"'),
                                    Some('n') => value.push('\n'),
                                    other => panic!("bad escape {other:?} in {line}"),
                                },
                                '"' => break,
                                '\n' => panic!("raw newline"),
                                c => value.push(c),
                            }
                        }
                        assert!(is_name(&key), "label name {key:?}");
                        assert!(
                            labels.insert(std::mem::take(&mut key), value).is_none(),
                            "duplicate label: {line}"
                        );
                    }
                    c => key.push(c),
                }
            }
        }
        let value = rest.strip_prefix(' ').expect("space before value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value {v:?} in {line}")),
        };
        exp.series.push(Series {
            name: name.into(),
            labels,
            value,
        });
    }
    // Within a family, no two series share a label set.
    let mut seen = BTreeSet::new();
    for s in &exp.series {
        assert!(
            seen.insert((s.name.clone(), s.labels.clone())),
            "duplicate series {s:?}"
        );
    }
    exp
}
