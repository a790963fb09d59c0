//! Decoding helpers over [`Node`]: each records a located problem and
//! returns `None` instead of stopping, so one pass finds every problem.

use std::collections::BTreeMap;
use std::time::Duration;

use super::diag::{Diagnostic, Severity};
use super::node::{Node, Pos, Value};

/// A decoding context for one file.
pub struct Cx<'d> {
    pub file: String,
    pub diags: &'d mut Vec<Diagnostic>,
}

/// The entries of a mapping whose keys were all accepted.
pub struct Fields<'n> {
    pub node: &'n Node,
    map: BTreeMap<&'n str, &'n Node>,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.map
            .get(key)
            .copied()
            .filter(|n| !matches!(n.value, Value::Null))
    }

    /// Present, even if null.
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }
}

impl<'d> Cx<'d> {
    pub fn new(file: impl Into<String>, diags: &'d mut Vec<Diagnostic>) -> Self {
        Self {
            file: file.into(),
            diags,
        }
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            severity: Severity::Error,
            message: message.into(),
        });
    }

    pub fn warning(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            severity: Severity::Warning,
            message: message.into(),
        });
    }

    fn wrong(&mut self, node: &Node, what: &str, expected: &str) {
        self.error(
            node.pos,
            format!("{what} must be {expected}, found {}", node.kind()),
        );
    }

    pub fn entries<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(Node, Node)]> {
        match &node.value {
            Value::Map(e) => Some(e),
            _ => {
                self.wrong(node, what, "a mapping");
                None
            }
        }
    }

    pub fn seq<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            _ => {
                self.wrong(node, what, "a list");
                None
            }
        }
    }

    /// A mapping whose keys must be among `allowed`; `unsupported` names
    /// keys that exist in the wider format but that Convoy rejects (with a
    /// more helpful message). Keys starting with `x-` are extensions and
    /// are skipped when `allow_extensions` is set.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
        unsupported: &[&str],
        allow_extensions: bool,
    ) -> Option<Fields<'n>> {
        let entries = self.entries(node, what)?;
        let mut map = BTreeMap::new();
        for (k, v) in entries {
            let key = k.as_str().unwrap_or_default();
            if allowed.contains(&key) {
                map.insert(key, v);
            } else if allow_extensions && key.starts_with("x-") {
            } else if unsupported.contains(&key) {
                self.error(
                    k.pos,
                    format!("`{key}` in {what} is not supported by Convoy (see the README's compose table)"),
                );
            } else {
                self.error(
                    k.pos,
                    format!(
                        "unknown key `{key}` in {what} (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(Fields { node, map })
    }

    /// A string (numbers and booleans are accepted as their text, as compose does).
    pub fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.scalar_text() {
            Some(s) => Some(s),
            None => {
                self.wrong(node, what, "a string");
                None
            }
        }
    }

    /// Strictly a string.
    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.wrong(node, what, "a string");
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if s == "true" || s == "false" => Some(s == "true"),
            _ => {
                self.wrong(node, what, "true or false");
                None
            }
        }
    }

    pub fn int(&mut self, node: &Node, what: &str) -> Option<i64> {
        match &node.value {
            Value::Int(i) => Some(*i),
            Value::Str(s) => match s.trim().parse::<i64>() {
                Ok(i) => Some(i),
                Err(_) => {
                    self.error(node.pos, format!("{what} must be an integer, found {s:?}"));
                    None
                }
            },
            _ => {
                self.wrong(node, what, "an integer");
                None
            }
        }
    }

    pub fn int_in(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        let i = self.int(node, what)?;
        if i < min || i > max {
            self.error(
                node.pos,
                format!("{what} must be between {min} and {max}, found {i}"),
            );
            return None;
        }
        Some(i)
    }

    pub fn float(&mut self, node: &Node, what: &str) -> Option<f64> {
        let f = match &node.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match f {
            Some(f) if f.is_finite() => Some(f),
            _ => {
                self.wrong(node, what, "a finite number");
                None
            }
        }
    }

    /// A Go-style duration (`90s`, `1m30s`).
    pub fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let s = self.text(node, what)?;
        match crate::duration::parse(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(node.pos, format!("{what}: {e}"));
                None
            }
        }
    }

    /// A list of strings, or a single string when `single_ok`.
    pub fn strings(&mut self, node: &Node, what: &str, single_ok: bool) -> Option<Vec<String>> {
        match &node.value {
            Value::Str(s) if single_ok => Some(vec![s.clone()]),
            Value::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for i in items {
                    match self.text(i, what) {
                        Some(s) => out.push(s),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.wrong(
                    node,
                    what,
                    if single_ok {
                        "a string or a list"
                    } else {
                        "a list"
                    },
                );
                None
            }
        }
    }

    /// A map of strings, or a list of `k=v` strings (compose's two forms
    /// of labels, driver options...).
    pub fn string_map(&mut self, node: &Node, what: &str) -> Option<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        match &node.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    let key = k.as_str().unwrap_or_default().to_owned();
                    let value = if matches!(v.value, Value::Null) {
                        String::new()
                    } else {
                        self.text(v, &format!("{what} `{key}`"))?
                    };
                    out.insert(key, value);
                }
            }
            Value::Seq(items) => {
                for i in items {
                    let s = self.text(i, what)?;
                    let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
                    if k.is_empty() {
                        self.error(i.pos, format!("{what}: entry {s:?} has an empty key"));
                        continue;
                    }
                    if out.insert(k.to_owned(), v.to_owned()).is_some() {
                        self.error(i.pos, format!("{what}: `{k}` is given twice"));
                    }
                }
            }
            _ => {
                self.wrong(node, what, "a mapping or a list of key=value");
                return None;
            }
        }
        Some(out)
    }
}

/// Byte sizes as compose writes them: `512m`, `1g`, `1.5gb`, `1024`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (use e.g. 512m or 2g)"))?;
    let mult: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        u => {
            return Err(format!(
                "invalid size unit {u:?} in {s:?} (use b, k, m, g or t)"
            ));
        }
    };
    let v = n * mult;
    if !v.is_finite() || !(0.0..=1.0e18).contains(&v) {
        return Err(format!("size {s:?} is out of range"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5GB"), Ok(3 << 29));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("12q").is_err());
        assert!(parse_bytes("m").is_err());
    }
}
