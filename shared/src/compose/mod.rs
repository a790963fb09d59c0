//! Compose as Convoy reads it (README "Compose support"): the typed model
//! the agent applies, and the steps that produce it from a stack's files.
//!
//! Data flow, one stack: the YAML is parsed into an untyped, positioned
//! [`Node`](crate::source::node::Node) tree (`source::yaml`); the stack's
//! `.env` ([`dotenv`]) feeds [`interpolate::interpolate_tree`], which
//! rewrites string values (never keys); [`load::decode`] turns the tree
//! into a [`ComposeFile`], one area file per part of the format, and checks
//! it. Compose's own merge rules (several files per stack, `include`,
//! `extends`) belong between interpolation and decoding, as in compose-go:
//! a `merge` module over untyped trees, so the decoders keep seeing one
//! tree.

pub mod dotenv;
pub mod interpolate;
pub mod load;
pub mod model;

pub use model::*;
