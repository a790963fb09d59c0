//! Generated protobuf/gRPC code for `proto/convoy/v1/agent.proto`.

/// Wire protocol version sent in `Hello.protocol_version`.
pub const PROTOCOL_VERSION: u32 = 1;

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("convoy.v1");
}

pub use v1::*;
