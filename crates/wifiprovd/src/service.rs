//! The provisioning service: ESP's `wifi_prov_mgr` API over the sans-IO manager, a Wi-Fi backend, the
//! credential store and the HTTP transport.
//!
//! One driver task owns all I/O: it carries out the manager's actions (connect, scan, persist, stop the
//! transport), feeds results and link events back, and fires its timers. Endpoint handlers only lock the
//! manager briefly; a blocking scan waits on a condition variable on a blocking thread, never holding a lock
//! the driver needs.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use wifiprov_backend::{AccessPoint, BackendError, ConnectError, LinkInfo, WifiBackend};
use wifiprov_manager::{Action, Credentials, Event, Manager, ManagerConfig, ManagerError, ProvState};
use wifiprov_proto::endpoint::{
    EndpointHandler, HandlerError, Protocomm, ProtocommError, SessionId, SessionLimits, names,
};
use wifiprov_proto::messages::{Status, config, ctrl, scan};
use wifiprov_proto::security::DeviceSecurity;
use wifiprov_proto::version::{AppInfo, ProvInfo, VersionInfo};

use crate::store::{CredentialStore, StoreError};

/// How long a blocking ScanStart waits for the radio before answering with an error.
const BLOCKING_SCAN_LIMIT: Duration = Duration::from_secs(30);

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
    /// The credential store failed.
    #[error("credential store")]
    Store(#[from] StoreError),
}

/// Where the transport serves. The caller binds it, so a bind failure is reported before anything starts.
pub enum Transport {
    /// HTTP on an already bound listener (SoftAP or any IP interface).
    Http(tokio::net::TcpListener),
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
    /// Signalled whenever a scan finishes, for blocking ScanStart handlers.
    scan_done: Condvar,
    /// Wakes the driver after a handler changed the manager.
    wake: Notify,
    events: broadcast::Sender<Event>,
    state: watch::Sender<ProvState>,
    backend: Arc<dyn WifiBackend>,
    store: CredentialStore,
    config: ServiceConfig,
    app_info: Mutex<Vec<AppInfo>>,
    /// Custom endpoints in creation order, each with its handler once registered.
    custom: Mutex<Vec<CustomEndpoint>>,
    running: Mutex<Option<Running>>,
    /// The transport task after a stop, for [`ProvisioningService::wait`].
    stopped: Mutex<Option<JoinHandle<()>>>,
}

type CustomEndpoint = (String, Option<Arc<dyn EndpointHandler>>);

/// A started transport.
struct Running {
    device: Arc<wifiprov_transport_http::Device>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the whole daemon down with poisoned locks.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ProvisioningService {
    /// Creates the service and its driver task (`wifi_prov_mgr_init`). Emits [`Event::Init`]. Must be called
    /// inside a tokio runtime.
    pub fn new(config: ServiceConfig, backend: Arc<dyn WifiBackend>, store: CredentialStore) -> Self {
        let (events, _) = broadcast::channel(64);
        let (state, _) = watch::channel(ProvState::Idle);
        let inner = Arc::new(Inner {
            manager: Mutex::new(Manager::new(config.manager.clone())),
            scan_done: Condvar::new(),
            wake: Notify::new(),
            events,
            state,
            backend,
            store,
            config,
            app_info: Mutex::new(Vec::new()),
            custom: Mutex::new(Vec::new()),
            running: Mutex::new(None),
            stopped: Mutex::new(None),
        });
        let (guard, stop) = tokio::sync::oneshot::channel();
        tokio::spawn(drive(inner.clone(), stop));
        Self { inner, _driver: Arc::new(DriverGuard(guard)) }
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
        // Lock order everywhere: running, then custom (start_provisioning holds running while reading custom).
        if let Some(running) = lock(&self.inner.running).as_ref() {
            running.device.with_protocomm(|pc| pc.register_handler(name, handler))?;
        }
        Ok(())
    }

    /// Keeps serving after success (needed for `prov-ctrl` reprovisioning); before starting only.
    pub fn disable_auto_stop(&self, cleanup_delay: Duration) -> Result<(), ServiceError> {
        Ok(lock(&self.inner.manager).disable_auto_stop(cleanup_delay)?)
    }

    /// Whether credentials were provisioned (and persisted) before.
    pub fn is_provisioned(&self) -> Result<bool, ServiceError> {
        Ok(self.inner.store.load()?.is_some())
    }

    /// Joins the persisted network, if there is one; returns whether there was.
    pub fn connect_provisioned(&self) -> Result<bool, ServiceError> {
        let Some(credentials) = self.inner.store.load()? else { return Ok(false) };
        tracing::info!(ssid = %credentials.ssid, "joining the provisioned network");
        lock(&self.inner.manager).connect_provisioned(credentials);
        self.inner.wake.notify_one();
        Ok(true)
    }

    /// Forgets the provisioned network and leaves it (`wifi_prov_mgr_reset_provisioning`).
    pub fn reset_provisioning(&self) {
        lock(&self.inner.manager).reset_provisioning();
        self.inner.wake.notify_one();
    }

    /// Starts provisioning with `security` on `transport`. Fails when already started.
    pub fn start_provisioning(&self, security: DeviceSecurity, transport: Transport) -> Result<(), ServiceError> {
        let mut running = lock(&self.inner.running);
        if running.is_some() {
            return Err(ManagerError::InvalidState { state: lock(&self.inner.manager).state() }.into());
        }
        let protocomm = self.build_protocomm(security)?;
        lock(&self.inner.manager).start()?;
        let (shutdown, stop) = tokio::sync::oneshot::channel();
        let Transport::Http(listener) = transport;
        let device = Arc::new(wifiprov_transport_http::Device::new(
            protocomm,
            Box::new(wifiprov_proto::rng::OsRandom),
            self.inner.config.http.clone(),
        ));
        let serving = device.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = wifiprov_transport_http::serve(listener, serving, async {
                let _ = stop.await;
            })
            .await
            {
                tracing::error!(%error, "http transport failed");
            }
        });
        *running = Some(Running { device, shutdown, task });
        drop(running);
        self.inner.wake.notify_one();
        Ok(())
    }

    fn build_protocomm(&self, security: DeviceSecurity) -> Result<Protocomm, ServiceError> {
        let version =
            VersionInfo { app_info: lock(&self.inner.app_info).clone(), prov: Some(ProvInfo::for_device(&security)) };
        let mut pc = Protocomm::new(self.inner.config.sessions);
        pc.add_endpoint(names::PROV_CTRL, Arc::new(CtrlEndpoint(Arc::downgrade(&self.inner))))?;
        pc.add_endpoint(names::PROV_SCAN, Arc::new(ScanEndpoint(Arc::downgrade(&self.inner))))?;
        pc.set_security(names::PROV_SESSION, security)?;
        pc.add_endpoint(names::PROV_CONFIG, Arc::new(ConfigEndpoint(Arc::downgrade(&self.inner))))?;
        pc.set_version(names::PROTO_VER, version.to_cjson())?;
        for (name, handler) in lock(&self.inner.custom).iter() {
            match handler {
                Some(handler) => pc.add_endpoint(name, handler.clone())?,
                None => pc.create_endpoint(name)?,
            }
        }
        Ok(pc)
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

enum Outcome {
    Connected(Result<LinkInfo, ConnectError>),
    Scanned(Result<Vec<AccessPoint>, BackendError>),
}

/// The driver: the only task that touches the radio, the store and the transport's lifetime. It ends when
/// the last [`ProvisioningService`] clone is dropped.
async fn drive(inner: Arc<Inner>, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let (outcomes_tx, mut outcomes) = mpsc::unbounded_channel::<Outcome>();
    let mut link_events = inner.backend.subscribe();
    let mut connect_task: Option<JoinHandle<()>> = None;
    loop {
        let (actions, events, deadline, state) = {
            let mut m = lock(&inner.manager);
            let actions: Vec<Action> = std::iter::from_fn(|| m.poll_action()).collect();
            let events: Vec<Event> = std::iter::from_fn(|| m.poll_event()).collect();
            (actions, events, m.poll_timeout(), m.state())
        };
        for action in actions {
            carry_out(&inner, action, &outcomes_tx, &mut connect_task);
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
                Outcome::Connected(result) => {
                    if let Err(error) = &result {
                        tracing::warn!(%error, "connection attempt failed");
                    }
                    lock(&inner.manager).handle_connect_result(now(), result);
                }
                Outcome::Scanned(result) => {
                    if let Err(error) = &result {
                        tracing::warn!(%error, "scan failed");
                    }
                    lock(&inner.manager).handle_scan_result(result);
                    inner.scan_done.notify_all();
                }
            },
            event = link_events.recv() => match event {
                Ok(event) => lock(&inner.manager).handle_link_event(now(), event),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => link_events = broadcast::channel(1).1,
            },
        }
    }
}

/// Shuts the transport down and keeps its task for [`ProvisioningService::wait`].
fn stop_transport(inner: &Inner) {
    if let Some(running) = lock(&inner.running).take() {
        let _ = running.shutdown.send(());
        *lock(&inner.stopped) = Some(running.task);
    }
    // Wake blocking scans so their threads do not outlive the service.
    inner.scan_done.notify_all();
}

fn carry_out(
    inner: &Arc<Inner>,
    action: Action,
    outcomes: &mpsc::UnboundedSender<Outcome>,
    connect_task: &mut Option<JoinHandle<()>>,
) {
    match action {
        Action::Connect(request) => {
            tracing::info!(ssid = %request.ssid, "connecting");
            if let Some(previous) = connect_task.take() {
                previous.abort();
            }
            let backend = inner.backend.clone();
            let outcomes = outcomes.clone();
            *connect_task = Some(tokio::spawn(async move {
                let result = backend.connect(request).await;
                let _ = outcomes.send(Outcome::Connected(result));
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
        Action::Persist(credentials) => persist(inner, Some(credentials)),
        Action::ClearPersisted => persist(inner, None),
        Action::StopService => stop_transport(inner),
        _ => tracing::warn!(?action, "unhandled manager action"),
    }
}

fn persist(inner: &Arc<Inner>, credentials: Option<Credentials>) {
    let store = inner.store.clone();
    // Small synchronous file writes; done on a blocking thread so the driver never stalls on a slow disk.
    tokio::task::spawn_blocking(move || {
        let result = match &credentials {
            Some(c) => store.save(c),
            None => store.clear(),
        };
        match result {
            Ok(()) => {
                tracing::info!(path = %store.path().display(), saved = credentials.is_some(), "provisioned state written")
            }
            Err(error) => tracing::error!(error = %error, "could not write the provisioned state"),
        }
    });
}

fn malformed(error: wifiprov_proto::messages::DecodeError) -> HandlerError {
    HandlerError::Malformed(Box::new(error))
}

fn upgrade(inner: &std::sync::Weak<Inner>) -> Result<Arc<Inner>, HandlerError> {
    inner.upgrade().ok_or_else(|| HandlerError::Rejected("service is shutting down".into()))
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
            let (guard, timeout) = inner
                .scan_done
                .wait_timeout_while(manager, BLOCKING_SCAN_LIMIT, |m| {
                    !m.scan_finished() && m.state() == ProvState::Started
                })
                .unwrap_or_else(PoisonError::into_inner);
            manager = guard;
            if timeout.timed_out() || !manager.scan_finished() {
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
        let response = lock(&inner.manager).handle_ctrl(&request);
        inner.wake.notify_one();
        Ok(response.encode())
    }
}
