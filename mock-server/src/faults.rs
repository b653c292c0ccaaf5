//! Fault injection (`/_mock/faults`) and the `--max-tps` gateway throttle.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Upper bound of `hostile.count` (a chain of this many certificates is ~70 MB).
pub const MAX_HOSTILE_COUNT: usize = 100_000;
/// Upper bound of `hostile.bytes`.
pub const MAX_HOSTILE_BYTES: usize = 64 * 1024 * 1024;

/// The fault plan, as read and written by `/_mock/faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultPlan {
    /// Added delay before every (selected) operation is handled.
    pub latency_ms: u64,
    /// Extra random delay: each (selected) call waits `latency_ms` plus a uniformly drawn
    /// 0..=`latency_jitter_ms` (e.g. 1000 + 2000 for "1–3 s latency").
    pub latency_jitter_ms: u64,
    /// Probability (0..=1) of answering a (selected) operation with 429 APIGW.0308.
    pub rate_429: f64,
    /// Probability (0..=1) of answering a (selected) operation with 500.
    pub rate_5xx: f64,
    /// For the next N successful issue-from-CSR calls: issue, then close the connection
    /// without a response. Counts down.
    pub drop_after_issue: u64,
    /// Probability (0..=1) that a successful issue-from-CSR call issues, then closes the
    /// connection without a response (besides the `drop_after_issue` countdown).
    pub drop_after_issue_rate: f64,
    /// Issue-from-CSR: issue, then wait this long before answering.
    pub hang_after_issue_ms: u64,
    /// If set, latency/429/5xx only apply to these SDK operation names.
    pub operations: Option<Vec<String>>,
    /// The next N (selected) calls get neither latency nor an injected error; the plan applies
    /// from the call after them ("the fifth export fails"). Counts down.
    pub pass_first: u64,
    /// Answers that are wrong on purpose (one mode at a time); `None` = honest answers.
    pub hostile: Option<HostilePlan>,
    /// Render these fields as JSON `null` in successful answers (the SDKs' response models
    /// make every field optional), for lenient-decoding tests; `None` = off.
    pub null_fields: Option<NullFields>,
}

/// Which fields of which answers read `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullFields {
    /// Field names, matched at any depth; `"*"` = every field (objects keep their keys,
    /// arrays their length, every value inside is `null`).
    pub fields: Vec<String>,
    /// SDK operation names; `None` = every operation.
    #[serde(default)]
    pub operations: Option<Vec<String>>,
}

impl NullFields {
    /// The fields `operation`'s answer should have nulled, if any.
    pub fn for_operation(&self, operation: &str) -> Option<&[String]> {
        let selected = self
            .operations
            .as_ref()
            .is_none_or(|ops| ops.iter().any(|o| o == operation));
        selected.then_some(self.fields.as_slice())
    }
}

/// A hostile-answer setting: which lie, told to which operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostilePlan {
    pub mode: HostileMode,
    /// SDK operation names whose answers turn hostile; default: the mode's natural
    /// targets ([`HostileMode::default_operations`]).
    #[serde(default)]
    pub operations: Option<Vec<String>>,
    /// `huge_chain`: certificates in the chain (default 10,000).
    #[serde(default)]
    pub count: Option<usize>,
    /// `huge_body`: body size (default 4 MiB); `huge_certificate_id`: id length (default
    /// 100,000 characters).
    #[serde(default)]
    pub bytes: Option<usize>,
}

/// The hostile answers the mock can give. Certificate modes apply to the two exports;
/// the JSON modes to any answer of the selected operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostileMode {
    /// `certificate` is the same certificate re-signed by the real issuer for another key.
    WrongKey,
    /// `certificate_chain` holds look-alikes (same names, other keys): it does not link.
    UnlinkedChain,
    /// `certificate_chain` = [A, B], A issued by B and B issued by A.
    ChainLoop,
    /// `certificate_chain` = `count` same-named impostors of the issuing CA, then the real chain.
    HugeChain,
    /// Raw non-UTF-8 bytes inside a string field.
    NonUtf8,
    /// Every field (at every depth) is JSON `null`.
    Nulls,
    /// Every field has the wrong JSON type (strings ↔ numbers, objects → arrays, …).
    WrongTypes,
    /// The honest answer plus a `padding` field making the body `bytes` long.
    HugeBody,
    /// 302 to `/_mock/redirected/<path>` on the same host (counted when followed).
    Redirect,
    /// CreateCertificateByCsr issues, then answers a `bytes`-long `certificate_id`.
    HugeCertificateId,
}

/// The two export operations (certificate and CA).
const EXPORTS: [&str; 2] = ["ExportCertificate", "ExportCertificateAuthorityCertificate"];
/// Exports and lists.
const EXPORTS_AND_LISTS: [&str; 4] = [
    "ExportCertificate",
    "ExportCertificateAuthorityCertificate",
    "ListCertificate",
    "ListCertificateAuthority",
];

impl HostileMode {
    /// The operations a plan without `operations` targets.
    pub fn default_operations(self) -> &'static [&'static str] {
        match self {
            Self::WrongKey | Self::UnlinkedChain | Self::ChainLoop | Self::HugeChain => &EXPORTS,
            Self::NonUtf8 | Self::Nulls | Self::WrongTypes | Self::HugeBody | Self::Redirect => &EXPORTS_AND_LISTS,
            Self::HugeCertificateId => &["CreateCertificateByCsr"],
        }
    }
}

impl HostilePlan {
    /// Does this plan make `operation`'s answer hostile?
    pub fn targets(&self, operation: &str) -> bool {
        match &self.operations {
            Some(ops) => ops.iter().any(|o| o == operation),
            None => self.mode.default_operations().contains(&operation),
        }
    }
}

impl FaultPlan {
    pub fn validate(&self) -> Result<(), String> {
        for (name, r) in [
            ("rate_429", self.rate_429),
            ("rate_5xx", self.rate_5xx),
            ("drop_after_issue_rate", self.drop_after_issue_rate),
        ] {
            if !(0.0..=1.0).contains(&r) || r.is_nan() {
                return Err(format!("{name} must be within [0, 1]"));
            }
        }
        if let Some(h) = &self.hostile {
            if h.count.is_some_and(|n| n == 0 || n > MAX_HOSTILE_COUNT) {
                return Err(format!("hostile.count must be within [1, {MAX_HOSTILE_COUNT}]"));
            }
            if h.bytes.is_some_and(|n| n == 0 || n > MAX_HOSTILE_BYTES) {
                return Err(format!("hostile.bytes must be within [1, {MAX_HOSTILE_BYTES}]"));
            }
        }
        Ok(())
    }

    fn selects(&self, operation: &str) -> bool {
        match &self.operations {
            None => true,
            Some(ops) => ops.iter().any(|o| o == operation),
        }
    }
}

/// What to do to a request before handling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    None,
    TooManyRequests,
    ServerError,
}

#[derive(Debug, Default)]
pub struct Faults {
    plan: Mutex<FaultPlan>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultPlan> {
        match self.plan.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn get(&self) -> FaultPlan {
        self.lock().clone()
    }

    pub fn set(&self, plan: FaultPlan) -> Result<(), String> {
        plan.validate()?;
        *self.lock() = plan;
        Ok(())
    }

    pub fn reset(&self) {
        *self.lock() = FaultPlan::default();
    }

    /// Latency and injected error for `operation`.
    pub fn before(&self, operation: &str) -> (Option<Duration>, Injected) {
        let mut g = self.lock();
        if !g.selects(operation) {
            return (None, Injected::None);
        }
        if g.pass_first > 0 {
            g.pass_first -= 1;
            return (None, Injected::None);
        }
        let jitter = match g.latency_jitter_ms {
            0 => 0,
            j => rand::random_range(0..=j),
        };
        let ms = g.latency_ms.saturating_add(jitter);
        let latency = (ms > 0).then(|| Duration::from_millis(ms));
        let (r429, r5xx) = (g.rate_429, g.rate_5xx);
        drop(g);
        let injected = if r429 > 0.0 && rand::random::<f64>() < r429 {
            Injected::TooManyRequests
        } else if r5xx > 0.0 && rand::random::<f64>() < r5xx {
            Injected::ServerError
        } else {
            Injected::None
        };
        (latency, injected)
    }

    /// After a successful issuance: should the connection be dropped? Consumes one of the
    /// `drop_after_issue` countdown, else draws against `drop_after_issue_rate`.
    pub fn take_drop(&self) -> bool {
        let mut g = self.lock();
        if g.drop_after_issue > 0 {
            g.drop_after_issue -= 1;
            true
        } else {
            g.drop_after_issue_rate > 0.0 && rand::random::<f64>() < g.drop_after_issue_rate
        }
    }

    /// The fields to render `null` in `operation`'s answer (empty = none).
    pub fn null_fields_for(&self, operation: &str) -> Vec<String> {
        let g = self.lock();
        g.null_fields
            .as_ref()
            .and_then(|n| n.for_operation(operation))
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    }

    /// The hostile-answer setting for `operation`, if any.
    pub fn hostile_for(&self, operation: &str) -> Option<HostilePlan> {
        self.lock().hostile.clone().filter(|h| h.targets(operation))
    }

    /// After a successful issuance: how long to hang before answering.
    pub fn hang(&self) -> Option<Duration> {
        let ms = self.lock().hang_after_issue_ms;
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}

/// A simulated outage (`/_mock/outage`): until it ends, every Huawei-API request is
/// answered by closing the connection without a response.
#[derive(Debug, Default)]
pub struct Outage {
    until: Mutex<Option<Instant>>,
}

impl Outage {
    fn lock(&self) -> MutexGuard<'_, Option<Instant>> {
        match self.until.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Start (or extend/shorten) an outage lasting `duration` from now.
    pub fn start(&self, duration: Duration) {
        *self.lock() = Instant::now().checked_add(duration);
    }

    /// End the outage now.
    pub fn end(&self) {
        *self.lock() = None;
    }

    /// Time left, `None` when there is no outage.
    pub fn remaining(&self) -> Option<Duration> {
        let mut g = self.lock();
        match *g {
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    *g = None;
                    None
                } else {
                    Some(left)
                }
            }
            None => None,
        }
    }
}

/// The `--max-tps` gateway throttle: fixed one-second (wall-clock) windows of `limit`
/// requests per access key — the gateway's "policy user over ratelimit,limit:N,time:1
/// second" [unconfirmed: per user/AK rather than per account]. Requests without a
/// readable AK share one window.
#[derive(Debug)]
pub struct Throttle {
    limit: u64,
    /// AK → (second, requests admitted in it).
    windows: Mutex<HashMap<String, (u64, u64)>>,
}

/// Forget windows of past seconds once this many AKs are tracked (bounded memory).
const MAX_TRACKED_KEYS: usize = 4096;

impl Throttle {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Admit one request at `now` (any access key)?
    pub fn admit(&self, now: SystemTime) -> bool {
        self.admit_for("", now)
    }

    /// Admit one request of access key `ak` at `now`?
    pub fn admit_for(&self, ak: &str, now: SystemTime) -> bool {
        let sec = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut g = match self.windows.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.len() >= MAX_TRACKED_KEYS && !g.contains_key(ak) {
            g.retain(|_, (s, _)| *s == sec);
        }
        let window = match g.get_mut(ak) {
            Some(w) => w,
            None => g.entry(ak.to_owned()).or_insert((sec, 0)),
        };
        if window.0 != sec {
            *window = (sec, 0);
        }
        if window.1 >= self.limit {
            false
        } else {
            window.1 += 1;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_json_and_validation() {
        let p: FaultPlan = serde_json::from_str(
            r#"{"latency_ms":0,"latency_jitter_ms":0,"rate_429":0.0,"rate_5xx":0.0,"drop_after_issue":0,"drop_after_issue_rate":0.0,"hang_after_issue_ms":0,"operations":null,"pass_first":0,"hostile":null,"null_fields":null}"#,
        )
        .unwrap();
        assert_eq!(p, FaultPlan::default());
        let p: FaultPlan = serde_json::from_str(r#"{"rate_429":1.5}"#).unwrap();
        assert!(p.validate().is_err());
        assert!(serde_json::from_str::<FaultPlan>(r#"{"bogus":1}"#).is_err());
        let p: FaultPlan = serde_json::from_str(r#"{"drop_after_issue_rate":-0.1}"#).unwrap();
        assert!(p.validate().is_err());
    }

    #[test]
    fn pass_first_lets_that_many_selected_calls_through_then_applies_the_plan() {
        let f = Faults::default();
        f.set(FaultPlan {
            rate_5xx: 1.0,
            pass_first: 2,
            operations: Some(vec!["ExportCertificate".into()]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            f.before("ListCertificate").1,
            Injected::None,
            "not selected, not counted"
        );
        let injected: Vec<Injected> = (0..4).map(|_| f.before("ExportCertificate").1).collect();
        assert_eq!(
            injected,
            [
                Injected::None,
                Injected::None,
                Injected::ServerError,
                Injected::ServerError
            ]
        );
    }

    #[test]
    fn latency_jitter_stays_in_range_and_varies() {
        let f = Faults::default();
        f.set(FaultPlan {
            latency_ms: 1000,
            latency_jitter_ms: 2000,
            ..Default::default()
        })
        .unwrap();
        let draws: Vec<Duration> = (0..200).map(|_| f.before("ListCertificate").0.unwrap()).collect();
        assert!(draws.iter().all(|d| (1000..=3000).contains(&d.as_millis())));
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 50, "jitter draws {} distinct values", distinct.len());
    }

    #[test]
    fn drop_after_issue_rate_drops_about_that_share() {
        let f = Faults::default();
        f.set(FaultPlan {
            drop_after_issue_rate: 0.05,
            ..Default::default()
        })
        .unwrap();
        let dropped = (0..4000).filter(|_| f.take_drop()).count();
        // 5% of 4000 = 200; 8 standard deviations (≈ 110) either side never fail by chance.
        assert!((90..=310).contains(&dropped), "{dropped}");
        f.set(FaultPlan {
            drop_after_issue_rate: 1.0,
            ..Default::default()
        })
        .unwrap();
        assert!(f.take_drop() && f.take_drop());
    }

    #[test]
    fn outage_ends_by_itself_or_on_request() {
        let o = Outage::default();
        assert_eq!(o.remaining(), None);
        o.start(Duration::from_secs(60));
        assert!(o.remaining().is_some_and(|d| d > Duration::from_secs(59)));
        o.end();
        assert_eq!(o.remaining(), None);
        o.start(Duration::ZERO);
        assert_eq!(o.remaining(), None);
    }

    #[test]
    fn selection_rates_and_drop_countdown() {
        let f = Faults::default();
        f.set(FaultPlan {
            rate_429: 1.0,
            latency_ms: 5,
            operations: Some(vec!["ShowCertificate".into()]),
            drop_after_issue: 2,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            f.before("ShowCertificate"),
            (Some(Duration::from_millis(5)), Injected::TooManyRequests)
        );
        assert_eq!(f.before("ListCertificate"), (None, Injected::None));
        assert!(f.take_drop());
        assert!(f.take_drop());
        assert!(!f.take_drop());
        f.set(FaultPlan {
            rate_5xx: 1.0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(f.before("Anything").1, Injected::ServerError);
        f.reset();
        assert_eq!(f.before("Anything"), (None, Injected::None));
    }

    /// Sustained load far above the limit: every wall-clock second admits exactly `limit`
    /// requests, whatever the phase of the load (the gateway's "limit:N,time:1 second").
    #[test]
    fn throttle_under_sustained_load_admits_the_limit_each_second() {
        for (limit, per_second) in [(5_u64, 100_u64), (20, 1000), (100, 250)] {
            let t = Throttle::new(limit);
            let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_321);
            let mut admitted_by_second = std::collections::BTreeMap::<u64, u64>::new();
            for i in 0..per_second * 10 {
                let at = start + Duration::from_micros(i * 1_000_000 / per_second);
                if t.admit(at) {
                    let sec = at.duration_since(UNIX_EPOCH).unwrap().as_secs();
                    *admitted_by_second.entry(sec).or_default() += 1;
                }
            }
            // 11 wall-clock seconds are touched (the load starts mid-second): the nine full
            // ones admit exactly the limit, the partial ones at most the limit.
            let counts: Vec<u64> = admitted_by_second.values().copied().collect();
            assert_eq!(counts.len(), 11);
            assert!(counts[1..10].iter().all(|n| *n == limit), "{limit}: {counts:?}");
            assert!(counts.iter().all(|n| *n <= limit), "{limit}: {counts:?}");
        }
    }

    #[test]
    fn throttle_is_per_access_key() {
        let t = Throttle::new(2);
        let now = UNIX_EPOCH + Duration::from_secs(100);
        assert!(t.admit_for("AK1", now) && t.admit_for("AK1", now));
        assert!(!t.admit_for("AK1", now));
        assert!(t.admit_for("AK2", now), "another key has its own window");
        for i in 0..MAX_TRACKED_KEYS * 2 {
            t.admit_for(&format!("k{i}"), now + Duration::from_secs(1 + i as u64 / 1000));
        }
        assert!(
            t.windows.lock().unwrap().len() <= MAX_TRACKED_KEYS + 1000,
            "old windows are forgotten"
        );
    }

    /// Below the limit nothing is refused.
    #[test]
    fn throttle_admits_everything_below_the_limit() {
        let t = Throttle::new(10);
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!((0..90).all(|i| t.admit(start + Duration::from_millis(i * 110))));
    }

    #[test]
    fn throttle_window() {
        let t = Throttle::new(2);
        let now = UNIX_EPOCH + Duration::from_secs(100);
        assert!(t.admit(now));
        assert!(t.admit(now));
        assert!(!t.admit(now));
        assert!(t.admit(now + Duration::from_secs(1)));
    }
}
