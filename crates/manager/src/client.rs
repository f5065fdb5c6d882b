//! Who asks, and what they are told: the vocabulary every front-end uses, whatever protocol it speaks.

use core::fmt;

use wifiprov_backend::LinkInfo;

use crate::action::FailReason;
use crate::manager::ProvState;

/// One client of one front-end: an ESP protocomm session, a link of another BLE protocol, a browser page's
/// session. Credentials a client sets stay its own until it applies them; no other client's apply or status
/// ever sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

impl ClientId {
    /// Requests that come with no session at all (security 0 allows them, like ESP). They share one identity:
    /// without a session there is nothing to tell them apart, and nothing was authenticated anyway.
    pub const ANONYMOUS: Self = Self(u64::MAX);
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ANONYMOUS { f.write_str("anonymous") } else { self.0.fmt(f) }
    }
}

/// What a client is told when it asks how provisioning is going (ESP's `prov-config` GetStatus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisioningStatus {
    /// Provisioning is not open (ESP answers with an empty report).
    NotServing,
    /// The station is not connected and no attempt of this client is under way.
    Disconnected,
    /// A connection attempt is under way; `attempts_remaining` once an attempt of this client's credentials
    /// has failed and attempts are limited.
    Connecting {
        /// Attempts left before the failure is reported, when attempts are limited.
        attempts_remaining: Option<u32>,
    },
    /// The station is connected.
    Connected(LinkInfo),
    /// This client's credentials failed; it stays so until a reset or new credentials.
    Failed(FailReason),
}

/// Why a provisioning request (set credentials, apply, scan) was refused. Nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Provisioning is not open.
    #[error("provisioning is not open")]
    NotServing,
    /// A provisioning attempt is under way (this client's or another's); wait for its outcome.
    #[error("a provisioning attempt is under way")]
    Busy,
    /// Credentials were applied already: reset after a failure, or reprovision after success, first.
    #[error("credentials were applied already ({state:?}); reset or reprovision first")]
    AlreadyApplied {
        /// The provisioning state.
        state: ProvState,
    },
    /// This client set no credentials to apply.
    #[error("no credentials were set by this client")]
    NoCredentials,
}
