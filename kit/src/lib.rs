//! Small pieces both daemons (and the operator CLI) need and that are not
//! types or parsing (those live in `convoy-shared`): reading the clock,
//! formatting an error chain, retry backoff, writing files atomically with
//! their mode, the on-disk format-version stamp, layered configuration
//! (defaults < file < env < flags), the systemd notify protocol and the
//! HTTPS client (trusting only the fleet CA) that operator tools use to
//! reach the API.
//!
//! Each module is one concern with no state of its own beyond what the
//! caller holds, so a daemon wires them where it does I/O and its pure
//! cores stay free of them (they take a [`clock::Clock`] or a `now`).

pub mod backoff;
pub mod clock;
pub mod error;
pub mod format;
pub mod fsx;
pub mod https;
pub mod layers;
pub mod sd_notify;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::error_chain;
