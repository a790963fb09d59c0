//! TOML into a [`Node`] tree, keeping the position of every key and value.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::node::{Node, Pos, Value, pos_of_offset};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    pub pos: Pos,
    pub message: String,
}

/// Parses a TOML document. Every syntax error is returned, not just the first.
pub fn parse(text: &str) -> Result<Node, Vec<TomlError>> {
    let (table, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| TomlError {
                pos: pos_of_offset(text, e.span().map(|s| s.start).unwrap_or(0)),
                message: format!("TOML syntax error: {}", e.message().trim()),
            })
            .collect());
    }
    let at = pos_of_offset(text, table.span().start);
    Ok(Node::new(table_value(text, table.get_ref()), at))
}

fn table_value(text: &str, table: &DeTable<'_>) -> Value {
    let mut entries: Vec<(Node, Node)> = table
        .iter()
        .map(|(k, v)| {
            (
                Node::new(
                    Value::Str(k.get_ref().to_string()),
                    pos_of_offset(text, k.span().start),
                ),
                node(text, v),
            )
        })
        .collect();
    // The parser's map is ordered by key; keep file order for messages.
    entries.sort_by_key(|(k, _)| k.pos);
    Value::Map(entries)
}

fn node(text: &str, v: &Spanned<DeValue<'_>>) -> Node {
    let at = pos_of_offset(text, v.span().start);
    let value = match v.get_ref() {
        DeValue::String(s) => Value::Str(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(Value::Int)
            .unwrap_or_else(|_| Value::Str(i.as_str().to_owned())),
        DeValue::Float(f) => {
            let s = f.as_str().replace('_', "");
            match s.as_str() {
                "inf" | "+inf" => Value::Float(f64::INFINITY),
                "-inf" => Value::Float(f64::NEG_INFINITY),
                "nan" | "+nan" | "-nan" => Value::Float(f64::NAN),
                _ => s.parse::<f64>().map(Value::Float).unwrap_or(Value::Str(s)),
            }
        }
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::Str(d.to_string()),
        DeValue::Array(items) => Value::Seq(items.iter().map(|i| node(text, i)).collect()),
        DeValue::Table(t) => table_value(text, t),
    };
    Node::new(value, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions() {
        let n = parse("[fleet]\nname = \"x\"\n\n[stacks.a]\npath = \"p\"\n").unwrap();
        let name = n.get("fleet").unwrap().get("name").unwrap();
        assert_eq!(name.pos, Pos { line: 2, col: 8 });
        let path = n
            .get("stacks")
            .unwrap()
            .get("a")
            .unwrap()
            .get("path")
            .unwrap();
        assert_eq!(path.pos, Pos { line: 5, col: 8 });
        assert_eq!(path.value, Value::Str("p".into()));
    }

    #[test]
    fn reports_syntax_errors_with_lines() {
        let errs = parse("[fleet]\nname = \n").unwrap_err();
        assert_eq!(errs[0].pos.line, 2, "{errs:?}");
    }

    #[test]
    fn typed_values() {
        let n = parse("a = 1\nb = 1.5\nc = true\nd = [1, \"x\"]\n").unwrap();
        assert_eq!(n.get("a").unwrap().value, Value::Int(1));
        assert_eq!(n.get("b").unwrap().value, Value::Float(1.5));
        assert_eq!(n.get("c").unwrap().value, Value::Bool(true));
        assert!(matches!(n.get("d").unwrap().value, Value::Seq(ref v) if v.len() == 2));
    }
}
