//! Types and pure parsing shared by the control plane, the agent and the
//! CLI: the gRPC protocol ([`proto`]), the API's JSON bodies ([`api`]), the
//! fleet-repo model ([`fleet`], [`compose`]) and the loader that builds it,
//! per-host rendering and revision hashing ([`render`]), and the limits
//! every side enforces ([`limits`]). Behaviour (sockets, files beyond the
//! repo, clocks, config layering, sd_notify) lives in the daemons and in
//! `convoy-kit` (DESIGN.md "Types in shared, behaviour elsewhere").
//!
//! Data flow of a fleet repo: a [`repo::RepoSource`] (a directory, or a git
//! tree held in memory — the only I/O here is [`repo::DirSource`] reading a
//! checked-out repo) → [`repo::load`] parses `fleet.toml` and each stack's
//! compose file and `.env` into positioned trees ([`source`]), interpolates
//! and decodes them ([`compose::load`]), checks the whole fleet, and returns
//! a [`repo::Repo`] or every problem as `file:line:col: message` →
//! [`render::plan`] gives each host its desired state with revisions.

pub mod api;
pub mod compose;
pub mod duration;
pub mod fleet;
pub mod limits;
pub mod proto;
pub mod render;
pub mod repo;
pub mod source;
