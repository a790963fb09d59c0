//! `AgentService`, the tonic service on the agent port: `Enroll` (no
//! certificate, a join token) and `Connect` (a certificate of ours, then one
//! session task per stream).

use convoy_shared::proto::agent_service_server::AgentService;
use convoy_shared::proto::{AgentMessage, ControlMessage, EnrollRequest, EnrollResponse};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Gateway;
use super::tls::PeerInfo;

/// The tonic service.
#[derive(Debug, Clone)]
pub struct AgentApi {
    gw: Gateway,
}

impl AgentApi {
    pub fn new(gw: Gateway) -> AgentApi {
        AgentApi { gw }
    }
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let addr = request.extensions().get::<PeerInfo>().and_then(|p| p.addr);
        let gw = self.gw.clone();
        let req = request.into_inner();
        // Signing and sled flushes block; keep them off the async workers.
        let res = tokio::task::spawn_blocking(move || {
            let now = gw.clock().now();
            gw.enroll(req, now)
        })
        .await
        .map_err(|_| Status::internal("enrollment task failed"))?;
        if let Err(e) = &res {
            tracing::warn!(peer = ?addr, code = ?e.code(), reason = e.message(), "enrollment refused");
        }
        res.map(Response::new)
    }

    type ConnectStream = ReceiverStream<Result<ControlMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let id = match self.gw.authenticate(peer.as_ref(), self.gw.clock().now()) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(peer = ?peer.as_ref().and_then(|p| p.addr), reason = e.message(), "stream refused");
                if e.code() == tonic::Code::PermissionDenied
                    && let Some(id) = peer
                        .as_ref()
                        .and_then(|p| p.client_cert.as_ref())
                        .and_then(|der| convoy_pki::host_identity(der, self.gw.fleet()).ok())
                {
                    let addr = peer
                        .as_ref()
                        .and_then(|p| p.addr)
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    self.gw.hooks().revoked_attempt(&id.host, &addr).await;
                }
                return Err(e);
            }
        };
        let out = super::session::start(self.gw.clone(), id, request.into_inner());
        Ok(Response::new(out))
    }
}
