//! The fleet repo: `fleet.toml` (hosts, stacks, rollout policy) and the
//! label selectors it uses.

pub mod model;
pub mod selector;

pub use model::*;
pub use selector::{Selector, SelectorError, Term};
