//! The device half: ESP's GATT service registered with BlueZ, an LE advertisement, and every write run through
//! protocomm. It only moves bytes and maps links to sessions; protocomm decides everything else.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bluer::adv::{Advertisement, AdvertisementHandle, Type as AdvertisementType};
use bluer::gatt::local::{
    Application, ApplicationHandle, Characteristic, CharacteristicRead, CharacteristicReadRequest, CharacteristicWrite,
    CharacteristicWriteMethod, CharacteristicWriteRequest, Descriptor, DescriptorRead, DescriptorReadRequest, ReqError,
    Service,
};
use bluer::{Adapter, Address, DeviceEvent, DeviceProperty};
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{Instrument as _, debug, error, info, info_span, warn};
use wifiprov_dispatch::{Dispatcher, Request};
use wifiprov_proto::endpoint::{Peer, ProtocommError, SessionId};

use crate::layout::{DeviceLayout, LayoutError, is_standard_endpoint, read_at_offset};
use crate::link::Links;
use crate::uuid::{ESP_EXAMPLE_SERVICE, Uuid};

/// Longest advertised name: ESP truncates `service_name` to 29 bytes (`MAX_BLE_DEVNAME_LEN`), what fits a scan
/// response next to its header.
pub const MAX_NAME_LEN: usize = 29;

/// Largest attribute value BLE allows; BlueZ refuses longer writes itself.
const MAX_VALUE_LEN: usize = 512;

/// The smallest ATT MTU of an LE link. A request claiming less is taken to mean "unknown".
const MIN_ATT_MTU: u16 = 23;

/// The 0x2901 Characteristic User Description descriptor, which carries each endpoint's name.
pub(crate) const USER_DESCRIPTION: bluer::Uuid = bluer::Uuid::from_u128(0x0000_2901_0000_1000_8000_0080_5f9b_34fb);

/// How long disconnecting one link may take (after a refusal, or at shutdown).
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the device advertises and serves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BleConfig {
    /// The advertised local name (ESP: `service_name`, by convention `PROV_` and three bytes of the MAC in
    /// hex). 1 to [`MAX_NAME_LEN`] bytes.
    pub name: String,
    /// The primary service UUID. Characteristic UUIDs are derived from it (fact sheet §7.1).
    pub service: Uuid,
}

impl BleConfig {
    /// Advertises `name` with the service UUID of ESP-IDF's provisioning example (`021a9004-…`), which esp_prov
    /// also falls back to.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), service: ESP_EXAMPLE_SERVICE }
    }
}

/// Why the BLE service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The name cannot be advertised.
    #[error("cannot advertise the name {name:?}: it must be 1 to {MAX_NAME_LEN} bytes")]
    InvalidName {
        /// The name as configured.
        name: String,
    },
    /// The protocomm endpoints do not fit ESP's layout.
    #[error("cannot lay out the GATT service")]
    Layout(#[source] LayoutError),
    /// The adapter could not be powered on.
    #[error("cannot power on Bluetooth adapter {adapter}")]
    Power {
        /// The adapter name (`hci0`).
        adapter: String,
        /// BlueZ's error.
        #[source]
        source: bluer::Error,
    },
    /// BlueZ refused the GATT application.
    #[error("cannot register the GATT service on Bluetooth adapter {adapter}")]
    Register {
        /// The adapter name.
        adapter: String,
        /// BlueZ's error.
        #[source]
        source: bluer::Error,
    },
    /// BlueZ refused the advertisement.
    #[error("cannot advertise on Bluetooth adapter {adapter}")]
    Advertise {
        /// The adapter name.
        adapter: String,
        /// BlueZ's error.
        #[source]
        source: bluer::Error,
    },
}

/// What the server shares between requests: the device's dispatcher (protocomm endpoints and sessions, shared
/// with every other transport), the per-link state and the configuration.
///
/// The links lock is held only for short synchronous steps, never across an `.await`.
pub struct Device {
    dispatcher: Arc<Dispatcher>,
    links: Mutex<Links<Address>>,
    config: BleConfig,
}

/// The dispatcher's name for a Bluetooth peer: its 48-bit device address, which as a number lies in a range of
/// IPv6 addresses (`::/80`) that no host uses, so it never collides with an HTTP peer.
fn peer_of(address: Address) -> Peer {
    let mut bytes = [0u8; 16];
    bytes[10..].copy_from_slice(&address.0);
    Peer::new(u128::from_be_bytes(bytes))
}

impl Device {
    /// A device serving `dispatcher`'s endpoints over BLE.
    ///
    /// The GATT service is laid out from the endpoints the dispatcher has when [`serve`] starts (ESP creates its
    /// endpoints before starting the transport too); handlers may be registered later.
    pub fn new(dispatcher: Arc<Dispatcher>, config: BleConfig) -> Self {
        Self { dispatcher, links: Mutex::new(Links::new()), config }
    }

    /// The dispatcher this device serves.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// The configuration.
    pub fn config(&self) -> &BleConfig {
        &self.config
    }

    fn lock_links(&self) -> MutexGuard<'_, Links<Address>> {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A read of `endpoint`'s characteristic by `peer`.
    fn read(&self, peer: Address, endpoint: &str, offset: u16, mtu: u16) -> Result<Vec<u8>, ReqError> {
        self.lock_links().read(peer, endpoint, usize::from(offset), usize::from(mtu.max(MIN_ATT_MTU))).map_err(|e| {
            debug!(%peer, endpoint, error = %e, "read refused");
            ReqError::InvalidOffset
        })
    }

    /// Forgets `peer`'s link and closes its session.
    fn unlink(&self, peer: Address) {
        let session = self.lock_links().forget(peer);
        if let Some(session) = session {
            self.dispatcher.close_session(session);
        }
        debug!(%peer, ?session, "link closed");
    }

    /// Forgets every link and closes their sessions.
    fn unlink_all(&self) {
        let sessions = self.lock_links().forget_all();
        for session in sessions {
            self.dispatcher.close_session(session);
        }
    }

    /// The link now runs in `session`, opened by its last request: the dispatcher learns that a live link carries
    /// it, and a session the link held before (evicted meanwhile) is let go.
    fn bind(&self, peer: Address, session: SessionId) {
        let replaced = self.lock_links().set_session(peer, session);
        self.dispatcher.attach(session);
        if let Some(old) = replaced.filter(|old| *old != session) {
            self.dispatcher.close_session(old);
        }
    }

    /// A write of `body` to `endpoint`'s characteristic by `peer`.
    async fn write(
        self: Arc<Self>,
        peer: Address,
        endpoint: Arc<str>,
        body: Vec<u8>,
        offset: u16,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<(), ReqError> {
        let span = info_span!("ble_link", %peer);
        async move {
            if offset != 0 {
                warn!(%endpoint, offset, "write at a non-zero offset refused (expected BlueZ to reassemble it)");
                return Err(ReqError::InvalidOffset);
            }
            if body.is_empty() || body.len() > MAX_VALUE_LEN {
                debug!(%endpoint, len = body.len(), "write of unacceptable length refused");
                return Err(ReqError::InvalidValueLength);
            }
            let (known, claim) = {
                let mut links = self.lock_links();
                let known = links.contains(peer);
                // The previous response goes even if this request fails: a failed write leaves nothing to read.
                links.open(peer);
                links.clear(peer, &endpoint);
                (known, links.session(peer))
            };
            if !known {
                // A new link: the server watches for its disconnect. Sending fails only once the server stopped.
                let _ = events.send(Event::Linked(peer));
            }
            let len = body.len();
            let request = Request { peer: peer_of(peer), claim, endpoint: endpoint.to_string(), body };
            let answer = self.dispatcher.dispatch(request, "disconnecting").await;
            match answer.result {
                Ok(response) => {
                    if answer.opened
                        && let Some(session) = answer.session
                    {
                        self.bind(peer, session);
                    }
                    let mut links = self.lock_links();
                    // The link may have gone (disconnect) while the request ran: nobody is left to read the response.
                    let gone = !links.contains(peer) || answer.session.is_some_and(|s| links.session(peer) != Some(s));
                    if gone {
                        debug!(%endpoint, "link closed during the request; response dropped");
                        return Err(ReqError::Failed);
                    }
                    debug!(%endpoint, len, response = response.len(), "answered");
                    links.store(peer, &endpoint, response);
                    Ok(())
                }
                Err(ProtocommError::LockedOut { .. } | ProtocommError::ProofInFlight { .. }) => {
                    // The one refusal a client is told about (HTTP: 429), as is a proof refused while another is
                    // checked. ATT has no room for the wait, so "not authorized" stands for it; the link stays, as
                    // nothing on it misbehaved.
                    Err(ReqError::NotAuthorized)
                }
                Err(_) => {
                    // Already logged by the dispatcher. Like Bluedroid: an ATT error, then the link goes.
                    self.unlink(peer);
                    let _ = events.send(Event::Refused(peer));
                    Err(ReqError::Failed)
                }
            }
        }
        .instrument(span)
        .await
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("dispatcher", &self.dispatcher)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What request handlers tell the server loop.
#[derive(Debug)]
enum Event {
    /// A peer wrote for the first time since it connected: watch for its disconnect.
    Linked(Address),
    /// A peer's request was refused: disconnect it.
    Refused(Address),
}

/// What a background task of the server loop finished.
enum Done {
    /// A watched peer disconnected (or its device object went away).
    Disconnected(Address),
    /// A disconnect the server asked for completed.
    Dropped,
}

/// Serves protocomm over BLE on `adapter` until `shutdown` completes: powers the adapter on, registers the GATT
/// service in ESP's layout (one Read|Write characteristic per protocomm endpoint, each with a 0x2901 descriptor
/// holding its name) and advertises the configured name with the service UUID.
///
/// Per link (peer device address), as an ESP device per connection (fact sheet §7.3):
///
/// - The link's first write to `prov-session` opens a protocomm session for it; later writes run in it
///   (`proto-ver` needs none). A disconnect closes it.
/// - A write runs the request and stores the response for that peer and characteristic; reads return it (long
///   values by offset) until the next write there. Reading before any write returns an empty value.
/// - A write protocomm refuses (bad handshake message, wrong proof, decryption or handler failure, full session
///   table) is answered with an ATT error, the link's session is closed and the link disconnected, as Bluedroid
///   does (`ESP_GATT_ERROR`, then disconnect).
/// - Zero-length writes and writes at a non-zero offset are refused with an ATT error and change nothing. BlueZ
///   reassembles prepared (long) writes and hands them over whole at offset 0; a non-zero offset would mean a
///   stack that does not, which this transport does not support.
///
/// Unlike an ESP device, several links may be served at once, each with its own session and stored responses.
///
/// On shutdown it withdraws the advertisement and the service, disconnects the links it served and closes their
/// sessions. It fails only when the service cannot start.
///
/// [`register`] and [`Registered::run`] are the same in two steps, for callers that must know the service is
/// up (or why it is not) before they go on.
pub async fn serve(
    adapter: &Adapter,
    device: Arc<Device>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    register(adapter, device).await?.run(shutdown).await;
    Ok(())
}

/// The BLE service registered with BlueZ and advertised; requests are answered from now on, and
/// [`Registered::run`] watches the links. Dropping it without running withdraws the service and the
/// advertisement.
pub struct Registered {
    adapter: Adapter,
    device: Arc<Device>,
    // Dropping a handle withdraws what it registered.
    app: ApplicationHandle,
    advertising: AdvertisementHandle,
    events: mpsc::UnboundedReceiver<Event>,
    span: tracing::Span,
}

impl fmt::Debug for Registered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registered").field("adapter", &self.adapter.name()).field("device", &self.device).finish()
    }
}

/// The first half of [`serve`]: powers `adapter` on, registers the GATT service and starts advertising.
pub async fn register(adapter: &Adapter, device: Arc<Device>) -> Result<Registered, ServeError> {
    let span = info_span!("ble_server", adapter = adapter.name());
    start(adapter, device, span.clone()).instrument(span).await
}

async fn start(adapter: &Adapter, device: Arc<Device>, span: tracing::Span) -> Result<Registered, ServeError> {
    let config = device.config.clone();
    if config.name.is_empty() || config.name.len() > MAX_NAME_LEN {
        return Err(ServeError::InvalidName { name: config.name });
    }
    let endpoints: Vec<String> = device.dispatcher.endpoint_names();
    let custom: Vec<&str> = endpoints.iter().map(String::as_str).filter(|n| !is_standard_endpoint(n)).collect();
    let layout = DeviceLayout::new(config.service, &custom).map_err(ServeError::Layout)?;
    let adapter_name = adapter.name().to_owned();
    adapter.set_powered(true).await.map_err(|source| ServeError::Power { adapter: adapter_name.clone(), source })?;

    let (events, event_rx) = mpsc::unbounded_channel();
    let application = application(&layout, &endpoints, &device, &events);
    let served = application.services.iter().map(|s| s.characteristics.len()).sum::<usize>();
    let app = adapter
        .serve_gatt_application(application)
        .await
        .map_err(|source| ServeError::Register { adapter: adapter_name.clone(), source })?;
    let advertisement = Advertisement {
        advertisement_type: AdvertisementType::Peripheral,
        service_uuids: [bluer::Uuid::from_bytes(config.service.0)].into(),
        local_name: Some(config.name.clone()),
        // ESP advertises LE General Discoverable (flags 0x06), whatever the adapter's own setting.
        discoverable: Some(true),
        ..Advertisement::default()
    };
    let advertising = adapter
        .advertise(advertisement)
        .await
        .map_err(|source| ServeError::Advertise { adapter: adapter_name.clone(), source })?;
    info!(name = %config.name, service = %config.service, endpoints = served, "serving protocomm over ble");
    Ok(Registered { adapter: adapter.clone(), device, app, advertising, events: event_rx, span })
}

impl Registered {
    /// Serves until `shutdown` completes (see [`serve`]), then withdraws the service and ends its links.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let span = self.span.clone();
        self.serve_links(shutdown).instrument(span).await;
    }

    async fn serve_links(self, shutdown: impl Future<Output = ()>) {
        let Self { adapter, device, app, advertising, events: mut event_rx, span: _ } = self;
        let adapter = &adapter;
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut watched: HashSet<Address> = HashSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(event) = event_rx.recv() => match event {
                    Event::Linked(peer) => {
                        if watched.insert(peer) {
                            info!(%peer, "link");
                            tasks.spawn(watch(adapter.clone(), peer).in_current_span());
                        }
                    }
                    Event::Refused(peer) => {
                        tasks.spawn(disconnect(adapter.clone(), peer).map(|()| Done::Dropped).in_current_span());
                    }
                },
                Some(done) = tasks.join_next() => match done {
                    Ok(Done::Disconnected(peer)) => {
                        info!(%peer, "disconnected");
                        watched.remove(&peer);
                        device.unlink(peer);
                    }
                    Ok(Done::Dropped) => {}
                    Err(e) if e.is_panic() => error!("link task panicked"),
                    Err(e) => debug!(error = %e, "link task cancelled"),
                },
            }
        }
        info!(links = watched.len(), "shutting down");
        drop(advertising);
        drop(app);
        tasks.shutdown().await;
        // Like an ESP device stopping its BLE stack: the links end with the service.
        let mut disconnects = JoinSet::new();
        for peer in watched {
            disconnects.spawn(disconnect(adapter.clone(), peer).in_current_span());
        }
        while disconnects.join_next().await.is_some() {}
        device.unlink_all();
        info!("stopped");
    }
}

/// The GATT application: one primary service, one characteristic per endpoint protocomm has, in ESP's order.
fn application(
    layout: &DeviceLayout,
    endpoints: &[String],
    device: &Arc<Device>,
    events: &mpsc::UnboundedSender<Event>,
) -> Application {
    let characteristics = layout
        .characteristics()
        .filter(|(name, _)| endpoints.iter().any(|e| e == name))
        .map(|(name, uuid)| characteristic(name, uuid, device, events))
        .collect();
    Application {
        services: vec![Service {
            uuid: bluer::Uuid::from_bytes(layout.service().0),
            primary: true,
            characteristics,
            ..Service::default()
        }],
        ..Application::default()
    }
}

fn characteristic(
    name: &str,
    uuid: Uuid,
    device: &Arc<Device>,
    events: &mpsc::UnboundedSender<Event>,
) -> Characteristic {
    let endpoint: Arc<str> = Arc::from(name);
    let read = {
        let (device, endpoint) = (device.clone(), endpoint.clone());
        move |req: CharacteristicReadRequest| {
            let result = device.read(req.device_address, &endpoint, req.offset, req.mtu);
            async move { result }.boxed()
        }
    };
    let write = {
        let (device, endpoint, events) = (device.clone(), endpoint.clone(), events.clone());
        move |body: Vec<u8>, req: CharacteristicWriteRequest| {
            device.clone().write(req.device_address, endpoint.clone(), body, req.offset, events.clone()).boxed()
        }
    };
    let description = name.as_bytes().to_vec();
    let describe = move |req: DescriptorReadRequest| {
        let result = read_at_offset(&description, usize::from(req.offset), MAX_VALUE_LEN + 1)
            .map(<[u8]>::to_vec)
            .map_err(|_| ReqError::InvalidOffset);
        async move { result }.boxed()
    };
    Characteristic {
        uuid: bluer::Uuid::from_bytes(uuid.0),
        read: Some(CharacteristicRead { read: true, fun: Box::new(read), ..CharacteristicRead::default() }),
        write: Some(CharacteristicWrite {
            write: true,
            method: CharacteristicWriteMethod::Fun(Box::new(write)),
            ..CharacteristicWrite::default()
        }),
        descriptors: vec![Descriptor {
            uuid: USER_DESCRIPTION,
            read: Some(DescriptorRead { read: true, fun: Box::new(describe), ..DescriptorRead::default() }),
            ..Descriptor::default()
        }],
        ..Characteristic::default()
    }
}

/// Completes when `peer` disconnects, or when its device object cannot be watched (then the link is treated as
/// gone: the peer's next write starts a new one).
async fn watch(adapter: Adapter, peer: Address) -> Done {
    let watched = async {
        let device = adapter.device(peer)?;
        let mut events = std::pin::pin!(device.events().await?);
        // Subscribed first, then checked: a disconnect in between is not missed.
        if !device.is_connected().await? {
            return Ok(());
        }
        while let Some(event) = events.next().await {
            if let DeviceEvent::PropertyChanged(DeviceProperty::Connected(false)) = event {
                break;
            }
        }
        Ok::<(), bluer::Error>(())
    };
    if let Err(e) = watched.await {
        debug!(%peer, error = %e, "cannot watch the link");
    }
    Done::Disconnected(peer)
}

/// Asks BlueZ to end the link to `peer`; failures only get logged (the peer may be gone already).
async fn disconnect(adapter: Adapter, peer: Address) {
    let result = async { adapter.device(peer)?.disconnect().await };
    match tokio::time::timeout(DISCONNECT_TIMEOUT, result).await {
        Ok(Ok(())) => debug!(%peer, "disconnected the link"),
        Ok(Err(e)) => debug!(%peer, error = %e, "cannot disconnect the link"),
        Err(_) => debug!(%peer, "disconnecting the link timed out"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use wifiprov_proto::danger;
    use wifiprov_proto::endpoint::{HandlerError, Protocomm, SessionLimits, names};
    use wifiprov_proto::security::{ClientSecurity, ClientSession};
    use wifiprov_testkit::SeededRandom;

    fn device(limits: SessionLimits) -> Arc<Device> {
        let mut protocomm = Protocomm::new(limits);
        let _ = protocomm.set_security(names::PROV_SESSION, danger::sec0()).unwrap();
        protocomm.set_version(names::PROTO_VER, b"{}".to_vec()).unwrap();
        let echo = |_: Option<SessionId>, request: &[u8]| -> Result<Vec<u8>, HandlerError> { Ok(request.to_vec()) };
        protocomm.add_endpoint("custom-echo", Arc::new(echo)).unwrap();
        let fail = |_: Option<SessionId>, _: &[u8]| -> Result<Vec<u8>, HandlerError> {
            Err(HandlerError::Rejected("no".into()))
        };
        protocomm.add_endpoint("custom-fail", Arc::new(fail)).unwrap();
        let dispatcher = Arc::new(Dispatcher::new(protocomm, Box::new(SeededRandom::new(1))));
        Arc::new(Device::new(dispatcher, BleConfig::new("PROV_TEST")))
    }

    const A: Address = Address([1, 2, 3, 4, 5, 6]);
    const B: Address = Address([6, 5, 4, 3, 2, 1]);

    async fn write(device: &Arc<Device>, peer: Address, endpoint: &str, body: &[u8]) -> Result<(), ReqError> {
        let (events, _rx) = mpsc::unbounded_channel();
        device.clone().write(peer, Arc::from(endpoint), body.to_vec(), 0, events).await
    }

    /// The security 0 handshake, which opens the link's session.
    async fn handshake(device: &Arc<Device>, peer: Address) {
        let cmd0 = ClientSession::new(ClientSecurity::sec0()).start(&mut SeededRandom::new(3)).unwrap();
        write(device, peer, names::PROV_SESSION, &cmd0).await.unwrap();
    }

    fn sessions(device: &Device) -> usize {
        device.dispatcher.with_protocomm(|p| p.session_count())
    }

    #[tokio::test]
    async fn each_link_gets_a_session_and_its_own_responses() {
        let device = device(SessionLimits::default());
        assert_eq!(device.read(A, "custom-echo", 0, 23).unwrap(), b"");
        // proto-ver needs no session and opens none.
        write(&device, A, names::PROTO_VER, b"ESP").await.unwrap();
        assert_eq!(device.read(A, names::PROTO_VER, 0, 23).unwrap(), b"{}");
        assert_eq!(sessions(&device), 0);
        handshake(&device, A).await;
        handshake(&device, B).await;
        write(&device, A, "custom-echo", b"from a").await.unwrap();
        write(&device, B, "custom-echo", b"from b").await.unwrap();
        assert_eq!(device.read(A, "custom-echo", 0, 517).unwrap(), b"from a");
        assert_eq!(device.read(B, "custom-echo", 0, 517).unwrap(), b"from b");
        assert_eq!(device.read(A, "custom-echo", 2, 517).unwrap(), b"om a", "offset reads");
        assert_eq!(device.read(A, "custom-echo", 7, 517), Err(ReqError::InvalidOffset));
        let (a, b) = {
            let links = device.lock_links();
            (links.session(A).unwrap(), links.session(B).unwrap())
        };
        assert_ne!(a, b);
        assert_eq!(sessions(&device), 2);
        // Later requests of the same link run in the same session.
        write(&device, A, names::PROTO_VER, b"ESP").await.unwrap();
        write(&device, A, "custom-echo", b"again").await.unwrap();
        assert_eq!(device.lock_links().session(A), Some(a));

        device.unlink(A);
        assert_eq!(device.read(A, "custom-echo", 0, 517).unwrap(), b"", "a disconnect clears the values");
        assert!(!device.dispatcher.with_protocomm(|p| p.has_session(a)), "and closes the session");
        assert!(device.dispatcher.with_protocomm(|p| p.has_session(b)));
        device.unlink_all();
        assert_eq!(sessions(&device), 0);
    }

    #[tokio::test]
    async fn a_refused_request_closes_the_link_and_asks_for_a_disconnect() {
        let device = device(SessionLimits::default());
        let (events, mut rx) = mpsc::unbounded_channel();
        let write = |endpoint: &str, body: &[u8]| {
            device.clone().write(A, Arc::from(endpoint), body.to_vec(), 0, events.clone())
        };
        let cmd0 = ClientSession::new(ClientSecurity::sec0()).start(&mut SeededRandom::new(3)).unwrap();
        write(names::PROV_SESSION, &cmd0).await.unwrap();
        assert!(matches!(rx.try_recv(), Ok(Event::Linked(A))));
        write("custom-echo", b"y").await.unwrap();
        assert!(rx.try_recv().is_err(), "a known link is announced once");
        assert_eq!(write("custom-fail", b"z").await, Err(ReqError::Failed));
        assert!(matches!(rx.try_recv(), Ok(Event::Refused(A))));
        assert_eq!(device.read(A, "custom-echo", 0, 517).unwrap(), b"");
        assert_eq!(sessions(&device), 0);
        assert_eq!(write("unknown", b"z").await, Err(ReqError::Failed));
    }

    #[tokio::test]
    async fn unacceptable_writes_change_nothing() {
        let device = device(SessionLimits::default());
        handshake(&device, A).await;
        write(&device, A, "custom-echo", b"kept").await.unwrap();
        assert_eq!(write(&device, A, "custom-echo", b"").await, Err(ReqError::InvalidValueLength));
        assert_eq!(write(&device, A, "custom-echo", &[0; 513]).await, Err(ReqError::InvalidValueLength));
        let (events, _rx) = mpsc::unbounded_channel();
        let offset = device.clone().write(A, Arc::from("custom-echo"), b"x".to_vec(), 4, events).await;
        assert_eq!(offset, Err(ReqError::InvalidOffset));
        assert_eq!(device.read(A, "custom-echo", 0, 517).unwrap(), b"kept");
        write(&device, A, "custom-echo", &[7; 512]).await.unwrap();
        assert_eq!(device.read(A, "custom-echo", 0, 517).unwrap(), vec![7; 512]);
        assert_eq!(device.read(A, "custom-echo", 0, 0).unwrap().len(), 22, "an unknown MTU is the LE minimum");
    }

    #[tokio::test]
    async fn a_link_whose_session_was_closed_gets_a_new_one_from_its_next_handshake() {
        let device = device(SessionLimits { max_sessions: 1, max_handshakes: 1, ..SessionLimits::default() });
        handshake(&device, A).await;
        let first = device.lock_links().session(A).unwrap();
        // The session goes (say, the device's sessions were reset); the link's next handshake opens another.
        device.dispatcher.close_session(first);
        handshake(&device, A).await;
        let second = device.lock_links().session(A).unwrap();
        assert_ne!(first, second);
        assert_eq!(sessions(&device), 1);
        write(&device, A, "custom-echo", b"z").await.unwrap();
        assert_eq!(device.read(A, "custom-echo", 0, 517).unwrap(), b"z");
    }
}
