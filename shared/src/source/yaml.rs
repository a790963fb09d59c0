//! YAML (1.2, core schema) into a [`Node`] tree, from saphyr-parser's event
//! stream. Anchors and aliases are resolved (with a bound on expansion, so
//! an "billion laughs" file is an error, not an out-of-memory), and `<<`
//! merge keys are applied as compose does (explicit keys win).

use std::collections::BTreeMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::node::{Node, Pos, Value};

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to (aliases included).
pub const MAX_NODES: usize = 200_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: u32::try_from(span.start.line()).unwrap_or(u32::MAX),
        col: u32::try_from(span.start.col())
            .unwrap_or(u32::MAX)
            .saturating_add(1),
    }
}

struct Builder<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: BTreeMap<usize, Node>,
    nodes: usize,
    last: Pos,
}

/// Parses the first (and only) document of `text`. An empty document is
/// `Value::Null`.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut b = Builder {
        events: Parser::new_from_str(text),
        anchors: BTreeMap::new(),
        nodes: 0,
        last: Pos { line: 1, col: 1 },
    };
    let mut doc: Option<Node> = None;
    loop {
        let (ev, span) = b.next()?;
        match ev {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                if doc.is_some() {
                    return Err(YamlError {
                        pos: pos(&span),
                        message: "only one YAML document per file is supported".into(),
                    });
                }
                let (ev, span) = b.next()?;
                if matches!(ev, Event::DocumentEnd) {
                    doc = Some(Node::new(Value::Null, pos(&span)));
                } else {
                    doc = Some(b.node(ev, span, 0)?);
                }
            }
            Event::StreamEnd => break,
            _ => {
                return Err(YamlError {
                    pos: pos(&span),
                    message: "unexpected YAML event outside a document".into(),
                });
            }
        }
    }
    Ok(doc.unwrap_or(Node::new(Value::Null, Pos { line: 1, col: 1 })))
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.events.next_event() {
            Some(Ok((ev, span))) => {
                self.last = pos(&span);
                Ok((ev, span))
            }
            Some(Err(e)) => Err(YamlError {
                pos: Pos {
                    line: u32::try_from(e.marker().line()).unwrap_or(u32::MAX),
                    col: u32::try_from(e.marker().col())
                        .unwrap_or(u32::MAX)
                        .saturating_add(1),
                },
                message: format!("YAML syntax error: {}", e.info()),
            }),
            None => Err(YamlError {
                pos: self.last,
                message: "unexpected end of YAML".into(),
            }),
        }
    }

    fn count(&mut self, n: usize, at: Pos) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                pos: at,
                message: format!("document expands to more than {MAX_NODES} nodes (alias bomb?)"),
            });
        }
        Ok(())
    }

    fn node(&mut self, ev: Event<'a>, span: Span, depth: usize) -> Result<Node, YamlError> {
        let at = pos(&span);
        if depth > MAX_DEPTH {
            return Err(YamlError {
                pos: at,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.count(1, at)?;
        let (node, anchor) = match ev {
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    return Err(YamlError {
                        pos: at,
                        message: "alias to an unknown anchor".into(),
                    });
                };
                self.count(target.count(), at)?;
                // An alias keeps the position of its use, so problems in
                // merged content point where it was pulled in... and at the
                // anchor for nested nodes.
                return Ok(Node::new(target.value, at));
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = if let Some(tag) = tag {
                    let core = tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!";
                    if !core {
                        return Err(YamlError {
                            pos: at,
                            message: format!(
                                "YAML tag `{}{}` is not supported",
                                tag.handle, tag.suffix
                            ),
                        });
                    }
                    match tag.suffix.as_str() {
                        "str" => Value::Str(text.into_owned()),
                        _ => scalar(&text),
                    }
                } else if style == ScalarStyle::Plain {
                    scalar(&text)
                } else {
                    Value::Str(text.into_owned())
                };
                (Node::new(value, at), anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, span, depth + 1)?);
                }
                (Node::new(Value::Seq(items), at), anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                let mut merges: Vec<Node> = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let is_merge =
                        matches!(&ev, Event::Scalar(t, ScalarStyle::Plain, _, None) if t == "<<");
                    let key = self.node(ev, span, depth + 1)?;
                    let (ev, span) = self.next()?;
                    let value = self.node(ev, span, depth + 1)?;
                    if is_merge {
                        merges.push(value);
                        continue;
                    }
                    let key = match key.value {
                        Value::Seq(_) | Value::Map(_) => {
                            return Err(YamlError {
                                pos: key.pos,
                                message: "mapping keys must be scalars".into(),
                            });
                        }
                        Value::Null => Node::new(Value::Str("null".into()), key.pos),
                        _ => Node::new(Value::Str(key.scalar_text().unwrap_or_default()), key.pos),
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.value == key.value) {
                        return Err(YamlError {
                            pos: key.pos,
                            message: format!(
                                "duplicate key `{}` (first at line {})",
                                key.as_str().unwrap_or_default(),
                                first.pos.line
                            ),
                        });
                    }
                    entries.push((key, value));
                }
                for merge in merges {
                    let sources = match merge.value {
                        Value::Map(_) => vec![merge],
                        Value::Seq(items) => items,
                        _ => {
                            return Err(YamlError {
                                pos: merge.pos,
                                message: "`<<` merge needs a mapping or a list of mappings".into(),
                            });
                        }
                    };
                    for source in sources {
                        let Value::Map(src_entries) = source.value else {
                            return Err(YamlError {
                                pos: source.pos,
                                message: "`<<` merge needs a mapping or a list of mappings".into(),
                            });
                        };
                        for (k, v) in src_entries {
                            if !entries.iter().any(|(e, _)| e.value == k.value) {
                                entries.push((k, v));
                            }
                        }
                    }
                }
                (Node::new(Value::Map(entries), at), anchor)
            }
            other => {
                return Err(YamlError {
                    pos: at,
                    message: format!("unexpected YAML event {other:?}"),
                });
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

/// YAML 1.2 core schema typing of a plain scalar.
fn scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let bytes = text.as_bytes();
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = text.strip_prefix("0x") {
        if digits(hex, 16)
            && let Ok(i) = i64::from_str_radix(hex, 16)
        {
            return Value::Int(i);
        }
        return Value::Str(text.to_owned());
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if digits(oct, 8)
            && let Ok(i) = i64::from_str_radix(oct, 8)
        {
            return Value::Int(i);
        }
        return Value::Str(text.to_owned());
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits(unsigned, 10) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Int(i);
        }
        return Value::Str(text.to_owned());
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let is_float = !bytes.is_empty()
        && unsigned.chars().any(|c| c.is_ascii_digit())
        && unsigned
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        && unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if is_float && let Ok(f) = text.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Node {
        parse(s).unwrap()
    }

    #[test]
    fn positions_are_one_based() {
        let n = p("a: 1\nb:\n  c: x\n");
        let b = n.get("b").unwrap();
        let c = b.get("c").unwrap();
        assert_eq!(c.pos, Pos { line: 3, col: 6 });
        assert_eq!(n.get("a").unwrap().pos, Pos { line: 1, col: 4 });
    }

    #[test]
    fn core_schema_typing() {
        let n =
            p("a: 1\nb: '1'\nc: true\nd: yes\ne: 1.5\nf: ~\ng: 0x1f\nh: 1e3\ni: 1.2.3\nj: -7\n");
        assert_eq!(n.get("a").unwrap().value, Value::Int(1));
        assert_eq!(n.get("b").unwrap().value, Value::Str("1".into()));
        assert_eq!(n.get("c").unwrap().value, Value::Bool(true));
        assert_eq!(n.get("d").unwrap().value, Value::Str("yes".into()));
        assert_eq!(n.get("e").unwrap().value, Value::Float(1.5));
        assert_eq!(n.get("f").unwrap().value, Value::Null);
        assert_eq!(n.get("g").unwrap().value, Value::Int(31));
        assert_eq!(n.get("h").unwrap().value, Value::Float(1000.0));
        assert_eq!(n.get("i").unwrap().value, Value::Str("1.2.3".into()));
        assert_eq!(n.get("j").unwrap().value, Value::Int(-7));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = p("x-common: &c\n  restart: always\n  image: a\nweb:\n  <<: *c\n  image: b\n");
        let web = n.get("web").unwrap();
        assert_eq!(web.get("image").unwrap().value, Value::Str("b".into()));
        assert_eq!(
            web.get("restart").unwrap().value,
            Value::Str("always".into())
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.pos.line, 3);
        assert!(e.message.contains("duplicate key `a`"), "{}", e.message);
    }

    #[test]
    fn alias_bombs_are_bounded() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n",
                p = i - 1
            ));
        }
        let e = parse(&s).unwrap_err();
        assert!(e.message.contains("nodes"), "{}", e.message);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let s = "[".repeat(500);
        assert!(parse(&s).is_err());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.message.starts_with("YAML syntax error"), "{}", e.message);
        assert!(e.pos.line >= 2, "{:?}", e.pos);
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(p("").value, Value::Null);
        assert_eq!(p("# only a comment\n").value, Value::Null);
    }
}
