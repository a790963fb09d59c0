//! The compose subset Convoy supports (README "Compose support"): the typed
//! model the agent applies, the loader that produces it after interpolation,
//! and compose's `.env` format.

pub mod dotenv;
pub mod interpolate;
pub mod load;
pub mod model;

pub use model::*;
