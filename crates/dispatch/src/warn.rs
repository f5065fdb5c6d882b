//! A rate limit for warnings about misbehaving peers.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Caps `warn`-level logs about misbehaving peers at [`WarnLimiter::BURST`] a minute; the rest go to `debug`,
/// and the number suppressed is logged when the next window opens.
#[derive(Debug, Default)]
pub struct WarnLimiter(Mutex<Window>);

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    issued: u32,
    suppressed: u32,
}

impl WarnLimiter {
    /// The length of one window.
    pub const WINDOW: Duration = Duration::from_secs(60);
    /// Warnings allowed per window.
    pub const BURST: u32 = 20;

    /// Whether the next peer warning may be logged at `warn`.
    pub fn allow(&self) -> bool {
        let now = Instant::now();
        let mut w = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if w.start.is_none_or(|start| now.duration_since(start) >= Self::WINDOW) {
            if w.suppressed > 0 {
                tracing::warn!(suppressed = w.suppressed, "peer warnings were rate-limited");
            }
            *w = Window { start: Some(now), issued: 0, suppressed: 0 };
        }
        if w.issued < Self::BURST {
            w.issued += 1;
            true
        } else {
            w.suppressed += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_per_window() {
        let limiter = WarnLimiter::default();
        let allowed = (0..100).filter(|_| limiter.allow()).count();
        assert_eq!(allowed, WarnLimiter::BURST as usize);
        tokio::time::advance(WarnLimiter::WINDOW).await;
        assert!(limiter.allow(), "a new window");
    }
}
