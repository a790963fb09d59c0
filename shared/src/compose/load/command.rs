//! `command` and `entrypoint`: a list of words, or a string split into
//! words as a POSIX shell would (quotes, backslashes; no expansion).

use super::service::{Area, Ctx, key_what};
use crate::compose::model::Service;
use crate::source::decode::{Cx, Fields};
use crate::source::node::{Node, Value};

pub(super) const AREA: Area = Area {
    keys: &["command", "entrypoint"],
    decode,
};

fn decode(f: &Fields<'_>, s: &mut Ctx<'_, '_>, svc: &mut Service) {
    let (what, cx) = (s.what, &mut *s.cx);
    if let Some(n) = f.get("command") {
        svc.command = command(n, &key_what(what, "command"), cx);
    }
    if let Some(n) = f.get("entrypoint") {
        svc.entrypoint = command(n, &key_what(what, "entrypoint"), cx);
    }
}

fn command(n: &Node, what: &str, cx: &mut Cx<'_>) -> Option<Vec<String>> {
    match &n.value {
        Value::Str(s) => match split_shell_words(s) {
            Ok(words) => Some(words),
            Err(e) => {
                cx.error(n.pos, format!("{what}: {e}"));
                None
            }
        },
        _ => cx.strings(n, what, false),
    }
}

/// Splits a command string as compose does (POSIX shell words: quotes and
/// backslashes; no expansion).
pub fn split_shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => cur.push('\\'),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(
            split_shell_words(r#"sh -c 'echo "hi there"' x\ y"#).unwrap(),
            vec!["sh", "-c", "echo \"hi there\"", "x y"]
        );
        assert!(split_shell_words("echo 'open").is_err());
        assert_eq!(split_shell_words("").unwrap(), Vec::<String>::new());
    }
}
