use std::time::Duration;

/// Errors of the runtime layer, each naming the operation and its target.
/// `Display` holds only this layer's part; print the whole chain with
/// [`convoy_kit::error_chain`].
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot reach the Docker engine (DOCKER_HOST={docker_host})")]
    Connect {
        docker_host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{op} {target}")]
    Docker {
        op: &'static str,
        target: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{op} {target}: timed out after {after:?}")]
    Timeout {
        op: &'static str,
        target: String,
        after: Duration,
    },
    #[error("{op} {target}: unexpected engine answer: {detail}")]
    Unexpected {
        op: &'static str,
        target: String,
        detail: String,
    },
    #[error("container {id} is not healthy: {reason}")]
    Unhealthy { id: String, reason: String },
}

pub type RuntimeResult<T> = Result<T, RuntimeError>;

impl RuntimeError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Maps an engine error, turning a 404 into [`RuntimeError::NotFound`].
    pub(crate) fn engine(
        op: &'static str,
        kind: &'static str,
        target: &str,
        source: bollard::errors::Error,
    ) -> Self {
        if let bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        } = source
        {
            return Self::NotFound {
                kind,
                id: target.to_string(),
            };
        }
        Self::Docker {
            op,
            target: target.to_string(),
            source,
        }
    }
}
