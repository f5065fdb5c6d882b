//! What a client of provisioning may ask: set credentials, apply them, ask how it goes, reset, reprovision,
//! scan. Protocol-neutral: ESP's `prov-config`, `prov-scan` and `prov-ctrl` are one front-end's mapping of these.
//!
//! Concurrent clients (fact sheet §8.4 has one session; we serve several):
//! - Each client's credentials are its own until it applies them; a client applies only what it set itself.
//! - One provisioning attempt runs at a time. An apply while one runs is refused ([`RequestError::Busy`]);
//!   new credentials are refused while an attempt runs or after it succeeded, as on ESP.
//! - Status: the client that applied the credentials sees its attempt (connecting with the attempts left,
//!   connected once the network is joined *and saved*, failed, also when it could not be saved). A client
//!   holding credentials of its own that it has not applied sees only the station (connecting, connected, or
//!   not), so another client's failure never reads as its own. A client that set nothing (an observer, such as a
//!   later run of a command-line client) sees the device as ESP reports it, the last attempt's failure included.

use std::time::Instant;

use wifiprov_backend::ScanParams;

use crate::action::Credentials;
use crate::client::{ClientId, ProvisioningStatus, RequestError};
use crate::manager::{Manager, ProvState, WifiState};

impl Manager {
    /// Stores `client`'s credentials for its next [`Manager::apply_credentials`], replacing any it set before.
    /// After a failed attempt, new credentials are accepted like a reset would (ESP does the same).
    pub fn set_credentials(&mut self, client: ClientId, credentials: Credentials) -> Result<(), RequestError> {
        match self.state {
            ProvState::Idle | ProvState::Stopping => return Err(RequestError::NotServing),
            ProvState::CredRecv => return Err(RequestError::Busy),
            ProvState::Success => return Err(RequestError::AlreadyApplied { state: self.state }),
            ProvState::Fail => {
                self.reset_on_failure().map_err(|_| RequestError::AlreadyApplied { state: self.state })?;
            }
            ProvState::Started => {}
        }
        tracing::info!(ssid = %credentials.ssid, %client, "credentials received");
        self.pending.set(client, credentials);
        Ok(())
    }

    /// Starts the provisioning attempt with the credentials `client` set (ESP's ApplyConfig). The station
    /// connects after [`crate::ManagerConfig::connect_delay`], so the answer reaches the client first.
    pub fn apply_credentials(&mut self, client: ClientId, now: Instant) -> Result<(), RequestError> {
        match self.state {
            ProvState::Idle | ProvState::Stopping => return Err(RequestError::NotServing),
            ProvState::CredRecv => return Err(RequestError::Busy),
            ProvState::Success | ProvState::Fail => return Err(RequestError::AlreadyApplied { state: self.state }),
            ProvState::Started => {}
        }
        let credentials = self.pending.take(client).ok_or(RequestError::NoCredentials)?;
        tracing::info!(ssid = %credentials.ssid, %client, "credentials applied");
        self.apply(client, credentials, now);
        Ok(())
    }

    /// How provisioning looks to `client`. When the client that applied the credentials sees the success,
    /// provisioning stops after its cleanup delay (with auto-stop, like ESP's `wifi_prov_mgr_done`).
    pub fn provisioning_status(&mut self, client: ClientId, now: Instant) -> ProvisioningStatus {
        let owner = self.owns_attempt(client);
        // Whether the client sees the attempt's own details: its owner, or an observer with no credentials of
        // its own in play.
        let told = owner || !self.pending.contains(client);
        let status = match (self.state, &self.wifi) {
            (ProvState::Idle, _) => ProvisioningStatus::NotServing,
            // The failure stands until a reset, whatever the policy does with the radio meanwhile.
            (ProvState::Fail, _) if told => ProvisioningStatus::Failed(self.fail_reason()),
            // Joined, but not saved yet: not a success until it would survive a restart.
            (ProvState::CredRecv, _) if told && self.saving.is_some() => {
                ProvisioningStatus::Connecting { attempts_remaining: None }
            }
            (ProvState::CredRecv, WifiState::Connecting { attempts_remaining }) if told => {
                ProvisioningStatus::Connecting { attempts_remaining: *attempts_remaining }
            }
            (_, WifiState::Disconnected) => ProvisioningStatus::Disconnected,
            (_, WifiState::Connecting { .. }) => ProvisioningStatus::Connecting { attempts_remaining: None },
            (_, WifiState::Connected(link)) => ProvisioningStatus::Connected(link.clone()),
        };
        if owner && matches!(status, ProvisioningStatus::Connected(_)) {
            self.done(now);
        }
        status
    }

    /// `client` has gone (its session closed): its unapplied credentials are dropped, and it no longer owns the
    /// provisioning attempt.
    pub fn forget_client(&mut self, client: ClientId) {
        self.pending.remove(client);
        if self.owner == Some(client) {
            self.owner = None;
        }
    }

    /// Starts a scan for a client choosing a network (ESP's ScanStart); a scan already under way is not
    /// restarted. Allowed only while provisioning waits for credentials.
    pub fn start_scan(&mut self, params: ScanParams) -> Result<(), RequestError> {
        match self.state {
            ProvState::Idle | ProvState::Stopping => Err(RequestError::NotServing),
            ProvState::CredRecv => Err(RequestError::Busy),
            ProvState::Success | ProvState::Fail => Err(RequestError::AlreadyApplied { state: self.state }),
            ProvState::Started => {
                if !self.scan.running {
                    self.start_scan_now(params);
                }
                Ok(())
            }
        }
    }
}
