//! The radio queue: the manager's radio actions leave its task through one channel and are carried out in that
//! order, so a disconnect can never overtake the connect that follows it.
//!
//! One worker task owns the backend's operations. It takes the next action only once the one before has been
//! started (a connect, a scan) or finished (a disconnect, which is quick): a disconnect ends any connect in
//! flight and completes before the next connect starts, and a new connect replaces the one in flight. Scans
//! run beside a connect, one at a time. Outcomes go back to the manager's task through another channel.

use std::sync::Arc;

use tokio::sync::mpsc;
use wifiprov_backend::{
    AccessPoint, BackendError, BoxFuture, ConnectError, ConnectRequest, LinkInfo, ScanParams, WifiBackend,
};
use wifiprov_manager::AttemptId;

/// What the manager asks of the radio, in order.
#[derive(Debug)]
pub(crate) enum RadioOp {
    Connect { attempt: AttemptId, request: ConnectRequest },
    Disconnect,
    Scan(ScanParams),
}

/// What came of a radio action.
#[derive(Debug)]
pub(crate) enum RadioOutcome {
    Connected(AttemptId, Result<LinkInfo, ConnectError>),
    Scanned(Result<Vec<AccessPoint>, BackendError>),
}

/// Carries out `ops` in order until the manager's task drops its sender.
pub(crate) async fn run(
    backend: Arc<dyn WifiBackend>,
    mut ops: mpsc::UnboundedReceiver<RadioOp>,
    outcomes: mpsc::UnboundedSender<RadioOutcome>,
) {
    let mut connecting: Option<(AttemptId, BoxFuture<'_, Result<LinkInfo, ConnectError>>)> = None;
    let mut scanning: Option<BoxFuture<'_, Result<Vec<AccessPoint>, BackendError>>> = None;
    loop {
        tokio::select! {
            // Actions first: once the manager has queued a newer action, the outcome of an older connect no
            // longer matters to it (it ignores outcomes of attempts it has moved on from).
            biased;
            op = ops.recv() => match op {
                None => return,
                Some(RadioOp::Connect { attempt, request }) => {
                    tracing::info!(ssid = %request.ssid, "connecting");
                    // Dropping the attempt in flight abandons it (the backend's contract).
                    connecting = Some((attempt, backend.connect(request)));
                }
                Some(RadioOp::Disconnect) => {
                    connecting = None;
                    if let Err(error) = backend.disconnect().await {
                        tracing::warn!(%error, "disconnect failed");
                    }
                }
                Some(RadioOp::Scan(params)) => {
                    if scanning.is_none() {
                        scanning = Some(backend.scan(params));
                    }
                }
            },
            result = async { connecting.as_mut().map(|(_, f)| f.as_mut()).expect("guarded").await }, if connecting.is_some() => {
                let attempt = connecting.take().map(|(attempt, _)| attempt).expect("guarded");
                if let Err(error) = &result {
                    tracing::warn!(%error, "connection attempt failed");
                }
                let _ = outcomes.send(RadioOutcome::Connected(attempt, result));
            }
            result = async { scanning.as_mut().expect("guarded").await }, if scanning.is_some() => {
                scanning = None;
                if let Err(error) = &result {
                    tracing::warn!(%error, "scan failed");
                }
                let _ = outcomes.send(RadioOutcome::Scanned(result));
            }
        }
    }
}
