//! Limits on protocol messages and fleet-repo inputs, checked on both sides
//! of the stream. Each number leaves room for the largest real setup we know
//! of (a GPU box with ~30 services across ~10 stacks) by a factor of ten or
//! more while keeping one misbehaving peer from exhausting memory.

/// Largest encoded gRPC message either side accepts (4 MiB: tonic's default
/// decode limit, and far above a rendered host state of 300 services).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Stacks in one host's desired state.
pub const MAX_STACKS_PER_HOST: usize = 256;
/// Services in one stack.
pub const MAX_SERVICES_PER_STACK: usize = 128;
/// Any single name (host, stack, service, label key).
pub const MAX_NAME_LEN: usize = 253;
/// Free-text fields (messages, reasons).
pub const MAX_TEXT_LEN: usize = 16 * 1024;
/// Log lines carried by one report.
pub const MAX_LOG_LINES: usize = 50;
/// Telemetry samples in one batch.
pub const MAX_TELEMETRY_BATCH: usize = 360;
/// Report ids in one Ack.
pub const MAX_ACK_IDS: usize = 1024;
/// A file of the fleet repo (fleet.toml, compose.yaml, .env, env_file, bound file).
pub const MAX_REPO_FILE_BYTES: u64 = 1024 * 1024;
/// All files carried by one rendered stack.
pub const MAX_STACK_FILES_BYTES: u64 = 2 * 1024 * 1024;
