//! `prov-scan`: ScanStart, ScanStatus, ScanResult (fact sheet §8.5).

use std::time::Duration;

use wifiprov_backend::{ScanMode, ScanParams};
use wifiprov_proto::messages::Status;
use wifiprov_proto::messages::scan::{Request, Response, ScanEntry};

use super::wire_auth;
use crate::manager::{Manager, ManagerError, ProvState};

impl Manager {
    /// Handles one `prov-scan` request. A blocking ScanStart that answers `Success` while
    /// [`Manager::scan_finished`] is false must not be answered until the scan has finished (feed the result
    /// with [`Manager::handle_scan_result`] meanwhile). Out-of-range result pages are refused with an error, as
    /// ESP refuses them by dropping the exchange.
    pub fn handle_scan(&mut self, request: &Request) -> Result<Response, ManagerError> {
        match *request {
            Request::Start { blocking: _, passive, group_channels: _, period_ms } => {
                if self.state != ProvState::Started {
                    return Ok(Response::Start { status: Status::InternalError });
                }
                if !self.scan.running {
                    // Channel grouping exists on ESP so a SoftAP sharing the radio keeps beaconing; our
                    // transports do not share the station radio, so one scan covers every channel.
                    self.start_scan(ScanParams {
                        mode: if passive { ScanMode::Passive } else { ScanMode::Active },
                        per_channel: (period_ms > 0).then(|| Duration::from_millis(u64::from(period_ms))),
                        channels: None,
                    });
                }
                Ok(Response::Start { status: Status::Success })
            }
            Request::Status => Ok(Response::Status {
                status: Status::Success,
                finished: self.scan.finished,
                result_count: u32::try_from(self.scan.results.len()).unwrap_or(u32::MAX),
            }),
            Request::Result { start_index, count } => {
                let max = self.config.scan_max_entries;
                if start_index >= max || count > max - start_index {
                    return Err(ManagerError::InvalidRequest("scan result page out of range"));
                }
                let wanted = (start_index..start_index + count).map(|i| usize::try_from(i).ok());
                let mut entries = Vec::new();
                for index in wanted {
                    match index.and_then(|i| self.scan.results.get(i)) {
                        Some(ap) => entries.push(ScanEntry {
                            ssid: ap.ssid.as_ref().map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
                            channel: u32::from(ap.channel.get()),
                            rssi: i32::from(ap.rssi.dbm()),
                            bssid: ap.bssid.octets().to_vec(),
                            auth: wire_auth(ap.auth),
                        }),
                        // ESP stops at the first missing record and flags the page.
                        None => return Ok(Response::Result { status: Status::InternalError, entries }),
                    }
                }
                Ok(Response::Result { status: Status::Success, entries })
            }
        }
    }
}
