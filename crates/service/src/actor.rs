//! The manager's task: the one owner of the [`Manager`]. It takes commands from [`crate::Provisioner`]s,
//! outcomes from the radio queue and the store writer, link events and its own timers, and after each input
//! carries out the manager's actions in order, publishes its events, and answers the callers whose answer was
//! waiting for something (a scan, a join, a write).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use wifiprov_backend::{LinkInfo, ScanParams, Ssid, WifiBackend};
use wifiprov_manager::networks::{ListedNetwork, NetworkList, SavedNetwork};
use wifiprov_manager::{
    Action, AddNetwork, ClientId, ConnectNetwork, Credentials, Event, JoinFirst, Manager, ManagerConfig, ManagerError,
    ProvState, ProvisioningStatus, RequestError, RequestId, RequestOutcome, WifiState, WriteOutcome,
};
use wifiprov_store::NetworkStore;

use crate::provisioner::{Added, Done, NetworksFailure, ScanView, ServiceRequest};
use crate::radio::{self, RadioOp, RadioOutcome};
use crate::writer::{self, ToWrite, Written};

type Reply<T> = oneshot::Sender<T>;
type Change<T> = Reply<Result<T, NetworksFailure>>;

/// What a [`crate::Provisioner`] asks of the task.
pub(crate) enum Command {
    Start(Reply<Result<(), ManagerError>>),
    Stop,
    Deinit(Reply<()>),
    DisableAutoStop(Duration, Reply<Result<(), ManagerError>>),
    StartPolicy(Reply<bool>),
    ServiceUnavailable,
    ResetProvisioning,
    Networks(Reply<NetworkList>),
    Wifi(Reply<WifiState>),
    /// Answered once every change so far is on disk (`true`) or failed to get there.
    Flush(Reply<bool>),
    SetCredentials(ClientId, Credentials, Reply<Result<(), RequestError>>),
    Apply(ClientId, Reply<Result<(), RequestError>>),
    Status(ClientId, Reply<ProvisioningStatus>),
    Forget(ClientId),
    Reset(Reply<Result<(), ManagerError>>),
    Reprovision(Reply<Result<(), ManagerError>>),
    StartScan(ScanParams, Reply<Result<(), RequestError>>),
    /// Answered when the scan under way finishes (`true`) or is dropped.
    WaitScan(Reply<bool>),
    Scan(Reply<ScanView>),
    /// Starts a scan whatever the provisioning state; answered like [`Command::WaitScan`].
    ScanForListing(Reply<bool>),
    Listing(Reply<(Vec<ListedNetwork>, usize)>),
    AddNetwork {
        network: SavedNetwork,
        priority: Option<usize>,
        join: JoinFirst,
        reply: Change<Added>,
    },
    RemoveNetwork {
        ssid: Ssid,
        reply: Change<()>,
    },
    MoveNetwork {
        ssid: Ssid,
        to: usize,
        reply: Change<usize>,
    },
    ConnectNetwork {
        ssid: Ssid,
        reply: Change<LinkInfo>,
    },
}

/// A join request waiting for the radio.
struct Join {
    id: RequestId,
    revision_before: u64,
    reply: JoinReply,
}

enum JoinReply {
    Add(Change<Added>),
    Connect(Change<LinkInfo>),
}

/// An answer waiting until a list revision is on disk: called with whether it got there.
struct Durable {
    revision: u64,
    finish: Box<dyn FnOnce(WriteOutcome) + Send>,
}

/// Callers waiting for something the manager will report.
#[derive(Default)]
struct Waiting {
    scans: Vec<Reply<bool>>,
    joins: Vec<Join>,
    writes: Vec<Durable>,
    deinit: Vec<Reply<()>>,
}

/// How long the events announcing a front-end change wait for it to be carried out, at most.
const FRONTEND_CHANGE_LIMIT: Duration = Duration::from_secs(10);

struct Actor {
    manager: Manager,
    /// A front-end change asked for and not carried out yet: events wait for it (see [`ServiceRequest`]).
    changing: Option<std::pin::Pin<Box<tokio::time::Timeout<oneshot::Receiver<()>>>>>,
    /// Events waiting for `changing`, in order.
    backlog: std::collections::VecDeque<Event>,
    radio: mpsc::UnboundedSender<RadioOp>,
    to_write: watch::Sender<ToWrite>,
    written: Written,
    events: broadcast::Sender<Event>,
    state: watch::Sender<ProvState>,
    requests: mpsc::UnboundedSender<ServiceRequest>,
    waiting: Waiting,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Starts the manager's task and its helpers (radio queue, store writer).
#[allow(clippy::too_many_arguments, reason = "the one place that wires the task to its channels")]
pub(crate) fn spawn(
    config: ManagerConfig,
    networks: NetworkList,
    backend: Arc<dyn WifiBackend>,
    store: NetworkStore,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
    state: watch::Sender<ProvState>,
    requests: mpsc::UnboundedSender<ServiceRequest>,
) {
    let (radio, radio_ops) = mpsc::unbounded_channel();
    let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
    let (to_write, lists) = watch::channel(None);
    let (written_tx, written) = mpsc::unbounded_channel();
    let link_events = backend.subscribe();
    tokio::spawn(radio::run(backend, radio_ops, outcomes_tx));
    tokio::spawn(writer::run(store, lists, written_tx));
    let actor = Actor {
        manager: Manager::with_networks(config, networks),
        changing: None,
        backlog: std::collections::VecDeque::new(),
        radio,
        to_write,
        written: Written { revision: 0, outcome: WriteOutcome::Written },
        events,
        state,
        requests,
        waiting: Waiting::default(),
    };
    tokio::spawn(actor.run(commands, outcomes, written, link_events));
}

impl Actor {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut outcomes: mpsc::UnboundedReceiver<RadioOutcome>,
        mut written: mpsc::UnboundedReceiver<Written>,
        mut link_events: broadcast::Receiver<wifiprov_backend::LinkEvent>,
    ) {
        loop {
            self.drain();
            let deadline = self.manager.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    // Every Provisioner is gone: so is the service. The radio queue and the writer end with
                    // their channels.
                    None => break,
                },
                Some(outcome) = outcomes.recv() => match outcome {
                    RadioOutcome::Connected(attempt, result) => self.manager.handle_connect_result(now(), attempt, result),
                    RadioOutcome::Scanned(result) => self.manager.handle_scan_result(now(), result),
                },
                Some(done) = written.recv() => {
                    self.written = done;
                    // The provisioning attempt waits for its network to be written as well.
                    self.manager.handle_networks_written(now(), done.revision, done.outcome);
                }
                event = link_events.recv() => match event {
                    Ok(event) => self.manager.handle_link_event(now(), event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "link events were missed");
                    }
                    Err(broadcast::error::RecvError::Closed) => link_events = broadcast::channel(1).1,
                },
                () = sleep => self.manager.handle_timeout(now()),
                done = async { self.changing.as_mut().expect("guarded").await }, if self.changing.is_some() => {
                    self.changing = None;
                    if done.is_err() {
                        tracing::warn!(limit = ?FRONTEND_CHANGE_LIMIT, "front-ends did not change in time");
                    }
                }
            }
        }
        let (done, _) = oneshot::channel();
        let _ = self.requests.send(ServiceRequest::Close(Done(done)));
    }

    /// Carries out the manager's actions, publishes its events and state, and answers whoever waited for what
    /// just happened.
    fn drain(&mut self) {
        while let Some(action) = self.manager.poll_action() {
            self.carry_out(action);
        }
        let state = self.manager.state();
        self.state.send_if_modified(|s| std::mem::replace(s, state) != state);
        self.backlog.extend(std::iter::from_fn(|| self.manager.poll_event()));
        let mut deinit = false;
        while self.changing.is_none()
            && let Some(event) = self.backlog.pop_front()
        {
            tracing::info!(?event, "provisioning event");
            deinit |= event == Event::Deinit;
            let _ = self.events.send(event);
        }
        if deinit {
            for reply in self.waiting.deinit.drain(..) {
                let _ = reply.send(());
            }
        }
        self.settle();
    }

    fn carry_out(&mut self, action: Action) {
        match action {
            Action::Connect { attempt, request } => self.radio_op(RadioOp::Connect { attempt, request }),
            Action::Disconnect => self.radio_op(RadioOp::Disconnect),
            Action::Scan(params) => self.radio_op(RadioOp::Scan(params)),
            // Several saves in a row: the writer writes the newest list and skips those it superseded.
            Action::SaveNetworks(list) => {
                self.to_write.send_replace(Some((self.manager.networks_revision(), list)));
            }
            Action::StopService => self.request(ServiceRequest::Close),
            Action::StartService => self.request(ServiceRequest::Open),
            _ => tracing::warn!(?action, "unhandled manager action"),
        }
    }

    fn radio_op(&self, op: RadioOp) {
        if self.radio.send(op).is_err() {
            tracing::error!("radio queue is gone");
        }
    }

    /// Asks for a front-end change; the events from now on wait until it is carried out. A later change
    /// supersedes the wait for an earlier one: they are carried out in order.
    fn request(&mut self, request: fn(Done) -> ServiceRequest) {
        let (done, carried_out) = oneshot::channel();
        // Nobody runs front-ends (the manager's task alone, in tests): then nothing waits either, the dropped
        // request's `Done` closes the channel at once.
        let _ = self.requests.send(request(Done(done)));
        self.changing = Some(Box::pin(tokio::time::timeout(FRONTEND_CHANGE_LIMIT, carried_out)));
    }

    /// Answers the waiting callers whose condition now holds, and those whose caller gave up.
    fn settle(&mut self) {
        let scan_over = !self.manager.scan_running();
        if scan_over {
            let finished = self.manager.scan_finished();
            for reply in self.waiting.scans.drain(..) {
                let _ = reply.send(finished);
            }
        }
        for join in std::mem::take(&mut self.waiting.joins) {
            match self.manager.take_request_outcome(join.id) {
                Some(outcome) => self.joined(join, outcome),
                None => self.waiting.joins.push(join),
            }
        }
        let written = self.written;
        let (done, waiting): (Vec<Durable>, Vec<Durable>) =
            std::mem::take(&mut self.waiting.writes).into_iter().partition(|d| written.revision >= d.revision);
        self.waiting.writes = waiting;
        for durable in done {
            (durable.finish)(written.outcome);
        }
    }

    fn joined(&mut self, join: Join, outcome: RequestOutcome) {
        let failure = |outcome| match outcome {
            RequestOutcome::Failed(outcome) => NetworksFailure::JoinFailed(outcome),
            RequestOutcome::NotSaved(error) => NetworksFailure::NotSaved(error),
            _ => NetworksFailure::Preempted,
        };
        match (join.reply, outcome) {
            (JoinReply::Add(reply), RequestOutcome::Joined { link, index, updated }) => {
                self.answer_when_written(join.revision_before, reply, Ok(Added { index, updated, link: Some(link) }));
            }
            (JoinReply::Connect(reply), RequestOutcome::Joined { link, .. }) => {
                self.answer_when_written(join.revision_before, reply, Ok(link));
            }
            (JoinReply::Add(reply), outcome) => {
                let _ = reply.send(Err(failure(outcome)));
            }
            (JoinReply::Connect(reply), outcome) => {
                let _ = reply.send(Err(failure(outcome)));
            }
        }
    }

    /// Answers a change at once, or, if it changed the saved networks, once that is on disk: a client told
    /// "success" never loses its change to a crash, and is told when it could not be written.
    fn answer_when_written<T: Send + 'static>(
        &mut self,
        revision_before: u64,
        reply: Change<T>,
        result: Result<T, NetworksFailure>,
    ) {
        let revision = self.manager.networks_revision();
        if result.is_err() || revision <= revision_before {
            let _ = reply.send(result);
            return;
        }
        let finish = Box::new(move |outcome| {
            let _ = reply.send(match outcome {
                WriteOutcome::Written => result,
                WriteOutcome::Failed => Err(NetworksFailure::NotPersisted),
            });
        });
        self.waiting.writes.push(Durable { revision, finish });
    }

    fn command(&mut self, command: Command) {
        let now = now();
        match command {
            Command::Start(reply) => {
                let _ = reply.send(self.manager.start());
            }
            Command::Stop => {
                self.manager.stop(now);
            }
            Command::Deinit(reply) => {
                self.manager.deinit();
                self.waiting.deinit.push(reply);
            }
            Command::DisableAutoStop(delay, reply) => {
                let _ = reply.send(self.manager.disable_auto_stop(delay));
            }
            Command::StartPolicy(reply) => {
                let _ = reply.send(self.manager.start_policy(now));
            }
            Command::ServiceUnavailable => self.manager.handle_service_unavailable(now),
            Command::ResetProvisioning => self.manager.reset_provisioning(),
            Command::Networks(reply) => {
                let _ = reply.send(self.manager.networks().clone());
            }
            Command::Wifi(reply) => {
                let _ = reply.send(self.manager.wifi().clone());
            }
            Command::Flush(reply) => {
                let finish = Box::new(move |outcome| {
                    let _ = reply.send(outcome == WriteOutcome::Written);
                });
                self.waiting.writes.push(Durable { revision: self.manager.networks_revision(), finish });
            }
            Command::SetCredentials(client, credentials, reply) => {
                let _ = reply.send(self.manager.set_credentials(client, credentials));
            }
            Command::Apply(client, reply) => {
                let _ = reply.send(self.manager.apply_credentials(client, now));
            }
            Command::Status(client, reply) => {
                let _ = reply.send(self.manager.provisioning_status(client, now));
            }
            Command::Forget(client) => self.manager.forget_client(client),
            Command::Reset(reply) => {
                let _ = reply.send(self.manager.reset_on_failure());
            }
            Command::Reprovision(reply) => {
                let _ = reply.send(self.manager.reset_for_reprovision(now));
            }
            Command::StartScan(params, reply) => {
                let _ = reply.send(self.manager.start_scan(params));
            }
            Command::WaitScan(reply) => self.waiting.scans.push(reply),
            Command::ScanForListing(reply) => {
                self.manager.scan_for_listing();
                self.waiting.scans.push(reply);
            }
            Command::Scan(reply) => {
                let view = ScanView {
                    running: self.manager.scan_running(),
                    finished: self.manager.scan_finished(),
                    results: self.manager.scan_results().to_vec(),
                };
                let _ = reply.send(view);
            }
            Command::Listing(reply) => {
                let _ = reply.send((self.manager.listed_networks(), self.manager.networks().capacity()));
            }
            Command::AddNetwork { network, priority, join, reply } => {
                let before = self.manager.networks_revision();
                match self.manager.add_network(now, network, priority, join) {
                    Err(refused) => {
                        let _ = reply.send(Err(refused.into()));
                    }
                    Ok(AddNetwork::Saved(outcome)) => {
                        let added = Added {
                            index: outcome.index(),
                            updated: matches!(outcome, wifiprov_manager::networks::AddOutcome::Updated { .. }),
                            link: None,
                        };
                        self.answer_when_written(before, reply, Ok(added));
                    }
                    Ok(AddNetwork::Joining(id)) => {
                        self.waiting.joins.push(Join { id, revision_before: before, reply: JoinReply::Add(reply) });
                    }
                }
            }
            Command::RemoveNetwork { ssid, reply } => {
                let before = self.manager.networks_revision();
                let result = self.manager.remove_network(now, &ssid).map_err(NetworksFailure::from);
                self.answer_when_written(before, reply, result);
            }
            Command::MoveNetwork { ssid, to, reply } => {
                let before = self.manager.networks_revision();
                let result = self.manager.move_network(&ssid, to).map_err(NetworksFailure::from);
                self.answer_when_written(before, reply, result);
            }
            Command::ConnectNetwork { ssid, reply } => {
                let before = self.manager.networks_revision();
                match self.manager.connect_network(now, &ssid) {
                    Err(refused) => {
                        let _ = reply.send(Err(refused.into()));
                    }
                    Ok(ConnectNetwork::Connected(link)) => {
                        let _ = reply.send(Ok(link));
                    }
                    Ok(ConnectNetwork::Joining(id)) => {
                        self.waiting.joins.push(Join { id, revision_before: before, reply: JoinReply::Connect(reply) });
                    }
                }
            }
        }
    }
}
