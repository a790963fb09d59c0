//! One way to print an error with its causes.

/// `err: cause: cause...` for logs and user-facing messages. Each error's
/// `Display` holds only its own part (STYLE.md: never repeat the source),
/// so the chain is printed once, where the error is handled.
pub fn error_chain(e: &(dyn std::error::Error + '_)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let part = c.to_string();
        // Some library errors (hyper, reqwest) repeat their source in their
        // own text; do not print the same part twice.
        if !s.ends_with(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn prints_every_cause_once() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(error_chain(&e), "outer: disk full");
    }
}
