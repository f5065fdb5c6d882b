//! The online-guessing limit: how many wrong proofs (security 1 PoP, security 2 password) a device answers
//! before it makes the next guesser wait, and for how long.
//!
//! Anyone in radio range can run handshakes, so without a limit a 6-digit PoP falls to a script in minutes.
//! The count is per device, across sessions, connections and transports, and a proof is charged *before* it is
//! checked and refunded when it succeeds: a proof whose session is lost half-way (evicted, its task cancelled)
//! stays counted, and once the free failures are spent only one proof can be under way at a time, because the
//! charge itself starts the wait. The caller persists the count after every failure (so a power cycle does not
//! reset it) and restores it with [`super::Protocomm::restore_failed_proofs`].

use std::time::{Duration, Instant};

/// How many wrong proofs the device answers before it backs off, and how the wait grows.
///
/// After `free_failures` failures in a row, each further proof attempt starts a wait of `backoff`, doubling with
/// every failure up to `max_backoff`, during which every request to the security endpoint is refused at once
/// with [`super::ProtocommError::LockedOut`]. A successful proof forgives every failure.
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
    /// script gets at most 10 guesses in its first minute and one every two minutes after that.
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

/// A wait that a proof attempt started: report it once (an event, a log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Proof attempts counted as failed so far, this one included.
    pub failures: u32,
    /// How long new handshakes are refused.
    pub wait: Duration,
}

/// What a proof came to, from [`super::Protocomm::check_in`]. Persist the count on [`ProofOutcome::Failed`],
/// and the reset on [`ProofOutcome::Succeeded`] when it follows failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofOutcome {
    /// The client proved it knows the secret; the count is back to zero.
    Succeeded {
        /// The count it forgave.
        forgiven: u32,
    },
    /// The proof was wrong (or the message was not a valid proof).
    Failed {
        /// Failed proofs in a row, now.
        failures: u32,
    },
}

/// The device's count of failed proofs and the wait it imposes.
#[derive(Debug)]
pub(super) struct Guard {
    limit: GuessLimit,
    /// Proofs charged and not refunded: failures, plus proofs still being checked.
    charged: u32,
    locked_until: Option<Instant>,
}

impl Guard {
    pub(super) fn new(limit: GuessLimit) -> Self {
        Self { limit, charged: 0, locked_until: None }
    }

    pub(super) fn set_limit(&mut self, limit: GuessLimit) {
        self.limit = limit;
    }

    pub(super) fn limit(&self) -> GuessLimit {
        self.limit
    }

    pub(super) fn charged(&self) -> u32 {
        self.charged
    }

    /// How long new handshakes are still refused, if they are.
    pub(super) fn locked_for(&self, now: Instant) -> Option<Duration> {
        let until = self.locked_until?;
        Some(until.saturating_duration_since(now)).filter(|left| !left.is_zero())
    }

    /// Counts a proof about to be checked; returns the wait it starts, if it starts one.
    pub(super) fn charge(&mut self, now: Instant) -> Option<Lockout> {
        self.charged = self.charged.saturating_add(1);
        self.start_wait(now)
    }

    /// A proof succeeded: every failure is forgiven.
    pub(super) fn refund(&mut self) -> ProofOutcome {
        let forgiven = self.charged.saturating_sub(1);
        self.charged = 0;
        self.locked_until = None;
        ProofOutcome::Succeeded { forgiven }
    }

    /// A proof failed: its charge stands. Another client's success while it was being checked forgave every
    /// charge, this one included, so the failure counts at least itself again.
    pub(super) fn failed(&mut self) -> ProofOutcome {
        self.charged = self.charged.max(1);
        ProofOutcome::Failed { failures: self.charged }
    }

    /// Takes the count persisted before a restart; a count past the free failures waits again from `now`, so
    /// that restarting the device never shortens a wait.
    pub(super) fn restore(&mut self, failures: u32, now: Instant) -> Option<Lockout> {
        self.charged = self.charged.max(failures);
        self.start_wait(now)
    }

    fn start_wait(&mut self, now: Instant) -> Option<Lockout> {
        let wait = self.limit.wait_after(self.charged)?;
        let until = now.checked_add(wait).unwrap_or(now);
        self.locked_until = Some(self.locked_until.map_or(until, |old| old.max(until)));
        Some(Lockout { failures: self.charged, wait })
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests are the caller that supplies time")]
mod tests {
    use super::*;

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
        for _ in 0..4 {
            assert_eq!(guard.charge(now), None);
        }
        assert_eq!(guard.charge(now), Some(Lockout { failures: 5, wait: Duration::from_secs(1) }));
        assert_eq!(guard.locked_for(now), Some(Duration::from_secs(1)));
        assert_eq!(guard.refund(), ProofOutcome::Succeeded { forgiven: 4 });
        assert_eq!(guard.locked_for(now), None);
    }

    #[test]
    fn a_failure_checked_across_another_clients_success_still_counts() {
        let now = Instant::now();
        let mut guard = Guard::new(GuessLimit::default());
        guard.charge(now);
        guard.charge(now);
        assert_eq!(guard.refund(), ProofOutcome::Succeeded { forgiven: 1 });
        assert_eq!(guard.failed(), ProofOutcome::Failed { failures: 1 });
    }

    #[test]
    fn a_restored_count_waits_again_from_the_start() {
        let now = Instant::now();
        let mut guard = Guard::new(GuessLimit::default());
        assert_eq!(guard.restore(7, now), Some(Lockout { failures: 7, wait: Duration::from_secs(4) }));
        assert_eq!(guard.locked_for(now + Duration::from_secs(3)), Some(Duration::from_secs(1)));
        assert_eq!(guard.locked_for(now + Duration::from_secs(4)), None);
        let _ = guard.restore(2, now);
        assert_eq!(guard.charged(), 7, "a restore never lowers the count");
    }

    /// The target: at most 10 guesses in any minute, however fast an attacker retries. Simulated: the
    /// attacker guesses the moment the device lets it, for a day, and every 60 s window is counted.
    #[test]
    fn no_minute_sees_more_than_ten_guesses() {
        let start = Instant::now();
        let mut guard = Guard::new(GuessLimit::default());
        let mut now = start;
        let mut guesses = Vec::new();
        while now < start + Duration::from_secs(86_400) {
            match guard.locked_for(now) {
                Some(left) => now += left,
                None => {
                    guard.charge(now);
                    guesses.push(now);
                    now += Duration::from_millis(1);
                }
            }
        }
        let busiest = guesses
            .iter()
            .map(|&from| guesses.iter().filter(|&&t| t >= from && t < from + Duration::from_secs(60)).count())
            .max();
        assert_eq!(busiest, Some(10));
        let last_hour = guesses.iter().filter(|&&t| t >= start + Duration::from_secs(82_800)).count();
        assert_eq!(last_hour, 30, "sustained: one guess per max_backoff");
    }
}
