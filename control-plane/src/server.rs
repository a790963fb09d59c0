//! `convoy-control-plane run`: opens the data dir, builds the parts in
//! dependency order (store → stream registry → rollout engine, audit log,
//! alerts, git sync → dispatcher → gateway with the dispatcher as its hooks
//! → API), binds both ports and runs until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use convoy_kit::Clock;

use crate::config::RunConfig;
use crate::datadir::{DataDir, DataDirError};
use crate::dispatch::{Dispatcher, Parts, StreamHooks};
use crate::gateway::{Gateway, GatewayConfig, Sessions};

/// How long shutdown waits for streams and connections to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("data dir")]
    DataDir(#[from] DataDirError),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("binding {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running control plane.
#[derive(Debug)]
pub struct Server {
    pub agent_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub gateway: Gateway,
    stop: watch::Sender<bool>,
    agent_task: JoinHandle<()>,
    api_task: JoinHandle<()>,
    ctl_task: JoinHandle<()>,
    alerts_task: Option<JoinHandle<()>>,
    pub dispatcher: Arc<Dispatcher>,
}

/// Loads the data dir, binds both ports and starts serving, on the
/// system clock.
pub async fn start(dir: &DataDir, cfg: &RunConfig) -> Result<Server, ServerError> {
    start_with_clock(dir, cfg, convoy_kit::clock::system()).await
}

/// [`start`] with the wall clock every decision reads (tests and
/// simulations pass a [`convoy_kit::ManualClock`]).
pub async fn start_with_clock(
    dir: &DataDir,
    cfg: &RunConfig,
    clock: Arc<dyn Clock>,
) -> Result<Server, ServerError> {
    let loaded = crate::datadir::load(dir)?;
    let agent_tls = convoy_pki::server_config(
        loaded.ca.cert_der(),
        &loaded.server_cert_pem,
        &loaded.server_key_pem,
    )
    .map_err(|e| ServerError::Tls(e.to_string()))?;
    let api_tls = crate::api::api_tls_config(&loaded.server_cert_pem, &loaded.server_key_pem)
        .map_err(ServerError::Tls)?;
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let agent_listener = bind(cfg.agent_listen).await?;
    let api_listener = bind(cfg.api_listen).await?;
    let local = |l: &TcpListener, addr| {
        l.local_addr()
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let agent_addr = local(&agent_listener, cfg.agent_listen)?;
    let api_addr = local(&api_listener, cfg.api_listen)?;
    let store: Arc<dyn crate::store::Store> = loaded.store.clone();
    let (stop, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let alerts = match &cfg.alerts {
        Some(a) => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| ServerError::Tls(format!("HTTP client for alerts: {e}")))?;
            Some(
                crate::alerts::Alerts::open(store.clone(), a.clone(), client, clock.clone())
                    .map_err(|e| ServerError::Config(format!("alerts: {e}")))?,
            )
        }
        None => None,
    };
    let sessions = Sessions::new();
    let engine = crate::rollout::Engine::new(store.clone());
    let audit = crate::audit::AuditLog::new(store.clone(), clock.clone());
    let sync =
        crate::sync::GitSync::new(cfg.git.as_ref(), &dir.root.join("git").join("mirror.git"))
            .map_err(ServerError::Config)?;
    let dispatcher = Arc::new(Dispatcher::new(Parts {
        fleet: loaded.fleet.clone(),
        clock: clock.clone(),
        store: store.clone(),
        engine,
        sessions: sessions.clone(),
        audit,
        alerts: alerts.clone(),
        telemetry: Default::default(),
        sync,
    }));
    let gateway = Gateway::new(
        loaded.ca,
        store.clone(),
        GatewayConfig {
            fleet: loaded.fleet.clone(),
            heartbeat_interval: cfg.heartbeat_interval,
            agent_cert_lifetime: cfg.agent_cert_lifetime,
        },
        sessions,
        Arc::new(StreamHooks(dispatcher.clone())),
        clock,
    );
    let ctl_task = tokio::spawn(dispatcher.clone().run(stop_rx.clone()));
    let gw = gateway.clone();
    let rx = stop_rx.clone();
    let agent_task = tokio::spawn(async move {
        if let Err(e) =
            crate::gateway::tls::serve_agents(gw, agent_listener, Arc::new(agent_tls), stopped(rx))
                .await
        {
            tracing::error!(error = %crate::error_chain(&e), "agent gateway failed");
        }
    });
    let alerts_task = alerts.map(|a| {
        let rx = stop_rx.clone();
        tokio::spawn(async move { a.run(stopped(rx)).await })
    });
    let router = crate::api::router_full(
        store,
        gateway.clone(),
        Some(dispatcher.clone()),
        Some(dir.root.clone()),
    );
    let api_task = tokio::spawn(crate::api::serve_api(
        router,
        api_listener,
        Arc::new(api_tls),
        stopped(stop_rx),
    ));
    tracing::info!(
        fleet = %loaded.fleet,
        agent_listen = %agent_addr,
        api_listen = %api_addr,
        "control plane running"
    );
    Ok(Server {
        agent_addr,
        api_addr,
        gateway,
        stop,
        agent_task,
        api_task,
        ctl_task,
        alerts_task,
        dispatcher,
    })
}

impl Server {
    /// Stops accepting, closes every agent stream, waits (bounded) for the
    /// servers to drain and flushes the store.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let drain = async {
            let _ = self.agent_task.await;
            let _ = self.api_task.await;
            let _ = self.ctl_task.await;
            if let Some(t) = self.alerts_task {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            tracing::warn!("shutdown: servers did not drain within 10s");
        }
        if let Err(e) = self.gateway.store().flush() {
            tracing::error!(error = %crate::error_chain(&e), "final store flush failed");
        }
        tracing::info!("control plane stopped");
    }
}
