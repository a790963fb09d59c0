//! The control plane's data dir (mode 0700):
//!
//! | file | what |
//! |---|---|
//! | `ca.pem`, `ca-key.pem` (0600) | the fleet CA (generated, or the operator's) |
//! | `server.pem` (leaf + CA), `server-key.pem` (0600) | the TLS server certificate for both ports |
//! | `state/` | the sled store |

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use convoy_pki::Ca;
use rand::RngCore;
use thiserror::Error;

use std::sync::Arc;

use crate::store::{
    ApiTokenRecord, FleetStore, Scope, SledStore, StoreError, api_token_hash, unix,
};

/// Lifetime of the server certificate made by `init` (the CA's own is ten
/// years; the server's is re-issued by re-running init for now).
pub const SERVER_CERT_LIFETIME: Duration = Duration::from_secs(825 * 24 * 60 * 60);

#[derive(Debug, Error)]
pub enum DataDirError {
    #[error("data dir {0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificates")]
    Pki(#[from] convoy_pki::PkiError),
    #[error("store")]
    Store(#[from] StoreError),
    #[error("--ca-cert and --ca-key must be given together")]
    HalfCa,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError {
    let path = path.to_path_buf();
    move |source| DataDirError::Io {
        action,
        path,
        source,
    }
}

/// Paths inside a data dir.
#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca-key.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.root.join("server-key.pem")
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }
}

/// What `init` prints.
#[derive(Debug)]
pub struct InitOutput {
    pub ca_fingerprint: String,
    /// Shown once; only its hash is stored.
    pub admin_token: String,
}

/// `convoy-control-plane init`.
pub fn init(
    dir: &DataDir,
    fleet: &str,
    server_names: &[String],
    operator_ca: Option<(&Path, &Path)>,
    now: SystemTime,
) -> Result<InitOutput, DataDirError> {
    convoy_pki::validate_fleet_name(fleet)?;
    if dir.root.exists() {
        return Err(DataDirError::Exists(dir.root.clone()));
    }
    let ca = match operator_ca {
        Some((cert, key)) => Ca::from_pem(
            &fs::read_to_string(cert).map_err(io("reading", cert))?,
            &fs::read_to_string(key).map_err(io("reading", key))?,
        )?,
        None => Ca::generate(fleet, now)?,
    };
    let server = ca.issue_server(server_names, now, SERVER_CERT_LIFETIME)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir.root)
        .map_err(io("creating", &dir.root))?;
    write_file(&dir.ca_cert(), ca.cert_pem().as_bytes(), 0o644)?;
    write_file(&dir.ca_key(), ca.key_pem().as_bytes(), 0o600)?;
    // The chain includes the CA so that a new agent can pin it by
    // fingerprint on first contact.
    let chain = format!("{}{}", server.cert_pem, ca.cert_pem());
    write_file(&dir.server_cert(), chain.as_bytes(), 0o644)?;
    write_file(&dir.server_key(), server.key_pem.as_bytes(), 0o600)?;
    let store = SledStore::open(&dir.state())?;
    store.set_fleet(fleet)?;
    let admin_token = new_api_token();
    store.put_api_token(
        &api_token_hash(&admin_token),
        &ApiTokenRecord {
            name: "init-admin".into(),
            scope: Scope::Admin,
            created_unix: unix(now),
        },
    )?;
    SledStore::flush(&store)?;
    Ok(InitOutput {
        ca_fingerprint: ca.fingerprint_sha256(),
        admin_token,
    })
}

/// A fresh API bearer token: `cvat_` + 32 random bytes hex.
pub fn new_api_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("cvat_{}", hex::encode(b))
}

/// Everything `run` needs from the data dir.
#[derive(Debug)]
pub struct Loaded {
    pub ca: Ca,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub store: Arc<SledStore>,
    pub fleet: String,
}

pub fn load(dir: &DataDir) -> Result<Loaded, DataDirError> {
    let read = |p: PathBuf| fs::read_to_string(&p).map_err(io("reading", &p));
    let ca = Ca::from_pem(&read(dir.ca_cert())?, &read(dir.ca_key())?)?;
    let store = Arc::new(SledStore::open(&dir.state())?);
    let fleet = store.fleet()?;
    Ok(Loaded {
        ca,
        server_cert_pem: read(dir.server_cert())?,
        server_key_pem: read(dir.server_key())?,
        store,
        fleet,
    })
}

/// Writes a new file with `mode` (created with it: never briefly readable).
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), DataDirError> {
    convoy_kit::fsx::write_new(path, data, mode).map_err(io("writing", path))
}
