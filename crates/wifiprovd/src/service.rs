//! The provisioning service as the daemon uses it: ESP's `wifi_prov_mgr` API (init, start, stop, wait, deinit,
//! custom endpoints, application info) over the manager's task ([`Provisioner`]) and the supervisor that runs
//! the front-ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use wifiprov_backend::WifiBackend;
use wifiprov_manager::networks::NetworkList;
use wifiprov_manager::{Event, ManagerConfig, ManagerError, ProvState, WifiState};
use wifiprov_proto::endpoint::{EndpointHandler, ProtocommError, SessionLimits};
use wifiprov_proto::security::DeviceSecurity;
use wifiprov_proto::version::AppInfo;
use wifiprov_service::Provisioner;
use wifiprov_store::NetworkStore;

use crate::frontend::{Frontend, FrontendError};
use crate::guessing::{Guessing, SecurityEvent};
use crate::supervisor::{Command, Served, Supervisor};

/// Settings of the service.
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig {
    /// Manager settings (auto-stop, attempts, delays, scan size, the connection policy).
    pub manager: ManagerConfig,
    /// Session table bounds, shared by every front-end.
    pub sessions: SessionLimits,
    /// The online-guessing limit and its persisted count, shared by every front-end and every reopening.
    pub guessing: Guessing,
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
    /// The saved networks could not be loaded.
    #[error(transparent)]
    Load(#[from] wifiprov_service::ServiceError),
    /// A front-end could not start.
    #[error("front-end")]
    Frontend(#[from] FrontendError),
    /// The service has shut down.
    #[error("the provisioning service has shut down")]
    Gone,
}

/// The device side of provisioning. Cheap to clone; all clones drive the same service, which ends when the last
/// clone is dropped.
#[derive(Clone)]
pub struct ProvisioningService {
    provisioner: Provisioner,
    supervisor: mpsc::Sender<Command>,
    serving: watch::Receiver<bool>,
    guessing: Guessing,
}

impl ProvisioningService {
    /// Creates the service (`wifi_prov_mgr_init`) with the networks saved in `store`; emits [`Event::Init`]. Must
    /// be called inside a tokio runtime. Whatever the store's directory holds, the service comes up (see
    /// [`Provisioner::spawn`]): a corrupt file is moved aside, anything else wrong is left as it is and logged
    /// once, and a change that cannot be written is answered to its client as a failure.
    pub fn new(
        config: ServiceConfig,
        backend: Arc<dyn WifiBackend>,
        store: NetworkStore,
    ) -> Result<Self, ServiceError> {
        let scan_max_entries = config.manager.scan_max_entries;
        let (provisioner, requests) = Provisioner::spawn(config.manager, backend, store)?;
        let (serving_tx, serving) = watch::channel(false);
        let (supervisor, commands) = mpsc::channel(16);
        let guessing = config.guessing.clone();
        let task = Supervisor::new(provisioner.clone(), config.sessions, config.guessing, scan_max_entries, serving_tx);
        tokio::spawn(task.run(commands, requests));
        Ok(Self { provisioner, supervisor, serving, guessing })
    }

    /// Subscribes to security events (failed proofs, lockouts).
    pub fn security_events(&self) -> broadcast::Receiver<SecurityEvent> {
        self.guessing.subscribe()
    }

    /// The protocol-neutral provisioning API, for front-ends and embedders.
    pub fn provisioner(&self) -> &Provisioner {
        &self.provisioner
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, ServiceError> {
        let (reply, answer) = oneshot::channel();
        self.supervisor.send(command(reply)).await.map_err(|_| ServiceError::Gone)?;
        answer.await.map_err(|_| ServiceError::Gone)
    }

    /// Subscribes to manager events. Subscribe before starting to see every event.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.provisioner.subscribe()
    }

    /// The service state, as a watch channel.
    pub fn state(&self) -> watch::Receiver<ProvState> {
        self.provisioner.state()
    }

    /// The station state as the manager sees it.
    pub async fn wifi_state(&self) -> WifiState {
        self.provisioner.wifi_state().await
    }

    /// Adds an application label to `proto-ver` (before starting).
    pub async fn set_app_info(&self, label: &str, version: &str, caps: &[&str]) -> Result<(), ServiceError> {
        let info = AppInfo {
            label: label.to_owned(),
            ver: version.to_owned(),
            cap: caps.iter().map(|c| (*c).to_owned()).collect(),
        };
        self.ask(|reply| Command::SetAppInfo(info, reply)).await?
    }

    /// Reserves a custom endpoint (before starting), served once a handler is registered. Custom endpoints come
    /// after the built-in ones, in creation order, as on ESP.
    pub async fn create_endpoint(&self, name: &str) -> Result<(), ServiceError> {
        self.ask(|reply| Command::CreateEndpoint(name.to_owned(), reply)).await?
    }

    /// Attaches a handler to a created endpoint; takes effect at once when the service is running.
    pub async fn register_endpoint(&self, name: &str, handler: Arc<dyn EndpointHandler>) -> Result<(), ServiceError> {
        self.ask(|reply| Command::RegisterEndpoint(name.to_owned(), handler, reply)).await?
    }

    /// Keeps serving after success (needed for `prov-ctrl` reprovisioning); before starting only.
    pub async fn disable_auto_stop(&self, cleanup_delay: Duration) -> Result<(), ServiceError> {
        Ok(self.provisioner.disable_auto_stop(cleanup_delay).await?)
    }

    /// Whether any network is saved (`wifi_prov_mgr_is_provisioned`).
    pub async fn is_provisioned(&self) -> bool {
        !self.provisioner.networks().await.is_empty()
    }

    /// The saved networks, in priority order.
    pub async fn networks(&self) -> NetworkList {
        self.provisioner.networks().await
    }

    /// Starts the connection policy: tries the saved networks in priority order, and reopens provisioning (see
    /// [`ProvisioningService::set_fallback`]) when none works. Returns false when nothing is saved.
    pub async fn start_policy(&self) -> bool {
        self.provisioner.start_policy().await
    }

    /// What provisioning serves when the policy reopens it while the device is offline; without this, a reopen
    /// serves what the last [`ProvisioningService::start_provisioning`] did.
    pub async fn set_fallback(&self, security: DeviceSecurity, frontends: Vec<Arc<dyn Frontend>>) {
        let _ = self.supervisor.send(Command::SetFallback(Served { security, frontends })).await;
    }

    /// The addresses the running IP front-ends serve on.
    pub async fn addresses(&self) -> Vec<SocketAddr> {
        self.ask(Command::Addresses).await.unwrap_or_default()
    }

    /// The address of the first running IP front-end.
    pub async fn local_addr(&self) -> Option<SocketAddr> {
        self.addresses().await.into_iter().next()
    }

    /// Forgets every saved network and leaves the current one (`wifi_prov_mgr_reset_provisioning`).
    pub async fn reset_provisioning(&self) {
        self.provisioner.reset_provisioning().await;
    }

    /// Starts provisioning with `security` on every front-end in `frontends` at once. Fails when already started
    /// or when a front-end cannot start; a failure changes nothing.
    pub async fn start_provisioning(
        &self,
        security: DeviceSecurity,
        frontends: Vec<Arc<dyn Frontend>>,
    ) -> Result<(), ServiceError> {
        self.ask(|reply| Command::Start(Served { security, frontends }, reply)).await?
    }

    /// Asks the service to stop after its cleanup delay (non-blocking).
    pub async fn stop_provisioning(&self) {
        self.provisioner.stop().await;
    }

    /// Waits until the service is idle and its front-ends are down (`wifi_prov_mgr_wait`).
    pub async fn wait(&self) {
        let mut state = self.state();
        let _ = state.wait_for(|s| *s == ProvState::Idle).await;
        let mut serving = self.serving.clone();
        let _ = serving.wait_for(|up| !*up).await;
    }

    /// Stops at once and shuts the service down (`wifi_prov_mgr_deinit`): [`Event::End`] if it was running, then
    /// [`Event::Deinit`]; returns once the front-ends are down and the saved networks are on disk.
    pub async fn deinit(self) {
        self.provisioner.deinit().await;
        self.wait().await;
        self.flush().await;
    }

    /// Waits until every change to the saved networks made so far is on disk; false if that failed.
    pub async fn flush(&self) -> bool {
        self.provisioner.flush().await
    }
}
