//! Prometheus metrics (OpenMetrics text on `/metrics`). Labels are bounded: operations, status
//! classes, results and reasons — never object names, and never anything secret.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, atomic::AtomicU64},
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::pca::{CallOutcome, Operation, PcaObserver, ratelimit::RateLimiters};

/// `controller` + `result` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `certificaterequest`, `ccmissuer` or `ccmclusterissuer`.
    pub controller: &'static str,
    /// Outcome, e.g. `issued`, `pending`, `failed`, `ignored`, `error`.
    pub result: &'static str,
}

/// `controller` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// Controller name.
    pub controller: &'static str,
}

/// `operation` + `status_class` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PcaCallLabels {
    /// SDK operation name.
    pub operation: &'static str,
    /// `2xx`, `4xx`, `5xx`, `timeout`, `connect_error`, `transport_error`.
    pub status_class: &'static str,
}

/// `operation` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    /// SDK operation name.
    pub operation: &'static str,
}

/// `type` label for issued certificates.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertTypeLabel {
    /// `leaf` or `ca`.
    pub r#type: &'static str,
}

/// `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A stable CamelCase reason.
    pub reason: &'static str,
}

/// `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `CCMIssuer` or `CCMClusterIssuer`.
    pub kind: &'static str,
}

/// `endpoint` + `key` labels of a PCA client rate.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLabels {
    /// The PCA endpoint's host.
    pub endpoint: String,
    /// A short hash of the access key (never the key itself).
    pub key: String,
}

/// Reads the current adaptive rates at every scrape, so buckets dropped with their issuers
/// leave no stale series behind.
#[derive(Debug, Default)]
struct RateCollector {
    limiters: Arc<OnceLock<Arc<RateLimiters>>>,
}

impl Collector for RateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(limiters) = self.limiters.get() else {
            return Ok(());
        };
        let family = Family::<RateLabels, Gauge<f64, AtomicU64>>::default();
        for (label, rate) in limiters.rates() {
            family
                .get_or_create(&RateLabels {
                    endpoint: label.endpoint,
                    key: label.key,
                })
                .set(rate);
        }
        let metric = encoder.encode_descriptor(
            "pca_rate",
            "Current adaptive PCA call rate (calls per second) per endpoint and access key",
            None,
            family.metric_type(),
        )?;
        family.encode(metric)
    }
}

/// All metrics of the controller.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<ControllerLabel, Histogram>,
    pca_requests: Family<PcaCallLabels, Counter>,
    pca_duration: Family<OperationLabel, Histogram>,
    pca_retries: Family<OperationLabel, Counter>,
    issued: Family<CertTypeLabel, Counter>,
    duplicates_avoided: Family<ReasonLabel, Counter>,
    unknown_outcome_reissues: Family<CertTypeLabel, Counter>,
    request_retries: Family<ReasonLabel, Counter>,
    issuers_ready: Family<KindLabel, Gauge>,
    ready_issuers: Mutex<HashMap<String, (&'static str, bool)>>,
    rate_limiters: Arc<OnceLock<Arc<RateLimiters>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `ccm_issuer` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ccm_issuer");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciliations by controller and result",
            reconciles.clone(),
        );
        let reconcile_duration =
            Family::<ControllerLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            reconcile_duration.clone(),
        );
        let pca_requests = Family::<PcaCallLabels, Counter>::default();
        registry.register(
            "pca_requests",
            "HTTP attempts against the PCA and IAM APIs by operation and status class",
            pca_requests.clone(),
        );
        let pca_duration =
            Family::<OperationLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "pca_request_duration_seconds",
            "Latency of PCA/IAM HTTP attempts",
            pca_duration.clone(),
        );
        let pca_retries = Family::<OperationLabel, Counter>::default();
        registry.register("pca_retries", "PCA calls retried by the client", pca_retries.clone());
        let issued = Family::<CertTypeLabel, Counter>::default();
        registry.register(
            "certificates_issued",
            "Certificates issued by the PCA and written to CertificateRequests",
            issued.clone(),
        );
        let duplicates_avoided = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "duplicates_avoided",
            "Times a second issuance was avoided (certificate recovered after a crash or ambiguous failure, or another worker held the intent)",
            duplicates_avoided.clone(),
        );
        let unknown_outcome_reissues = Family::<CertTypeLabel, Counter>::default();
        registry.register(
            "unknown_outcome_reissues",
            "Certificates issued again after an attempt whose outcome could not be established (CA certificates only: the PCA does not list them)",
            unknown_outcome_reissues.clone(),
        );
        let request_retries = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "certificaterequest_retries",
            "CertificateRequests kept Pending after a transient error, by reason",
            request_retries.clone(),
        );
        let issuers_ready = Family::<KindLabel, Gauge>::default();
        registry.register(
            "issuers_ready",
            "Issuers whose Ready condition is True",
            issuers_ready.clone(),
        );
        for kind in [crate::crd::ISSUER_KIND, crate::crd::CLUSTER_ISSUER_KIND] {
            issuers_ready.get_or_create(&KindLabel { kind }).set(0);
        }
        let rate_limiters = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(RateCollector {
            limiters: rate_limiters.clone(),
        }));
        Self {
            registry,
            reconciles,
            reconcile_duration,
            pca_requests,
            pca_duration,
            pca_retries,
            issued,
            duplicates_avoided,
            unknown_outcome_reissues,
            request_retries,
            issuers_ready,
            ready_issuers: Mutex::new(HashMap::new()),
            rate_limiters,
        }
    }

    /// Publishes the adaptive rates of these buckets as `pca_rate` (the first call wins).
    pub fn watch_rates(&self, limiters: Arc<RateLimiters>) {
        let _ = self.rate_limiters.set(limiters);
    }

    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String only fails on a formatter error, which String never returns.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Counts a reconciliation.
    pub fn reconciled(&self, controller: &'static str, result: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels { controller, result })
            .inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabel { controller })
            .observe(took.as_secs_f64());
    }

    /// Counts an issued certificate.
    pub fn certificate_issued(&self, is_ca: bool) {
        let r#type = if is_ca { "ca" } else { "leaf" };
        self.issued.get_or_create(&CertTypeLabel { r#type }).inc();
    }

    /// Counts an avoided duplicate.
    pub fn duplicate_avoided(&self, reason: &'static str) {
        self.duplicates_avoided.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts a certificate issued again after an attempt of unknown outcome.
    pub fn unknown_outcome_reissue(&self, r#type: &'static str) {
        self.unknown_outcome_reissues
            .get_or_create(&CertTypeLabel { r#type })
            .inc();
    }

    /// Counts a request kept pending for a transient error.
    pub fn request_retry(&self, reason: &'static str) {
        self.request_retries.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Records an issuer's readiness; the gauge counts ready issuers per kind.
    pub fn issuer_ready(&self, key: String, kind: &'static str, ready: bool) {
        let mut map = self.ready_issuers.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key, (kind, ready));
        self.refresh_issuer_gauge(&map);
    }

    /// Forgets a deleted issuer.
    pub fn issuer_gone(&self, key: &str) {
        let mut map = self.ready_issuers.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
        self.refresh_issuer_gauge(&map);
    }

    /// Forgets every issuer whose key is not in `live`.
    pub fn retain_issuers(&self, live: &std::collections::HashSet<String>) {
        let mut map = self.ready_issuers.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|k, _| live.contains(k));
        self.refresh_issuer_gauge(&map);
    }

    fn refresh_issuer_gauge(&self, map: &HashMap<String, (&'static str, bool)>) {
        for kind in [crate::crd::ISSUER_KIND, crate::crd::CLUSTER_ISSUER_KIND] {
            let n = map.values().filter(|(k, ready)| *k == kind && *ready).count();
            self.issuers_ready
                .get_or_create(&KindLabel { kind })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

impl PcaObserver for Metrics {
    fn attempt(&self, operation: Operation, outcome: CallOutcome, elapsed: Duration) {
        self.pca_requests
            .get_or_create(&PcaCallLabels {
                operation: operation.name(),
                status_class: outcome.class(),
            })
            .inc();
        self.pca_duration
            .get_or_create(&OperationLabel {
                operation: operation.name(),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn retry(&self, operation: Operation) {
        self.pca_retries
            .get_or_create(&OperationLabel {
                operation: operation.name(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_every_family_with_bounded_labels() {
        let m = Metrics::new();
        m.reconciled("certificaterequest", "issued", Duration::from_millis(20));
        m.attempt(
            Operation::CreateCertificateByCsr,
            CallOutcome::Status(200),
            Duration::from_millis(5),
        );
        m.retry(Operation::ShowCertificateAuthority);
        m.certificate_issued(true);
        m.duplicate_avoided("Recovered");
        m.unknown_outcome_reissue("ca");
        m.request_retry("PCAThrottled");
        m.issuer_ready("ns/a".into(), crate::crd::ISSUER_KIND, true);
        m.issuer_ready("b".into(), crate::crd::CLUSTER_ISSUER_KIND, false);
        let text = m.encode();
        for needle in [
            r#"ccm_issuer_reconciles_total{controller="certificaterequest",result="issued"} 1"#,
            r#"ccm_issuer_pca_requests_total{operation="CreateCertificateByCsr",status_class="2xx"} 1"#,
            "ccm_issuer_pca_request_duration_seconds_bucket",
            r#"ccm_issuer_pca_retries_total{operation="ShowCertificateAuthority"} 1"#,
            r#"ccm_issuer_certificates_issued_total{type="ca"} 1"#,
            r#"ccm_issuer_duplicates_avoided_total{reason="Recovered"} 1"#,
            r#"ccm_issuer_unknown_outcome_reissues_total{type="ca"} 1"#,
            r#"ccm_issuer_certificaterequest_retries_total{reason="PCAThrottled"} 1"#,
            r#"ccm_issuer_issuers_ready{kind="CCMIssuer"} 1"#,
            r#"ccm_issuer_issuers_ready{kind="CCMClusterIssuer"} 0"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(!text.contains("pca_rate"), "no buckets, no rate series");
        m.issuer_gone("ns/a");
        assert!(m.encode().contains(r#"ccm_issuer_issuers_ready{kind="CCMIssuer"} 0"#));
    }

    #[tokio::test]
    async fn rates_are_read_at_scrape_time_without_access_keys() {
        let m = Metrics::new();
        let limiters = Arc::new(RateLimiters::new(0.0, 10));
        m.watch_rates(limiters.clone());
        let bucket = limiters.bucket("https://127.0.0.1:8443/", "AKSECRETLOOKING123456");
        let text = m.encode();
        assert!(
            text.contains("# TYPE ccm_issuer_pca_rate gauge")
                && text.contains(r#"ccm_issuer_pca_rate{endpoint="127.0.0.1:8443",key=""#),
            "{text}"
        );
        assert!(!text.contains("AKSECRET"), "{text}");
        drop(bucket);
        limiters.prune_unused();
        assert!(!m.encode().contains("ccm_issuer_pca_rate{"), "pruned buckets vanish");
    }
}
