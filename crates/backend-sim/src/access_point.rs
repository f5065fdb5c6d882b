//! One simulated access point and the checks its settings must pass.

use core::time::Duration;
use std::net::Ipv4Addr;

use wifiprov_backend::{AuthMode, Bssid, Channel, Passphrase, Rssi, Ssid, SsidVisibility};

/// Whether an access point is on the air at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Presence {
    /// Beaconing (unless hidden) and answering joins.
    #[default]
    Present,
    /// Switched off: no scan lists it and joins report
    /// [`ConnectError::NetworkNotFound`](wifiprov_backend::ConnectError::NetworkNotFound). Its settings are
    /// kept so a test can bring it back.
    Absent,
}

/// An access point as the simulator models it: what a scan shows, what a join needs, and which faults to
/// inject.
///
/// `Debug` is derived; it is safe because [`Passphrase`]'s own `Debug` prints `<redacted>`.
#[derive(Debug, Clone)]
pub struct SimAccessPoint {
    /// The network name.
    pub ssid: Ssid,
    /// The access point's MAC address; unique within a simulator.
    pub bssid: Bssid,
    /// The channel it beacons on.
    pub channel: Channel,
    /// How strongly the station hears it.
    pub rssi: Rssi,
    /// Its security.
    pub auth: AuthMode,
    /// The secret a join must present: `Some` exactly when [`AuthMode::uses_passphrase`] is true.
    pub passphrase: Option<Passphrase>,
    /// [`SsidVisibility::Hidden`] keeps it out of scan results; it can still be joined by exact SSID.
    pub visibility: SsidVisibility,
    /// Whether it is on the air.
    pub presence: Presence,
    /// How long a join takes, from the connect call until the outcome (success or failure) is known.
    pub join_latency: Duration,
    /// How many of the next joins fail with
    /// [`ConnectError::AssociationFailed`](wifiprov_backend::ConnectError::AssociationFailed). Each failed
    /// join uses one up.
    pub flaky_joins: u32,
    /// After a successful join, the link is lost (with [`LinkEvent::LinkLost`](wifiprov_backend::LinkEvent))
    /// this long after it came up.
    pub lose_link_after: Option<Duration>,
    /// The address handed out on joining; `None` derives one from the scenario's `ip4_base`.
    pub ip4: Option<Ipv4Addr>,
}

/// An access point whose security and passphrase do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// A personal (PSK/SAE) network was given no passphrase.
    #[error("auth mode {auth} needs a passphrase")]
    PassphraseRequired {
        /// The access point's security.
        auth: AuthMode,
    },
    /// An open, WEP or enterprise network was given a passphrase, which it would never use.
    #[error("auth mode {auth} takes no passphrase")]
    PassphraseNotAllowed {
        /// The access point's security.
        auth: AuthMode,
    },
}

impl SimAccessPoint {
    /// Join latency used when a scenario gives none.
    pub const DEFAULT_JOIN_LATENCY: Duration = Duration::from_millis(1000);
    /// Signal strength used by [`SimAccessPoint::new`].
    pub const DEFAULT_RSSI: Rssi = Rssi::new(-60);

    /// A present, visible, fault-free access point with [`SimAccessPoint::DEFAULT_RSSI`] and
    /// [`SimAccessPoint::DEFAULT_JOIN_LATENCY`]. Adjust the public fields for anything else.
    pub fn new(ssid: Ssid, bssid: Bssid, channel: Channel, auth: AuthMode, passphrase: Option<Passphrase>) -> Self {
        Self {
            ssid,
            bssid,
            channel,
            rssi: Self::DEFAULT_RSSI,
            auth,
            passphrase,
            visibility: SsidVisibility::Broadcast,
            presence: Presence::Present,
            join_latency: Self::DEFAULT_JOIN_LATENCY,
            flaky_joins: 0,
            lose_link_after: None,
            ip4: None,
        }
    }

    /// Checks that the passphrase fits the security.
    pub fn check_credentials(&self) -> Result<(), CredentialError> {
        check_credentials(self.auth, self.passphrase.as_ref())
    }

    pub(crate) fn is_visible(&self) -> bool {
        self.presence == Presence::Present && self.visibility == SsidVisibility::Broadcast
    }
}

pub(crate) fn check_credentials(auth: AuthMode, passphrase: Option<&Passphrase>) -> Result<(), CredentialError> {
    match (auth.uses_passphrase(), passphrase) {
        (true, Some(_)) | (false, None) => Ok(()),
        (true, None) => Err(CredentialError::PassphraseRequired { auth }),
        (false, Some(_)) => Err(CredentialError::PassphraseNotAllowed { auth }),
    }
}
