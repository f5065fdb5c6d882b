//! Manager settings, with ESP's defaults.

use std::time::Duration;

/// What happens after a successful provisioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoStop {
    /// Stop the service `timeout` after the device got its address, or `cleanup_delay` after a client has
    /// seen the success (ESP's default, `timeout` 30 s).
    After {
        /// Upper bound on how long the service stays up after success.
        timeout: Duration,
    },
    /// Keep serving until told to stop; needed for `prov-ctrl` reprovisioning.
    Disabled,
}

/// Manager settings.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// At most this many scan results are kept and served (`WIFI_PROV_SCAN_MAX_ENTRIES`, ESP default 16).
    pub scan_max_entries: u32,
    /// Auto-stop after success.
    pub auto_stop: AutoStop,
    /// Delay between a stop request and the actual teardown, so the last reply reaches the client (ESP: 1 s,
    /// never below 100 ms).
    pub cleanup_delay: Duration,
    /// Connection attempts before reporting a failure; 0 retries forever on reasons other than a wrong
    /// passphrase or a missing network, like ESP.
    pub connect_attempts: u32,
    /// Delay between ApplyConfig and the first connection attempt, so the reply goes out before the radio
    /// changes channel (ESP: 1 s).
    pub connect_delay: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            scan_max_entries: 16,
            auto_stop: AutoStop::After { timeout: Duration::from_secs(30) },
            cleanup_delay: Duration::from_secs(1),
            connect_attempts: 0,
            connect_delay: Duration::from_secs(1),
        }
    }
}

impl ManagerConfig {
    pub(crate) fn effective_cleanup_delay(&self) -> Duration {
        self.cleanup_delay.max(Duration::from_millis(100))
    }
}
