//! Building and running the application: the only place that wires the
//! store, the hub and the HTTP router together.

use crate::auth::{self, LoginLimiter};
use crate::clock::Clock;
use crate::http::{self, AppState};
use crate::settings::Settings;
use crate::store::Store;
use crate::{bootstrap, hub};
use anyhow::Context;
use axum::serve::ListenerExt;
use signalling::{Config, Switchboard};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
}

impl Application {
    /// Opens the database, prepares first-start accounts, starts the
    /// switchboard and binds the listener (so the port is known at once).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let store = Store::open(&settings.database_url)
            .await
            .with_context(|| format!("opening the database {}", settings.database_url))?;
        let clock = Clock::new();
        bootstrap::first_start(&store, settings.demo, clock.now_ms()).await?;
        store.delete_expired_sessions(clock.now_ms()).await?;
        let (first_request_id, first_call_id) = store.next_ids().await?;
        let config = Config {
            disconnect_grace_ms: settings.disconnect_grace_ms,
            first_request_id,
            first_call_id,
        };
        let switchboard = Switchboard::new(config, clock.now_ms());
        let hub = hub::spawn(switchboard, store.clone(), clock);
        let listener = TcpListener::bind(&settings.listen).await.with_context(|| {
            format!(
                "listening on {} (is another server running there?)",
                settings.listen
            )
        })?;
        let addr = listener.local_addr()?;
        let dummy_hash = tokio::task::spawn_blocking(|| auth::hash_password(&auth::new_token()))
            .await?
            .map_err(anyhow::Error::msg)?;
        let state = AppState {
            store,
            hub,
            settings: Arc::new(settings),
            clock,
            limiter: Arc::new(LoginLimiter::new(8, 5 * 60_000)),
            dummy_hash: Arc::new(dummy_hash),
        };
        Ok(Application {
            listener,
            addr,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then closes every WebSocket (axum's
    /// graceful shutdown does not wait for them) and the database.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let hub = state.hub.clone();
        let app = http::router(self.state);
        tracing::info!(address = %self.addr, "MIU Link listening");
        // Signalling messages are small and latency-bound: send each at
        // once rather than wait (Nagle) for the ACK of the previous one,
        // which a client may delay by 40 ms.
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: closing connections");
                hub.shutdown().await;
            })
            .await
            .context("serving HTTP")?;
        state.store.close().await;
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
