//! `.env` and `env_file` files in compose's format: `KEY=VALUE` lines,
//! optional `export `, `#` comments, single quotes (literal), double quotes
//! (escapes `\n \t \\ \"`, may span lines, interpolated), unquoted values
//! (trimmed, ` #` starts a comment, interpolated). A line with only `KEY`
//! declares the variable without a value.

use super::interpolate::{InterpolateError, interpolate};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    /// 1-based.
    pub line: u32,
    pub message: String,
}

/// Parses `text`. Values are interpolated with the variables defined above
/// them in the same file, then `outer` (e.g. the stack's `.env` for an
/// `env_file`). Returns the variables in file order; `None` = no value.
pub fn parse(
    text: &str,
    outer: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Option<String>)>, Vec<DotenvError>> {
    let mut vars: Vec<(String, Option<String>)> = Vec::new();
    let mut errors = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let raw = lines[i];
        i += 1;
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let (key, rest) = match line.find(['=', ':']) {
            Some(p) if line.as_bytes()[p] == b'=' => (line[..p].trim(), Some(&line[p + 1..])),
            _ => (line.trim(), None),
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            errors.push(DotenvError {
                line: line_no,
                message: format!("invalid variable name {key:?} (expected KEY=VALUE)"),
            });
            continue;
        }
        let Some(rest) = rest else {
            vars.push((key.to_owned(), None));
            continue;
        };
        let rest = rest.trim_start();
        let lookup = |name: &str| -> Option<String> {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
                .or_else(|| outer(name))
        };
        let value = if let Some(body) = rest.strip_prefix('\'') {
            match body.find('\'') {
                Some(end) => Ok(body[..end].to_owned()),
                None => Err("unterminated single quote".to_owned()),
            }
        } else if let Some(body) = rest.strip_prefix('"') {
            // May continue on the following lines.
            let mut acc = body.to_owned();
            loop {
                if let Some(end) = closing_double_quote(&acc) {
                    acc.truncate(end);
                    break Ok(acc);
                }
                if i >= lines.len() {
                    break Err("unterminated double quote".to_owned());
                }
                acc.push('\n');
                acc.push_str(lines[i]);
                i += 1;
            }
            .and_then(|s| {
                interpolate(&unescape(&s), &lookup)
                    .map(|r| r.value)
                    .map_err(|e| describe(&e))
            })
        } else {
            let v = match rest.find(" #") {
                Some(p) => &rest[..p],
                None => rest,
            };
            interpolate(v.trim_end(), &lookup)
                .map(|r| r.value)
                .map_err(|e| describe(&e))
        };
        match value {
            Ok(v) => vars.push((key.to_owned(), Some(v))),
            Err(message) => errors.push(DotenvError {
                line: line_no,
                message: format!("{key}: {message}"),
            }),
        }
    }
    if errors.is_empty() {
        Ok(vars)
    } else {
        Err(errors)
    }
}

fn describe(e: &InterpolateError) -> String {
    e.to_string()
}

fn closing_double_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn parses_compose_dotenv() {
        let text = "# comment\nA=1\nexport B = two \nC='lit $A'\nD=\"x\\ny $A\"\nE=val # trailing\nF\nG=${A}-${UNSET:-d}\nH=\"multi\nline\"\nI=\n";
        let vars = parse(text, &none).unwrap();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("A").as_deref(), Some("1"));
        assert_eq!(get("B").as_deref(), Some("two"));
        assert_eq!(get("C").as_deref(), Some("lit $A"));
        assert_eq!(get("D").as_deref(), Some("x\ny 1"));
        assert_eq!(get("E").as_deref(), Some("val"));
        assert_eq!(get("F"), None);
        assert_eq!(get("G").as_deref(), Some("1-d"));
        assert_eq!(get("H").as_deref(), Some("multi\nline"));
        assert_eq!(get("I").as_deref(), Some(""));
    }

    #[test]
    fn reports_bad_lines() {
        let errs = parse("OK=1\nnot a var\nX=\"open\n", &none).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].line, 2);
        assert_eq!(errs[1].line, 3);
    }
}
