//! Reading fleet-repo files into one position-carrying tree ([`Node`]), so
//! that `fleet.toml` (TOML) and compose files (YAML) are decoded by the same
//! code and every problem is reported as `path:line:col: message`.

pub mod decode;
pub mod diag;
pub mod node;
pub mod toml;
pub mod yaml;

pub use decode::Cx;
pub use diag::{Diagnostic, Diagnostics, Severity};
pub use node::{Node, Pos, Value};
