//! Transient errors: a back-off that holds across restarts, and the retry budget
//! (`--max-retry-duration`) counted per *episode* — from the first transient error of the
//! current phase, never from the request's creation — and only for time the errors cost: each
//! error charges the time since the previous one, but at most the back-off that error was given
//! plus the time its own attempt took (from sending: the issue call's wait for the rate
//! limiter before it is excluded). So time spent waiting for approval, an issuer, the lease, the issuer's slots
//! or the rate limiter behind a backlog does not count, and a restart does not reset it.
//!
//! The episode is an annotation on the request (`<uid>/<first error ms>/<phase>/<last error
//! ms>/<charged ms>`), rewritten at each error of the episode. The delay before the next
//! attempt is as long as the charged time so far (2, 4, 8 … s, at most 2 minutes, jittered),
//! so no attempt counter needs to survive a restart. An episode recorded by an earlier version
//! (`<uid>/<first error ms>/<phase>`) is charged its whole age, as that version counted it.

use std::time::Duration;

use rand::Rng;

use super::outcome::{Outcome, Pending, Waiting};
use crate::{
    cert_manager::CertificateRequest,
    controller::{
        Context,
        issuance::intent::{RETRYING_SINCE_ANNOTATION, bind, bound},
    },
};

/// Shortest back-off.
const MIN_DELAY: Duration = Duration::from_secs(2);
/// Longest back-off.
const MAX_DELAY: Duration = Duration::from_secs(120);

/// Which part of the work an episode belongs to; an error of another phase starts a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the certificate exists: reading credentials, the issue call.
    Issue,
    /// An issue call's outcome is unknown: looking for its certificate. Its own phase, so the
    /// time recovery takes (never limited) is not charged to the issue call that may follow.
    Recover,
    /// After the PCA issued it: export and verification.
    Deliver,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Issue => "issue",
            Phase::Recover => "recover",
            Phase::Deliver => "deliver",
        }
    }
}

/// Whether an error may fail the request once the budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Nothing can have been issued: `--max-retry-duration` applies.
    Limited,
    /// Failing could leave a certificate behind (unknown outcome, or issued and not yet
    /// delivered): retried until decided.
    Unlimited,
}

/// The failed attempt an error ends, as the retry budget sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Its phase.
    pub phase: Phase,
    /// Whether the budget may fail the request.
    pub budget: Budget,
    /// How long the attempt itself took, from sending (the waits before it, such as the rate
    /// limiter's, excluded); the call's time limit where the waits cannot be told apart.
    pub took: Duration,
}

/// The current retry episode of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    /// First error of the episode, epoch ms.
    pub since_ms: i64,
    /// Its phase.
    pub phase: Phase,
    /// Last error of the episode, epoch ms.
    pub last_ms: i64,
    /// Time charged to the retry budget so far, ms.
    pub charged_ms: i64,
    /// Whether it starts now.
    pub new: bool,
}

impl Episode {
    /// The episode recorded on the request, if it is of `phase`; else one starting at `now_ms`.
    pub fn current(cr: &CertificateRequest, uid: &str, phase: Phase, now_ms: i64) -> Episode {
        let recorded = bound(cr, RETRYING_SINCE_ANNOTATION, uid).and_then(|v| Self::decode(v, phase, now_ms));
        recorded.unwrap_or(Episode {
            since_ms: now_ms,
            phase,
            last_ms: now_ms,
            charged_ms: 0,
            new: true,
        })
    }

    fn decode(value: &str, phase: Phase, now_ms: i64) -> Option<Episode> {
        let mut parts = value.split('/');
        let since_ms: i64 = parts.next()?.parse().ok()?;
        if parts.next()? != phase.as_str() || since_ms > now_ms {
            return None;
        }
        let (last_ms, charged_ms) = match (parts.next(), parts.next()) {
            (Some(last), Some(charged)) => (last.parse().ok()?, charged.parse().ok()?),
            // Recorded by an earlier version: its whole age counts, as it did there.
            (None, None) => (now_ms, now_ms - since_ms),
            _ => return None,
        };
        (since_ms <= last_ms && last_ms <= now_ms && charged_ms >= 0).then_some(Episode {
            since_ms,
            phase,
            last_ms,
            charged_ms,
            new: false,
        })
    }

    /// The episode after an error at `now_ms`: charged the time since the previous error, at
    /// most the back-off that error was given plus `call` (the failed attempt's own time).
    pub fn charge(self, now_ms: i64, call: Duration) -> Episode {
        if self.new {
            return self;
        }
        let allowed = backoff_limit(self.charged()) + call;
        let gap = u64::try_from(now_ms - self.last_ms).unwrap_or(0);
        let charged = Duration::from_millis(gap).min(allowed);
        Episode {
            last_ms: now_ms,
            charged_ms: self.charged_ms + i64::try_from(charged.as_millis()).unwrap_or(i64::MAX),
            ..self
        }
    }

    /// Time charged to the budget.
    pub fn charged(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.charged_ms).unwrap_or(0))
    }

    /// The annotation value.
    pub fn encode(&self, uid: &str) -> String {
        bind(
            uid,
            format!(
                "{}/{}/{}/{}",
                self.since_ms,
                self.phase.as_str(),
                self.last_ms,
                self.charged_ms
            ),
        )
    }
}

/// Pending with back-off, or Failed once a limited episode has outlasted `--max-retry-duration`.
pub fn transient(
    cr: &CertificateRequest,
    ctx: &Context,
    cause: &'static str,
    message: String,
    attempt: Attempt,
) -> Outcome {
    let now = jiff::Timestamp::now().as_millisecond();
    let uid = cr.metadata.uid.as_deref().unwrap_or_default();
    let episode = Episode::current(cr, uid, attempt.phase, now).charge(now, attempt.took);
    let elapsed = episode.charged();
    let limit = ctx.config.max_retry_duration;
    if attempt.budget == Budget::Limited && elapsed > limit {
        return Outcome::failed(
            cause,
            format!(
                "Giving up after {}s of transient errors (--max-retry-duration {}s; time spent waiting behind other requests not counted): {message}",
                elapsed.as_secs(),
                limit.as_secs()
            ),
        );
    }
    ctx.metrics.request_retry(cause);
    Outcome::Pending(Pending {
        cause,
        message: format!("Retrying with back-off after a transient error: {message}"),
        requeue: Some(backoff(elapsed)),
        waiting: Waiting::Retrying(episode),
    })
}

/// Jitter of the back-off: ±20%.
const JITTER: f64 = 0.2;

/// As long as the episode so far (doubling delays), within 2 s … 2 min, ±20% jitter.
pub fn backoff(elapsed: Duration) -> Duration {
    let base = elapsed.clamp(MIN_DELAY, MAX_DELAY).as_secs_f64();
    Duration::from_secs_f64(base * rand::rng().random_range(1.0 - JITTER..1.0 + JITTER))
}

/// The longest back-off [`backoff`] gives after `elapsed`.
fn backoff_limit(elapsed: Duration) -> Duration {
    elapsed.clamp(MIN_DELAY, MAX_DELAY).mul_f64(1.0 + JITTER)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cert_manager::CertificateRequestSpec;

    #[test]
    fn backoff_doubles_with_the_episode_and_is_capped() {
        let first = backoff(Duration::ZERO).as_secs_f64();
        assert!((1.6..=2.4).contains(&first), "{first}");
        let later = backoff(Duration::from_secs(16)).as_secs_f64();
        assert!((12.8..=19.2).contains(&later), "{later}");
        let late = backoff(Duration::from_secs(3600)).as_secs_f64();
        assert!((96.0..=144.0).contains(&late), "{late}");
    }

    /// 5 minutes of uninterrupted transient errors cost about 8 attempts, not one per second.
    #[test]
    fn five_minutes_of_errors_take_about_eight_attempts() {
        let mut t = Duration::ZERO;
        let mut attempts = 0;
        while t < Duration::from_secs(300) {
            attempts += 1;
            t += backoff(t);
        }
        assert!((7..=11).contains(&attempts), "{attempts}");
    }

    fn request(value: Option<&str>) -> CertificateRequest {
        let mut cr = CertificateRequest::new("r", CertificateRequestSpec::default());
        cr.metadata.uid = Some("u".into());
        cr.metadata.annotations = value.map(|v| BTreeMap::from([(RETRYING_SINCE_ANNOTATION.to_owned(), v.to_owned())]));
        cr
    }

    #[test]
    fn episodes_are_per_phase_and_bound_to_the_uid() {
        let now = 1_000_000;
        let e = Episode::current(&request(Some("u/900000/issue")), "u", Phase::Issue, now);
        assert_eq!((e.since_ms, e.new), (900_000, false));
        let other_phase = Episode::current(&request(Some("u/900000/issue")), "u", Phase::Deliver, now);
        assert_eq!((other_phase.since_ms, other_phase.new), (now, true));
        let after_recovery = Episode::current(&request(Some("u/900000/recover")), "u", Phase::Issue, now);
        assert_eq!((after_recovery.since_ms, after_recovery.new), (now, true));
        let copied = Episode::current(&request(Some("v/900000/issue")), "u", Phase::Issue, now);
        assert!(copied.new, "bound to another request");
        let future = Episode::current(&request(Some("u/2000000/issue")), "u", Phase::Issue, now);
        assert!(future.new, "a start in the future is not trusted");
        assert_eq!(e.encode("u"), "u/900000/issue/1000000/100000");
    }

    #[test]
    fn an_episode_of_an_earlier_version_is_charged_its_whole_age() {
        let e = Episode::current(&request(Some("u/900000/issue")), "u", Phase::Issue, 1_000_000);
        assert_eq!((e.last_ms, e.charged()), (1_000_000, Duration::from_secs(100)));
    }

    #[test]
    fn an_error_is_charged_the_gap_at_most_its_back_off_and_one_call() {
        let call = Duration::from_secs(30);
        let e = Episode::current(
            &request(Some("u/100000/issue/500000/60000")),
            "u",
            Phase::Issue,
            1_000_000,
        );
        assert_eq!(
            (e.since_ms, e.last_ms, e.charged_ms, e.new),
            (100_000, 500_000, 60_000, false)
        );
        // Back soon after its back-off: the whole gap counts.
        let soon = e.charge(560_000, call);
        assert_eq!((soon.last_ms, soon.charged_ms), (560_000, 120_000));
        // Back after waiting 500 s behind others: 60 s × 1.2 of back-off and one call.
        let late = e.charge(1_000_000, call);
        assert_eq!((late.last_ms, late.charged_ms), (1_000_000, 60_000 + 72_000 + 30_000));
        assert_eq!(
            Episode::current(&request(None), "u", Phase::Issue, 7)
                .charge(7, call)
                .charged_ms,
            0,
            "a new episode starts at nothing"
        );
        for broken in [
            "u/100000/issue/500000",
            "u/100000/issue/50000/0",
            "u/100000/issue/x/0",
            "u/100000/issue/500000/-1",
        ] {
            assert!(
                Episode::current(&request(Some(broken)), "u", Phase::Issue, 1_000_000).new,
                "{broken}"
            );
        }
    }
}
