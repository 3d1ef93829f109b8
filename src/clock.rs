//! The server's clock: wall time for the log, monotonic underneath so that a
//! wall-clock step (NTP, daylight saving is not an issue in UTC) does not
//! make timers fire early or late.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall0: i64,
    mono0: Instant,
}

impl Clock {
    pub fn new() -> Self {
        let wall0 = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Clock {
            wall0,
            mono0: Instant::now(),
        }
    }

    /// UTC milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.mono0.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.wall0.saturating_add(elapsed)
    }

    /// The tokio instant at which `now_ms()` will read `ms`.
    pub fn instant_at(&self, ms: i64) -> tokio::time::Instant {
        let offset = u64::try_from(ms.saturating_sub(self.wall0)).unwrap_or(0);
        tokio::time::Instant::from_std(self.mono0 + Duration::from_millis(offset))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
