//! A provisioning client over a [`Transport`].

use std::time::Duration;

use wifiprov_proto::endpoint::names;
use wifiprov_proto::messages::{DecodeError, Status, config, ctrl, networks, scan};
use wifiprov_proto::rng::SecureRandom;
use wifiprov_proto::security::{ClientSecurity, ClientSession, SecurityError};
use wifiprov_proto::version::{VersionError, VersionInfo};
use wifiprov_transport_http::TransportError;

use crate::transport::Transport;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The device did not answer (for protocomm: it refused the request).
    #[error("transport")]
    Transport(#[from] TransportError),
    /// The security handshake or an encrypted payload failed.
    #[error("security")]
    Security(#[from] SecurityError),
    /// The device's answer could not be decoded.
    #[error("undecodable answer from {endpoint}")]
    Decode {
        /// The endpoint.
        endpoint: &'static str,
        /// The decoder's error.
        #[source]
        source: DecodeError,
    },
    /// The device answered a different request than the one sent.
    #[error("{endpoint} answered a different request")]
    Mismatch {
        /// The endpoint.
        endpoint: &'static str,
    },
    /// `proto-ver` could not be parsed.
    #[error("version reply")]
    Version(#[from] VersionError),
    /// A call that needs an established session came first.
    #[error("no session: establish one first")]
    NoSession,
    /// The device reported a failure status.
    #[error("device answered {status:?} to {request}")]
    Status {
        /// What was asked.
        request: &'static str,
        /// The status.
        status: Status,
    },
    /// Polling for the connection result took longer than allowed.
    #[error("no final connection state within {0:?}")]
    Timeout(Duration),
    /// The device kept reporting its scan as unfinished for longer than [`SCAN_DEADLINE`].
    #[error("scan not finished within {0:?}")]
    ScanTimeout(Duration),
}

/// How long [`Client::scan`] waits for the device to report its scan finished. A blocking scan is finished when
/// its ScanStart is answered, so this only stops a device that never finishes (found by fuzzing, issue #12).
pub const SCAN_DEADLINE: Duration = Duration::from_secs(60);

/// The most results [`Client::scan`] fetches: ESP-IDF devices keep at most 255 (`WIFI_PROV_SCAN_MAX_ENTRIES`),
/// and a device reporting more must not make the client page on for billions of requests.
pub const MAX_SCAN_RESULTS: u32 = 255;

/// How to poll `prov-config` GetStatus after ApplyConfig: start fast and back off, because most devices
/// connect within a second or two (esp_prov waits a fixed 5 s each time).
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    /// First wait after ApplyConfig.
    pub initial: Duration,
    /// Longest wait between polls.
    pub max: Duration,
    /// Give up after this long.
    pub deadline: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self { initial: Duration::from_millis(50), max: Duration::from_secs(1), deadline: Duration::from_secs(60) }
    }
}

/// The final result of a provisioning attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisionOutcome {
    /// Connected.
    Connected(config::ConnectedInfo),
    /// The device gave up.
    Failed(config::FailReason),
    /// The device reports no connection and no attempt.
    Disconnected,
}

/// A client of one device.
pub struct Client<T> {
    transport: T,
    session: Option<ClientSession>,
}

const VERSION_QUERY: &[u8] = b"---";

impl<T: Transport> Client<T> {
    /// A client on `transport`, with no session yet.
    pub fn new(transport: T) -> Self {
        Self { transport, session: None }
    }

    /// The transport.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Reads `proto-ver`.
    pub async fn version(&mut self) -> Result<VersionInfo, ClientError> {
        let reply = self.transport.request(names::PROTO_VER, VERSION_QUERY).await?;
        Ok(VersionInfo::parse(&reply)?)
    }

    /// Runs the security handshake on `prov-session`.
    pub async fn establish(&mut self, security: ClientSecurity, rng: &mut dyn SecureRandom) -> Result<(), ClientError> {
        let mut session = ClientSession::new(security);
        let mut request = session.start(rng)?;
        loop {
            let response = self.transport.request(names::PROV_SESSION, &request).await?;
            match session.handle_response(&response, rng)? {
                Some(next) => request = next,
                None => break,
            }
        }
        self.session = Some(session);
        Ok(())
    }

    /// Sends `plaintext` to an ordinary endpoint, encrypted with the session, and returns the decrypted reply.
    pub async fn call(&mut self, endpoint: &str, plaintext: &[u8]) -> Result<Vec<u8>, ClientError> {
        let session = self.session.as_mut().ok_or(ClientError::NoSession)?;
        let mut body = plaintext.to_vec();
        session.encrypt(&mut body)?;
        let mut reply = self.transport.request(endpoint, &body).await?;
        let session = self.session.as_mut().ok_or(ClientError::NoSession)?;
        session.decrypt(&mut reply)?;
        Ok(reply)
    }

    async fn config(&mut self, request: config::Request) -> Result<config::Response, ClientError> {
        let reply = self.call(names::PROV_CONFIG, &request.encode()).await?;
        let response = config::Response::decode(&reply)
            .map_err(|source| ClientError::Decode { endpoint: names::PROV_CONFIG, source })?;
        if response.answers(&request) {
            Ok(response)
        } else {
            Err(ClientError::Mismatch { endpoint: names::PROV_CONFIG })
        }
    }

    /// Hands the device credentials (SetConfig). An empty passphrase means an open network.
    pub async fn set_config(&mut self, ssid: &[u8], passphrase: &[u8]) -> Result<(), ClientError> {
        let request = config::Request::SetConfig(config::SetConfig {
            ssid: ssid.to_vec(),
            passphrase: passphrase.into(),
            bssid: Vec::new(),
            channel: 0,
        });
        expect_success("SetConfig", self.config(request).await?.status())
    }

    /// Tells the device to connect with the credentials (ApplyConfig).
    pub async fn apply_config(&mut self) -> Result<(), ClientError> {
        expect_success("ApplyConfig", self.config(config::Request::ApplyConfig).await?.status())
    }

    /// The device's station state (GetStatus).
    pub async fn status(&mut self) -> Result<config::StatusReport, ClientError> {
        match self.config(config::Request::GetStatus).await? {
            config::Response::GetStatus(report) => Ok(report),
            _ => Err(ClientError::Mismatch { endpoint: names::PROV_CONFIG }),
        }
    }

    /// Polls GetStatus until the device connects or gives up. `progress` sees every intermediate report.
    pub async fn wait_for_connection(
        &mut self,
        policy: PollPolicy,
        mut progress: impl FnMut(&config::StatusReport),
    ) -> Result<ProvisionOutcome, ClientError> {
        let started = tokio::time::Instant::now();
        let mut delay = policy.initial;
        loop {
            tokio::time::sleep(delay).await;
            let report = self.status().await?;
            progress(&report);
            match report.state {
                Some(config::StationState::Connected(info)) => return Ok(ProvisionOutcome::Connected(info)),
                Some(config::StationState::Failed(reason)) => return Ok(ProvisionOutcome::Failed(reason)),
                Some(config::StationState::Disconnected) => return Ok(ProvisionOutcome::Disconnected),
                Some(config::StationState::Connecting { .. }) | None => {}
            }
            if started.elapsed() >= policy.deadline {
                return Err(ClientError::Timeout(policy.deadline));
            }
            delay = (delay * 2).min(policy.max);
        }
    }

    /// SetConfig, ApplyConfig, then polls until a final state.
    pub async fn provision(
        &mut self,
        ssid: &[u8],
        passphrase: &[u8],
        policy: PollPolicy,
        progress: impl FnMut(&config::StatusReport),
    ) -> Result<ProvisionOutcome, ClientError> {
        self.set_config(ssid, passphrase).await?;
        self.apply_config().await?;
        self.wait_for_connection(policy, progress).await
    }

    async fn scan_call(&mut self, request: scan::Request) -> Result<scan::Response, ClientError> {
        let reply = self.call(names::PROV_SCAN, &request.encode()).await?;
        let response = scan::Response::decode(&reply)
            .map_err(|source| ClientError::Decode { endpoint: names::PROV_SCAN, source })?;
        if response.answers(&request) {
            Ok(response)
        } else {
            Err(ClientError::Mismatch { endpoint: names::PROV_SCAN })
        }
    }

    /// Runs a blocking scan on the device and reads all results, `page` entries at a time (esp_prov: 100 over
    /// HTTP, 4 over BLE): at most [`MAX_SCAN_RESULTS`], and only if the device reports the scan finished within
    /// [`SCAN_DEADLINE`] ([`ClientError::ScanTimeout`]). A page holding more entries than asked for is
    /// [`ClientError::Mismatch`].
    pub async fn scan(&mut self, page: u32) -> Result<Vec<scan::ScanEntry>, ClientError> {
        let start = scan::Request::Start { blocking: true, passive: false, group_channels: 5, period_ms: 120 };
        expect_success("ScanStart", self.scan_call(start).await?.status())?;
        let started = tokio::time::Instant::now();
        let count = loop {
            match self.scan_call(scan::Request::Status).await? {
                scan::Response::Status { status, finished: true, result_count } => {
                    expect_success("ScanStatus", status)?;
                    break result_count;
                }
                scan::Response::Status { status, .. } => {
                    expect_success("ScanStatus", status)?;
                    if started.elapsed() >= SCAN_DEADLINE {
                        return Err(ClientError::ScanTimeout(SCAN_DEADLINE));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => return Err(ClientError::Mismatch { endpoint: names::PROV_SCAN }),
            }
        };
        let count = count.min(MAX_SCAN_RESULTS);
        let mut entries = Vec::new();
        let page = page.max(1);
        let mut start_index = 0;
        while start_index < count {
            let wanted = page.min(count - start_index);
            match self.scan_call(scan::Request::Result { start_index, count: wanted }).await? {
                scan::Response::Result { status, entries: got } => {
                    expect_success("ScanResult", status)?;
                    if got.len() > usize::try_from(wanted).unwrap_or(usize::MAX) {
                        return Err(ClientError::Mismatch { endpoint: names::PROV_SCAN });
                    }
                    entries.extend(got);
                }
                _ => return Err(ClientError::Mismatch { endpoint: names::PROV_SCAN }),
            }
            start_index += wanted;
        }
        Ok(entries)
    }

    async fn ctrl(&mut self, request: ctrl::Request, name: &'static str) -> Result<(), ClientError> {
        let reply = self.call(names::PROV_CTRL, &request.encode()).await?;
        let response = ctrl::Response::decode(&reply)
            .map_err(|source| ClientError::Decode { endpoint: names::PROV_CTRL, source })?;
        if !response.answers(&request) {
            return Err(ClientError::Mismatch { endpoint: names::PROV_CTRL });
        }
        expect_success(name, response.status())
    }

    /// Resets the device's provisioning state after a failed attempt (`prov-ctrl` reset).
    pub async fn reset(&mut self) -> Result<(), ClientError> {
        self.ctrl(ctrl::Request::Reset, "CtrlReset").await
    }

    /// Asks the device to reopen provisioning (`prov-ctrl` reprov).
    pub async fn reprov(&mut self) -> Result<(), ClientError> {
        self.ctrl(ctrl::Request::Reprov, "CtrlReprov").await
    }

    /// Sends one request to wifiprov's `prov-networks` endpoint (devices list it under the
    /// [`networks::APP_LABEL`] label of `proto-ver`). The answer comes back whatever its status: `Full`,
    /// `NotFound` or `ConnectFailed` are answers for the caller to report, not transport failures.
    pub async fn networks(&mut self, request: &networks::Request) -> Result<networks::Response, ClientError> {
        let reply = self.call(names::PROV_NETWORKS, &request.encode()).await?;
        let response = networks::Response::decode(&reply)
            .map_err(|source| ClientError::Decode { endpoint: names::PROV_NETWORKS, source })?;
        if !response.answers(request) {
            return Err(ClientError::Mismatch { endpoint: names::PROV_NETWORKS });
        }
        Ok(response)
    }
}

fn expect_success(request: &'static str, status: Status) -> Result<(), ClientError> {
    if status.is_success() { Ok(()) } else { Err(ClientError::Status { request, status }) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::future::Future;

    use wifiprov_proto::messages::{AuthMode, Status};

    use super::*;

    /// A device that gives `answers` in order and then repeats the last one for good, counting requests.
    struct Stuck {
        answers: Vec<Vec<u8>>,
        requests: usize,
    }

    impl Transport for Stuck {
        fn request(&mut self, _: &str, _: &[u8]) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send {
            let answer = self.answers[self.requests.min(self.answers.len() - 1)].clone();
            self.requests += 1;
            std::future::ready(Ok(answer))
        }
    }

    fn client(answers: Vec<Vec<u8>>) -> Client<Stuck> {
        Client { transport: Stuck { answers, requests: 0 }, session: Some(ClientSession::new(ClientSecurity::sec0())) }
    }

    fn entry() -> scan::ScanEntry {
        scan::ScanEntry {
            ssid: b"ap".to_vec(),
            channel: 6,
            rssi: -40,
            bssid: vec![2, 0, 0, 0, 0, 1],
            auth: AuthMode::Open,
        }
    }

    /// Found by the `client` fuzz target: a device that answers every ScanStatus with "not finished" kept `scan`
    /// polling forever. The fuzz input, for `fuzz/target/.../client`:
    /// `0101000080070052050801aa01000701000180040008015a0082040008036a00`.
    #[tokio::test(start_paused = true)]
    async fn r12_scan_gives_up_on_a_device_that_never_finishes() {
        let start = hex_bytes("08015a00");
        let unfinished = hex_bytes("08036a00");
        assert_eq!(
            scan::Response::decode(&unfinished).unwrap(),
            scan::Response::Status { status: Status::Success, finished: false, result_count: 0 }
        );
        let mut client = client(vec![start, unfinished]);
        let error = client.scan(1).await.unwrap_err();
        assert!(matches!(error, ClientError::ScanTimeout(d) if d == SCAN_DEADLINE), "{error:?}");
        assert!(client.transport.requests < 1000, "{} requests", client.transport.requests);
    }

    /// A device reporting billions of results, each page answered, made `scan` page on for billions of requests
    /// and collect every entry.
    #[tokio::test(start_paused = true)]
    async fn r12_scan_fetches_at_most_255_results() {
        let finished = scan::Response::Status { status: Status::Success, finished: true, result_count: u32::MAX };
        let page = scan::Response::Result { status: Status::Success, entries: vec![entry()] };
        let mut client =
            client(vec![scan::Response::Start { status: Status::Success }.encode(), finished.encode(), page.encode()]);
        let entries = client.scan(1).await.unwrap();
        assert_eq!(entries.len(), MAX_SCAN_RESULTS as usize);
        assert_eq!(client.transport.requests, 2 + MAX_SCAN_RESULTS as usize);
    }

    #[tokio::test(start_paused = true)]
    async fn r12_scan_refuses_a_page_larger_than_asked() {
        let finished = scan::Response::Status { status: Status::Success, finished: true, result_count: 2 };
        let page = scan::Response::Result { status: Status::Success, entries: vec![entry(); 1000] };
        let mut client =
            client(vec![scan::Response::Start { status: Status::Success }.encode(), finished.encode(), page.encode()]);
        let error = client.scan(1).await.unwrap_err();
        assert!(matches!(error, ClientError::Mismatch { endpoint: names::PROV_SCAN }), "{error:?}");
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }
}
