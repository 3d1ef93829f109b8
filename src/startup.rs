//! Building and running the application: the only place that wires the
//! store, the hub and the HTTP router together.

use crate::auth::{self, LoginThrottle, ThrottleConfig, Verifier};
use crate::clock::Clock;
use crate::http::{self, AppState};
use crate::settings::Settings;
use crate::store::Store;
use crate::{bootstrap, hub};
use anyhow::Context;
use signalling::{Config, Switchboard};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
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
        if !settings.turn_urls.is_empty() && settings.turn_secret.is_none() {
            anyhow::bail!(
                "--turn-url needs --turn-secret (or MIULINK_TURN_SECRET): the secret shared with the TURN server"
            );
        }
        if settings.relay_only && (settings.turn_urls.is_empty() || settings.turn_secret.is_none())
        {
            anyhow::bail!(
                "--ice-transport-policy relay needs a TURN server (--turn-url and --turn-secret): \
                 without one no call could connect"
            );
        }
        if let Some(secret) = &settings.turn_secret {
            crate::turn::check_secret(secret).map_err(anyhow::Error::msg)?;
        }
        let patient_ref = crate::settings::PatientRefRule::new(&settings.patient_ref_pattern)
            .map_err(anyhow::Error::msg)?;
        let store = Store::open(&settings.database_url).await.with_context(|| {
            format!(
                "opening the database {}",
                crate::store::redact_url(&settings.database_url)
            )
        })?;
        let clock = Clock::new();
        let data_dir = settings
            .data_dir
            .clone()
            .unwrap_or_else(|| bootstrap::data_dir(&settings.database_url));
        bootstrap::first_start(&store, settings.demo, &data_dir, clock.now_ms()).await?;
        if settings.demo {
            // Before the switchboard reads the next free ids.
            crate::seed::demo_history(&store, settings.reports.timezone, clock.now_ms()).await?;
        }
        let now = clock.now_ms();
        store
            .delete_expired_sessions(now, now - settings.session_idle_ms)
            .await?;
        let (first_request_id, first_call_id) = store.next_ids().await?;
        let config = Config {
            disconnect_grace_ms: settings.disconnect_grace_ms,
            escalation: settings.escalation,
            first_request_id,
            first_call_id,
            test_line: settings.test_call_clinician.clone(),
        };
        let mut switchboard = Switchboard::new(config, clock.now_ms());
        // Whatever was open when the server last stopped (even by kill -9)
        // comes back, with its original times, for clients to resume.
        let open = store
            .load_open()
            .await
            .context("reading open consults from the log")?;
        let (waiting, calls, owed) = (open.waiting.len(), open.calls.len(), open.owed.len());
        for note in switchboard.restore(open) {
            tracing::warn!("restore: {note}");
        }
        if waiting + calls + owed > 0 {
            tracing::info!(
                waiting,
                calls,
                owed,
                "restored open consults from the session log"
            );
        }
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
        let settings_login_slots = settings.login_concurrency;
        let state = AppState {
            store,
            hub,
            settings: Arc::new(settings),
            clock,
            throttle: Arc::new(LoginThrottle::new(ThrottleConfig::default())),
            verifier: Arc::new(Verifier::new(settings_login_slots)),
            live: Arc::default(),
            patient_ref: Arc::new(patient_ref),
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
        let settings = state.settings.clone();
        let watcher = tokio::spawn(crate::http::live::watch_sessions(
            state.live.clone(),
            state.store.clone(),
            state.clock,
            Duration::from_millis(settings.session_check_ms.max(100)),
            settings.session_idle_ms,
        ));
        let app = http::router(self.state);
        tracing::info!(address = %self.addr, "MIU Link listening");
        let limits = http::serve::ServeLimits {
            max_connections: settings.max_connections,
            header_timeout: Duration::from_millis(settings.header_timeout_ms.max(100)),
        };
        http::serve::serve(self.listener, app, limits, shutdown, async move {
            tracing::info!("shutting down: closing connections");
            hub.shutdown().await;
        })
        .await;
        watcher.abort();
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
