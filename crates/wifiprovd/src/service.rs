//! The provisioning service: ESP's `wifi_prov_mgr` API over the sans-IO manager, a Wi-Fi backend, the
//! saved-network store and the HTTP transport.
//!
//! One driver task owns all I/O: it carries out the manager's actions (connect, scan, start and stop the
//! transport), feeds results and link events back, and fires its timers. A writer task is the store's only
//! writer. Endpoint handlers only lock the manager briefly; handlers that wait (a blocking scan, a join
//! requested over `prov-networks`, a durable write) wait on a condition variable on a blocking thread, never
//! holding a lock the driver needs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use wifiprov_backend::{AccessPoint, BackendError, ConnectError, LinkInfo, WifiBackend};
use wifiprov_manager::networks::NetworkList;
use wifiprov_manager::{
    Action, AttemptId, Event, Manager, ManagerConfig, ManagerError, NetworksReply, ProvState, joined_response,
};
use wifiprov_proto::ErrorChain;
use wifiprov_proto::endpoint::{
    EndpointHandler, HandlerError, Protocomm, ProtocommError, SessionId, SessionLimits, names,
};
use wifiprov_proto::messages::{Status, config, ctrl, networks, scan};
use wifiprov_proto::security::DeviceSecurity;
use wifiprov_proto::version::{AppInfo, ProvInfo, VersionInfo};
use wifiprov_store::{NetworkStore, StoreError};
use wifiprov_transport_ble::BleConfig;

/// How long a blocking ScanStart waits for the radio before answering with an error.
const BLOCKING_SCAN_LIMIT: Duration = Duration::from_secs(30);
/// How long a change to the saved networks waits to be on disk before its client is told it failed.
const DURABLE_WRITE_LIMIT: Duration = Duration::from_secs(10);

/// Settings of the service.
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig {
    /// Manager settings (auto-stop, attempts, delays, scan size).
    pub manager: ManagerConfig,
    /// Session table bounds of the transport.
    pub sessions: SessionLimits,
    /// HTTP transport settings.
    pub http: wifiprov_transport_http::HttpConfig,
}

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The manager's state does not allow the call.
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// Setting up the endpoints failed.
    #[error("endpoint setup")]
    Endpoint(#[from] ProtocommError),
    /// The saved-network store failed.
    #[error("saved-network store")]
    Store(#[from] StoreError),
    /// The listener address could not be read.
    #[error("listener address")]
    Listener(#[source] std::io::Error),
    /// BlueZ refused the BLE service or its advertisement.
    #[error("BLE transport")]
    Ble(#[from] wifiprov_transport_ble::ServeError),
}

/// Where the transport serves. The caller binds the HTTP listener and [`ProvisioningService::start_provisioning`]
/// registers the BLE service before anything else starts, so either failure leaves the service as it was.
#[derive(Debug)]
pub enum Transport {
    /// HTTP on an already bound listener (SoftAP or any IP interface).
    Http(tokio::net::TcpListener),
    /// BLE GATT through BlueZ.
    Ble(BleTransport),
}

/// A BlueZ adapter and what to advertise on it.
#[derive(Debug, Clone)]
pub struct BleTransport {
    /// The adapter (`hci0`).
    pub adapter: wifiprov_transport_ble::bluer::Adapter,
    /// The advertised name and service UUID.
    pub config: BleConfig,
}

/// Where provisioning reopens when the connection policy finds the device offline.
#[derive(Debug, Clone)]
pub enum Fallback {
    /// HTTP on this address, bound again at each reopen.
    Http(SocketAddr),
    /// BLE, registered again at each reopen.
    Ble(BleTransport),
}

/// The device side of provisioning. Cheap to clone; all clones drive the same service.
#[derive(Clone)]
pub struct ProvisioningService {
    inner: Arc<Inner>,
    /// Stops the driver when the last clone is dropped.
    _driver: Arc<DriverGuard>,
}

struct DriverGuard(#[allow(dead_code, reason = "dropping the sender is the signal")] tokio::sync::oneshot::Sender<()>);

struct Inner {
    manager: Mutex<Manager>,
    /// Signalled whenever the driver fed the manager an outcome (scan, connection, timeout), for handlers
    /// that wait for one.
    progress: Condvar,
    /// Wakes the driver after a handler changed the manager.
    wake: Notify,
    events: broadcast::Sender<Event>,
    state: watch::Sender<ProvState>,
    backend: Arc<dyn WifiBackend>,
    store: NetworkStore,
    /// The latest list to write, with its revision; the writer task writes the newest one.
    to_write: watch::Sender<Option<(u64, NetworkList)>>,
    /// The revision last written and whether writing it failed.
    written: Mutex<Written>,
    /// Signalled after each write.
    written_changed: Condvar,
    config: ServiceConfig,
    /// How to reopen provisioning when the policy asks: the security and the transport it last served on.
    fallback: Mutex<Option<(DeviceSecurity, Fallback)>>,
    app_info: Mutex<Vec<AppInfo>>,
    /// Custom endpoints in creation order, each with its handler once registered.
    custom: Mutex<Vec<CustomEndpoint>>,
    running: Mutex<Option<Running>>,
    /// Whether a transport serves; read by waiting handlers, which must not take `running` while holding the
    /// manager lock (`start_provisioning` takes them in the other order).
    serving: AtomicBool,
    /// Counts transport stops, so that a BLE reopen still registering when the transport is stopped again
    /// does not bring it back up.
    stops: AtomicU64,
    /// The transport task after a stop, for [`ProvisioningService::wait`].
    stopped: Mutex<Option<JoinHandle<()>>>,
}

type CustomEndpoint = (String, Option<Arc<dyn EndpointHandler>>);

#[derive(Debug, Default)]
struct Written {
    revision: u64,
    failed: bool,
}

/// A started transport.
struct Running {
    served: Served,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// What a started transport serves protocomm with.
enum Served {
    Http { address: SocketAddr, device: Arc<wifiprov_transport_http::Device> },
    Ble { device: Arc<wifiprov_transport_ble::Device> },
}

impl Served {
    fn with_protocomm<R>(&self, f: impl FnOnce(&mut Protocomm) -> R) -> R {
        match self {
            Self::Http { device, .. } => device.with_protocomm(f),
            Self::Ble { device } => device.with_protocomm(f),
        }
    }
}

/// A transport ready to be launched: the HTTP listener bound, or the BLE service registered.
enum Ready {
    Http { listener: tokio::net::TcpListener, address: SocketAddr, device: Arc<wifiprov_transport_http::Device> },
    Ble { registered: wifiprov_transport_ble::Registered, device: Arc<wifiprov_transport_ble::Device> },
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the whole daemon down with poisoned locks.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ProvisioningService {
    /// Creates the service and its driver task (`wifi_prov_mgr_init`) with the networks saved in `store`.
    /// Emits [`Event::Init`]. Must be called inside a tokio runtime.
    ///
    /// A corrupt store file is moved aside (never deleted) and logged as an error, and the service starts
    /// with no saved network, so that a damaged file cannot keep the device from being provisioned. Other
    /// store failures (an unreadable directory) are returned.
    pub fn new(
        config: ServiceConfig,
        backend: Arc<dyn WifiBackend>,
        store: NetworkStore,
    ) -> Result<Self, ServiceError> {
        let networks = load_networks(&store)?;
        if !networks.is_empty() {
            tracing::info!(saved = networks.len(), path = %store.path().display(), "loaded saved networks");
        }
        let (events, _) = broadcast::channel(64);
        let (state, _) = watch::channel(ProvState::Idle);
        let (to_write, writes) = watch::channel(None);
        let inner = Arc::new(Inner {
            manager: Mutex::new(Manager::with_networks(config.manager.clone(), networks)),
            progress: Condvar::new(),
            wake: Notify::new(),
            events,
            state,
            backend,
            store,
            to_write,
            written: Mutex::new(Written::default()),
            written_changed: Condvar::new(),
            config,
            fallback: Mutex::new(None),
            app_info: Mutex::new(Vec::new()),
            custom: Mutex::new(Vec::new()),
            running: Mutex::new(None),
            serving: AtomicBool::new(false),
            stops: AtomicU64::new(0),
            stopped: Mutex::new(None),
        });
        let (guard, stop) = tokio::sync::oneshot::channel();
        tokio::spawn(write_networks(Arc::downgrade(&inner), writes));
        tokio::spawn(drive(inner.clone(), stop));
        Ok(Self { inner, _driver: Arc::new(DriverGuard(guard)) })
    }

    /// Subscribes to manager events. Subscribe before starting to see every event.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The service state, as a watch channel.
    pub fn state(&self) -> watch::Receiver<ProvState> {
        self.inner.state.subscribe()
    }

    /// The station state as the manager sees it.
    pub fn wifi_state(&self) -> wifiprov_manager::WifiState {
        lock(&self.inner.manager).wifi().clone()
    }

    /// Adds an application label to `proto-ver` (before starting).
    pub fn set_app_info(&self, label: &str, version: &str, caps: &[&str]) -> Result<(), ServiceError> {
        self.require_idle()?;
        let mut info = lock(&self.inner.app_info);
        info.retain(|a| a.label != label);
        info.push(AppInfo {
            label: label.to_owned(),
            ver: version.to_owned(),
            cap: caps.iter().map(|c| (*c).to_owned()).collect(),
        });
        Ok(())
    }

    /// Reserves a custom endpoint (before starting), served once a handler is registered.
    pub fn create_endpoint(&self, name: &str) -> Result<(), ServiceError> {
        self.require_idle()?;
        let mut custom = lock(&self.inner.custom);
        if custom.iter().any(|(n, _)| n == name) {
            return Err(ProtocommError::DuplicateEndpoint(name.to_owned()).into());
        }
        custom.push((name.to_owned(), None));
        Ok(())
    }

    /// Attaches a handler to a created endpoint; takes effect at once when the service is running.
    pub fn register_endpoint(&self, name: &str, handler: Arc<dyn EndpointHandler>) -> Result<(), ServiceError> {
        {
            let mut custom = lock(&self.inner.custom);
            let slot = custom
                .iter_mut()
                .find(|(n, _)| n == name)
                .ok_or_else(|| ProtocommError::UnknownEndpoint(name.to_owned()))?;
            slot.1 = Some(handler.clone());
        }
        // Lock order everywhere: running, then custom (`launch` holds running while reading custom).
        if let Some(running) = lock(&self.inner.running).as_ref() {
            running.served.with_protocomm(|pc| pc.register_handler(name, handler))?;
        }
        Ok(())
    }

    /// Keeps serving after success (needed for `prov-ctrl` reprovisioning); before starting only.
    pub fn disable_auto_stop(&self, cleanup_delay: Duration) -> Result<(), ServiceError> {
        Ok(lock(&self.inner.manager).disable_auto_stop(cleanup_delay)?)
    }

    /// Whether any network is saved (`wifi_prov_mgr_is_provisioned`).
    pub fn is_provisioned(&self) -> bool {
        !lock(&self.inner.manager).networks().is_empty()
    }

    /// The saved networks, in priority order.
    pub fn networks(&self) -> NetworkList {
        lock(&self.inner.manager).networks().clone()
    }

    /// Starts the connection policy: tries the saved networks in priority order, and reopens provisioning
    /// (see [`ProvisioningService::set_fallback`]) when none works. Returns false when nothing is saved.
    pub fn start_policy(&self) -> bool {
        let started = lock(&self.inner.manager).start_policy(now());
        self.inner.wake.notify_one();
        started
    }

    /// Where and how provisioning reopens when the policy finds the device offline; without this, a reopen
    /// uses the security and transport of the last [`ProvisioningService::start_provisioning`].
    pub fn set_fallback(&self, security: DeviceSecurity, transport: Fallback) {
        *lock(&self.inner.fallback) = Some((security, transport));
    }

    /// The address the HTTP transport serves on, while it runs.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match lock(&self.inner.running).as_ref().map(|r| &r.served) {
            Some(Served::Http { address, .. }) => Some(*address),
            Some(Served::Ble { .. }) | None => None,
        }
    }

    /// Forgets every saved network and leaves the current one (`wifi_prov_mgr_reset_provisioning`).
    pub fn reset_provisioning(&self) {
        lock(&self.inner.manager).reset_provisioning();
        self.inner.wake.notify_one();
    }

    /// Starts provisioning with `security` on `transport`. Fails when already started, or when BlueZ refuses
    /// the BLE service; a failure changes nothing.
    pub async fn start_provisioning(&self, security: DeviceSecurity, transport: Transport) -> Result<(), ServiceError> {
        let invalid_state =
            || ServiceError::from(ManagerError::InvalidState { state: lock(&self.inner.manager).state() });
        if lock(&self.inner.running).is_some() {
            return Err(invalid_state());
        }
        let protocomm = build_protocomm(&self.inner, security.clone())?;
        let (ready, fallback) = match transport {
            Transport::Http(listener) => {
                let address = listener.local_addr().map_err(ServiceError::Listener)?;
                (ready_http(&self.inner, protocomm, listener, address), Fallback::Http(address))
            }
            Transport::Ble(ble) => (ready_ble(protocomm, &ble).await?, Fallback::Ble(ble)),
        };
        let mut running = lock(&self.inner.running);
        // Another start won while BlueZ registered ours; dropping `ready` withdraws it again.
        if running.is_some() {
            return Err(invalid_state());
        }
        lock(&self.inner.manager).start()?;
        *lock(&self.inner.fallback) = Some((security, fallback));
        *running = Some(launch(&self.inner, ready));
        drop(running);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Asks the service to stop after its cleanup delay (non-blocking).
    pub fn stop_provisioning(&self) {
        lock(&self.inner.manager).stop(now());
        self.inner.wake.notify_one();
    }

    /// Waits until the service is idle (`wifi_prov_mgr_wait`).
    pub async fn wait(&self) {
        let mut state = self.state();
        let _ = state.wait_for(|s| *s == ProvState::Idle).await;
        // The transport task ends right after the state turns idle; let it finish.
        let task = lock(&self.inner.stopped).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Stops at once and shuts the service down (`wifi_prov_mgr_deinit`): [`Event::End`] if it was running,
    /// then [`Event::Deinit`].
    pub async fn deinit(self) {
        // Subscribe first: on a multi-threaded runtime the driver may publish Deinit at once.
        let mut events = self.subscribe();
        lock(&self.inner.manager).deinit();
        self.inner.wake.notify_one();
        // The driver publishes Deinit once it has drained the manager.
        while let Ok(event) = events.recv().await {
            if event == Event::Deinit {
                break;
            }
        }
        self.wait().await;
        self.flush().await;
    }

    /// Waits until every change to the saved networks made so far is on disk (or failed to get there).
    pub async fn flush(&self) {
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let target = lock(&inner.manager).networks_revision();
            wait_written(&inner, target)
        })
        .await;
    }

    fn require_idle(&self) -> Result<(), ServiceError> {
        let state = lock(&self.inner.manager).state();
        if state == ProvState::Idle && lock(&self.inner.running).is_none() {
            Ok(())
        } else {
            Err(ManagerError::InvalidState { state }.into())
        }
    }
}

fn load_networks(store: &NetworkStore) -> Result<NetworkList, ServiceError> {
    match store.load() {
        Ok(list) => Ok(list),
        Err(error @ StoreError::Corrupt { .. }) => {
            let moved = store.quarantine_corrupt()?;
            tracing::error!(
                error = %ErrorChain(&error),
                moved_to = %moved.display(),
                "saved-network file is corrupt; moved it aside and starting with no saved network"
            );
            Ok(NetworkList::new())
        }
        Err(error) => Err(error.into()),
    }
}

fn build_protocomm(inner: &Arc<Inner>, security: DeviceSecurity) -> Result<Protocomm, ServiceError> {
    let mut app_info = lock(&inner.app_info).clone();
    if !app_info.iter().any(|a| a.label == networks::APP_LABEL) {
        app_info.push(AppInfo {
            label: networks::APP_LABEL.to_owned(),
            ver: networks::APP_VERSION.to_owned(),
            cap: Vec::new(),
        });
    }
    let version = VersionInfo { app_info, prov: Some(ProvInfo::for_device(&security)) };
    let mut pc = Protocomm::new(inner.config.sessions);
    pc.add_endpoint(names::PROV_CTRL, Arc::new(CtrlEndpoint(Arc::downgrade(inner))))?;
    pc.add_endpoint(names::PROV_SCAN, Arc::new(ScanEndpoint(Arc::downgrade(inner))))?;
    pc.set_security(names::PROV_SESSION, security)?;
    pc.add_endpoint(names::PROV_CONFIG, Arc::new(ConfigEndpoint(Arc::downgrade(inner))))?;
    pc.set_version(names::PROTO_VER, version.to_cjson())?;
    // Ours comes first among the custom endpoints, so its BLE id stays the same whatever the application adds.
    pc.add_endpoint(names::PROV_NETWORKS, Arc::new(NetworksEndpoint(Arc::downgrade(inner))))?;
    for (name, handler) in lock(&inner.custom).iter() {
        match handler {
            Some(handler) => pc.add_endpoint(name, handler.clone())?,
            None => pc.create_endpoint(name)?,
        }
    }
    Ok(pc)
}

fn ready_http(inner: &Inner, protocomm: Protocomm, listener: tokio::net::TcpListener, address: SocketAddr) -> Ready {
    let device = Arc::new(wifiprov_transport_http::Device::new(
        protocomm,
        Box::new(wifiprov_proto::rng::OsRandom),
        inner.config.http.clone(),
    ));
    Ready::Http { listener, address, device }
}

/// Registers the BLE service with BlueZ; from here on it answers requests.
async fn ready_ble(protocomm: Protocomm, ble: &BleTransport) -> Result<Ready, ServiceError> {
    let device = Arc::new(wifiprov_transport_ble::Device::new(
        protocomm,
        Box::new(wifiprov_proto::rng::OsRandom),
        ble.config.clone(),
    ));
    let registered = wifiprov_transport_ble::register(&ble.adapter, device.clone()).await?;
    Ok(Ready::Ble { registered, device })
}

/// Runs a ready transport until its shutdown signal. Call with `running` locked, and store the result there.
fn launch(inner: &Inner, ready: Ready) -> Running {
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = stop.await;
    };
    let (served, task) = match ready {
        Ready::Http { listener, address, device } => {
            let serving = device.clone();
            let task = tokio::spawn(async move {
                if let Err(error) = wifiprov_transport_http::serve(listener, serving, stopped).await {
                    tracing::error!(%error, "http transport failed");
                }
            });
            tracing::info!(%address, "provisioning transport up");
            (Served::Http { address, device }, task)
        }
        Ready::Ble { registered, device } => {
            tracing::info!(name = %device.config().name, "provisioning transport up (ble)");
            (Served::Ble { device }, tokio::spawn(registered.run(stopped)))
        }
    };
    // A handler registered while the transport was being made ready missed its protocomm instance.
    for (name, handler) in lock(&inner.custom).iter() {
        if let Some(handler) = handler {
            let _ = served.with_protocomm(|pc| pc.register_handler(name, handler.clone()));
        }
    }
    inner.serving.store(true, Ordering::Release);
    Running { served, shutdown, task }
}

/// Brings the transport up again for the policy ([`Action::StartService`]), on the fallback transport.
fn reopen(inner: &Arc<Inner>) -> Result<(), String> {
    let Some((security, fallback)) = lock(&inner.fallback).clone() else {
        return Err("no provisioning transport configured".into());
    };
    let mut running = lock(&inner.running);
    if running.is_some() {
        return Ok(());
    }
    let protocomm = build_protocomm(inner, security).map_err(|e| e.to_string())?;
    match fallback {
        Fallback::Http(address) => {
            // Binding is one quick system call; doing it here means the transport is up before the Start event
            // goes out.
            let listener = std::net::TcpListener::bind(address)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(tokio::net::TcpListener::from_std)
                .map_err(|e| format!("cannot listen on {address}: {e}"))?;
            let address = listener.local_addr().unwrap_or(address);
            *running = Some(launch(inner, ready_http(inner, protocomm, listener, address)));
        }
        Fallback::Ble(ble) => {
            drop(running);
            // Registering takes a few D-Bus round trips, so it cannot happen here; the service advertises
            // moments after the Start event.
            let stops = inner.stops.load(Ordering::Acquire);
            let inner = inner.clone();
            tokio::spawn(async move {
                let ready = match ready_ble(protocomm, &ble).await {
                    Ok(ready) => ready,
                    Err(error) => {
                        tracing::error!(error = %ErrorChain(&error), "cannot reopen provisioning over BLE");
                        return;
                    }
                };
                let mut running = lock(&inner.running);
                // Stopped again, or started by someone else, while registering: withdraw (by dropping `ready`).
                if running.is_none() && inner.stops.load(Ordering::Acquire) == stops {
                    *running = Some(launch(&inner, ready));
                }
            });
        }
    }
    Ok(())
}

/// The store's only writer: writes the newest list it is given, one write at a time, and reports each
/// revision written so that handlers can wait until their change is durable.
async fn write_networks(inner: std::sync::Weak<Inner>, mut lists: watch::Receiver<Option<(u64, NetworkList)>>) {
    while lists.changed().await.is_ok() {
        let Some((revision, list)) = lists.borrow_and_update().clone() else { continue };
        let Some(strong) = inner.upgrade() else { return };
        let store = strong.store.clone();
        drop(strong);
        let result = tokio::task::spawn_blocking(move || store.save(&list).map(|()| list.len())).await;
        let Some(inner) = inner.upgrade() else { return };
        let failed = match result {
            Ok(Ok(saved)) => {
                tracing::info!(path = %inner.store.path().display(), saved, revision, "saved networks written");
                false
            }
            Ok(Err(error)) => {
                tracing::error!(error = %ErrorChain(&error), "could not write the saved networks");
                true
            }
            Err(error) => {
                tracing::error!(%error, "saved-network writer task failed");
                true
            }
        };
        *lock(&inner.written) = Written { revision, failed };
        inner.written_changed.notify_all();
    }
}

/// Blocks until `revision` of the saved networks is written; false when that failed or took too long.
fn wait_written(inner: &Inner, revision: u64) -> bool {
    let (written, _) = inner
        .written_changed
        .wait_timeout_while(lock(&inner.written), DURABLE_WRITE_LIMIT, |w| w.revision < revision)
        .unwrap_or_else(PoisonError::into_inner);
    written.revision >= revision && !written.failed
}

enum Outcome {
    Connected(AttemptId, Result<LinkInfo, ConnectError>),
    Scanned(Result<Vec<AccessPoint>, BackendError>),
}

/// The driver: the only task that touches the radio and the transport's lifetime. It ends when the last
/// [`ProvisioningService`] clone is dropped.
async fn drive(inner: Arc<Inner>, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let (outcomes_tx, mut outcomes) = mpsc::unbounded_channel::<Outcome>();
    let mut link_events = inner.backend.subscribe();
    let mut connect_task: Option<JoinHandle<()>> = None;
    loop {
        let (actions, events, deadline, state, revision) = {
            let mut m = lock(&inner.manager);
            let actions: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
            let events: Vec<Event> = std::iter::from_fn(|| m.poll_event()).collect();
            (actions, events, m.poll_timeout(), m.state(), m.networks_revision())
        };
        for action in actions {
            carry_out(&inner, action, revision, &outcomes_tx, &mut connect_task);
        }
        inner.state.send_if_modified(|s| std::mem::replace(s, state) != state);
        for event in events {
            tracing::info!(?event, "provisioning event");
            let _ = inner.events.send(event);
        }
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop => {
                if let Some(task) = connect_task.take() {
                    task.abort();
                }
                stop_transport(&inner);
                return;
            }
            () = inner.wake.notified() => {}
            () = sleep => lock(&inner.manager).handle_timeout(now()),
            Some(outcome) = outcomes.recv() => match outcome {
                Outcome::Connected(attempt, result) => {
                    if let Err(error) = &result {
                        tracing::warn!(%error, "connection attempt failed");
                    }
                    lock(&inner.manager).handle_connect_result(now(), attempt, result);
                }
                Outcome::Scanned(result) => {
                    if let Err(error) = &result {
                        tracing::warn!(%error, "scan failed");
                    }
                    lock(&inner.manager).handle_scan_result(result);
                }
            },
            event = link_events.recv() => match event {
                Ok(event) => lock(&inner.manager).handle_link_event(now(), event),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => link_events = broadcast::channel(1).1,
            },
        }
        inner.progress.notify_all();
    }
}

/// Shuts the transport down and keeps its task for [`ProvisioningService::wait`].
fn stop_transport(inner: &Inner) {
    let mut running = lock(&inner.running);
    inner.stops.fetch_add(1, Ordering::AcqRel);
    if let Some(running) = running.take() {
        let _ = running.shutdown.send(());
        *lock(&inner.stopped) = Some(running.task);
    }
    inner.serving.store(false, Ordering::Release);
    // Wake waiting handlers so their threads do not outlive the service.
    inner.progress.notify_all();
}

fn carry_out(
    inner: &Arc<Inner>,
    action: Action,
    revision: u64,
    outcomes: &mpsc::UnboundedSender<Outcome>,
    connect_task: &mut Option<JoinHandle<()>>,
) {
    match action {
        Action::Connect { attempt, request } => {
            tracing::info!(ssid = %request.ssid, "connecting");
            if let Some(previous) = connect_task.take() {
                previous.abort();
            }
            let backend = inner.backend.clone();
            let outcomes = outcomes.clone();
            *connect_task = Some(tokio::spawn(async move {
                let result = backend.connect(request).await;
                let _ = outcomes.send(Outcome::Connected(attempt, result));
            }));
        }
        Action::Disconnect => {
            if let Some(previous) = connect_task.take() {
                previous.abort();
            }
            let backend = inner.backend.clone();
            tokio::spawn(async move {
                if let Err(error) = backend.disconnect().await {
                    tracing::warn!(%error, "disconnect failed");
                }
            });
        }
        Action::Scan(params) => {
            let backend = inner.backend.clone();
            let outcomes = outcomes.clone();
            tokio::spawn(async move {
                let result = backend.scan(params).await;
                let _ = outcomes.send(Outcome::Scanned(result));
            });
        }
        // Several saves in one batch: the last one is the newest list, and the writer keeps only the newest.
        Action::SaveNetworks(list) => {
            inner.to_write.send_replace(Some((revision, list)));
        }
        Action::StopService => stop_transport(inner),
        Action::StartService => {
            if let Err(error) = reopen(inner) {
                tracing::error!(%error, "cannot reopen provisioning");
                lock(&inner.manager).handle_service_unavailable(now());
                inner.wake.notify_one();
            }
        }
        _ => tracing::warn!(?action, "unhandled manager action"),
    }
}

fn malformed(error: wifiprov_proto::messages::DecodeError) -> HandlerError {
    HandlerError::Malformed(Box::new(error))
}

fn upgrade(inner: &std::sync::Weak<Inner>) -> Result<Arc<Inner>, HandlerError> {
    inner.upgrade().ok_or_else(|| HandlerError::Rejected("service is shutting down".into()))
}

/// Waits, releasing the manager lock meanwhile, until `done` holds or `limit` passes; returns the lock.
fn wait_for_manager<'a>(
    inner: &'a Inner,
    manager: MutexGuard<'a, Manager>,
    limit: Duration,
    mut done: impl FnMut(&mut Manager) -> bool,
) -> MutexGuard<'a, Manager> {
    inner
        .progress
        .wait_timeout_while(manager, limit, |m| !done(m) && inner.serving.load(Ordering::Acquire))
        .map(|(guard, _)| guard)
        .unwrap_or_else(|poisoned| poisoned.into_inner().0)
}

struct ConfigEndpoint(std::sync::Weak<Inner>);

impl EndpointHandler for ConfigEndpoint {
    fn handle(&self, _session: SessionId, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let request = config::Request::decode(request).map_err(malformed)?;
        let inner = upgrade(&self.0)?;
        let response = lock(&inner.manager).handle_config(now(), &request);
        inner.wake.notify_one();
        Ok(response.encode())
    }
}

struct ScanEndpoint(std::sync::Weak<Inner>);

impl EndpointHandler for ScanEndpoint {
    fn handle(&self, _session: SessionId, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let request = scan::Request::decode(request).map_err(malformed)?;
        let inner = upgrade(&self.0)?;
        let mut manager = lock(&inner.manager);
        let mut response = manager.handle_scan(&request).map_err(|e| HandlerError::Rejected(e.to_string()))?;
        inner.wake.notify_one();
        if matches!(request, scan::Request::Start { blocking: true, .. })
            && response.status() == Status::Success
            && !manager.scan_finished()
        {
            // ESP answers a blocking ScanStart only when the scan is over. This runs on a blocking thread
            // (protocomm's two-phase dispatch), and the wait releases the manager lock.
            manager = wait_for_manager(&inner, manager, BLOCKING_SCAN_LIMIT, |m| {
                m.scan_finished() || m.state() != ProvState::Started
            });
            if !manager.scan_finished() {
                response = scan::Response::Start { status: Status::InternalError };
            }
        }
        drop(manager);
        Ok(response.encode())
    }
}

struct CtrlEndpoint(std::sync::Weak<Inner>);

impl EndpointHandler for CtrlEndpoint {
    fn handle(&self, _session: SessionId, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let request = ctrl::Request::decode(request).map_err(malformed)?;
        let inner = upgrade(&self.0)?;
        let response = lock(&inner.manager).handle_ctrl(now(), &request);
        inner.wake.notify_one();
        Ok(response.encode())
    }
}

/// `prov-networks`. Answers once the request's effect is durable: a join has an outcome, and a changed list
/// is on disk, so a client that was told "success" never loses the change to a crash.
struct NetworksEndpoint(std::sync::Weak<Inner>);

impl EndpointHandler for NetworksEndpoint {
    fn handle(&self, _session: SessionId, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let request = networks::Request::decode(request).map_err(malformed)?;
        let inner = upgrade(&self.0)?;
        let mut manager = lock(&inner.manager);
        let before = manager.networks_revision();
        let reply = manager.handle_networks(now(), &request);
        inner.wake.notify_one();
        let response = match reply {
            NetworksReply::Ready(response) => response,
            NetworksReply::AwaitScan => {
                manager = wait_for_manager(&inner, manager, BLOCKING_SCAN_LIMIT, |m| m.scan_finished());
                let status = if manager.scan_finished() {
                    networks::NetStatus::Success
                } else {
                    networks::NetStatus::InternalError
                };
                manager.networks_listing(status)
            }
            NetworksReply::AwaitJoin(id) => {
                // The attempt has its own deadline in the manager; this bound only guards against a stuck driver.
                let limit = inner.config.manager.policy.attempt_timeout + Duration::from_secs(5);
                let mut outcome = None;
                manager = wait_for_manager(&inner, manager, limit, |m| {
                    outcome = m.take_request_outcome(id);
                    outcome.is_some()
                });
                joined_response(&request, outcome)
            }
        };
        let revision = manager.networks_revision();
        drop(manager);
        if revision > before && response_is_success(&response) && !wait_written(&inner, revision) {
            tracing::error!("a saved-network change could not be written; telling the client it failed");
            return Ok(with_status(response, networks::NetStatus::InternalError).encode());
        }
        Ok(response.encode())
    }
}

fn response_is_success(response: &networks::Response) -> bool {
    response.status().is_success()
}

fn with_status(response: networks::Response, status: networks::NetStatus) -> networks::Response {
    use networks::Response as R;
    match response {
        R::List { networks, capacity, .. } => R::List { status, networks, capacity },
        R::Add { priority, updated, failure, connected, .. } => {
            R::Add { status, priority, updated, failure, connected }
        }
        R::Remove { .. } => R::Remove { status },
        R::Move { from, .. } => R::Move { status, from },
        R::Connect { failure, connected, .. } => R::Connect { status, failure, connected },
    }
}
