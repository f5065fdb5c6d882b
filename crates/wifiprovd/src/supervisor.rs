//! The supervisor: the one task that owns the running front-ends. It brings them up when provisioning opens
//! (started by the daemon, or reopened by the connection policy) and takes them down when it ends, in the order
//! those requests arrive, and keeps what they serve: the security scheme, `proto-ver`'s application labels, the
//! custom endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use wifiprov_dispatch::Dispatcher;
use wifiprov_manager::{ManagerError, ProvState};
use wifiprov_proto::ErrorChain;
use wifiprov_proto::endpoint::{EndpointHandler, ProtocommError, SessionLimits};
use wifiprov_proto::security::DeviceSecurity;
use wifiprov_proto::version::AppInfo;
use wifiprov_service::{Provisioner, ServiceRequest};

use crate::esp::{self, CustomEndpoint};
use crate::frontend::{Frontend, Running, Serve};
use crate::guessing::Guessing;
use crate::service::ServiceError;

type Reply<T> = oneshot::Sender<T>;

/// What to serve when provisioning opens: a security scheme and the front-ends.
#[derive(Clone)]
pub(crate) struct Served {
    pub(crate) security: DeviceSecurity,
    pub(crate) frontends: Vec<Arc<dyn Frontend>>,
}

pub(crate) enum Command {
    Start(Served, Reply<Result<(), ServiceError>>),
    SetFallback(Served),
    SetAppInfo(AppInfo, Reply<Result<(), ServiceError>>),
    CreateEndpoint(String, Reply<Result<(), ServiceError>>),
    RegisterEndpoint(String, Arc<dyn EndpointHandler>, Reply<Result<(), ServiceError>>),
    Addresses(Reply<Vec<SocketAddr>>),
}

/// The front-ends up now, and the dispatcher they share.
struct Open {
    dispatcher: Arc<Dispatcher>,
    running: Vec<Box<dyn Running>>,
}

pub(crate) struct Supervisor {
    provisioner: Provisioner,
    limits: SessionLimits,
    guessing: Guessing,
    scan_max_entries: u32,
    app_info: Vec<AppInfo>,
    custom: Vec<CustomEndpoint>,
    /// What provisioning serves when it (re)opens: what the last start served, or what was set for the policy.
    fallback: Option<Served>,
    open: Option<Open>,
    /// Whether any front-end is up.
    serving: watch::Sender<bool>,
}

impl Supervisor {
    pub(crate) fn new(
        provisioner: Provisioner,
        limits: SessionLimits,
        guessing: Guessing,
        scan_max_entries: u32,
        serving: watch::Sender<bool>,
    ) -> Self {
        Self {
            provisioner,
            limits,
            guessing,
            scan_max_entries,
            app_info: Vec::new(),
            custom: Vec::new(),
            fallback: None,
            open: None,
            serving,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut requests: mpsc::UnboundedReceiver<ServiceRequest>,
    ) {
        loop {
            tokio::select! {
                // The manager's requests first: a front-end change comes before commands sent after it.
                biased;
                // Each request's `Done` is dropped once it has been carried out, which releases the events that
                // announce it.
                Some(request) = requests.recv() => match request {
                    ServiceRequest::Close(_done) => self.close().await,
                    ServiceRequest::Open(_done) => self.reopen().await,
                    _ => tracing::warn!(?request, "unhandled service request"),
                },
                command = commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => break,
                },
            }
        }
        self.close().await;
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Start(served, reply) => {
                let _ = reply.send(self.start(served).await);
            }
            Command::SetFallback(served) => self.fallback = Some(served),
            Command::SetAppInfo(info, reply) => {
                let result = self.require_idle().map(|()| {
                    self.app_info.retain(|a| a.label != info.label);
                    self.app_info.push(info);
                });
                let _ = reply.send(result);
            }
            Command::CreateEndpoint(name, reply) => {
                let result = self.require_idle().and_then(|()| {
                    if self.custom.iter().any(|(n, _)| *n == name) {
                        return Err(ProtocommError::DuplicateEndpoint(name).into());
                    }
                    self.custom.push((name, None));
                    Ok(())
                });
                let _ = reply.send(result);
            }
            Command::RegisterEndpoint(name, handler, reply) => {
                let _ = reply.send(self.register(&name, handler));
            }
            Command::Addresses(reply) => {
                let addresses = self.open.iter().flat_map(|o| o.running.iter().filter_map(|r| r.address())).collect();
                let _ = reply.send(addresses);
            }
        }
    }

    fn require_idle(&self) -> Result<(), ServiceError> {
        let state = *self.provisioner.state().borrow();
        if state == ProvState::Idle && self.open.is_none() {
            Ok(())
        } else {
            Err(ManagerError::InvalidState { state }.into())
        }
    }

    /// Attaches a handler to a created endpoint; takes effect at once when provisioning is open.
    fn register(&mut self, name: &str, handler: Arc<dyn EndpointHandler>) -> Result<(), ServiceError> {
        let slot = self
            .custom
            .iter_mut()
            .find(|(n, _)| n == name)
            .ok_or_else(|| ProtocommError::UnknownEndpoint(name.to_owned()))?;
        slot.1 = Some(handler.clone());
        if let Some(open) = &self.open {
            open.dispatcher.with_protocomm(|pc| pc.register_handler(name, handler))?;
        }
        Ok(())
    }

    /// Brings up `served`'s front-ends, then opens provisioning. A failure changes nothing.
    async fn start(&mut self, served: Served) -> Result<(), ServiceError> {
        if self.open.is_some() {
            return Err(ManagerError::InvalidState { state: *self.provisioner.state().borrow() }.into());
        }
        let serve = self.serve(&served)?;
        let mut running = Vec::new();
        for frontend in &served.frontends {
            match frontend.start(&serve).await {
                Ok(up) => running.push(up),
                Err(error) => {
                    stop_all(running).await;
                    return Err(error.into());
                }
            }
        }
        if let Err(error) = self.provisioner.start().await {
            stop_all(running).await;
            return Err(error.into());
        }
        self.fallback = Some(served);
        self.opened(Open { dispatcher: serve.dispatcher, running });
        Ok(())
    }

    /// The connection policy reopened provisioning: bring the fallback front-ends up again; those that cannot
    /// start are logged, and if none can, the policy is told.
    async fn reopen(&mut self) {
        if self.open.is_some() {
            return;
        }
        let Some(served) = self.fallback.clone() else {
            tracing::error!("cannot reopen provisioning: no front-end configured");
            self.provisioner.service_unavailable().await;
            return;
        };
        let serve = match self.serve(&served) {
            Ok(serve) => serve,
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), "cannot reopen provisioning");
                self.provisioner.service_unavailable().await;
                return;
            }
        };
        let mut running = Vec::new();
        for frontend in &served.frontends {
            match frontend.start(&serve).await {
                Ok(up) => running.push(up),
                Err(error) => {
                    tracing::error!(frontend = frontend.describe(), error = %ErrorChain(&error), "cannot reopen");
                }
            }
        }
        if running.is_empty() {
            self.provisioner.service_unavailable().await;
            return;
        }
        self.opened(Open { dispatcher: serve.dispatcher, running });
    }

    fn opened(&mut self, open: Open) {
        self.open = Some(open);
        self.serving.send_replace(true);
    }

    /// Takes every front-end down.
    async fn close(&mut self) {
        if let Some(open) = self.open.take() {
            stop_all(open.running).await;
            tracing::info!("provisioning front-ends down");
        }
        self.serving.send_replace(false);
    }

    /// What `served`'s front-ends serve this time: a new dispatcher (sessions start afresh) with the endpoints as
    /// they are now, over the provisioning API.
    fn serve(&self, served: &Served) -> Result<Serve, ServiceError> {
        let dispatcher = esp::dispatcher(
            served.security.clone(),
            self.limits,
            &self.provisioner,
            &self.app_info,
            &self.custom,
            self.scan_max_entries,
            &self.guessing,
        )?;
        Ok(Serve { dispatcher, provisioner: self.provisioner.downgrade() })
    }
}

async fn stop_all(running: Vec<Box<dyn Running>>) {
    for up in running {
        up.stop().await;
    }
}
