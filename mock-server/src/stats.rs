//! Per-operation request counters and issuance counters for `GET /_mock/stats`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

/// Counters of one operation.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct OpStats {
    /// Every request, whatever answered it.
    pub total: u64,
    /// By HTTP status, or `dropped` for a connection closed without a response.
    pub by_status: BTreeMap<String, u64>,
    /// Answers the mock made up (fault plan, outage) rather than the modelled service.
    pub injected: InjectedStats,
    /// 429 `APIGW.0308` from the `--max-tps` gateway throttle (not injected faults).
    pub throttled: u64,
    /// `total` minus every injected fault: the calls the service really handled
    /// (throttled ones included, as the real gateway answers them).
    pub answered: u64,
}

/// Injected faults of one operation.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct InjectedStats {
    /// 429 `APIGW.0308` from `rate_429`.
    #[serde(rename = "429")]
    pub too_many_requests: u64,
    /// 500 from `rate_5xx`.
    #[serde(rename = "5xx")]
    pub server_error: u64,
    /// Issued, then the connection was closed (`drop_after_issue`, `drop_after_issue_rate`).
    pub dropped_after_issue: u64,
    /// Closed without a response during an outage.
    pub outage: u64,
    /// A hostile answer (`/_mock/faults` `hostile`) instead of the honest one.
    pub hostile: u64,
}

impl InjectedStats {
    fn total(&self) -> u64 {
        self.too_many_requests + self.server_error + self.dropped_after_issue + self.outage + self.hostile
    }
}

/// Who produced an answer, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The modelled service (success or a real refusal).
    Service,
    /// The `--max-tps` gateway throttle.
    Throttle,
    /// Fault plan: injected 429.
    Injected429,
    /// Fault plan: injected 500.
    Injected5xx,
    /// Fault plan: issued, then the connection was dropped.
    DroppedAfterIssue,
    /// `/_mock/outage`.
    Outage,
    /// Fault plan: a hostile answer.
    Hostile,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct IssuedStats {
    pub total: u64,
    /// Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER → certificates issued for it.
    pub by_public_key: HashMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub operations: BTreeMap<String, OpStats>,
    pub issued: IssuedStats,
    /// Requests that followed a hostile `redirect` to `/_mock/redirected/…`.
    pub redirects_followed: u64,
}

#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, StatsSnapshot> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Count one finished request answered by the service. `status` is an HTTP status
    /// code, or a word such as `dropped` for a connection closed without a response.
    pub fn record(&self, operation: &str, status: &str) {
        self.record_from(operation, status, Origin::Service);
    }

    /// Count one finished request, saying who answered it.
    pub fn record_from(&self, operation: &str, status: &str, origin: Origin) {
        let mut g = self.lock();
        let op = match g.operations.get_mut(operation) {
            Some(op) => op,
            None => g.operations.entry(operation.to_owned()).or_default(),
        };
        op.total += 1;
        match origin {
            Origin::Service => {}
            Origin::Throttle => op.throttled += 1,
            Origin::Injected429 => op.injected.too_many_requests += 1,
            Origin::Injected5xx => op.injected.server_error += 1,
            Origin::DroppedAfterIssue => op.injected.dropped_after_issue += 1,
            Origin::Outage => op.injected.outage += 1,
            Origin::Hostile => op.injected.hostile += 1,
        }
        op.answered = op.total - op.injected.total();
        match op.by_status.get_mut(status) {
            Some(n) => *n += 1,
            None => {
                op.by_status.insert(status.to_owned(), 1);
            }
        }
    }

    /// Count one issued certificate for a public key.
    pub fn record_issued(&self, spki_sha256: &str) {
        let mut g = self.lock();
        g.issued.total += 1;
        *g.issued.by_public_key.entry(spki_sha256.to_owned()).or_default() += 1;
    }

    /// Count a client that followed a hostile redirect.
    pub fn record_redirect_followed(&self) {
        self.lock().redirects_followed += 1;
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.lock().clone()
    }

    pub fn reset(&self) {
        *self.lock() = StatsSnapshot::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let s = Stats::default();
        s.record("CreateCertificateByCsr", "200");
        s.record("CreateCertificateByCsr", "200");
        s.record("CreateCertificateByCsr", "429");
        s.record_issued("aa");
        s.record_issued("aa");
        let snap = s.snapshot();
        let op = &snap.operations["CreateCertificateByCsr"];
        assert_eq!(op.total, 3);
        assert_eq!(op.by_status["200"], 2);
        assert_eq!(op.by_status["429"], 1);
        assert_eq!(snap.issued.total, 2);
        assert_eq!(snap.issued.by_public_key["aa"], 2);
        let v = serde_json::to_value(&snap).unwrap();
        assert_eq!(v["operations"]["CreateCertificateByCsr"]["by_status"]["200"], 2);
        assert_eq!(v["issued"]["by_public_key"]["aa"], 2);
        s.reset();
        assert_eq!(s.snapshot(), StatsSnapshot::default());
    }

    #[test]
    fn injected_faults_are_counted_apart_from_answers() {
        let s = Stats::default();
        s.record("CreateCertificateByCsr", "200");
        s.record_from("CreateCertificateByCsr", "429", Origin::Injected429);
        s.record_from("CreateCertificateByCsr", "429", Origin::Throttle);
        s.record_from("CreateCertificateByCsr", "500", Origin::Injected5xx);
        s.record_from("CreateCertificateByCsr", "dropped", Origin::DroppedAfterIssue);
        s.record_from("CreateCertificateByCsr", "dropped", Origin::Outage);
        let op = &s.snapshot().operations["CreateCertificateByCsr"];
        assert_eq!(op.total, 6);
        assert_eq!(op.by_status["429"], 2);
        assert_eq!(op.throttled, 1);
        assert_eq!(op.answered, 2, "the 200 and the throttle's 429");
        let v = serde_json::to_value(op).unwrap();
        assert_eq!(
            v["injected"],
            serde_json::json!({"429": 1, "5xx": 1, "dropped_after_issue": 1, "outage": 1, "hostile": 0})
        );
    }
}
