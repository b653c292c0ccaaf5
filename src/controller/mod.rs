//! The controllers: one for our issuers (both kinds) and one for cert-manager CertificateRequests,
//! sharing one [`Context`].

pub(crate) mod certificate_request;
pub(crate) mod conditions;
pub(crate) mod credentials;
pub(crate) mod endpoint_policy;
pub mod issuance;
pub mod issuer;
pub(crate) mod leader;
pub(crate) mod runtime;
pub(crate) mod secret_watch;
pub(crate) mod slots;
pub(crate) mod standby;
#[cfg(test)]
mod tests;
pub mod tracked;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use kube::{
    Client,
    runtime::{
        events::{Event, EventType, Recorder, Reporter},
        reflector::{ObjectRef, Store},
    },
};
use tokio::sync::mpsc;
use tracing::warn;

pub use self::issuer::{AnyIssuer, IssuerKey};
use crate::{
    crd::{CCMClusterIssuer, CCMIssuer},
    metrics::Metrics,
};

/// Field manager of every server-side apply we do.
pub const FIELD_MANAGER: &str = "ccm-issuer";

/// Tunables of the controllers (command-line flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespace where CCMClusterIssuers keep their Secrets by default.
    pub cluster_resource_namespace: String,
    /// How long transient PCA errors keep a request Pending before it fails.
    pub max_retry_duration: Duration,
    /// How often a Ready issuer's CA is re-checked.
    pub issuer_recheck_interval: Duration,
    /// Warn when the CA ends within this window.
    pub ca_expiry_warning: Duration,
    /// Re-check of an issuer after a request's PCA call was refused for its credentials.
    pub problem_recheck_delay: Duration,
    /// Parallel reconciliations per controller.
    pub max_concurrent_reconciles: u16,
    /// PCA-bound reconciliations per issuer at once.
    pub max_concurrent_per_issuer: u16,
    /// Ceiling of the adaptive PCA call rate per endpoint and access key (calls per second;
    /// `0`: none, the rate follows the service's throttling alone).
    pub pca_qps: f64,
    /// Largest burst of PCA calls.
    pub pca_burst: u32,
    /// Timeout of one PCA HTTP request.
    pub pca_timeout: Duration,
    /// Timeout of TCP + TLS set-up.
    pub pca_connect_timeout: Duration,
    /// Name of this instance in events.
    pub instance: Option<String>,
    /// PCA endpoints replacing the region table (`--pca-endpoint REGION=URL`, or the SDK's
    /// `HUAWEICLOUD_SDK_REGION_CCM_<REGION>`). They never move IAM.
    pub region_endpoints: std::collections::BTreeMap<String, url::Url>,
    /// IAM endpoint for issuers without `spec.iamEndpoint` (`--iam-endpoint`, or the SDK's
    /// `HUAWEICLOUD_SDK_IAM_ENDPOINT`); `None`: the SDKs' IAM region table.
    pub iam_endpoint: Option<url::Url>,
    /// STS endpoint for the account-id fallback (`--sts-endpoint`, or the SDK's
    /// `HUAWEICLOUD_SDK_STS_ENDPOINT`); `None`: the SDKs' STS region table.
    pub sts_endpoint: Option<url::Url>,
    /// PEM CAs trusted, besides the system roots, for issuers without their own caBundle.
    pub extra_ca_bundle: Option<Vec<u8>>,
    /// Which endpoints issuers may use.
    pub endpoint_policy: endpoint_policy::EndpointPolicy,
    /// How long one recovery pass may export candidates before it records its position.
    pub recovery_pass_time: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_resource_namespace: "default".into(),
            max_retry_duration: Duration::from_secs(300),
            issuer_recheck_interval: Duration::from_secs(600),
            ca_expiry_warning: Duration::from_secs(30 * 24 * 3600),
            // Not at once: repeated refused calls get the access key locked by the gateway.
            problem_recheck_delay: Duration::from_secs(60),
            max_concurrent_reconciles: 8,
            max_concurrent_per_issuer: 4,
            pca_qps: 0.0,
            pca_burst: 10,
            pca_timeout: Duration::from_secs(30),
            pca_connect_timeout: Duration::from_secs(10),
            instance: None,
            region_endpoints: Default::default(),
            iam_endpoint: None,
            sts_endpoint: None,
            extra_ca_bundle: None,
            endpoint_policy: Default::default(),
            recovery_pass_time: issuance::recovery::PASS_TIME,
        }
    }
}

/// Readers of the issuer caches.
#[derive(Clone)]
pub struct IssuerStores {
    /// CCMIssuers.
    pub namespaced: Store<CCMIssuer>,
    /// CCMClusterIssuers.
    pub cluster: Store<CCMClusterIssuer>,
}

/// How long a request waits at most for the issuer caches' first listing before it reads its
/// issuer from the apiserver instead.
const ISSUER_CACHE_WAIT: Duration = Duration::from_secs(5);

impl IssuerStores {
    /// Waits (at most [`ISSUER_CACHE_WAIT`]) until the cache of `key`'s kind has its first
    /// listing, so requests reconciled at start-up find their issuer there instead of reading
    /// it from the apiserver.
    pub async fn wait_synced(&self, key: &IssuerKey) {
        let synced = async {
            // An error means the cache has no writer (tests): nothing to wait for.
            let _ = match key {
                IssuerKey::Namespaced { .. } => self.namespaced.wait_until_ready().await,
                IssuerKey::Cluster { .. } => self.cluster.wait_until_ready().await,
            };
        };
        let _ = tokio::time::timeout(ISSUER_CACHE_WAIT, synced).await;
    }
}

/// Channels that make the issuer controller re-check an issuer now.
#[derive(Clone)]
pub struct IssuerTriggers {
    /// For CCMIssuers.
    pub namespaced: mpsc::UnboundedSender<ObjectRef<CCMIssuer>>,
    /// For CCMClusterIssuers.
    pub cluster: mpsc::UnboundedSender<ObjectRef<CCMClusterIssuer>>,
}

impl IssuerTriggers {
    /// Asks for a re-check of an issuer after `delay`.
    pub fn recheck_after(&self, key: &IssuerKey, delay: Duration) {
        let (triggers, key) = (self.clone(), key.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            triggers.recheck(&key);
        });
    }

    /// Asks for a re-check of an issuer (ignored if the controller has stopped).
    pub fn recheck(&self, key: &IssuerKey) {
        let _ = match key {
            IssuerKey::Namespaced { namespace, name } => self
                .namespaced
                .send(ObjectRef::new(name).within(namespace))
                .map_err(|_| ()),
            IssuerKey::Cluster { name } => self.cluster.send(ObjectRef::new(name)).map_err(|_| ()),
        };
    }
}

/// Per-request memory of this process, keyed by request UID. Everything in it can be rebuilt
/// from the request and the PCA after a restart; it is dropped when the request is finished or
/// deleted (see [`Context::forget_requests_not_in`]).
#[derive(Debug, Default)]
pub struct RequestMemory {
    requests: Mutex<HashMap<String, Remembered>>,
}

#[derive(Debug, Default)]
struct Remembered {
    /// Kubernetes write failures in a row (drives the error policy's back-off).
    failures: u32,
    /// Certificate id issued by this process (leaf ids are not written to the request).
    issued: Option<String>,
    /// Candidate ids a recovery exported and ruled out.
    checked: HashSet<String>,
}

impl RequestMemory {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Remembered>> {
        // A poisoned lock only means another task panicked mid-update; the data is still usable.
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more Kubernetes failure and returns the count.
    pub fn failed(&self, uid: &str) -> u32 {
        let mut map = self.lock();
        let entry = map.entry(uid.to_owned()).or_default();
        entry.failures += 1;
        entry.failures
    }

    /// Remembers the id of a certificate issued for a request.
    pub fn remember_issued(&self, uid: &str, certificate_id: &str) {
        self.lock().entry(uid.to_owned()).or_default().issued = Some(certificate_id.to_owned());
    }

    /// The certificate id this process issued or recovered for a request, if any.
    pub fn issued_for(&self, uid: &str) -> Option<String> {
        self.lock().get(uid).and_then(|r| r.issued.clone())
    }

    /// Recovery candidates already ruled out for a request.
    pub fn checked_candidates(&self, uid: &str) -> HashSet<String> {
        self.lock().get(uid).map(|r| r.checked.clone()).unwrap_or_default()
    }

    /// Replaces the ruled-out recovery candidates of a request.
    pub fn set_checked_candidates(&self, uid: &str, checked: HashSet<String>) {
        if !checked.is_empty() {
            self.lock().entry(uid.to_owned()).or_default().checked = checked;
        }
    }

    /// Drops everything about a finished request.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Drops everything about requests not in `live`.
    pub fn retain(&self, live: &HashSet<String>) {
        self.lock().retain(|uid, _| live.contains(uid));
    }

    /// Requests remembered (for tests and the memory benchmark).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// State shared by all reconciliations.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Tunables.
    pub config: Config,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Event recorder.
    pub recorder: Recorder,
    /// PCA clients per issuer, credentials read on demand (built before the lease by a
    /// standby, `standby`).
    pub pca: Arc<credentials::PcaClients>,
    /// Issuer caches.
    pub issuers: IssuerStores,
    /// Issuer re-check triggers.
    pub triggers: IssuerTriggers,
    /// Watches of the Secrets issuers reference (and only those).
    pub secret_watches: secret_watch::SecretWatches,
    /// Per-request memory.
    pub requests: RequestMemory,
    /// The certificates our requests hold (recovery rules them out without an export).
    pub delivered: certificate_request::delivered::Delivered,
    /// Whether this replica may act (leader election).
    pub fence: leader::Fence,
    /// Per-issuer limits on PCA-bound reconciliations.
    pub slots: slots::IssuerSlots,
    /// The request cache, once its watch has started: recovery hands the certificates it
    /// finds for other requests to them through it (`issuance::handover`).
    pub request_store: std::sync::OnceLock<Store<crate::cert_manager::CertificateRequest>>,
}

impl Context {
    /// Builds the context.
    pub fn new(
        client: Client,
        config: Config,
        metrics: Arc<Metrics>,
        pca: Arc<credentials::PcaClients>,
        issuers: IssuerStores,
        triggers: IssuerTriggers,
        fence: leader::Fence,
    ) -> Self {
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.into(),
            instance: config.instance.clone(),
        };
        let secret_watches = secret_watch::SecretWatches::new(client.clone(), triggers.clone());
        let slots = slots::IssuerSlots::new(usize::from(config.max_concurrent_per_issuer));
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            metrics,
            pca,
            issuers,
            triggers,
            secret_watches,
            requests: RequestMemory::default(),
            delivered: Default::default(),
            fence,
            slots,
            request_store: std::sync::OnceLock::new(),
        }
    }

    /// Forgets per-request memory of requests not in `live`. Deleted and finished requests are
    /// never reconciled again, so this runs periodically with the UIDs of the cache's
    /// unfinished requests.
    pub fn forget_requests_not_in(&self, live: &HashSet<String>) {
        self.requests.retain(live);
    }

    /// Forgets per-issuer state (Secret watches, clients, readiness gauge) of deleted issuers.
    /// Deleted objects are never reconciled again, so this runs periodically.
    pub fn forget_deleted_issuers(&self) {
        let mut live: std::collections::HashSet<IssuerKey> = std::collections::HashSet::new();
        for i in self.issuers.namespaced.state() {
            live.insert(AnyIssuer::Namespaced(i).key());
        }
        for i in self.issuers.cluster.state() {
            live.insert(AnyIssuer::Cluster(i).key());
        }
        self.secret_watches.retain_issuers(&live);
        self.pca.retain(&live);
        self.slots.retain(&live);
        self.metrics
            .retain_issuers(&live.iter().map(ToString::to_string).collect());
    }

    /// Publishes an event; failures are logged, never fatal.
    pub async fn event(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate_note(note)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, reference).await {
            warn!(error = %e, reason, "could not publish event");
        }
    }

    /// Publishes an event that is never repeated for its object (a request's final outcome).
    /// It is created directly: the recorder would keep it for six minutes to fold repeats into
    /// a series, and scan every event it keeps on each publish, which under a burst of
    /// issuance costs memory and CPU for nothing.
    pub async fn final_event(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        use k8s_openapi::{
            api::events::v1::Event as K8sEvent,
            apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        let controller = REPORTING_CONTROLLER.to_owned();
        let event = K8sEvent {
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(truncate_note(note)),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            metadata: ObjectMeta {
                namespace: reference.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    reference.name.as_deref().unwrap_or("ccm-issuer"),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            reporting_instance: Some(self.config.instance.clone().unwrap_or_else(|| controller.clone())),
            reporting_controller: Some(controller),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..K8sEvent::default()
        };
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let api: kube::Api<K8sEvent> = kube::Api::namespaced(self.client.clone(), namespace);
        if let Err(e) = api.create(&kube::api::PostParams::default(), &event).await {
            warn!(error = %e, reason, "could not publish event");
        }
    }
}

/// The controller name on every event (the recorder's and [`Context::final_event`]'s).
const REPORTING_CONTROLLER: &str = "ccm-issuer";

fn truncate_note(note: String) -> String {
    const MAX: usize = 1000;
    if note.len() <= MAX {
        return note;
    }
    let mut cut = MAX;
    while !note.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &note[..cut])
}

/// Errors of the controller layer: only Kubernetes writes fail a reconciliation (every PCA and
/// certificate problem becomes a status); the error policy retries them with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// Encoding a status or patch failed.
    #[error("cannot encode a Kubernetes patch: {0}")]
    Serialization(#[from] serde_json::Error),
}

/// Whether a Kubernetes error means the object is gone (deleted, or replaced by a new one).
pub fn is_gone(e: &kube::Error) -> bool {
    // A write naming another object's UID is refused as a failed precondition (409) or, when
    // the resourceVersion matched, as an attempt to change the immutable UID (422).
    matches!(e, kube::Error::Api(s) if s.is_not_found()
        || ((s.is_conflict() || s.code == 422) && (s.message.contains("UID") || s.message.contains("metadata.uid"))))
}

/// RFC 3339 "now", second precision, as Kubernetes writes times.
pub fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now())
}

/// RFC 3339, second precision.
pub fn rfc3339(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 3339 of epoch milliseconds (the PCA's times); `-` when out of range.
pub fn rfc3339_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(rfc3339)
        .unwrap_or_else(|_| "-".into())
}

/// RFC 3339 of epoch seconds (X.509 times); `-` when out of range.
pub fn rfc3339_secs(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(rfc3339)
        .unwrap_or_else(|_| "-".into())
}
