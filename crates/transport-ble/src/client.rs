//! The client half: find a provisioning device by its advertised name, connect, map its endpoints by their
//! 0x2901 descriptors, and exchange requests the ESP way (write request, then read the same characteristic).
//!
//! Long values need nothing from this layer: BlueZ sends a write longer than the MTU allows as a long write
//! (Prepare Write + Execute Write) and reads a long value with Read Blob until a short piece, and hands over the
//! whole value either way.

use std::fmt;
use std::time::Duration;

use bluer::gatt::WriteOp;
use bluer::gatt::remote::{Characteristic, CharacteristicWriteRequest, Service};
use bluer::{Adapter, AdapterEvent, Address, DiscoveryFilter, DiscoveryTransport, ErrorKind, InternalErrorKind};
use futures_util::StreamExt as _;
use tracing::{debug, info};
use wifiprov_proto::endpoint::names;

use crate::layout::{EndpointMap, LayoutError};
use crate::server::USER_DESCRIPTION;
use crate::uuid::{ESP_EXAMPLE_SERVICE, Uuid, WIFI_PROV_MGR_SERVICE};

/// Where and how long to look for the device.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BleClientConfig {
    /// The adapter to use (`hci1`); the default adapter when `None`.
    pub adapter: Option<String>,
    /// How long to scan for the device's advertisement.
    pub discovery_timeout: Duration,
    /// How long connecting and discovering its GATT services may take.
    pub connect_timeout: Duration,
    /// How long one request (write and read back) may take. A security 2 step costs a small device a few
    /// hundred milliseconds of arithmetic.
    pub request_timeout: Duration,
}

impl Default for BleClientConfig {
    fn default() -> Self {
        Self {
            adapter: None,
            discovery_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a BLE exchange with a device failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BleError {
    /// BlueZ is not reachable on the system D-Bus (no `bluetoothd`, no bus, no permission).
    #[error("cannot reach BlueZ on the system D-Bus")]
    Bus(#[source] bluer::Error),
    /// The adapter does not exist or cannot be powered on.
    #[error("cannot use Bluetooth adapter {adapter}")]
    Adapter {
        /// The adapter name, or `default`.
        adapter: String,
        /// BlueZ's error.
        #[source]
        source: bluer::Error,
    },
    /// Scanning could not start.
    #[error("cannot scan on Bluetooth adapter {adapter}")]
    Discovery {
        /// The adapter name.
        adapter: String,
        /// BlueZ's error.
        #[source]
        source: bluer::Error,
    },
    /// No device advertised the name before the discovery timeout.
    #[error("no device named {name:?} advertising found within {}s", after.as_secs_f32())]
    NotFound {
        /// The name looked for.
        name: String,
        /// The discovery timeout.
        after: Duration,
    },
    /// The connection attempt failed.
    #[error("cannot connect to {name} ({address})")]
    Connect {
        /// The device name.
        name: String,
        /// The device address.
        address: Address,
        /// BlueZ's error.
        #[source]
        source: bluer::Error,
    },
    /// Connecting, or discovering the GATT services, took longer than the connect timeout.
    #[error("connecting to {name} ({address}) timed out after {}s", after.as_secs_f32())]
    ConnectTimeout {
        /// The device name.
        name: String,
        /// The device address.
        address: Address,
        /// The connect timeout.
        after: Duration,
    },
    /// No GATT service of the device carries the provisioning endpoints.
    #[error("{name} ({address}) has no provisioning service")]
    NoService {
        /// The device name.
        name: String,
        /// The device address.
        address: Address,
        /// The last error met while reading a service's descriptors, if any.
        #[source]
        source: Option<bluer::Error>,
    },
    /// The provisioning service's endpoint descriptions are unusable (a required endpoint missing, a name twice).
    #[error("{name} ({address}) has an unusable provisioning service")]
    Layout {
        /// The device name.
        name: String,
        /// The device address.
        address: Address,
        /// What is wrong.
        #[source]
        source: LayoutError,
    },
    /// The device has no characteristic for the endpoint.
    #[error("{endpoint}: {name} has no such endpoint")]
    UnknownEndpoint {
        /// The device name.
        name: String,
        /// The endpoint asked for.
        endpoint: String,
    },
    /// The device answered the write with an error: how protocomm devices refuse a request (bad handshake
    /// message, wrong proof of possession, decryption failure, handler error).
    #[error("{endpoint}: {name} refused the request")]
    Refused {
        /// The device name.
        name: String,
        /// The endpoint.
        endpoint: String,
        /// BlueZ's error.
        #[source]
        source: bluer::Error,
    },
    /// The device refuses handshakes for a while after repeated wrong proofs of possession or passwords (an
    /// ATT "not authorized" error on the security endpoint; over HTTP the device also says for how long).
    #[error("{endpoint}: {name} refuses handshakes for now after repeated wrong proofs; try again later")]
    Locked {
        /// The device name.
        name: String,
        /// The endpoint.
        endpoint: String,
    },
    /// The response could not be read back.
    #[error("{endpoint}: cannot read the response from {name}")]
    Read {
        /// The device name.
        name: String,
        /// The endpoint.
        endpoint: String,
        /// BlueZ's error.
        #[source]
        source: bluer::Error,
    },
    /// The link went down (the device disconnected, or [`BleClient::close`] was called). A protocomm session
    /// belongs to its link, so the client must connect again and start over.
    #[error("{endpoint}: {name} is not connected")]
    Disconnected {
        /// The device name.
        name: String,
        /// The endpoint.
        endpoint: String,
    },
    /// The exchange took longer than the request timeout.
    #[error("{endpoint}: no response from {name} within {}s", after.as_secs_f32())]
    Timeout {
        /// The device name.
        name: String,
        /// The endpoint.
        endpoint: String,
        /// The request timeout.
        after: Duration,
    },
    /// Disconnecting failed.
    #[error("cannot disconnect from {name}")]
    Disconnect {
        /// The device name.
        name: String,
        /// BlueZ's error.
        #[source]
        source: bluer::Error,
    },
}

/// One BLE link to a provisioning device, carrying protocomm requests.
///
/// Close it with [`BleClient::close`]: BlueZ keeps an LE link up after the program that asked for it is gone,
/// and an ESP device does not advertise (so nobody else can reach it) while a link is up. Dropping an open
/// client asks for the disconnect in a background task, which runs only if the async runtime lives on.
pub struct BleClient {
    name: String,
    device: bluer::Device,
    endpoints: EndpointMap,
    characteristics: Vec<(String, Characteristic)>,
    config: BleClientConfig,
    state: LinkState,
    // Keeps the D-Bus connection up for as long as the client lives.
    _session: bluer::Session,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Connected,
    /// The link went down, or was closed: requests fail without touching the radio.
    Down,
}

impl BleClient {
    /// Scans for a device advertising `name`, connects to it and maps its provisioning endpoints.
    pub async fn connect(name: &str, config: BleClientConfig) -> Result<Self, BleError> {
        let session = bluer::Session::new().await.map_err(BleError::Bus)?;
        let adapter = match &config.adapter {
            Some(adapter) => session.adapter(adapter),
            None => session.default_adapter().await,
        }
        .map_err(|source| BleError::Adapter { adapter: adapter_label(&config), source })?;
        adapter
            .set_powered(true)
            .await
            .map_err(|source| BleError::Adapter { adapter: adapter_label(&config), source })?;
        let device = discover(&adapter, name, config.discovery_timeout).await?;
        let address = device.address();
        info!(%name, %address, adapter = adapter.name(), "found the device; connecting");
        let connected = tokio::time::timeout(config.connect_timeout, async {
            match device.connect().await {
                // Left connected by an earlier client (a run that crashed): the link is as good as a new one,
                // except that the device may still hold that client's session.
                Err(e) if e.kind == ErrorKind::AlreadyConnected => debug!("already connected"),
                Err(source) => return Err(BleError::Connect { name: name.to_owned(), address, source }),
                Ok(()) => {}
            }
            endpoints(&device, name).await
        })
        .await;
        let (endpoints, characteristics) = match connected {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                disconnect_quietly(&device).await;
                return Err(e);
            }
            Err(_) => {
                disconnect_quietly(&device).await;
                return Err(BleError::ConnectTimeout { name: name.to_owned(), address, after: config.connect_timeout });
            }
        };
        debug!(endpoints = ?endpoints.names().collect::<Vec<_>>(), "endpoints");
        Ok(Self {
            name: name.to_owned(),
            device,
            endpoints,
            characteristics,
            config,
            state: LinkState::Connected,
            _session: session,
        })
    }

    /// Sends `body` to `endpoint` (a write request) and returns the device's response (a read of the same
    /// characteristic).
    pub async fn request(&mut self, endpoint: &str, body: &[u8]) -> Result<Vec<u8>, BleError> {
        if self.state == LinkState::Down {
            return Err(self.disconnected(endpoint));
        }
        let characteristic = self
            .characteristics
            .iter()
            .find(|(name, _)| name == endpoint)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| BleError::UnknownEndpoint { name: self.name.clone(), endpoint: endpoint.to_owned() })?;
        let write = CharacteristicWriteRequest { op_type: WriteOp::Request, ..CharacteristicWriteRequest::default() };
        let exchange = async {
            if let Err(e) = characteristic.write_ext(body, &write).await {
                return Err(self.failure(endpoint, e, Step::Write).await);
            }
            match characteristic.read().await {
                Ok(response) => Ok(response),
                Err(e) => Err(self.failure(endpoint, e, Step::Read).await),
            }
        };
        let result = match tokio::time::timeout(self.config.request_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(BleError::Timeout {
                name: self.name.clone(),
                endpoint: endpoint.to_owned(),
                after: self.config.request_timeout,
            }),
        };
        match &result {
            Ok(response) => debug!(endpoint, len = body.len(), response = response.len(), "exchanged"),
            Err(BleError::Disconnected { .. }) => self.state = LinkState::Down,
            Err(_) => {}
        }
        result
    }

    /// The device's endpoints, as its 0x2901 descriptors name them.
    pub fn endpoints(&self) -> &EndpointMap {
        &self.endpoints
    }

    /// The device's Bluetooth address.
    pub fn address(&self) -> Address {
        self.device.address()
    }

    /// The advertised name the device was found by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A handle that can end this link from elsewhere, also after the client is gone.
    pub fn link(&self) -> BleLink {
        BleLink { name: self.name.clone(), device: self.device.clone() }
    }

    /// Disconnects. Later requests fail with [`BleError::Disconnected`]; closing again does nothing.
    pub async fn close(&mut self) -> Result<(), BleError> {
        if self.state == LinkState::Down {
            return Ok(());
        }
        self.state = LinkState::Down;
        self.link().close().await
    }

    fn disconnected(&self, endpoint: &str) -> BleError {
        BleError::Disconnected { name: self.name.clone(), endpoint: endpoint.to_owned() }
    }

    /// Sorts a failed write or read: the bus gone, the link gone, or the device's own refusal.
    async fn failure(&self, endpoint: &str, error: bluer::Error, step: Step) -> BleError {
        if matches!(error.kind, ErrorKind::Internal(InternalErrorKind::DBusConnectionLost)) {
            return BleError::Bus(error);
        }
        // BlueZ reports a request on a dropped link as a plain failure: ask whether the link is still up.
        if !self.device.is_connected().await.unwrap_or(false) {
            return self.disconnected(endpoint);
        }
        let (name, endpoint) = (self.name.clone(), endpoint.to_owned());
        match step {
            Step::Write if matches!(error.kind, ErrorKind::NotAuthorized) => BleError::Locked { name, endpoint },
            Step::Write => BleError::Refused { name, endpoint, source: error },
            Step::Read => BleError::Read { name, endpoint, source: error },
        }
    }
}

#[derive(Clone, Copy)]
enum Step {
    Write,
    Read,
}

impl fmt::Debug for BleClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BleClient")
            .field("name", &self.name)
            .field("address", &self.device.address())
            .field("endpoints", &self.endpoints)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Drop for BleClient {
    fn drop(&mut self) {
        if self.state == LinkState::Down {
            return;
        }
        // Best effort only (see the type's documentation): without a runtime, or if it shuts down first, the
        // link stays up until the device or BlueZ drops it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let link = self.link();
            runtime.spawn(async move {
                if let Err(e) = link.close().await {
                    debug!(error = %e, "disconnect on drop failed");
                }
            });
        }
    }
}

/// A handle to a [`BleClient`]'s link, to end it from elsewhere (for example once a command finishes, whatever
/// became of the client).
#[derive(Clone)]
pub struct BleLink {
    name: String,
    device: bluer::Device,
}

impl BleLink {
    /// Disconnects the device, unless it is disconnected already.
    pub async fn close(&self) -> Result<(), BleError> {
        if !self.device.is_connected().await.unwrap_or(true) {
            return Ok(());
        }
        self.device.disconnect().await.map_err(|source| BleError::Disconnect { name: self.name.clone(), source })?;
        debug!(name = %self.name, address = %self.device.address(), "disconnected");
        Ok(())
    }
}

impl fmt::Debug for BleLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BleLink").field("name", &self.name).field("address", &self.device.address()).finish()
    }
}

fn adapter_label(config: &BleClientConfig) -> String {
    config.adapter.clone().unwrap_or_else(|| "default".to_owned())
}

/// Scans until a device advertising `name` shows up.
async fn discover(adapter: &Adapter, name: &str, timeout: Duration) -> Result<bluer::Device, BleError> {
    let scan_error = |source| BleError::Discovery { adapter: adapter.name().to_owned(), source };
    // BlueZ merges the filters of all programs scanning at the time, so others may widen it; names decide below.
    let filter = DiscoveryFilter { transport: DiscoveryTransport::Le, ..DiscoveryFilter::default() };
    adapter.set_discovery_filter(filter).await.map_err(scan_error)?;
    // Each change of a device's properties is reported again, so a device whose name arrives after its first
    // report (in a scan response) is not missed.
    let mut events = std::pin::pin!(adapter.discover_devices_with_changes().await.map_err(scan_error)?);
    debug!(%name, adapter = adapter.name(), "scanning");
    let search = async {
        while let Some(event) = events.next().await {
            let AdapterEvent::DeviceAdded(address) = event else { continue };
            let Ok(device) = adapter.device(address) else { continue };
            if advertises(&device, name).await {
                return Some(device);
            }
        }
        None
    };
    match tokio::time::timeout(timeout, search).await {
        Ok(Some(device)) => Ok(device),
        Ok(None) | Err(_) => Err(BleError::NotFound { name: name.to_owned(), after: timeout }),
    }
}

/// Whether `device` is advertising `name` now. BlueZ also lists devices it remembers from earlier scans, in range
/// or not; only those with a signal strength from this scan (or already connected) count.
async fn advertises(device: &bluer::Device, name: &str) -> bool {
    if device.name().await.ok().flatten().as_deref() != Some(name) {
        return false;
    }
    device.rssi().await.ok().flatten().is_some() || device.is_connected().await.unwrap_or(false)
}

/// The provisioning service's endpoints: name to characteristic, from their 0x2901 descriptors.
///
/// A device may have several services; the ones it advertises and the two UUIDs ESP uses are tried first, and a
/// service qualifies when its descriptors name `prov-session` or `proto-ver` (the service UUID is the
/// application's choice, so the names decide, as in esp_prov and the phone apps).
async fn endpoints(
    device: &bluer::Device,
    name: &str,
) -> Result<(EndpointMap, Vec<(String, Characteristic)>), BleError> {
    let address = device.address();
    let services =
        device.services().await.map_err(|source| BleError::Connect { name: name.to_owned(), address, source })?;
    let advertised = device.uuids().await.ok().flatten().unwrap_or_default();
    let mut ranked = Vec::with_capacity(services.len());
    for service in services {
        let uuid = service.uuid().await.ok();
        let preferred = uuid.is_some_and(|u| {
            advertised.contains(&u) || [ESP_EXAMPLE_SERVICE, WIFI_PROV_MGR_SERVICE].contains(&Uuid(u.into_bytes()))
        });
        ranked.push((!preferred, service));
    }
    // Stable: among equals, BlueZ's order.
    ranked.sort_by_key(|(rank, _)| *rank);
    let mut last_error = None;
    for (_, service) in ranked {
        match described(&service).await {
            Ok(found) if found.iter().any(|(n, _, _)| n == names::PROV_SESSION || n == names::PROTO_VER) => {
                let map = EndpointMap::from_descriptors(found.iter().map(|(n, u, _)| (*u, n.as_bytes())))
                    .map_err(|source| BleError::Layout { name: name.to_owned(), address, source })?;
                let characteristics = found.into_iter().map(|(n, _, c)| (n, c)).collect();
                return Ok((map, characteristics));
            }
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "cannot read the descriptors of a service; skipping it");
                last_error = Some(e);
            }
        }
    }
    Err(BleError::NoService { name: name.to_owned(), address, source: last_error })
}

/// The characteristics of `service` that carry a user description, with that description.
async fn described(service: &Service) -> Result<Vec<(String, Uuid, Characteristic)>, bluer::Error> {
    let mut found = Vec::new();
    for characteristic in service.characteristics().await? {
        for descriptor in characteristic.descriptors().await? {
            if descriptor.uuid().await? != USER_DESCRIPTION {
                continue;
            }
            let value = descriptor.read().await?;
            // Some stacks end the name with a NUL; a name that is not text cannot be an endpoint.
            let text = value.strip_suffix(&[0]).unwrap_or(&value);
            if let Ok(endpoint) = std::str::from_utf8(text) {
                found.push((endpoint.to_owned(), Uuid(characteristic.uuid().await?.into_bytes()), characteristic));
            }
            break;
        }
    }
    Ok(found)
}

/// Disconnects after a failed connection attempt; the failure that led here is what gets reported.
async fn disconnect_quietly(device: &bluer::Device) {
    match tokio::time::timeout(Duration::from_secs(5), device.disconnect()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "disconnect after a failed connection attempt failed"),
        Err(_) => debug!("disconnect after a failed connection attempt timed out"),
    }
}
