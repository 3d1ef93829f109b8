//! End-to-end tests: the server on port 0 with a fresh database, and real
//! headless Chromium browsers (fake camera and microphone) driven over
//! WebDriver, as a nurse and a clinician would use them.
//!
//! Needs Debian's `chromium` and `chromium-driver`; `scripts/setup.sh`
//! (run by `scripts/test.sh`) installs them. Screenshots of every screen go
//! to `artifacts/screenshots/`.

mod accessibility;
mod admin;
mod browser;
mod callscreen;
#[path = "../common/mod.rs"]
mod common;
mod consult;
mod devices;
mod escalation;
mod failover;
mod flows;
mod https;
mod login;
mod notifications;
mod outcome_queue;
#[cfg(feature = "probe")]
mod probe;
mod reports;
mod restart;
mod resume;
mod server;
mod signout;
mod sso;
mod station;
mod turn;

/// The browser tests run one at a time: each starts two Chromiums with
/// fake video, which is plenty for a 2-core machine.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}
