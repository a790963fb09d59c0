//! The compose subset Convoy supports (README "Compose support"): the typed
//! model the agent applies, produced by the loader after interpolation.

pub mod model;

pub use model::*;
