//! The online-guessing limit as the daemon runs it: the count of failed proofs kept on disk, so that a restart
//! or a power cycle does not reset it, shared by every dispatcher the daemon builds (provisioning may reopen many
//! times), and published as security events (ESP's `PROTOCOMM_SECURITY_SESSION_EVENT`s are a separate event
//! base from the manager's, and so are these).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use wifiprov_dispatch::{Dispatcher, ProofLedger};
use wifiprov_proto::ErrorChain;
use wifiprov_proto::endpoint::{GuessLimit, Lockout, Protocomm};
use wifiprov_store::Counter;

/// The file in the state directory that holds the count.
pub const FILE_NAME: &str = "failed-proofs";

/// A security event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecurityEvent {
    /// A client's proof was wrong (ESP: `PROTOCOMM_SECURITY_SESSION_CREDENTIALS_MISMATCH`).
    CredentialsMismatch {
        /// Failed proofs in a row, now.
        failures: u32,
    },
    /// Too many wrong proofs: handshakes are refused for `wait`.
    Lockout {
        /// Failed proofs in a row, now.
        failures: u32,
        /// How long handshakes are refused.
        wait: Duration,
    },
}

/// The limit and its persisted count. Cheap to clone; clones share the count.
#[derive(Clone)]
pub struct Guessing {
    limit: GuessLimit,
    shared: Arc<Shared>,
}

struct Shared {
    /// `None`: the count lives in memory only (tests, embedders without a state directory).
    counter: Option<Counter>,
    /// The count as last recorded: set when the dispatcher records it, in the order the counts were reached.
    failures: AtomicU32,
    /// One write at a time, each of the latest count; holds the count last written (`None`: not known).
    writing: tokio::sync::Mutex<Option<u32>>,
    events: broadcast::Sender<SecurityEvent>,
}

impl Guessing {
    /// A limit whose count lives in memory only: a restart forgets it.
    pub fn in_memory(limit: GuessLimit) -> Self {
        Self::with_counter(limit, None, 0, None)
    }

    /// A limit whose count is kept in `counter`, starting from what it holds. A count that cannot be read (a
    /// damaged or unreadable file) is taken as the free failures all spent, so the device starts with one short
    /// wait rather than with a clean slate an attacker could produce; the file is left as it is, logged once.
    pub fn persisted(limit: GuessLimit, counter: Counter) -> Self {
        let (failures, on_disk) = match counter.load() {
            Ok(failures) => (failures, Some(failures)),
            Err(error) => {
                // A warning: the state directory's own problem, if that is the cause, is the start's one error.
                tracing::warn!(
                    error = %ErrorChain(&error),
                    "cannot read the count of failed proofs; assuming {} (the free failures spent)",
                    limit.free_failures
                );
                (limit.free_failures, None)
            }
        };
        Self::with_counter(limit, Some(counter), failures, on_disk)
    }

    fn with_counter(limit: GuessLimit, counter: Option<Counter>, failures: u32, on_disk: Option<u32>) -> Self {
        let (events, _) = broadcast::channel(16);
        let writing = tokio::sync::Mutex::new(on_disk);
        let shared = Shared { counter, failures: AtomicU32::new(failures), writing, events };
        Self { limit, shared: Arc::new(shared) }
    }

    /// The limit.
    pub fn limit(&self) -> GuessLimit {
        self.limit
    }

    /// Failed proofs in a row, as last recorded.
    pub fn failures(&self) -> u32 {
        self.shared.failures.load(Ordering::Relaxed)
    }

    /// Subscribes to security events.
    pub fn subscribe(&self) -> broadcast::Receiver<SecurityEvent> {
        self.shared.events.subscribe()
    }

    /// Sets the limit and the recorded count on a new protocomm instance; a count past the free failures waits
    /// again from now. Returns that wait, to be reported once the dispatcher exists.
    pub(crate) fn arm(&self, protocomm: &mut Protocomm) -> Option<Lockout> {
        protocomm.set_guess_limit(self.limit);
        protocomm.restore_failed_proofs(self.failures(), tokio::time::Instant::now().into_std())
    }

    /// `dispatcher` with this ledger attached.
    pub(crate) fn attach(&self, dispatcher: Dispatcher) -> Dispatcher {
        dispatcher.with_proof_ledger(Arc::new(self.clone()))
    }
}

impl ProofLedger for Guessing {
    fn locked(&self, lockout: Lockout) {
        let _ = self.shared.events.send(SecurityEvent::Lockout { failures: lockout.failures, wait: lockout.wait });
    }

    /// Takes the count at once (the dispatcher calls this in the order the counts were reached) and returns the
    /// write: it writes the latest count, whichever recording's future runs first, and skips a count already on
    /// disk, so the file ends up with the last count and is written only when the count changed.
    fn record(&self, failures: u32) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.shared.failures.store(failures, Ordering::Relaxed);
        if failures > 0 {
            let _ = self.shared.events.send(SecurityEvent::CredentialsMismatch { failures });
        }
        let shared = self.shared.clone();
        Box::pin(async move {
            let Some(counter) = shared.counter.clone() else { return };
            let mut written = shared.writing.lock().await;
            let failures = shared.failures.load(Ordering::Relaxed);
            if *written == Some(failures) {
                return;
            }
            let started = Instant::now();
            // The file system may block: off the async workers.
            match tokio::task::spawn_blocking(move || counter.save(failures)).await {
                Ok(Ok(())) => {
                    *written = Some(failures);
                    tracing::debug!(failures, took = ?started.elapsed(), "count of failed proofs written");
                }
                // Failures are rate-limited by the lockout itself, so this cannot flood the journal.
                Ok(Err(error)) => {
                    tracing::error!(failures, error = %ErrorChain(&error), "cannot persist the count of failed proofs");
                }
                Err(error) => tracing::error!(%error, "failed-proof writer task failed"),
            }
        })
    }
}

impl std::fmt::Debug for Guessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guessing")
            .field("limit", &self.limit)
            .field("failures", &self.failures())
            .field("persisted", &self.shared.counter.is_some())
            .finish()
    }
}

impl Default for Guessing {
    fn default() -> Self {
        Self::in_memory(GuessLimit::default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    /// Which file the counter's path names: every save replaces it (a new inode), so a change means a write.
    fn inode(counter: &Counter) -> u64 {
        std::fs::metadata(counter.path()).unwrap().ino()
    }

    /// Issue #12: recordings may finish in any order, but the file ends with the last count reached, and it is
    /// written only when the count changed.
    #[tokio::test]
    async fn r12_the_file_holds_the_last_count_and_changes_only_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let counter = Counter::open(dir.path().join("state"), FILE_NAME).unwrap();
        let guessing = Guessing::persisted(GuessLimit::default(), counter.clone());
        let mut events = guessing.subscribe();
        let third = guessing.record(3);
        let fourth = guessing.record(4);
        assert_eq!(guessing.failures(), 4, "taken at once");
        assert_eq!(events.try_recv().unwrap(), SecurityEvent::CredentialsMismatch { failures: 3 });
        assert_eq!(events.try_recv().unwrap(), SecurityEvent::CredentialsMismatch { failures: 4 });
        fourth.await;
        let written = inode(&counter);
        third.await;
        assert_eq!((counter.load().unwrap(), inode(&counter)), (4, written), "no stale count, no second write");
        guessing.record(4).await;
        assert_eq!(inode(&counter), written, "an unchanged count is not written again");
        assert_eq!(events.try_recv().unwrap(), SecurityEvent::CredentialsMismatch { failures: 4 });
        guessing.record(0).await;
        assert_eq!(counter.load().unwrap(), 0);
        assert!(events.try_recv().is_err(), "a forgiven count is no mismatch");
    }
}
