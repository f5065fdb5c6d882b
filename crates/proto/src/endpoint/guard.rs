//! The online-guessing limit: how many wrong proofs (security 1 PoP, security 2 password) a device answers
//! before it makes the next guesser wait, and for how long.
//!
//! Anyone in radio range can run handshakes, so without a limit a 6-digit PoP falls to a script in minutes.
//! The count is per device, across sessions, connections and transports, and it counts *settled* failures: a
//! proof is in flight from the moment [`super::Protocomm::begin`] takes up its message until its session is
//! checked back in, and only then does it count as failed or forgive the failures before it. Right proofs
//! never count, however many run at once, so legitimate clients never lock each other out, and the count
//! changes (and is written) only when a failure is confirmed or forgiven. Three rules keep that from helping a
//! guesser:
//!
//! - A proof lost half-way (its session closed, evicted or reopened, its task cancelled before check-in)
//!   counts as failed the moment its session goes, so dropping a connection mid-proof does not escape the
//!   count.
//! - The wait that a failure starts runs from the moment its proof was taken up, so a slow check does not
//!   shorten it.
//! - Proofs in flight and settled failures together never exceed the free failures, except that one proof may
//!   always be in flight: a proof beyond that is refused at once with
//!   [`super::ProtocommError::ProofInFlight`] (not a lockout: a short retry). So a guesser running proofs in
//!   parallel gets no more verdicts before its first wait than one running them in turn, and beyond the free
//!   failures at most one verdict per wait. The price: more right proofs at once than there are free failures
//!   left are asked to retry a second later.
//!
//! The caller persists the count whenever it changes (a failure, a lost proof, a success that forgave
//! failures), so a power cycle does not reset it, and restores it with
//! [`super::Protocomm::restore_failed_proofs`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::SessionId;

/// How long a proof refused with [`super::ProtocommError::ProofInFlight`] should wait before it is sent again:
/// the proof in flight takes milliseconds to check, and if it fails its wait (at least [`GuessLimit::backoff`])
/// starts anyway.
pub(super) const PROOF_IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

/// How many wrong proofs the device answers before it backs off, and how the wait grows.
///
/// After `free_failures` failures in a row, each further failure starts a wait of `backoff`, doubling with
/// every failure up to `max_backoff`, during which every request to the security endpoint is refused at once
/// with [`super::ProtocommError::LockedOut`]. A successful proof forgives every failure. Once the free failures
/// are spent, proofs are also checked one at a time (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuessLimit {
    /// Failures in a row that cost nothing.
    pub free_failures: u32,
    /// The first wait.
    pub backoff: Duration,
    /// The longest wait: the sustained rate is one guess per this long.
    pub max_backoff: Duration,
}

impl Default for GuessLimit {
    /// 5 free failures, then 1 s doubling up to 120 s: a person who mistypes a few times waits seconds, and a
    /// script that guesses one proof at a time gets at most 10 guesses in its first minute and one every two
    /// minutes after that.
    fn default() -> Self {
        Self { free_failures: 5, backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(120) }
    }
}

impl GuessLimit {
    /// The wait that the `failures`-th failure in a row starts, if any.
    pub fn wait_after(&self, failures: u32) -> Option<Duration> {
        let beyond = failures.checked_sub(self.free_failures)?;
        let doubled = 1u32.checked_shl(beyond).and_then(|factor| self.backoff.checked_mul(factor));
        Some(doubled.map_or(self.max_backoff, |wait| wait.min(self.max_backoff)))
    }
}

/// A wait that a settled failure started: report it once (an event, a log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Failed proofs in a row, settled, this one included.
    pub failures: u32,
    /// How long new handshakes are refused, counted from the moment the failed proof was taken up.
    pub wait: Duration,
}

/// What settled proofs came to: from [`super::Protocomm::check_in`] (the proof of that request), and from the
/// calls that close sessions (proofs lost with their session, which count as failed). Persist the count on
/// [`ProofOutcome::Failed`], and on [`ProofOutcome::Succeeded`] when it forgave failures: the count changes
/// then and only then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofOutcome {
    /// The client proved it knows the secret; the count is back to zero.
    Succeeded {
        /// The count it forgave.
        forgiven: u32,
    },
    /// The proof was wrong (or not a valid proof, or lost with its session); for proofs lost together, all of
    /// them.
    Failed {
        /// Failed proofs in a row, now.
        failures: u32,
        /// Set when the failure started a wait: report it once.
        lockout: Option<Lockout>,
    },
}

/// A proof in flight: the session it runs in and that session's opening (see [`super::Checkout`]).
pub(super) type ProofKey = (SessionId, u64);

/// The device's count of failed proofs, the proofs in flight, and the wait it imposes.
#[derive(Debug)]
pub(super) struct Guard {
    limit: GuessLimit,
    /// Failed proofs in a row, settled: what is persisted and what the wait is computed from.
    failures: u32,
    /// Proofs taken up and not settled yet, with the moment each was taken up.
    in_flight: BTreeMap<ProofKey, Instant>,
    locked_until: Option<Instant>,
}

impl Guard {
    pub(super) fn new(limit: GuessLimit) -> Self {
        Self { limit, failures: 0, in_flight: BTreeMap::new(), locked_until: None }
    }

    pub(super) fn set_limit(&mut self, limit: GuessLimit) {
        self.limit = limit;
    }

    pub(super) fn limit(&self) -> GuessLimit {
        self.limit
    }

    /// Failed proofs in a row, settled.
    pub(super) fn failures(&self) -> u32 {
        self.failures
    }

    /// Proofs taken up and not settled yet.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// How long new handshakes are still refused, if they are.
    pub(super) fn locked_for(&self, now: Instant) -> Option<Duration> {
        let until = self.locked_until?;
        Some(until.saturating_duration_since(now)).filter(|left| !left.is_zero())
    }

    /// Whether another proof may be taken up now: when no proof is in flight, or when the failures and the
    /// proofs in flight (each of which may yet fail) leave a free failure for it.
    pub(super) fn admits_proof(&self) -> bool {
        let pending = u32::try_from(self.in_flight.len()).unwrap_or(u32::MAX);
        self.in_flight.is_empty() || self.failures.saturating_add(pending) < self.limit.free_failures
    }

    /// A proof is about to be checked, in the session opening `key`; it stays in flight until it is settled.
    pub(super) fn take_up(&mut self, key: ProofKey, now: Instant) {
        self.in_flight.insert(key, now);
    }

    /// The proof in flight in `key` came back checked: a success forgives every failure and ends the wait, a
    /// failure counts and may start a wait (from the moment the proof was taken up). `None` when no proof of
    /// `key` is in flight (it was lost with its session, and counted then).
    pub(super) fn settle(&mut self, key: ProofKey, proved: bool) -> Option<ProofOutcome> {
        let taken_up = self.in_flight.remove(&key)?;
        if proved {
            let forgiven = self.failures;
            self.failures = 0;
            self.locked_until = None;
            return Some(ProofOutcome::Succeeded { forgiven });
        }
        let lockout = self.fail(taken_up);
        Some(ProofOutcome::Failed { failures: self.failures, lockout })
    }

    /// The sessions `keys` closed: each proof in flight in one of them counts as failed. `None` when none was.
    pub(super) fn lose(&mut self, keys: impl IntoIterator<Item = ProofKey>) -> Option<ProofOutcome> {
        let mut outcome = None;
        for key in keys {
            let Some(taken_up) = self.in_flight.remove(&key) else { continue };
            // Past the free failures every further failure starts a wait, so the last one says it all.
            let lockout = self.fail(taken_up);
            outcome = Some(ProofOutcome::Failed { failures: self.failures, lockout });
        }
        outcome
    }

    /// Takes the count persisted before a restart; a count past the free failures waits again from `now`, so
    /// that restarting the device never shortens a wait.
    pub(super) fn restore(&mut self, failures: u32, now: Instant) -> Option<Lockout> {
        self.failures = self.failures.max(failures);
        self.start_wait(now)
    }

    fn fail(&mut self, taken_up: Instant) -> Option<Lockout> {
        self.failures = self.failures.saturating_add(1);
        self.start_wait(taken_up)
    }

    fn start_wait(&mut self, from: Instant) -> Option<Lockout> {
        let wait = self.limit.wait_after(self.failures)?;
        let until = from.checked_add(wait).unwrap_or(from);
        self.locked_until = Some(self.locked_until.map_or(until, |old| old.max(until)));
        Some(Lockout { failures: self.failures, wait })
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests are the caller that supplies time")]
mod tests {
    use super::*;

    fn key(n: u32) -> ProofKey {
        (SessionId(n), u64::from(n))
    }

    /// Proves `key` wrong; returns what the guard said.
    fn wrong(guard: &mut Guard, key: ProofKey, now: Instant) -> ProofOutcome {
        guard.take_up(key, now);
        guard.settle(key, false).expect("the proof was in flight")
    }

    #[test]
    fn waits_double_from_the_sixth_failure_up_to_the_cap() {
        let limit = GuessLimit::default();
        let waits: Vec<_> = (1..=13).map(|n| limit.wait_after(n).map(|w| w.as_secs())).collect();
        assert_eq!(
            waits,
            [
                None,
                None,
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(64),
                Some(120),
                Some(120)
            ]
        );
        assert_eq!(limit.wait_after(u32::MAX), Some(limit.max_backoff), "no overflow for huge counts");
    }

    #[test]
    fn a_success_forgives_and_unlocks() {
        let now = Instant::now();
        let mut guard = Guard::new(GuessLimit::default());
        for n in 1..=4 {
            assert_eq!(wrong(&mut guard, key(n), now), ProofOutcome::Failed { failures: n, lockout: None });
        }
        let lockout = Some(Lockout { failures: 5, wait: Duration::from_secs(1) });
        assert_eq!(wrong(&mut guard, key(5), now), ProofOutcome::Failed { failures: 5, lockout });
        assert_eq!(guard.locked_for(now), Some(Duration::from_secs(1)));
        guard.take_up(key(6), now + Duration::from_secs(1));
        assert_eq!(guard.settle(key(6), true), Some(ProofOutcome::Succeeded { forgiven: 5 }));
        assert_eq!(guard.locked_for(now), None);
        assert_eq!(guard.failures(), 0);
    }

    #[test]
    fn a_failure_checked_across_another_clients_success_still_counts() {
        let now = Instant::now();
        let mut guard = Guard::new(GuessLimit::default());
        guard.take_up(key(1), now);
        guard.take_up(key(2), now);
        assert_eq!(guard.settle(key(2), true), Some(ProofOutcome::Succeeded { forgiven: 0 }));
        assert_eq!(guard.settle(key(1), false), Some(ProofOutcome::Failed { failures: 1, lockout: None }));
    }

    /// Issue #12: correct proofs in flight together never count, so legitimate clients (or a benchmark of
    /// correct handshakes) never lock each other out, and the count never changes. More of them at once than
    /// there are free failures are asked to retry (they could all be wrong).
    #[test]
    fn right_proofs_in_flight_together_count_nothing() {
        let now = Instant::now();
        let mut guard = Guard::new(GuessLimit::default());
        for n in 0..5 {
            assert!(guard.admits_proof(), "proof {n} admitted");
            guard.take_up(key(n), now);
        }
        assert!(!guard.admits_proof(), "a sixth proof in flight could be a sixth failure");
        assert_eq!(guard.failures(), 0);
        assert_eq!(guard.locked_for(now), None);
        for n in 0..5 {
            assert_eq!(guard.settle(key(n), true), Some(ProofOutcome::Succeeded { forgiven: 0 }));
        }
        assert_eq!(guard.in_flight(), 0);
        assert!(guard.admits_proof());
    }

    #[test]
    fn beyond_the_free_failures_one_proof_is_in_flight_at_a_time() {
        let now = Instant::now();
        let mut guard = Guard::new(GuessLimit::default());
        assert!(guard.restore(3, now).is_none());
        guard.take_up(key(1), now);
        assert!(guard.admits_proof(), "within the free failures");
        guard.take_up(key(2), now);
        assert!(!guard.admits_proof(), "3 failures and 2 proofs in flight spend the free failures");
        assert_eq!(
            guard.settle(key(2), false).map(|o| matches!(o, ProofOutcome::Failed { failures: 4, .. })),
            Some(true)
        );
        guard.take_up(key(2), now);
        let lockout = Some(Lockout { failures: 5, wait: Duration::from_secs(1) });
        assert_eq!(guard.settle(key(1), false), Some(ProofOutcome::Failed { failures: 5, lockout }));
        assert!(!guard.admits_proof(), "the free failures are spent and a proof is in flight");
        assert_eq!(guard.settle(key(2), true), Some(ProofOutcome::Succeeded { forgiven: 5 }));
        assert!(guard.admits_proof());
    }

    #[test]
    fn a_lost_proof_counts_as_failed_once() {
        let now = Instant::now();
        let mut guard = Guard::new(GuessLimit { free_failures: 1, ..GuessLimit::default() });
        guard.take_up(key(1), now);
        assert_eq!(
            guard.lose([key(9), key(1)]),
            Some(ProofOutcome::Failed {
                failures: 1,
                lockout: Some(Lockout { failures: 1, wait: Duration::from_secs(1) })
            })
        );
        assert_eq!(guard.lose([key(1)]), None, "counted once");
        assert_eq!(guard.settle(key(1), true), None, "a lost proof that comes back changes nothing");
        assert_eq!(guard.failures(), 1);
        assert_eq!(guard.in_flight(), 0);
    }

    #[test]
    fn the_wait_runs_from_when_the_failed_proof_was_taken_up() {
        let now = Instant::now();
        let mut guard = Guard::new(GuessLimit::default());
        let _ = guard.restore(5, now);
        let taken_up = now + Duration::from_secs(1);
        guard.take_up(key(1), taken_up);
        // However long the check took, the sixth failure's 2 s wait ends 2 s after the proof was taken up.
        assert!(guard.settle(key(1), false).is_some());
        assert_eq!(guard.locked_for(taken_up + Duration::from_millis(1500)), Some(Duration::from_millis(500)));
        assert_eq!(guard.locked_for(taken_up + Duration::from_secs(2)), None);
    }

    #[test]
    fn a_restored_count_waits_again_from_the_start() {
        let now = Instant::now();
        let mut guard = Guard::new(GuessLimit::default());
        assert_eq!(guard.restore(7, now), Some(Lockout { failures: 7, wait: Duration::from_secs(4) }));
        assert_eq!(guard.locked_for(now + Duration::from_secs(3)), Some(Duration::from_secs(1)));
        assert_eq!(guard.locked_for(now + Duration::from_secs(4)), None);
        let _ = guard.restore(2, now);
        assert_eq!(guard.failures(), 7, "a restore never lowers the count");
    }

    /// A day of a guesser that keeps up to `sessions` proofs in flight whenever the device takes them, each
    /// checked in 1 ms, from `start`: the moments its guesses were taken up.
    fn guesses_of(sessions: u32, start: Instant) -> Vec<Instant> {
        let mut guard = Guard::new(GuessLimit::default());
        let mut now = start;
        let mut guesses = Vec::new();
        let mut next = 0;
        while now < start + Duration::from_secs(86_400) {
            match guard.locked_for(now) {
                Some(left) => now += left,
                None => {
                    let mut taken = Vec::new();
                    while guard.admits_proof() && taken.len() < sessions as usize {
                        let pending = u32::try_from(guard.in_flight()).unwrap_or(u32::MAX);
                        assert!(
                            guard.failures() + pending < guard.limit().free_failures || pending == 0,
                            "more proofs in flight than free failures left"
                        );
                        next += 1;
                        guard.take_up(key(next), now);
                        taken.push(key(next));
                        guesses.push(now);
                    }
                    now += Duration::from_millis(1);
                    for key in taken {
                        guard.settle(key, false);
                    }
                }
            }
        }
        guesses
    }

    fn busiest_minute(guesses: &[Instant]) -> Option<usize> {
        guesses
            .iter()
            .map(|&from| guesses.iter().filter(|&&t| t >= from && t < from + Duration::from_secs(60)).count())
            .max()
    }

    /// The target: at most 10 guesses in any minute, however fast an attacker retries. Simulated: the
    /// attacker guesses the moment the device lets it, for a day, and every 60 s window is counted.
    #[test]
    fn no_minute_sees_more_than_ten_guesses() {
        let start = Instant::now();
        let guesses = guesses_of(1, start);
        assert_eq!(busiest_minute(&guesses), Some(10));
        let last_hour = guesses.iter().filter(|&&t| t >= start + Duration::from_secs(82_800)).count();
        assert_eq!(last_hour, 30, "sustained: one guess per max_backoff");
    }

    /// In parallel (8 proofs at once, the default number of half-open sessions), a guesser gains nothing: the
    /// proofs in flight count against the free failures, so the busiest minute and the sustained rate are those
    /// of a guesser that sends one proof at a time.
    #[test]
    fn a_parallel_guesser_gains_nothing() {
        let start = Instant::now();
        let guesses = guesses_of(8, start);
        assert_eq!(busiest_minute(&guesses), Some(10));
        let last_hour = guesses.iter().filter(|&&t| t >= start + Duration::from_secs(82_800)).count();
        assert_eq!(last_hour, 30, "sustained: one guess per max_backoff");
    }
}
