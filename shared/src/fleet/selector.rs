//! Label selectors as used in fleet.toml (`hosts = "role=gpu,env!=dev"`):
//! `k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (absent);
//! a comma means "and". The empty selector matches every host.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Term {
    Eq(String, String),
    NotEq(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed selector. Keeps its source text for display and serialisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector {
    source: String,
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector {source_text:?} at character {offset}: {message}")]
pub struct SelectorError {
    pub source_text: String,
    /// Byte offset into the selector text.
    pub offset: usize,
    pub message: String,
}

impl Selector {
    /// Matches every host.
    pub fn all() -> Self {
        Self {
            source: String::new(),
            terms: Vec::new(),
        }
    }

    pub fn parse(source: &str) -> Result<Self, SelectorError> {
        let mut p = Parser {
            src: source,
            pos: 0,
        };
        let mut terms = Vec::new();
        p.skip_ws();
        if p.at_end() {
            return Ok(Self::all());
        }
        loop {
            terms.push(p.term()?);
            p.skip_ws();
            if p.at_end() {
                break;
            }
            p.expect(',')?;
        }
        Ok(Self {
            source: source.trim().to_string(),
            terms,
        })
    }

    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Eq(k, v) => labels.get(k) == Some(v),
            Term::NotEq(k, v) => labels.get(k) != Some(v),
            Term::In(k, set) => labels.get(k).is_some_and(|v| set.contains(v)),
            Term::NotIn(k, set) => labels.get(k).is_none_or(|v| !set.contains(v)),
            Term::Exists(k) => labels.contains_key(k),
            Term::NotExists(k) => !labels.contains_key(k),
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source.is_empty() {
            f.write_str("(all hosts)")
        } else {
            f.write_str(&self.source)
        }
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Selector::parse(&s).map_err(serde::de::Error::custom)
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

/// Label keys and values: what Kubernetes allows, plus `/` in keys.
fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> SelectorError {
        SelectorError {
            source_text: self.src.to_string(),
            offset: self.pos,
            message: message.into(),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn expect(&mut self, want: char) -> Result<(), SelectorError> {
        self.skip_ws();
        match self.peek() {
            Some(c) if c == want => {
                self.pos += 1;
                Ok(())
            }
            Some(c) => Err(self.err(format!("expected '{want}', found '{c}'"))),
            None => Err(self.err(format!("expected '{want}', found the end"))),
        }
    }

    fn word(&mut self, what: &str) -> Result<String, SelectorError> {
        self.skip_ws();
        let start = self.pos;
        while let Some(c) = self.peek() {
            if is_label_char(c) {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        if start == self.pos {
            return Err(match self.peek() {
                Some(c) => self.err(format!("expected a {what}, found '{c}'")),
                None => self.err(format!("expected a {what}, found the end")),
            });
        }
        Ok(self.src[start..self.pos].to_string())
    }

    fn set(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        self.expect('(')?;
        let mut set = BTreeSet::new();
        loop {
            set.insert(self.word("value")?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(set);
                }
                Some(c) => return Err(self.err(format!("expected ',' or ')', found '{c}'"))),
                None => return Err(self.err("unclosed '(': expected ')'")),
            }
        }
    }

    fn term(&mut self) -> Result<Term, SelectorError> {
        self.skip_ws();
        if self.peek() == Some('!') {
            self.pos += 1;
            return Ok(Term::NotExists(self.word("label key")?));
        }
        let key = self.word("label key")?;
        self.skip_ws();
        let rest = &self.src[self.pos..];
        if rest.starts_with("!=") {
            self.pos += 2;
            Ok(Term::NotEq(key, self.word("value")?))
        } else if rest.starts_with("==") {
            self.pos += 2;
            Ok(Term::Eq(key, self.word("value")?))
        } else if rest.starts_with('=') {
            self.pos += 1;
            Ok(Term::Eq(key, self.word("value")?))
        } else if starts_with_keyword(rest, "notin") {
            self.pos += 5;
            Ok(Term::NotIn(key, self.set()?))
        } else if starts_with_keyword(rest, "in") {
            self.pos += 2;
            Ok(Term::In(key, self.set()?))
        } else if rest.is_empty() || rest.starts_with(',') {
            Ok(Term::Exists(key))
        } else {
            Err(self.err("expected '=', '!=', 'in (...)', 'notin (...)', ',' or the end"))
        }
    }
}

fn starts_with_keyword(rest: &str, kw: &str) -> bool {
    rest.starts_with(kw)
        && rest[kw.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_whitespace() || c == '(')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_form() {
        let s = Selector::parse("role=gpu, env!=dev, zone in (a, b), tier notin (x), gpu, !old")
            .unwrap();
        assert_eq!(s.terms().len(), 6);
        let l = labels(&[("role", "gpu"), ("env", "prod"), ("zone", "b"), ("gpu", "")]);
        assert!(s.matches(&l));
        let l2 = labels(&[("role", "gpu"), ("env", "prod"), ("zone", "c"), ("gpu", "")]);
        assert!(!s.matches(&l2));
    }

    #[test]
    fn empty_matches_all() {
        assert!(Selector::parse("  ").unwrap().matches(&BTreeMap::new()));
    }

    #[test]
    fn notin_and_noteq_match_absent_keys() {
        let s = Selector::parse("env!=prod,zone notin (a)").unwrap();
        assert!(s.matches(&BTreeMap::new()));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = Selector::parse("role=gpu,,env=x").unwrap_err();
        assert_eq!(e.offset, 9);
        let e = Selector::parse("zone in (a,b").unwrap_err();
        assert!(e.message.contains("unclosed"), "{e}");
        assert!(Selector::parse("role=").is_err());
        assert!(Selector::parse("role = gpu extra").is_err());
        assert!(Selector::parse("a in b").is_err());
    }
}
