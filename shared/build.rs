//! Compiles `proto/convoy/v1/*.proto` with protox (a pure-Rust protobuf
//! compiler), so building Convoy never needs a system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let files = [root.join("convoy/v1/agent.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The client's `connect` constructor would clash with the `Connect` RPC;
        // agents build their channel themselves (custom TLS) anyway.
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
