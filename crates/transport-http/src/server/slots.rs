//! Connection slots: how many connections the server serves at once, and which one makes room for a newcomer.
//!
//! A connection that is waiting for its client (between requests, or still receiving a request) can be asked to
//! close; one whose request is being handled cannot. The one asked is chosen from the peer holding the most
//! connections (the newcomer's own counted), and among those the one whose last request was answered longest
//! ago, or that never completed one. Bytes that do not complete a request (a slow drip, blank lines) do not
//! count as activity, so holding slots costs an attacker its slots first, not a client that gets answers.
//!
//! The newcomer is admitted at once, before the connection asked to close has gone: waiting for each one would
//! make the accept loop as slow as the busiest moment of the runtime, and a burst of attack connections would
//! then keep a client waiting in the listen backlog. Connections on their way out count against a second
//! budget of the same size, so at most twice the limit are ever open. When that budget is spent too (a peer
//! reconnects as fast as its connections are closed), a newcomer of the peer holding the most connections is
//! turned away at once rather than waited for, so the accept loop gets through that peer's queue in the backlog
//! to whoever is behind it; a newcomer of any other peer waits for the next connection to go.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;
use wifiprov_dispatch::{Dispatcher, peer_warn};

pub(super) struct Slots {
    max: usize,
    table: Arc<Mutex<Table>>,
    /// Signalled whenever a slot is released, or a connection becomes one that may be asked to close.
    changed: Arc<Notify>,
}

#[derive(Default)]
struct Table {
    next: u64,
    entries: HashMap<u64, Entry>,
}

struct Entry {
    ip: IpAddr,
    /// When its last request was answered, or when it was accepted.
    last_answered: Instant,
    /// A request of this connection is being handled.
    busy: bool,
    /// It has been asked to close and will release its slot soon.
    reclaimed: bool,
    reclaim: Arc<Notify>,
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slots {
    pub(super) fn new(max: usize) -> Self {
        Self { max: max.max(1), table: Arc::default(), changed: Arc::new(Notify::new()) }
    }

    /// A slot for a new connection from `ip`; when all are taken, asks a waiting connection to close, and if too
    /// many are still on their way out, waits for one to go, or (`None`) turns the newcomer away when its own
    /// peer holds the most connections.
    pub(super) async fn admit(&self, ip: IpAddr, dispatcher: &Dispatcher) -> Option<Slot> {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before looking, so a slot released in between is not missed.
            changed.as_mut().enable();
            {
                let mut table = lock(&self.table);
                let leaving = table.entries.values().filter(|e| e.reclaimed).count();
                if table.entries.len() - leaving < self.max {
                    return Some(self.insert(&mut table, ip));
                }
                if leaving < self.max
                    && let Some(victim) = table.victim(ip)
                    && let Some(entry) = table.entries.get_mut(&victim)
                {
                    entry.reclaimed = true;
                    entry.reclaim.notify_one();
                    let (victim_peer, idle) = (entry.ip, entry.last_answered.elapsed());
                    peer_warn!(
                        dispatcher,
                        %victim_peer,
                        newcomer = %ip,
                        ?idle,
                        "all connection slots taken; closing a waiting connection to make room"
                    );
                    return Some(self.insert(&mut table, ip));
                }
                if leaving >= self.max && table.noisiest(ip) == Some(ip) {
                    peer_warn!(dispatcher, newcomer = %ip, "connection slots and their turnover taken; turning away");
                    return None;
                }
            }
            changed.await;
        }
    }

    fn insert(&self, table: &mut Table, ip: IpAddr) -> Slot {
        table.next += 1;
        let id = table.next;
        let reclaim = Arc::new(Notify::new());
        let entry =
            Entry { ip, last_answered: Instant::now(), busy: false, reclaimed: false, reclaim: reclaim.clone() };
        table.entries.insert(id, entry);
        Slot { id, table: self.table.clone(), changed: self.changed.clone(), reclaim }
    }
}

impl Table {
    /// The peer holding the most connections, the newcomer's counted (ties go to the newcomer).
    fn noisiest(&self, newcomer: IpAddr) -> Option<IpAddr> {
        let mut held: HashMap<IpAddr, usize> = HashMap::new();
        for entry in self.entries.values() {
            *held.entry(entry.ip).or_default() += 1;
        }
        let own = held.get(&newcomer).copied().unwrap_or_default() + 1;
        match held.iter().filter(|(ip, _)| **ip != newcomer).map(|(_, n)| *n).max() {
            Some(other) if other > own => held.into_iter().find(|(_, n)| *n == other).map(|(ip, _)| ip),
            _ => Some(newcomer),
        }
    }

    fn victim(&self, newcomer: IpAddr) -> Option<u64> {
        let mut held: HashMap<IpAddr, usize> = HashMap::new();
        for entry in self.entries.values() {
            *held.entry(entry.ip).or_default() += 1;
        }
        *held.entry(newcomer).or_default() += 1;
        self.entries
            .iter()
            .filter(|(_, e)| !e.busy && !e.reclaimed)
            .max_by_key(|(id, e)| {
                let count = held.get(&e.ip).copied().unwrap_or_default();
                (count, std::cmp::Reverse(e.last_answered), std::cmp::Reverse(**id))
            })
            .map(|(id, _)| *id)
    }
}

/// One connection's place; released when dropped.
pub(super) struct Slot {
    id: u64,
    table: Arc<Mutex<Table>>,
    changed: Arc<Notify>,
    reclaim: Arc<Notify>,
}

impl Slot {
    /// Completes when the server wants this connection closed to make room. Cancel-safe: a request made while
    /// nobody waits is kept for the next call.
    pub(super) async fn reclaimed(&self) {
        self.reclaim.notified().await;
    }

    /// A request of this connection is now being handled; it may not be reclaimed until [`Slot::answered`].
    pub(super) fn busy(&self) {
        if let Some(entry) = lock(&self.table).entries.get_mut(&self.id) {
            entry.busy = true;
        }
    }

    /// Its request was answered (or refused): it waits for its client again.
    pub(super) fn answered(&self) {
        if let Some(entry) = lock(&self.table).entries.get_mut(&self.id) {
            entry.busy = false;
            entry.last_answered = Instant::now();
        }
        self.changed.notify_one();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.table).entries.remove(&self.id);
        self.changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use wifiprov_proto::endpoint::{Protocomm, SessionLimits};

    fn dispatcher() -> Dispatcher {
        Dispatcher::new(Protocomm::new(SessionLimits::default()), Box::new(wifiprov_testkit::SeededRandom::new(1)))
    }

    const QUIET: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const NOISY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    fn reclaimed(slots: &Slots) -> usize {
        lock(&slots.table).entries.values().filter(|e| e.reclaimed).count()
    }

    #[tokio::test(start_paused = true)]
    async fn the_noisiest_peers_longest_waiting_connection_makes_room() {
        let d = dispatcher();
        let slots = Slots::new(4);
        let quiet = slots.admit(QUIET, &d).await.unwrap();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let noisy: Vec<Slot> = [0; 3].iter().map(|_| slots.insert(&mut lock(&slots.table), NOISY)).collect();
        // Full. The quiet client is the longest waiting, but the noisy peer holds three slots: its oldest goes,
        // and the newcomer is admitted without waiting for it to leave.
        let _newcomer = slots.admit(QUIET, &d).await.unwrap();
        noisy[0].reclaimed().await;
        assert_eq!(reclaimed(&slots), 1);
        drop(quiet);
    }

    #[tokio::test(start_paused = true)]
    async fn connections_on_their_way_out_are_bounded() {
        let d = dispatcher();
        let slots = Slots::new(2);
        let held: Vec<Slot> = [0; 2].iter().map(|_| slots.insert(&mut lock(&slots.table), NOISY)).collect();
        // Each newcomer asks one more to leave; none has left yet.
        let mut newcomers = Vec::new();
        for _ in 0..2 {
            newcomers.push(slots.admit(NOISY, &d).await.unwrap());
        }
        assert_eq!(reclaimed(&slots), 2);
        // Twice the limit are open. The churning peer's next newcomer is turned away at once; another peer's waits
        // until a connection has really gone.
        assert!(slots.admit(NOISY, &d).await.is_none());
        let admitting = slots.admit(QUIET, &d);
        let mut admitting = std::pin::pin!(admitting);
        assert!(futures_poll(&mut admitting).await.is_none());
        drop(held);
        assert!(admitting.await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_whose_request_is_being_handled_is_never_reclaimed() {
        let d = dispatcher();
        let slots = Slots::new(1);
        let busy = slots.admit(NOISY, &d).await.unwrap();
        busy.busy();
        let admitting = slots.admit(QUIET, &d);
        let mut admitting = std::pin::pin!(admitting);
        assert!(futures_poll(&mut admitting).await.is_none());
        assert_eq!(reclaimed(&slots), 0);
        busy.answered();
        // Answered and waiting again: now it may go, and the newcomer is in.
        let _newcomer = admitting.await.unwrap();
        busy.reclaimed().await;
    }

    /// Polls `future` once; `Some` if it completed.
    async fn futures_poll<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = future => Some(out),
            () = tokio::task::yield_now() => None,
        }
    }
}
