//! The store's only writer: writes the newest list it is given, one write at a time, and reports each revision
//! written or not, so the manager's task can tell clients when their change is on disk, and that it is not when
//! it could not be written.

use tokio::sync::{mpsc, watch};
use wifiprov_manager::WriteOutcome;
use wifiprov_manager::networks::NetworkList;
use wifiprov_proto::ErrorChain;
use wifiprov_store::NetworkStore;

/// A list to write, with the revision it carries.
pub(crate) type ToWrite = Option<(u64, NetworkList)>;

/// A write that ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    pub(crate) revision: u64,
    pub(crate) outcome: WriteOutcome,
}

/// Writes every list `lists` announces (skipping any superseded meanwhile) until its sender is gone.
pub(crate) async fn run(
    store: NetworkStore,
    mut lists: watch::Receiver<ToWrite>,
    written: mpsc::UnboundedSender<Written>,
) {
    while lists.changed().await.is_ok() {
        let Some((revision, list)) = lists.borrow_and_update().clone() else { continue };
        let writer = store.clone();
        // The file system may block: off the async workers.
        let result = tokio::task::spawn_blocking(move || writer.save(&list).map(|()| list.len())).await;
        let outcome = match result {
            Ok(Ok(saved)) => {
                tracing::info!(path = %store.path().display(), saved, revision, "saved networks written");
                WriteOutcome::Written
            }
            Ok(Err(error)) => {
                tracing::error!(error = %ErrorChain(&error), revision, "could not write the saved networks");
                WriteOutcome::Failed
            }
            Err(error) => {
                tracing::error!(%error, "saved-network writer task failed");
                WriteOutcome::Failed
            }
        };
        if written.send(Written { revision, outcome }).is_err() {
            return;
        }
    }
}
