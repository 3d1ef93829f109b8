//! Building and running the application: the only place that wires the
//! store, the operator and the HTTP router together.

use crate::auth::{self, LoginThrottle, ThrottleConfig, Verifier};
use crate::clock::Clock;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::operator::OperatorStats;
use crate::settings::Settings;
use crate::store::{Actor, NewAudit};
use crate::store::{Backend, Store};
use crate::tls::Tls;
use crate::{bootstrap, leader};
use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    /// The certificate served, when HTTPS is on.
    tls: Option<Arc<Tls>>,
    /// The metrics listener (`--metrics-listen`), bound.
    metrics: Option<(TcpListener, SocketAddr)>,
    /// The plain-HTTP redirect listener (`--redirect-http`), bound.
    redirect: Option<(TcpListener, SocketAddr)>,
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
        if settings.redirect_http.is_some() && settings.tls.is_none() {
            anyhow::bail!("--redirect-http needs --tls-cert and --tls-key: it redirects to HTTPS");
        }
        // Before anything else is opened: a certificate that cannot be
        // served is a mistake to fix now, not at the first connection.
        let tls = match &settings.tls {
            Some(files) => Some(Arc::new(
                Tls::new(files.clone()).map_err(anyhow::Error::msg)?,
            )),
            None => None,
        };
        let metrics = Arc::new(Metrics::new(tls.as_ref().map(|t| t.not_after.clone())));
        let oidc = match &settings.oidc {
            Some(o) => Some(Arc::new(
                crate::oidc::Oidc::new(o.clone()).map_err(anyhow::Error::msg)?,
            )),
            None => None,
        };
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
        let settings = Arc::new(settings);
        let stats = Arc::new(OperatorStats::with_metrics(metrics));
        let leader = match store.backend() {
            // One instance on one file: it leads from the start.
            Backend::Sqlite => leader::sole(store.clone(), &settings, clock, stats).await?,
            // Any number against one database: the election decides.
            Backend::Postgres => {
                let leadership = leader::elect(store.clone(), settings.clone(), clock, stats);
                // If no one else leads, this instance does within a moment:
                // wait for that, so a lone server serves as soon as it is up.
                let mut role = leadership.watch();
                let first =
                    tokio::time::timeout(Duration::from_secs(1), role.wait_for(|r| r.is_leader()))
                        .await;
                if first.is_err() {
                    tracing::info!(
                        "another instance leads (or held the lease until just now): standing by"
                    );
                }
                leadership
            }
        };
        let listener = TcpListener::bind(&settings.listen).await.with_context(|| {
            format!(
                "listening on {} (is another server running there?)",
                settings.listen
            )
        })?;
        let addr = listener.local_addr()?;
        let metrics = match &settings.metrics_listen {
            Some(at) => Some(bind_extra(at, "--metrics-listen").await?),
            None => None,
        };
        let redirect = match &settings.redirect_http {
            Some(at) => Some(bind_extra(at, "--redirect-http").await?),
            None => None,
        };
        let dummy_hash = tokio::task::spawn_blocking(|| auth::hash_password(&auth::new_token()))
            .await?
            .map_err(anyhow::Error::msg)?;
        let settings_login_slots = settings.login_concurrency;
        let state = AppState {
            store,
            leader,
            settings,
            clock,
            throttle: Arc::new(LoginThrottle::new(ThrottleConfig::default())),
            verifier: Arc::new(Verifier::new(settings_login_slots)),
            live: Arc::default(),
            patient_ref: Arc::new(patient_ref),
            dummy_hash: Arc::new(dummy_hash),
            oidc,
        };
        state
            .store
            .audit(
                &NewAudit::new(state.clock.now_ms(), Actor::System, "server_started").detail(
                    serde_json::json!({
                        "version": env!("CARGO_PKG_VERSION"),
                        "address": addr.to_string(),
                        "host": crate::leader::instance_name(),
                    }),
                ),
            )
            .await?;
        Ok(Application {
            listener,
            addr,
            state,
            tls,
            metrics,
            redirect,
        })
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Where the metrics are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, a)| *a)
    }

    /// Where plain HTTP is redirected to HTTPS, if it is.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect.as_ref().map(|(_, a)| *a)
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
        let leader = state.leader.clone();
        let settings = state.settings.clone();
        let watcher = tokio::spawn(crate::http::live::watch_sessions(
            state.live.clone(),
            state.store.clone(),
            state.clock,
            Duration::from_millis(settings.session_check_ms.max(100)),
            settings.session_idle_ms,
        ));
        if let Some(tls) = &self.tls {
            crate::tls::watch(tls.clone());
        } else {
            ignore_hangup();
        }
        // The operations listeners stop with the server.
        let (ops_stop, ops_stopped) = watch::channel(false);
        let mut ops = Vec::new();
        if let Some((listener, addr)) = self.metrics {
            tracing::info!(address = %addr, "metrics at http://{addr}/metrics");
            ops.push(tokio::spawn(http::ops::serve_metrics(
                listener,
                state.clone(),
                ops_stopped.clone(),
            )));
        }
        if let Some((listener, addr)) = self.redirect {
            tracing::info!(address = %addr, "redirecting plain HTTP to HTTPS");
            ops.push(tokio::spawn(http::ops::serve_redirect(
                listener,
                self.addr.port(),
                ops_stopped.clone(),
            )));
        }
        let retention = settings.retention_days.map(|days| {
            crate::retention::spawn(state.store.clone(), leader.clone(), state.clock, days)
        });
        let app = http::router(self.state);
        tracing::info!(address = %self.addr, tls = self.tls.is_some(), "MIU Link listening");
        let limits = http::serve::ServeLimits {
            max_connections: settings.max_connections,
            header_timeout: Duration::from_millis(settings.header_timeout_ms.max(100)),
        };
        // A dead switchboard ends the server too, with an error: systemd
        // (`Restart=always` in deploy/miulink.service) starts it again and
        // it resumes from the log.
        let mut dead = leader.stats.dead.subscribe();
        let died = async move {
            // (The guard `wait_for` returns is dropped here, not held.)
            let _ = dead.wait_for(|d| *d).await.map(|_| ());
        };
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                () = died => {
                    // Long enough for a load balancer or monitor to see the
                    // 503 that names it.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        let stats = leader.stats.clone();
        http::serve::serve(self.listener, app, limits, self.tls, stop, async move {
            tracing::info!("shutting down: closing connections");
            leader.shutdown().await;
        })
        .await;
        watcher.abort();
        let why = if *stats.dead.borrow() {
            "switchboard died"
        } else {
            "shut down"
        };
        if let Err(e) = state
            .store
            .audit(
                &NewAudit::new(state.clock.now_ms(), Actor::System, "server_stopped")
                    .detail(serde_json::json!({ "reason": why })),
            )
            .await
        {
            tracing::warn!(error = %e, "cannot write the server's stop to the audit trail");
        }
        if let Some(job) = retention {
            job.abort();
        }
        let _ = ops_stop.send(true);
        for task in ops {
            let _ = task.await;
        }
        state.store.close().await;
        if *stats.dead.borrow() {
            anyhow::bail!(
                "the switchboard task died (see the error above); exiting so that the service manager restarts MIU Link"
            );
        }
        Ok(())
    }
}

/// Binds one of the extra listeners (metrics, redirect).
async fn bind_extra(at: &str, flag: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(at).await.with_context(|| {
        format!("{flag} {at}: cannot listen there (in use, or not an address of this machine?)")
    })?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Without TLS there is nothing to reload: a `SIGHUP` (`systemctl reload`)
/// is logged rather than ending the process, its default.
fn ignore_hangup() {
    #[cfg(unix)]
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: nothing to reload (no --tls-cert)");
            }
        });
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
