//! `POST /api/v1/backup`: a backup of the running daemon, streamed.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::authorize;
use super::{ApiError, ApiState};
use crate::store::Scope;

/// A `Write` that hands 64 KiB chunks to the response body through a
/// bounded channel: the backup streams with bounded memory, and a slow
/// client slows the (blocking) writer down.
pub(super) struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const BACKUP_CHUNK: usize = 64 * 1024;

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BACKUP_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(BACKUP_CHUNK));
        self.tx
            .blocking_send(Ok(chunk.into()))
            .map_err(|_| std::io::Error::other("client went away"))
    }
}

pub(super) async fn backup(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin)?;
    let Some(dir) = state.data_dir.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "backups are served by the daemon only",
        ));
    };
    let store = state.store.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let w = ChannelWriter {
            tx,
            buf: Vec::with_capacity(BACKUP_CHUNK),
        };
        match crate::backup::write(&crate::datadir::DataDir::new(dir), &*store, w) {
            Ok(s) => tracing::info!(
                files = s.files,
                trees = s.trees,
                records = s.records,
                bytes = s.bytes,
                "backup streamed"
            ),
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "backup failed");
                // Abort the body: the client sees a broken transfer, never
                // a short file that looks complete (the checksum would
                // catch that too).
                let _ = errors.blocking_send(Err(std::io::Error::other("backup failed")));
            }
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        body,
    )
        .into_response())
}
