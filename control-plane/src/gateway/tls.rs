//! TLS termination for the agent port with our own rustls config, feeding
//! tonic's `serve_with_incoming`. Handshakes run concurrently (one slow or
//! hostile client must not stall the accept loop), bounded in number and
//! time.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::Gateway;

/// Handshakes in flight at once; beyond this, accepted sockets wait.
const MAX_HANDSHAKES: usize = 256;
/// A client that has not finished its handshake by now is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Established connections waiting for tonic to pick them up.
const READY_QUEUE: usize = 64;

/// What the TLS layer learnt about the peer; tonic puts it in every
/// request's extensions.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub addr: Option<SocketAddr>,
    /// The verified client certificate (DER), if the peer presented one.
    /// rustls already checked that our CA issued it and that it is within
    /// its validity period at handshake time.
    pub client_cert: Option<Arc<Vec<u8>>>,
}

/// A server-side TLS connection with the peer's identity.
pub struct TlsConn {
    io: TlsStream<TcpStream>,
    info: PeerInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Accepts TLS connections on `listener` until `stop` resolves; yields them
/// as a stream for tonic.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> ReceiverStream<Result<TlsConn, io::Error>> {
    let (tx, rx) = mpsc::channel(READY_QUEUE);
    let acceptor = TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            let permit = tokio::select! {
                _ = &mut stop => break,
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (tcp, addr) = tokio::select! {
                _ = &mut stop => break,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off briefly, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _ = tcp.set_nodelay(true);
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(io)) => {
                        let conn = TlsConn {
                            info: peer_info(&io, addr),
                            io,
                        };
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Ok(Err(e)) => tracing::info!(peer = %addr, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::info!(peer = %addr, "TLS handshake timed out"),
                }
            });
        }
        tracing::debug!("agent accept loop stopped");
    });
    ReceiverStream::new(rx)
}

fn peer_info(io: &TlsStream<TcpStream>, addr: SocketAddr) -> PeerInfo {
    let client_cert = io
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| Arc::new(c.to_vec()));
    PeerInfo {
        addr: Some(addr),
        client_cert,
    }
}

/// Serves the agent port until `stop` resolves, then ends every session and
/// waits for tonic to drain.
pub async fn serve_agents(
    gw: Gateway,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut accept_stop = stop_rx.clone();
    let mut serve_stop = stop_rx;
    let incoming = incoming(listener, tls, async move {
        let _ = accept_stop.wait_for(|s| *s).await;
    });
    let gw2 = gw.clone();
    tokio::spawn(async move {
        stop.await;
        gw2.shutdown();
        stop_tx.send_replace(true);
    });
    tonic::transport::Server::builder()
        // Detects dead peers behind NAT without waiting for TCP timeouts.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(gw.service())
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = serve_stop.wait_for(|s| *s).await;
        })
        .await
}
