//! Colour, only where a person reads it: `--color auto` (the default)
//! colours a stream only when it is a terminal, `NO_COLOR` (set and not
//! empty, <https://no-color.org>) turns that off, `TERM=dumb` too; `--color
//! always|never` overrides both. Colour only ever adds emphasis: every
//! table reads the same without it, and padding is applied before the
//! escape codes so columns stay aligned.

use clap::ValueEnum;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorChoice {
    // (No doc comments on the variants: clap then lists them on one line.)
    #[default]
    Auto,
    Always,
    Never,
}

/// Whether to colour one stream: pure, so the rules are tested here.
/// `no_color`: the value of `NO_COLOR`, `term`: of `TERM`.
pub fn enabled(
    choice: ColorChoice,
    no_color: Option<&str>,
    term: Option<&str>,
    is_terminal: bool,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal && no_color.is_none_or(str::is_empty) && term != Some("dumb")
        }
    }
}

/// What a word means to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Warn,
    Dim,
    Bold,
}

impl Tone {
    fn code(self) -> &'static str {
        match self {
            Tone::Good => "32",
            Tone::Bad => "31",
            Tone::Warn => "33",
            Tone::Dim => "2",
            Tone::Bold => "1",
        }
    }
}

/// The tone of a state word the API uses (host states, rollout statuses and
/// host phases, alert severities and delivery states); `None`: plain.
pub fn tone_of(word: &str) -> Option<Tone> {
    let w = word.to_ascii_lowercase();
    Some(match w.as_str() {
        "connected" | "completed" | "healthy" | "valid" | "yes" => Tone::Good,
        "revoked" | "halted" | "failed" | "rolledback" | "gaveup" | "critical" | "error"
        | "rejected" | "invalid" => Tone::Bad,
        "offline" | "running" | "waitingapproval" | "rollingback" | "reverting" | "sent"
        | "pending" | "warning" | "no" => Tone::Warn,
        "superseded" | "unchanged" | "reverted" | "-" => Tone::Dim,
        _ => return None,
    })
}

/// Paints text for one stream (stdout or stderr), or leaves it alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Palette {
    on: bool,
}

impl Palette {
    pub fn new(on: bool) -> Palette {
        Palette { on }
    }

    /// No colour at all (tests, files, pipes).
    pub fn plain() -> Palette {
        Palette { on: false }
    }

    pub fn is_on(self) -> bool {
        self.on
    }

    pub fn paint(self, text: &str, tone: Tone) -> String {
        if self.on && !text.is_empty() {
            format!("\x1b[{}m{text}\x1b[0m", tone.code())
        } else {
            text.to_owned()
        }
    }

    /// `text` (already padded) in the tone of `word`, if it has one.
    pub fn word(self, text: &str, word: &str) -> String {
        match tone_of(word) {
            Some(t) => self.paint(text, t),
            None => text.to_owned(),
        }
    }

    /// A column header line.
    pub fn header(self, text: &str) -> String {
        self.paint(text, Tone::Bold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_colours_only_a_terminal_without_no_color_or_a_dumb_term() {
        use ColorChoice::*;
        assert!(enabled(Auto, None, Some("xterm-256color"), true));
        assert!(!enabled(Auto, None, Some("xterm"), false));
        assert!(!enabled(Auto, Some("1"), Some("xterm"), true));
        // NO_COLOR set but empty does not count (the spec's rule).
        assert!(enabled(Auto, Some(""), None, true));
        assert!(!enabled(Auto, None, Some("dumb"), true));
        // The flag wins over both.
        assert!(enabled(Always, Some("1"), Some("dumb"), false));
        assert!(!enabled(Never, None, Some("xterm"), true));
    }

    #[test]
    fn painting_keeps_the_padded_text_and_plain_is_untouched() {
        let on = Palette::new(true);
        assert_eq!(on.paint("ok  ", Tone::Good), "\x1b[32mok  \x1b[0m");
        assert_eq!(
            on.word("offline   ", "offline"),
            "\x1b[33moffline   \x1b[0m"
        );
        assert_eq!(on.word("whatever", "whatever"), "whatever");
        assert_eq!(on.paint("", Tone::Bad), "");
        let off = Palette::plain();
        assert_eq!(off.word("revoked", "revoked"), "revoked");
        assert_eq!(off.header("HOST"), "HOST");
        assert_eq!(tone_of("RolledBack"), Some(Tone::Bad));
        assert_eq!(tone_of("WaitingApproval"), Some(Tone::Warn));
    }
}
