//! Protocomm over HTTP (ESP's SoftAP provisioning, or any IP interface).

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wifiprov_transport_http::HttpConfig;

use super::{BoxFuture, Frontend, FrontendError, Running, Serve};

/// HTTP on one address. The first start may use a listener bound beforehand (so a bad address is an error
/// before anything starts, and tests can bind port 0); every later start binds the address again.
#[derive(Debug)]
pub struct HttpFrontend {
    address: SocketAddr,
    bound: Mutex<Option<TcpListener>>,
    config: HttpConfig,
}

impl HttpFrontend {
    /// Serves on `listener` first (bind it with `wifiprov_transport_http::listen`, for its deep queue), then on its
    /// address at every reopen.
    pub fn bound(listener: TcpListener, config: HttpConfig) -> Result<Self, FrontendError> {
        let address = listener
            .local_addr()
            .map_err(|source| FrontendError::Listen { address: SocketAddr::from(([0, 0, 0, 0], 0)), source })?;
        Ok(Self { address, bound: Mutex::new(Some(listener)), config })
    }

    /// Binds `address` at every start.
    pub fn at(address: SocketAddr, config: HttpConfig) -> Self {
        Self { address, bound: Mutex::new(None), config }
    }

    fn listener(&self) -> Result<TcpListener, FrontendError> {
        if let Some(listener) = self.bound.lock().unwrap_or_else(PoisonError::into_inner).take() {
            return Ok(listener);
        }
        // Binding is one quick system call, done here so the front-end is reachable when `start` returns.
        wifiprov_transport_http::listen(self.address)
            .map_err(|source| FrontendError::Listen { address: self.address, source })
    }
}

impl Frontend for HttpFrontend {
    fn describe(&self) -> String {
        format!("http {}", self.address)
    }

    fn start<'a>(&'a self, serve: &'a Serve) -> BoxFuture<'a, Result<Box<dyn Running>, FrontendError>> {
        Box::pin(async move {
            let listener = self.listener()?;
            let address = listener.local_addr().unwrap_or(self.address);
            let (shutdown, stop) = oneshot::channel::<()>();
            let dispatcher = serve.dispatcher.clone();
            let config = self.config.clone();
            let task = tokio::spawn(async move {
                let stopped = async {
                    let _ = stop.await;
                };
                if let Err(error) = wifiprov_transport_http::serve(listener, dispatcher, config, stopped).await {
                    tracing::error!(%error, "http transport failed");
                }
            });
            tracing::info!(%address, "provisioning transport up (http)");
            Ok(Box::new(HttpRunning { address, shutdown, task }) as Box<dyn Running>)
        })
    }
}

struct HttpRunning {
    address: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running for HttpRunning {
    fn address(&self) -> Option<SocketAddr> {
        Some(self.address)
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = self.shutdown.send(());
            let _ = self.task.await;
        })
    }
}
