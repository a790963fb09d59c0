//! Variable interpolation exactly as docker compose does it (compose-go's
//! `template` package): `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}`, and `$$`
//! for a literal `$`. Defaults and alternatives may themselves contain
//! interpolations. Any other `$` is an error, as in compose.
//!
//! [`interpolate_tree`] applies it to every string value of an untyped
//! compose tree (never to keys), before typed decoding, as compose does.

use std::collections::{BTreeMap, BTreeSet};

use crate::source::decode::Cx;
use crate::source::node::{Node, Pos, Value};

/// Why a string could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpolateError {
    /// Malformed template (compose: "invalid interpolation format").
    Invalid(String),
    /// `${VAR:?msg}` / `${VAR?msg}` with VAR missing.
    Required { var: String, message: String },
}

impl std::fmt::Display for InterpolateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(s) => write!(
                f,
                "invalid interpolation format in {s:?}: you may need to escape any $ with another $"
            ),
            Self::Required { var, message } if message.is_empty() => {
                write!(f, "required variable {var} is missing a value")
            }
            Self::Required { var, message } => {
                write!(f, "required variable {var} is missing a value: {message}")
            }
        }
    }
}

/// The result of interpolating one string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interpolated {
    pub value: String,
    /// Variables referenced without a default that were not set (compose
    /// warns and substitutes an empty string).
    pub unset: BTreeSet<String>,
}

/// Interpolates `input`, resolving variables through `lookup`.
pub fn interpolate(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Interpolated, InterpolateError> {
    let mut out = Interpolated::default();
    let value = expand(input, input, lookup, &mut out.unset, 0)?;
    out.value = value;
    Ok(out)
}

const MAX_NESTING: usize = 16;

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn expand(
    whole: &str,
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
    depth: usize,
) -> Result<String, InterpolateError> {
    if depth > MAX_NESTING {
        return Err(InterpolateError::Invalid(whole.to_owned()));
    }
    let invalid = || InterpolateError::Invalid(whole.to_owned());
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('{') => {
                let body_start = 1;
                let end = matching_brace(&after[body_start..]).ok_or_else(invalid)?;
                let body = &after[body_start..body_start + end];
                out.push_str(&braced(whole, body, lookup, unset, depth)?);
                rest = &after[body_start + end + 1..];
            }
            Some(c) if is_name_start(c) => {
                let len = after
                    .find(|c: char| !is_name_char(c))
                    .unwrap_or(after.len());
                let name = &after[..len];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        unset.insert(name.to_owned());
                    }
                }
                rest = &after[len..];
            }
            _ => return Err(invalid()),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` closing a `${` whose body starts at `s`, honouring
/// nested `${...}`.
fn matching_brace(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(
    whole: &str,
    body: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
    depth: usize,
) -> Result<String, InterpolateError> {
    let invalid = || InterpolateError::Invalid(whole.to_owned());
    let name_len = body.find(|c: char| !is_name_char(c)).unwrap_or(body.len());
    let name = &body[..name_len];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(invalid());
    }
    let op_and_arg = &body[name_len..];
    let value = lookup(name);
    if op_and_arg.is_empty() {
        return Ok(match value {
            Some(v) => v,
            None => {
                unset.insert(name.to_owned());
                String::new()
            }
        });
    }
    let (op, arg) = if let Some(a) = op_and_arg.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = op_and_arg.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = op_and_arg.strip_prefix(":+") {
        (":+", a)
    } else if let Some(a) = op_and_arg.strip_prefix('-') {
        ("-", a)
    } else if let Some(a) = op_and_arg.strip_prefix('?') {
        ("?", a)
    } else if let Some(a) = op_and_arg.strip_prefix('+') {
        ("+", a)
    } else {
        return Err(invalid());
    };
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let mut arg_value = || expand(whole, arg, lookup, unset, depth + 1);
    Ok(match op {
        ":-" if non_empty => value.unwrap_or_default(),
        ":-" => arg_value()?,
        "-" if set => value.unwrap_or_default(),
        "-" => arg_value()?,
        ":?" if non_empty => value.unwrap_or_default(),
        "?" if set => value.unwrap_or_default(),
        ":?" | "?" => {
            return Err(InterpolateError::Required {
                var: name.to_owned(),
                message: arg_value()?,
            });
        }
        ":+" if non_empty => arg_value()?,
        "+" if set => arg_value()?,
        _ => String::new(),
    })
}

/// Interpolates every string value of the tree (never keys).
pub fn interpolate_tree(node: &mut Node, vars: &dyn Fn(&str) -> Option<String>, cx: &mut Cx<'_>) {
    let mut unset: BTreeMap<String, Pos> = BTreeMap::new();
    walk(node, vars, cx, &mut unset);
    for (name, pos) in unset {
        cx.warning(
            pos,
            format!("variable {name} is not set in the stack's .env; using an empty string"),
        );
    }
}

fn walk(
    node: &mut Node,
    vars: &dyn Fn(&str) -> Option<String>,
    cx: &mut Cx<'_>,
    unset: &mut BTreeMap<String, Pos>,
) {
    match &mut node.value {
        Value::Str(s) => {
            if !s.contains('$') {
                return;
            }
            match interpolate(s, vars) {
                Ok(r) => {
                    for u in r.unset {
                        unset.entry(u).or_insert(node.pos);
                    }
                    *s = r.value;
                }
                Err(e) => cx.error(node.pos, e.to_string()),
            }
        }
        Value::Seq(items) => {
            for i in items {
                walk(i, vars, cx, unset);
            }
        }
        Value::Map(entries) => {
            for (_, v) in entries {
                walk(v, vars, cx, unset);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "FOO" => Some("first".into()),
            "BAR" => Some(String::new()),
            "NUM" => Some("8080".into()),
            _ => None,
        }
    }

    fn run(s: &str) -> Result<String, InterpolateError> {
        interpolate(s, &env).map(|i| i.value)
    }

    /// The cases of compose's documentation ("Interpolation") and
    /// compose-go's template tests, with FOO=first, BAR="" and UNSET unset.
    #[test]
    fn compose_documented_cases() {
        let table: &[(&str, &str)] = &[
            ("$FOO", "first"),
            ("${FOO}", "first"),
            ("x${FOO}y", "xfirsty"),
            ("$FOO-bar", "first-bar"),
            ("$$FOO", "$FOO"),
            ("$$", "$"),
            ("${UNSET}", ""),
            ("$UNSET", ""),
            ("${UNSET:-def}", "def"),
            ("${UNSET-def}", "def"),
            ("${BAR:-def}", "def"),
            ("${BAR-def}", ""),
            ("${FOO:-def}", "first"),
            ("${FOO-def}", "first"),
            ("${FOO:+alt}", "alt"),
            ("${FOO+alt}", "alt"),
            ("${BAR:+alt}", ""),
            ("${BAR+alt}", "alt"),
            ("${UNSET:+alt}", ""),
            ("${UNSET+alt}", ""),
            ("${UNSET:-${FOO}}", "first"),
            ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
            ("${UNSET:-a b c}", "a b c"),
            ("${UNSET:-}", ""),
            ("127.0.0.1:${NUM}:80", "127.0.0.1:8080:80"),
            ("no vars", "no vars"),
            ("${FOO:?must be set}", "first"),
            ("${BAR?must be set}", ""),
        ];
        for (input, want) in table {
            assert_eq!(run(input).as_deref(), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn required_variables() {
        assert_eq!(
            run("${UNSET:?set it}"),
            Err(InterpolateError::Required {
                var: "UNSET".into(),
                message: "set it".into()
            })
        );
        assert!(matches!(
            run("${BAR:?empty}"),
            Err(InterpolateError::Required { .. })
        ));
        assert!(matches!(
            run("${UNSET?}"),
            Err(InterpolateError::Required { .. })
        ));
    }

    #[test]
    fn invalid_templates() {
        for bad in [
            "$",
            "${",
            "${FOO",
            "${}",
            "${FOO BAR}",
            "$1",
            "a $ b",
            "${FOO:x}",
            "${-x}",
        ] {
            assert!(
                matches!(run(bad), Err(InterpolateError::Invalid(_))),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn reports_unset_variables() {
        let r = interpolate("${A}-$B-${C:-x}", &env).unwrap();
        assert_eq!(r.value, "--x");
        assert_eq!(r.unset.into_iter().collect::<Vec<_>>(), vec!["A", "B"]);
    }
}
