//! Types shared by the control plane and the agent: the gRPC protocol, the
//! fleet-repo model (fleet.toml, the compose subset, interpolation), the
//! whole-repo validator, per-host rendering and revision hashing.
//!
//! Nothing here performs I/O beyond reading the fleet repo it is pointed at;
//! the daemons own behaviour (see DESIGN.md "Types in shared, behaviour
//! elsewhere").

pub mod api;
pub mod compose;
pub mod duration;
pub mod fleet;
pub mod limits;
pub mod proto;
pub mod render;
pub mod repo;
pub mod source;
