//! Manager settings, with ESP's defaults.

use core::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// How many networks the saved list holds (FreeRTOS: 8).
    pub max_networks: usize,
    /// The connection policy's timing.
    pub policy: PolicyConfig,
    /// Where the time of each network's last result comes from.
    pub wall_clock: Arc<dyn WallClock>,
}

/// When the station tries which saved network, and when provisioning reopens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyConfig {
    /// How long one attempt at a network may take before it counts as failed (Matter's Linux driver: 20 s).
    pub attempt_timeout: Duration,
    /// The pause after a round through every saved network found none, before the next round.
    pub retry_interval: Duration,
    /// After the link is lost: how long the policy retries before provisioning reopens.
    pub reopen_grace: Duration,
    /// Whether provisioning reopens by itself when the device is offline: at start once a round through the
    /// saved networks failed, and `reopen_grace` after a lost link.
    pub reopen: bool,
    /// Whether a round starts with a scan and tries only the saved networks it sees (and the hidden ones,
    /// which a scan cannot name). A device carried to a new place then opens provisioning within one scan,
    /// instead of after every saved network's attempt timed out. Without a scan (or when it fails), every
    /// saved network is tried.
    pub scan_first: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(20),
            retry_interval: Duration::from_secs(30),
            reopen_grace: Duration::from_secs(60),
            reopen: true,
            scan_first: true,
        }
    }
}

/// Wall-clock time, injected so that stored timestamps can be pinned in tests.
pub trait WallClock: Send + Sync + fmt::Debug {
    /// Seconds since the Unix epoch.
    fn unix_secs(&self) -> u64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "the one wall-clock read of the crate, injected through WallClock")]
    fn unix_secs(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            scan_max_entries: 16,
            auto_stop: AutoStop::After { timeout: Duration::from_secs(30) },
            cleanup_delay: Duration::from_secs(1),
            connect_attempts: 0,
            connect_delay: Duration::from_secs(1),
            max_networks: crate::networks::NetworkList::DEFAULT_CAPACITY,
            policy: PolicyConfig::default(),
            wall_clock: Arc::new(SystemClock),
        }
    }
}

impl ManagerConfig {
    pub(crate) fn effective_cleanup_delay(&self) -> Duration {
        self.cleanup_delay.max(Duration::from_millis(100))
    }
}
