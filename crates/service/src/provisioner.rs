//! [`Provisioner`]: the handle every front-end and the daemon use to talk to the manager's task.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use wifiprov_backend::{AccessPoint, LinkInfo, ScanParams, Ssid, WifiBackend};
use wifiprov_manager::networks::{ConnectOutcome, ListedNetwork, NetworkError, NetworkList, SavedNetwork};
use wifiprov_manager::{
    ClientId, Credentials, Event, JoinFirst, ManagerConfig, ManagerError, NetworksError, ProvState, ProvisioningStatus,
    RequestError, WifiState,
};
use wifiprov_store::{NetworkStore, StartStatus, StoreError};

use crate::actor::{self, Command};

/// How long a caller waits for a scan before giving up on it.
const SCAN_WAIT: Duration = Duration::from_secs(30);
/// How long a change to the saved networks waits to be on disk before its client is told it failed.
const WRITE_WAIT: Duration = Duration::from_secs(10);
/// How long past the manager's own attempt deadline a join request waits, in case the task is stuck.
const JOIN_SLACK: Duration = Duration::from_secs(5);
/// What a lifecycle call answers when the manager's task has ended.
const ENDED: ManagerError = ManagerError::InvalidRequest("service ended");
/// Commands queued for the manager's task before senders wait.
const QUEUE: usize = 256;

/// Why the service could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The saved networks could not be read. No longer returned by [`Provisioner::spawn`], which comes up on
    /// whatever the store holds; kept for callers that match on it.
    #[error("saved-network store")]
    Store(#[from] StoreError),
}

/// What the manager's task asks of whoever runs the front-ends (the daemon). Each carries a [`Done`]: the events
/// that announce the change ([`Event::End`], [`Event::Start`] after a reopen) are published once it is dropped,
/// so that, as on ESP, a subscriber hears of the end once the front-ends are down and of a reopen once they are
/// up.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceRequest {
    /// Provisioning ended: take every front-end down.
    Close(Done),
    /// The connection policy reopened provisioning because the device is offline: bring the front-ends up
    /// again, and report [`Provisioner::service_unavailable`] if none can start.
    Open(Done),
}

/// Drop it when the [`ServiceRequest`] it came with has been carried out (or could not be).
#[derive(Debug)]
pub struct Done(#[allow(dead_code, reason = "dropping the sender is the signal")] pub(crate) oneshot::Sender<()>);

/// A scan as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanView {
    /// A scan is under way.
    pub running: bool,
    /// The last scan has finished and `results` are its results.
    pub finished: bool,
    /// Strongest first, hidden networks left out, capped at the configured maximum.
    pub results: Vec<AccessPoint>,
}

/// The saved networks merged with the last scan, as [`Provisioner::list_networks`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Saved networks in priority order, then the other networks of the last scan (no passphrase).
    pub networks: Vec<ListedNetwork>,
    /// How many networks may be saved.
    pub capacity: usize,
    /// Whether a scan asked for finished in time (`true` when none was asked for).
    pub scanned: bool,
}

/// A network added to the saved list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// Its priority index.
    pub index: usize,
    /// Whether it replaced a saved network of the same SSID.
    pub updated: bool,
    /// The link, when it was joined first.
    pub link: Option<LinkInfo>,
}

/// Why a saved-network request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworksFailure {
    /// Refused before anything changed.
    #[error(transparent)]
    Refused(#[from] NetworksError),
    /// Joining the network failed; nothing was saved.
    #[error("joining failed: {0}")]
    JoinFailed(ConnectOutcome),
    /// The network joined, but the list changed meanwhile and it could not be saved.
    #[error("joined but not saved")]
    NotSaved(#[source] NetworkError),
    /// A provisioning attempt took the radio first.
    #[error("a provisioning attempt took the radio")]
    Preempted,
    /// No outcome in time.
    #[error("no outcome in time")]
    TimedOut,
    /// The change was made but could not be written to storage; it may not survive a restart.
    #[error("the change could not be written to storage")]
    NotPersisted,
    /// The service is shutting down.
    #[error("the service is shutting down")]
    ShuttingDown,
}

/// Talks to the manager's task: the protocol-neutral provisioning API.
///
/// Cheap to clone. The task ends when the last `Provisioner` is dropped; front-ends hold a
/// [`WeakProvisioner`] so that they do not keep it alive.
#[derive(Clone)]
pub struct Provisioner {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

/// A [`Provisioner`] that does not keep the service alive.
#[derive(Clone)]
pub struct WeakProvisioner {
    commands: mpsc::WeakSender<Command>,
    shared: Arc<Shared>,
}

struct Shared {
    events: broadcast::Sender<Event>,
    /// Subscribed before the task started, so it holds [`Event::Init`]: handed to the first subscriber.
    first: std::sync::Mutex<Option<broadcast::Receiver<Event>>>,
    state: watch::Receiver<ProvState>,
    join_wait: Duration,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner").field("state", &*self.shared.state.borrow()).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for WeakProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakProvisioner").finish_non_exhaustive()
    }
}

impl WeakProvisioner {
    /// The service, unless it has ended.
    pub fn upgrade(&self) -> Option<Provisioner> {
        Some(Provisioner { commands: self.commands.upgrade()?, shared: self.shared.clone() })
    }
}

impl Provisioner {
    /// Creates the service (`wifi_prov_mgr_init`) with the networks saved in `store`, and its tasks: the
    /// manager's, the radio queue's and the store writer's. Emits [`Event::Init`]. Must be called inside a tokio
    /// runtime. The daemon receives [`ServiceRequest`]s on the returned channel and runs the front-ends.
    ///
    /// Whatever the store's directory holds, the service comes up ([`NetworkStore::start`], whose rules the
    /// store's crate docs give), so that a damaged, tampered or read-only state can never keep the device from
    /// being provisioned: a corrupt file is moved aside, anything else wrong is left exactly as it is, and the one
    /// problem is logged once as an error. A change that cannot be written is then answered as a failure (a
    /// provisioning attempt fails with [`wifiprov_manager::FailReason::NotSaved`], a saved-network change with
    /// [`NetworksFailure::NotPersisted`]), never as a success. Never returns an error today.
    pub fn spawn(
        config: ManagerConfig,
        backend: Arc<dyn WifiBackend>,
        store: NetworkStore,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ServiceRequest>), ServiceError> {
        let (store, networks) = start_store(store);
        if !networks.is_empty() {
            tracing::info!(saved = networks.len(), path = %store.path().display(), "loaded saved networks");
        }
        let join_wait = config.policy.attempt_timeout + JOIN_SLACK;
        let (commands, command_rx) = mpsc::channel(QUEUE);
        let (events, first) = broadcast::channel(64);
        let (state_tx, state) = watch::channel(ProvState::Idle);
        let (requests, request_rx) = mpsc::unbounded_channel();
        actor::spawn(config, networks, backend, store, command_rx, events.clone(), state_tx, requests);
        let first = std::sync::Mutex::new(Some(first));
        Ok((Self { commands, shared: Arc::new(Shared { events, first, state, join_wait }) }, request_rx))
    }

    /// A handle that does not keep the service alive.
    pub fn downgrade(&self) -> WeakProvisioner {
        WeakProvisioner { commands: self.commands.downgrade(), shared: self.shared.clone() }
    }

    /// Subscribes to manager events. The first subscriber sees every event from [`Event::Init`] on; later ones
    /// see those published from then on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        let first = self.shared.first.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        first.unwrap_or_else(|| self.shared.events.subscribe())
    }

    /// The service state, as a watch channel.
    pub fn state(&self) -> watch::Receiver<ProvState> {
        self.shared.state.clone()
    }

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Like [`Provisioner::ask`] for an answer that may take a while (a scan, a join, a write): `Err(true)` when
    /// it did not come within `limit`, `Err(false)` when the service has ended.
    async fn ask_within<T>(
        &self,
        limit: Duration,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, bool> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| false)?;
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(false),
            Err(_) => Err(true),
        }
    }

    fn tell(&self, command: Command) {
        // Only these fire-and-forget notices use `try_send`; a full queue means the task is far behind, and the
        // notice (a closed session) is bounded on the manager's side anyway.
        if let Err(error) = self.commands.try_send(command) {
            tracing::warn!(%error, "manager task did not take a notice");
        }
    }

    // ---- lifecycle (the daemon) ---------------------------------------------------------------------------

    /// Starts serving (the front-ends are up): `Idle` to `Started`, [`Event::Start`].
    pub async fn start(&self) -> Result<(), ManagerError> {
        self.ask(Command::Start).await.unwrap_or(Err(ENDED))
    }

    /// Asks the service to stop after its cleanup delay (non-blocking, like `wifi_prov_mgr_stop_provisioning`).
    pub async fn stop(&self) {
        let _ = self.commands.send(Command::Stop).await;
    }

    /// Stops at once and shuts the manager down (`wifi_prov_mgr_deinit`): [`Event::End`] if it was running, then
    /// [`Event::Deinit`], which has been published when this returns.
    pub async fn deinit(&self) {
        let _ = self.ask(Command::Deinit).await;
    }

    /// Keeps serving after success (needed for reprovisioning); before starting only.
    pub async fn disable_auto_stop(&self, cleanup_delay: Duration) -> Result<(), ManagerError> {
        self.ask(|reply| Command::DisableAutoStop(cleanup_delay, reply)).await.unwrap_or(Err(ENDED))
    }

    /// Starts the connection policy: tries the saved networks in priority order, and asks for the front-ends
    /// ([`ServiceRequest::Open`]) when none works. Returns false when nothing is saved.
    pub async fn start_policy(&self) -> bool {
        self.ask(Command::StartPolicy).await.unwrap_or(false)
    }

    /// The front-ends asked for by [`ServiceRequest::Open`] could not start.
    pub async fn service_unavailable(&self) {
        let _ = self.commands.send(Command::ServiceUnavailable).await;
    }

    /// Forgets every saved network and leaves the current one (`wifi_prov_mgr_reset_provisioning`).
    pub async fn reset_provisioning(&self) {
        let _ = self.commands.send(Command::ResetProvisioning).await;
    }

    /// The saved networks, in priority order.
    pub async fn networks(&self) -> NetworkList {
        self.ask(Command::Networks).await.unwrap_or_default()
    }

    /// The station as the manager sees it.
    pub async fn wifi_state(&self) -> WifiState {
        self.ask(Command::Wifi).await.unwrap_or(WifiState::Disconnected)
    }

    /// Waits until every change to the saved networks made so far is on disk; false if writing one failed or
    /// took too long.
    pub async fn flush(&self) -> bool {
        self.ask_within(WRITE_WAIT, Command::Flush).await.unwrap_or(false)
    }

    // ---- clients (the front-ends) -------------------------------------------------------------------------

    /// Stores `client`'s credentials for its next [`Provisioner::apply`].
    pub async fn set_credentials(&self, client: ClientId, credentials: Credentials) -> Result<(), RequestError> {
        self.ask(|reply| Command::SetCredentials(client, credentials, reply))
            .await
            .unwrap_or(Err(RequestError::NotServing))
    }

    /// Starts the provisioning attempt with the credentials `client` set.
    pub async fn apply(&self, client: ClientId) -> Result<(), RequestError> {
        self.ask(|reply| Command::Apply(client, reply)).await.unwrap_or(Err(RequestError::NotServing))
    }

    /// How provisioning looks to `client`.
    pub async fn status(&self, client: ClientId) -> ProvisioningStatus {
        self.ask(|reply| Command::Status(client, reply)).await.unwrap_or(ProvisioningStatus::NotServing)
    }

    /// `client`'s session has closed: its unapplied credentials go. Does not wait.
    pub fn forget_client(&self, client: ClientId) {
        self.tell(Command::Forget(client));
    }

    /// After a failed attempt, accepts new credentials again.
    pub async fn reset(&self) -> Result<(), ManagerError> {
        self.ask(Command::Reset).await.unwrap_or(Err(ENDED))
    }

    /// Starts over from any serving state; only with auto-stop disabled.
    pub async fn reprovision(&self) -> Result<(), ManagerError> {
        self.ask(Command::Reprovision).await.unwrap_or(Err(ENDED))
    }

    /// Starts a scan for a client choosing a network (a scan under way is not restarted).
    pub async fn start_scan(&self, params: ScanParams) -> Result<(), RequestError> {
        self.ask(|reply| Command::StartScan(params, reply)).await.unwrap_or(Err(RequestError::NotServing))
    }

    /// Waits for the scan under way to finish; false when it did not finish in time, or was dropped (the service
    /// stopped).
    pub async fn wait_scan(&self) -> bool {
        self.ask_within(SCAN_WAIT, Command::WaitScan).await.unwrap_or(false)
    }

    /// The last scan.
    pub async fn scan(&self) -> ScanView {
        self.ask(Command::Scan).await.unwrap_or_default()
    }

    /// The saved networks merged with the last scan; with `scan`, after a new scan.
    pub async fn list_networks(&self, scan: bool) -> Listing {
        let scanned = !scan || self.ask_within(SCAN_WAIT, Command::ScanForListing).await.unwrap_or(false);
        let listing = self.ask(Command::Listing).await;
        let (networks, capacity) = listing.unwrap_or_default();
        Listing { networks, capacity, scanned }
    }

    /// Adds (or updates) a saved network, joining it first unless `join` says not to. Answers once the change is
    /// on disk.
    pub async fn add_network(
        &self,
        network: SavedNetwork,
        priority: Option<usize>,
        join: JoinFirst,
    ) -> Result<Added, NetworksFailure> {
        self.change(|reply| Command::AddNetwork { network, priority, join, reply }).await
    }

    /// Forgets a saved network. Answers once the change is on disk.
    pub async fn remove_network(&self, ssid: Ssid) -> Result<(), NetworksFailure> {
        self.change(|reply| Command::RemoveNetwork { ssid, reply }).await
    }

    /// Moves a saved network to priority `to`; returns its former priority. Answers once the change is on disk.
    pub async fn move_network(&self, ssid: Ssid, to: usize) -> Result<usize, NetworksFailure> {
        self.change(|reply| Command::MoveNetwork { ssid, to, reply }).await
    }

    /// Switches the station to a saved network now.
    pub async fn connect_network(&self, ssid: Ssid) -> Result<LinkInfo, NetworksFailure> {
        self.change(|reply| Command::ConnectNetwork { ssid, reply }).await
    }

    /// A saved-network change: answered at once, or after its join and its write, bounded.
    async fn change<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, NetworksFailure>>) -> Command,
    ) -> Result<T, NetworksFailure> {
        match self.ask_within(self.shared.join_wait + WRITE_WAIT, command).await {
            Ok(result) => result,
            Err(true) => Err(NetworksFailure::TimedOut),
            Err(false) => Err(NetworksFailure::ShuttingDown),
        }
    }
}

/// Starts the store, logging its one problem (if any) as one error line.
fn start_store(store: NetworkStore) -> (NetworkStore, NetworkList) {
    let started = store.start();
    let dir = started.store.dir().display().to_string();
    let saved = started.networks.len();
    match &started.status {
        StartStatus::Quarantined { error, moved_to } => tracing::error!(
            error = %wifiprov_proto::ErrorChain(error),
            moved_to = %moved_to.display(),
            "saved-network file is corrupt; moved it aside and starting with no saved network"
        ),
        StartStatus::NotWritable(error) => tracing::error!(
            error = %wifiprov_proto::ErrorChain(error),
            %dir,
            saved,
            "the state directory cannot be written; changes to the saved networks will be answered as failures"
        ),
        StartStatus::Refused(error) => tracing::error!(
            error = %wifiprov_proto::ErrorChain(error),
            %dir,
            saved,
            "the saved-network state was left as found and nothing will be saved there until it is fixed and \
             wifiprovd restarted; changes will be answered as failures"
        ),
        StartStatus::Ready => {}
        other => {
            if let Some(error) = other.error() {
                tracing::error!(error = %wifiprov_proto::ErrorChain(error), %dir, saved, "saved-network state");
            }
        }
    }
    (started.store, started.networks)
}
