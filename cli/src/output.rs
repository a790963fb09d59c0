//! How a command prints what it got: `-o table` (the default, for people),
//! `-o json` (pretty; `--json` is the same, kept for existing scripts) or
//! `-o yaml` (serde-saphyr). JSON and YAML print the API's answer as it
//! came, so a script sees every field, including ones this CLI does not
//! know yet. A stream of answers (`rollout --watch`) prints one compact
//! JSON object per line, or one YAML document per change.
//!
//! Everything goes through [`Ui`], which also holds the colour decision for
//! stdout and stderr, and treats a closed stdout (`convoy hosts | head`) as
//! the reader being done rather than as an error.

use std::io::{IsTerminal, Write};

use clap::ValueEnum;
use serde_json::Value;

use crate::style::{self, ColorChoice, Palette, Tone};

/// `-o`, `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Human tables and texts.
    #[default]
    Table,
    /// The API's JSON answer, pretty-printed.
    Json,
    /// The same data as YAML.
    Yaml,
}

/// YAML for a JSON value (block style; strings that would read as another
/// type are quoted).
pub fn to_yaml(v: &Value) -> anyhow::Result<String> {
    let mut s = serde_saphyr::to_string(v).map_err(|e| anyhow::anyhow!("writing YAML: {e}"))?;
    if !s.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}

/// The output settings of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ui {
    pub format: Format,
    /// Colour on stdout.
    pub out: Palette,
    /// Colour on stderr.
    pub err: Palette,
}

impl Ui {
    /// From the flags and this process's environment and streams.
    pub fn detect(format: Format, color: ColorChoice) -> Ui {
        let no_color = std::env::var("NO_COLOR").ok();
        let term = std::env::var("TERM").ok();
        let on = |tty: bool| {
            Palette::new(style::enabled(
                color,
                no_color.as_deref(),
                term.as_deref(),
                tty,
            ))
        };
        Ui {
            format,
            out: on(std::io::stdout().is_terminal()),
            err: on(std::io::stderr().is_terminal()),
        }
    }

    /// Plain tables, no colour (tests).
    pub fn plain(format: Format) -> Ui {
        Ui {
            format,
            out: Palette::plain(),
            err: Palette::plain(),
        }
    }

    /// Prints one answer: the value itself as JSON/YAML, or `table(v,
    /// palette)` for people.
    pub fn emit(
        &self,
        v: &Value,
        table: impl FnOnce(&Value, Palette) -> String,
    ) -> anyhow::Result<()> {
        let text = self.render(v, table)?;
        write_out(&text)
    }

    /// What [`Ui::emit`] prints, as text.
    pub fn render(
        &self,
        v: &Value,
        table: impl FnOnce(&Value, Palette) -> String,
    ) -> anyhow::Result<String> {
        Ok(match self.format {
            Format::Json => {
                let mut s = serde_json::to_string_pretty(v)?;
                s.push('\n');
                s
            }
            Format::Yaml => to_yaml(v)?,
            Format::Table => {
                let mut s = table(v, self.out);
                if !s.is_empty() && !s.ends_with('\n') {
                    s.push('\n');
                }
                s
            }
        })
    }

    /// One item of a stream (`--watch`): a JSON line, a YAML document, or
    /// the table under a time header.
    pub fn render_stream_item(
        &self,
        v: &Value,
        header: &str,
        table: impl FnOnce(&Value, Palette) -> String,
    ) -> anyhow::Result<String> {
        Ok(match self.format {
            Format::Json => format!("{}\n", serde_json::to_string(v)?),
            Format::Yaml => format!("---\n{}", to_yaml(v)?),
            Format::Table => format!(
                "{}\n{}\n",
                self.out.paint(&format!("--- {header}"), Tone::Dim),
                table(v, self.out).trim_end()
            ),
        })
    }

    /// A note for the person running the command, on stderr (so stdout
    /// stays data for `-o json|yaml`).
    pub fn note(&self, text: &str) {
        eprintln!("{}", self.err.paint(text, Tone::Dim));
    }

    /// `error: ...` on stderr.
    pub fn error(&self, text: &str) {
        eprintln!("{} {text}", self.err.paint("error:", Tone::Bad));
    }

    /// `warning: ...` on stderr.
    pub fn warn(&self, text: &str) {
        eprintln!("{} {text}", self.err.paint("warning:", Tone::Warn));
    }
}

/// Writes to stdout; a reader that went away (broken pipe) ends the output
/// quietly, as `head` expects.
pub fn write_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trips_every_json_shape_including_tricky_strings() {
        let v = serde_json::json!({
            "id": "r00000007",
            "connected": true,
            "count": 3,
            "ratio": 0.5,
            "nothing": null,
            "empty_list": [],
            "empty_map": {},
            "labels": {"env": "prod", "role": "gpu"},
            "looks_like_other_types": ["yes", "no", "null", "~", "true", "1.0", "0x1f", "1e3", ""],
            "punctuation": ["a: b", "- x", "#c", "key: {x}", "'q'", "\"dq\"", "*anchor", "&a", "!tag", "%p", "@at", "`bt`"],
            "multiline": "line one\nline two\n",
            "unicode": "héllo — ✓",
            "nested": [{"phase": {"Failed": {"reason": "health: web exited 1"}}}],
        });
        let yaml = to_yaml(&v).unwrap();
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, v, "YAML was:\n{yaml}");
        // Block style a person can read.
        assert!(yaml.contains("labels:\n  env: prod\n"), "{yaml}");
    }

    #[test]
    fn each_format_renders_the_same_value() {
        let v = serde_json::json!({"fleet": "homelab", "hosts": ["a"]});
        let table = |v: &Value, _p: Palette| format!("fleet {}", v["fleet"].as_str().unwrap());
        let json = Ui::plain(Format::Json).render(&v, table).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), v);
        assert!(json.ends_with("}\n"));
        let yaml = Ui::plain(Format::Yaml).render(&v, table).unwrap();
        assert_eq!(yaml, "fleet: homelab\nhosts:\n- a\n");
        assert_eq!(
            Ui::plain(Format::Table).render(&v, table).unwrap(),
            "fleet homelab\n"
        );
        // Streams: one JSON object per line; YAML documents.
        let line = Ui::plain(Format::Json)
            .render_stream_item(&v, "12:00:00 UTC", table)
            .unwrap();
        assert_eq!(line.lines().count(), 1);
        let doc = Ui::plain(Format::Yaml)
            .render_stream_item(&v, "h", table)
            .unwrap();
        assert!(doc.starts_with("---\nfleet: homelab\n"), "{doc}");
        let t = Ui::plain(Format::Table)
            .render_stream_item(&v, "12:00:00 UTC", table)
            .unwrap();
        assert_eq!(t, "--- 12:00:00 UTC\nfleet homelab\n");
    }
}
