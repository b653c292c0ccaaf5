//! Transient errors: a back-off that holds across restarts, and the retry budget
//! (`--max-retry-duration`) counted per *episode* — from the first transient error of the
//! current phase, never from the request's creation — so time spent waiting for approval, an
//! issuer or a backlog does not count, and a restart does not reset it.
//!
//! The episode's start is an annotation on the request, written once per episode. The delay
//! before the next attempt is as long as the episode has lasted so far (2, 4, 8 … s, at most
//! 2 minutes, jittered), so no attempt counter needs to survive a restart.

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

/// The current retry episode of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Episode {
    /// First error of the episode, epoch ms.
    pub since_ms: i64,
    /// Its phase.
    pub phase: Phase,
    /// Whether it starts now (and must be recorded).
    pub new: bool,
}

impl Episode {
    /// The episode recorded on the request, if it is of `phase`; else one starting at `now_ms`.
    pub fn current(cr: &CertificateRequest, uid: &str, phase: Phase, now_ms: i64) -> Episode {
        let recorded = bound(cr, RETRYING_SINCE_ANNOTATION, uid).and_then(|v| {
            let (since, recorded_phase) = v.split_once('/')?;
            let since: i64 = since.parse().ok()?;
            (recorded_phase == phase.as_str() && since <= now_ms).then_some(since)
        });
        match recorded {
            Some(since_ms) => Episode {
                since_ms,
                phase,
                new: false,
            },
            None => Episode {
                since_ms: now_ms,
                phase,
                new: true,
            },
        }
    }

    /// The annotation value.
    pub fn encode(&self, uid: &str) -> String {
        bind(uid, format!("{}/{}", self.since_ms, self.phase.as_str()))
    }
}

/// Pending with back-off, or Failed once a limited episode has outlasted `--max-retry-duration`.
pub fn transient(
    cr: &CertificateRequest,
    ctx: &Context,
    cause: &'static str,
    message: String,
    phase: Phase,
    budget: Budget,
) -> Outcome {
    let now = jiff::Timestamp::now().as_millisecond();
    let uid = cr.metadata.uid.as_deref().unwrap_or_default();
    let episode = Episode::current(cr, uid, phase, now);
    let elapsed = Duration::from_millis(u64::try_from(now - episode.since_ms).unwrap_or(0));
    let limit = ctx.config.max_retry_duration;
    if budget == Budget::Limited && elapsed > limit {
        return Outcome::failed(
            cause,
            format!(
                "Giving up after {}s of transient errors (--max-retry-duration {}s): {message}",
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

/// As long as the episode so far (doubling delays), within 2 s … 2 min, ±20% jitter.
pub fn backoff(elapsed: Duration) -> Duration {
    let base = elapsed.clamp(MIN_DELAY, MAX_DELAY).as_secs_f64();
    Duration::from_secs_f64(base * rand::rng().random_range(0.8..1.2))
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
        assert_eq!(e.encode("u"), "u/900000/issue");
    }
}
