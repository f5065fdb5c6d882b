//! `prov-scan`: ScanStart, ScanStatus, ScanResult (fact sheet §8.5).

use std::time::Duration;

use wifiprov_backend::{ScanMode, ScanParams};
use wifiprov_proto::endpoint::{EndpointHandler, HandlerError, HandlerFuture, Plaintext, SessionId};
use wifiprov_proto::messages::scan::{Request, Response, ScanEntry};
use wifiprov_proto::messages::{AuthMode, Status};
use wifiprov_service::WeakProvisioner;

use super::{malformed, provisioner};

pub(super) struct Scan {
    pub(super) provisioner: WeakProvisioner,
    /// At most this many results are served (`WIFI_PROV_SCAN_MAX_ENTRIES`); pages beyond are refused.
    pub(super) max_entries: u32,
}

impl EndpointHandler for Scan {
    fn handle(&self, _session: Option<SessionId>, request: Plaintext) -> HandlerFuture {
        let (weak, max) = (self.provisioner.clone(), self.max_entries);
        Box::pin(async move {
            let request = Request::decode(&request).map_err(malformed)?;
            let provisioner = provisioner(&weak)?;
            let response = match request {
                Request::Start { blocking, passive, group_channels: _, period_ms } => {
                    // Channel grouping exists on ESP so a SoftAP sharing the radio keeps beaconing; our
                    // transports do not share the station radio, so one scan covers every channel.
                    let params = ScanParams {
                        mode: if passive { ScanMode::Passive } else { ScanMode::Active },
                        per_channel: (period_ms > 0).then(|| Duration::from_millis(u64::from(period_ms))),
                        channels: None,
                    };
                    let status = match provisioner.start_scan(params).await {
                        Err(error) => {
                            tracing::debug!(%error, "scan refused");
                            Status::InternalError
                        }
                        // ESP answers a blocking ScanStart only once the scan is over.
                        Ok(()) if blocking && !provisioner.wait_scan().await => Status::InternalError,
                        Ok(()) => Status::Success,
                    };
                    Response::Start { status }
                }
                Request::Status => {
                    let scan = provisioner.scan().await;
                    let result_count = u32::try_from(scan.results.len()).unwrap_or(u32::MAX);
                    Response::Status { status: Status::Success, finished: scan.finished, result_count }
                }
                Request::Result { start_index, count } => {
                    if start_index >= max || count > max - start_index {
                        // ESP refuses these by dropping the exchange.
                        return Err(HandlerError::Rejected(format!(
                            "scan result page {start_index}+{count} is beyond {max} entries"
                        )));
                    }
                    let results = provisioner.scan().await.results;
                    let mut entries = Vec::new();
                    let mut status = Status::Success;
                    for index in start_index..start_index + count {
                        match usize::try_from(index).ok().and_then(|i| results.get(i)) {
                            Some(ap) => entries.push(ScanEntry {
                                ssid: ap.ssid.as_ref().map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
                                channel: u32::from(ap.channel.get()),
                                rssi: i32::from(ap.rssi.dbm()),
                                bssid: ap.bssid.octets().to_vec(),
                                auth: AuthMode::from(i32::from(ap.auth.esp_code())),
                            }),
                            // ESP stops at the first missing record and flags the page.
                            None => {
                                status = Status::InternalError;
                                break;
                            }
                        }
                    }
                    Response::Result { status, entries }
                }
            };
            Ok(response.encode())
        })
    }
}
