//! `prov-config`: SetConfig, ApplyConfig, GetStatus (fact sheet §8.4).

use std::time::Instant;

use wifiprov_backend::{Passphrase, Ssid};
use wifiprov_proto::messages::Status;
use wifiprov_proto::messages::config::{self, ConnectedInfo, Request, Response, StationState, StatusReport};

use super::wire_auth;
use crate::action::{Credentials, FailReason};
use crate::manager::{Manager, ProvState, WifiState};

const BSSID_LEN: usize = 6;

impl Manager {
    /// Handles one `prov-config` request. Every outcome is a normal reply; refusals are status codes.
    pub fn handle_config(&mut self, now: Instant, request: &Request) -> Response {
        match request {
            Request::SetConfig(set) => Response::SetConfig(self.set_config(set)),
            Request::ApplyConfig => {
                Response::ApplyConfig(if self.apply(now) { Status::Success } else { Status::InternalError })
            }
            Request::GetStatus => {
                let report = self.status_report();
                if matches!(report.state, Some(StationState::Connected(_))) {
                    self.done(now);
                }
                Response::GetStatus(report)
            }
        }
    }

    fn set_config(&mut self, set: &config::SetConfig) -> Status {
        if self.state != ProvState::Started && self.state != ProvState::Fail {
            // Credentials were applied already: a reset (or reprovision) must come first, as on ESP.
            return Status::InternalError;
        }
        // ESP validates the BSSID length and then ignores BSSID and channel; so do we.
        if !set.bssid.is_empty() && set.bssid.len() != BSSID_LEN {
            return Status::InvalidArgument;
        }
        let Ok(ssid) = Ssid::try_from(set.ssid.clone()) else { return Status::InvalidArgument };
        let passphrase = if set.passphrase.is_empty() {
            None
        } else {
            match Passphrase::from_bytes(set.passphrase.as_bytes().to_vec()) {
                Ok(p) => Some(p),
                Err(_) => return Status::InvalidArgument,
            }
        };
        if self.state == ProvState::Fail {
            // New credentials after a failure: accept them like a reset would.
            if self.reset_on_failure().is_err() {
                return Status::InternalError;
            }
        }
        tracing::info!(ssid = %ssid, "credentials received");
        self.pending = Some(Credentials { ssid, passphrase });
        Status::Success
    }

    fn status_report(&self) -> StatusReport {
        if self.state == ProvState::Idle {
            // ESP answers a status query on a stopped manager with an empty report.
            return StatusReport { status: Status::Success, state: None };
        }
        if self.state == ProvState::Fail {
            // The failure stands until a reset, whatever the policy does with the radio meanwhile.
            let reason = match self.fail_reason() {
                FailReason::AuthError => config::FailReason::AuthError,
                FailReason::NetworkNotFound => config::FailReason::NetworkNotFound,
            };
            return StatusReport { status: Status::Success, state: Some(StationState::Failed(reason)) };
        }
        let state = match &self.wifi {
            WifiState::Disconnected => StationState::Disconnected,
            WifiState::Connecting { attempts_remaining } => {
                StationState::Connecting { attempts_remaining: *attempts_remaining }
            }
            WifiState::Connected(link) => StationState::Connected(ConnectedInfo {
                ip4_addr: link.ip4.to_string(),
                auth_mode: wire_auth(link.auth),
                ssid: link.ssid.as_bytes().to_vec(),
                bssid: link.bssid.octets().to_vec(),
                channel: i32::from(link.channel.get()),
            }),
        };
        StatusReport { status: Status::Success, state: Some(state) }
    }
}
