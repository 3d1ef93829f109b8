//! HTTPS of its own: the certificate and key (PEM files) turned into a
//! rustls configuration, and reloaded while the server runs.
//!
//! Trusts renew certificates often (every 90 days or less), so the files
//! are read again on `SIGHUP` and whenever they change on disk (looked at
//! every few seconds). A new pair is checked before it is used: both files
//! parse, the key belongs to the certificate, and the certificate is valid
//! now. If not, the refusal is logged and the certificate in use stays.
//! Connections already open keep the configuration they were made with;
//! only new connections take the new one, so nobody is dropped.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;

/// How often the files are looked at for a change.
const POLL: Duration = Duration::from_secs(5);

/// Where the certificate chain and its private key are (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate, then any intermediates (a "full chain" file).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A loaded and checked certificate: the configuration to serve it with,
/// and what the log and the metrics say about it.
pub struct Loaded {
    pub config: Arc<ServerConfig>,
    /// The end-entity certificate's subject, for the log.
    pub subject: String,
    /// When it expires, seconds since 1970.
    pub not_after: i64,
}

/// Reads and checks the pair; an error says what is wrong with which file.
pub fn load(files: &TlsFiles) -> Result<Loaded, String> {
    let cert_pem = read(&files.cert, "certificate")?;
    let key_pem = read(&files.key, "private key")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "{} is not a PEM certificate chain ({e})",
                files.cert.display()
            )
        })?;
    let Some(leaf) = chain.first() else {
        return Err(format!(
            "{} holds no certificate (expected -----BEGIN CERTIFICATE-----)",
            files.cert.display()
        ));
    };
    let (subject, not_before, not_after) = validity(leaf).map_err(|e| {
        format!(
            "cannot read the certificate in {}: {e}",
            files.cert.display()
        )
    })?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if not_after <= now {
        return Err(format!(
            "the certificate in {} ({subject}) expired at {}; renew it",
            files.cert.display(),
            crate::timefmt::iso_utc(not_after * 1000)
        ));
    }
    if not_before > now + 300 {
        return Err(format!(
            "the certificate in {} ({subject}) is not valid until {}; check the clock or the file",
            files.cert.display(),
            crate::timefmt::iso_utc(not_before * 1000)
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "{} is not a PEM private key ({e}); expected PKCS#8, PKCS#1 or SEC1",
            files.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "the key in {} does not go with the certificate in {} ({e})",
                files.key.display(),
                files.cert.display()
            )
        })?;
    // HTTP/1.1 only (WebSockets); see http/serve.rs.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        subject,
        not_after,
    })
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the TLS {what} {}: {e}", path.display()))
}

/// Subject, not-before and not-after (seconds since 1970) of a certificate.
fn validity(cert: &CertificateDer<'_>) -> Result<(String, i64, i64), String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| e.to_string())?;
    let validity = parsed.validity();
    Ok((
        parsed.subject().to_string(),
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// The certificate in use, swapped whole when a new one is accepted.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    /// The files' modification times and sizes when last read, so that a
    /// change is tried once (and a bad pair is not retried every poll).
    seen: Mutex<Option<Stamp>>,
    /// When the certificate in use expires (seconds since 1970), for the
    /// metrics.
    pub not_after: Arc<AtomicI64>,
}

type Stamp = [(Option<SystemTime>, u64); 2];

impl Tls {
    /// Loads the files; an error here stops the server from starting.
    pub fn new(files: TlsFiles) -> Result<Tls, String> {
        let stamp = stamp(&files);
        let loaded = load(&files)?;
        tracing::info!(
            subject = %loaded.subject,
            expires = %crate::timefmt::iso_utc(loaded.not_after * 1000),
            "serving HTTPS with {}",
            files.cert.display()
        );
        Ok(Tls {
            files,
            current: RwLock::new(loaded.config),
            seen: Mutex::new(Some(stamp)),
            not_after: Arc::new(AtomicI64::new(loaded.not_after)),
        })
    }

    /// The acceptor for a new connection: the certificate in use now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }

    /// Reads the files again and uses them if they are good. Whatever
    /// happens is logged; the error is returned too.
    pub fn reload(&self) -> Result<(), String> {
        let stamp = stamp(&self.files);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(stamp);
        }
        match load(&self.files) {
            Ok(loaded) => {
                match self.current.write() {
                    Ok(mut c) => *c = loaded.config,
                    Err(poisoned) => *poisoned.into_inner() = loaded.config,
                }
                self.not_after.store(loaded.not_after, Ordering::Relaxed);
                tracing::info!(
                    subject = %loaded.subject,
                    expires = %crate::timefmt::iso_utc(loaded.not_after * 1000),
                    "TLS certificate reloaded; new connections use it, open ones carry on"
                );
                Ok(())
            }
            Err(why) => {
                tracing::error!(
                    %why,
                    "new TLS certificate refused; still serving the previous one (fix the files, then send SIGHUP)"
                );
                Err(why)
            }
        }
    }

    /// True when either file changed since it was last read.
    fn changed(&self) -> bool {
        let now = stamp(&self.files);
        self.seen.lock().is_ok_and(|seen| *seen != Some(now))
    }
}

fn stamp(files: &TlsFiles) -> Stamp {
    [&files.cert, &files.key].map(|p| match std::fs::metadata(p) {
        Ok(m) => (m.modified().ok(), m.len()),
        Err(_) => (None, 0),
    })
}

/// Reloads on `SIGHUP` and when the files change, until the process ends.
pub fn watch(tls: Arc<Tls>) {
    #[cfg(unix)]
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the certificate is still reloaded when its files change");
            None
        }
    };
    tokio::spawn(async move {
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hup = async {
                match hangup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup = std::future::pending::<()>();
            tokio::select! {
                () = hup => {
                    tracing::info!("SIGHUP: reloading the TLS certificate");
                    let _ = tls.reload();
                }
                _ = poll.tick() => {
                    if tls.changed() {
                        tracing::info!("the TLS certificate or key file changed: reloading");
                        let _ = tls.reload();
                    }
                }
            }
        }
    });
}
