//! The issuer controller: is the Secret usable, does the CA exist and is it ACTIVED, when does it
//! expire. Runs for both kinds, on spec changes, on changes of the referenced Secret, when a
//! request's PCA call was refused for credentials, and every `--issuer-recheck-interval`.

pub mod reasons;

use std::{fmt, sync::Arc, time::Duration};

use k8s_openapi::{api::core::v1::ObjectReference, apimachinery::pkg::apis::meta::v1::Condition};
use kube::{
    Api, Resource, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams},
    runtime::{controller::Action, events::EventType},
};
use serde_json::json;
use tokio::time::Instant;
use tracing::{info, instrument, warn};

use self::reasons::*;
use super::{Context, Error, FIELD_MANAGER, conditions::issuer_condition, credentials::IssuerProblem, rfc3339_ms};
use crate::{
    cert_manager::{CertificateRequest, READY},
    crd::{CCMClusterIssuer, CCMIssuer, CLUSTER_ISSUER_KIND, CaSummary, GROUP, ISSUER_KIND, IssuerSpec, IssuerStatus},
    pca::types::{CertificateAuthority, GenMode},
};

/// Identifies an issuer of either kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IssuerKey {
    /// A CCMIssuer.
    Namespaced {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A CCMClusterIssuer.
    Cluster {
        /// Its name.
        name: String,
    },
}

impl IssuerKey {
    /// The issuer a request names, if it is one of ours. An empty group or kind is never ours:
    /// cert-manager defaults them to its own `cert-manager.io` / `Issuer`.
    pub fn for_request(cr: &CertificateRequest) -> Option<IssuerKey> {
        let r = &cr.spec.issuer_ref;
        if r.group.as_deref() != Some(GROUP) || r.name.is_empty() {
            return None;
        }
        match r.kind.as_deref() {
            Some(ISSUER_KIND) => Some(IssuerKey::Namespaced {
                namespace: cr.namespace()?,
                name: r.name.clone(),
            }),
            Some(CLUSTER_ISSUER_KIND) => Some(IssuerKey::Cluster { name: r.name.clone() }),
            _ => None,
        }
    }

    /// Kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            IssuerKey::Namespaced { .. } => ISSUER_KIND,
            IssuerKey::Cluster { .. } => CLUSTER_ISSUER_KIND,
        }
    }

    /// Whether a request refers to this issuer.
    pub fn matches(&self, cr: &CertificateRequest) -> bool {
        IssuerKey::for_request(cr).as_ref() == Some(self)
    }
}

impl fmt::Display for IssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IssuerKey::Namespaced { namespace, name } => write!(f, "{ISSUER_KIND} {namespace}/{name}"),
            IssuerKey::Cluster { name } => write!(f, "{CLUSTER_ISSUER_KIND} {name}"),
        }
    }
}

/// An issuer of either kind.
#[derive(Debug, Clone)]
pub enum AnyIssuer {
    /// A CCMIssuer.
    Namespaced(Arc<CCMIssuer>),
    /// A CCMClusterIssuer.
    Cluster(Arc<CCMClusterIssuer>),
}

impl AnyIssuer {
    /// Its key.
    pub fn key(&self) -> IssuerKey {
        match self {
            AnyIssuer::Namespaced(i) => IssuerKey::Namespaced {
                namespace: i.namespace().unwrap_or_default(),
                name: i.name_any(),
            },
            AnyIssuer::Cluster(i) => IssuerKey::Cluster { name: i.name_any() },
        }
    }

    /// Its spec.
    pub fn spec(&self) -> &IssuerSpec {
        match self {
            AnyIssuer::Namespaced(i) => &i.spec,
            AnyIssuer::Cluster(i) => &i.spec,
        }
    }

    /// Its status.
    pub fn status(&self) -> Option<&IssuerStatus> {
        match self {
            AnyIssuer::Namespaced(i) => i.status.as_ref(),
            AnyIssuer::Cluster(i) => i.status.as_ref(),
        }
    }

    /// Its metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            AnyIssuer::Namespaced(i) => i.meta(),
            AnyIssuer::Cluster(i) => i.meta(),
        }
    }

    /// Reference for events.
    pub fn object_ref(&self) -> ObjectReference {
        match self {
            AnyIssuer::Namespaced(i) => i.object_ref(&()),
            AnyIssuer::Cluster(i) => i.object_ref(&()),
        }
    }

    /// Its Ready condition.
    pub fn ready_condition(&self) -> Option<&Condition> {
        self.status()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
    }

    /// Ready=True, computed for the current generation.
    pub fn is_ready(&self) -> bool {
        self.ready_condition().is_some_and(|c| {
            c.status == "True" && c.observed_generation.unwrap_or(0) >= self.meta().generation.unwrap_or(0)
        })
    }

    /// The recorded CA end of validity, seconds since the epoch.
    pub fn ca_not_after(&self) -> Option<i64> {
        let text = self.status()?.ca.as_ref()?.not_after.as_deref()?;
        text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
    }

    /// Writes the status with server-side apply.
    pub async fn patch_status(&self, client: &kube::Client, status: &IssuerStatus) -> Result<(), kube::Error> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let name = self.meta().name.clone().unwrap_or_default();
        let body = |kind: &str| {
            Patch::Apply(json!({
                "apiVersion": format!("{GROUP}/{}", crate::crd::VERSION),
                "kind": kind,
                "metadata": {"name": name, "uid": self.meta().uid},
                "status": status,
            }))
        };
        match self {
            AnyIssuer::Namespaced(i) => {
                let api: Api<CCMIssuer> = Api::namespaced(client.clone(), &i.namespace().unwrap_or_default());
                api.patch_status(&name, &params, &body(ISSUER_KIND)).await?;
            }
            AnyIssuer::Cluster(_) => {
                let api: Api<CCMClusterIssuer> = Api::all(client.clone());
                api.patch_status(&name, &params, &body(CLUSTER_ISSUER_KIND)).await?;
            }
        }
        Ok(())
    }
}

/// Outcome of checking an issuer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Ready status (`None` = unknown).
    pub ready: Option<bool>,
    /// Ready reason.
    pub reason: &'static str,
    /// Ready message.
    pub message: String,
    /// The CA as the PCA reported it.
    pub ca: Option<CertificateAuthority>,
    /// `Some(message)` when the CA ends within the warning window.
    pub expiring: Option<String>,
    /// Whether the failure may go away by itself (re-check sooner).
    pub transient: bool,
}

impl Verdict {
    fn problem(p: IssuerProblem) -> Self {
        Self {
            ready: Some(false),
            reason: p.reason,
            message: p.message,
            ca: None,
            expiring: None,
            transient: p.retryable,
        }
    }
}

/// Why a CA cannot sign, from what `ShowCertificateAuthority` reports: `(reason, message)`.
/// `None` when nothing forbids it. Shared by the issuer check and `ccm-issuer pca describe-ca`
/// / `pca sign`. Fields the answer leaves out (`freeze_flag`, `gen_mode`, algorithms, validity)
/// forbid nothing: the service decides at issuance.
pub fn signing_blocker(ca: &CertificateAuthority, urn: &str, now_ms: i64) -> Option<(&'static str, String)> {
    let what = format!("PCA CA {urn} ({})", ca.distinguished_name.display());
    if !ca.is_active() {
        return Some((
            CA_NOT_ACTIVE,
            format!(
                "{what} is {}; only an ACTIVED CA can issue (enable it in the CCM console)",
                ca.status
            ),
        ));
    }
    if let Some(flag) = ca.freeze_flag.filter(|f| *f != 0) {
        return Some((
            CA_FROZEN,
            format!(
                "{what} is frozen (freeze_flag {flag}); a frozen CA cannot issue: check the CA and the account in the CCM console"
            ),
        ));
    }
    if ca.gen_mode == Some(GenMode::Csr) {
        return Some((
            CA_KEY_NOT_IN_PCA,
            format!(
                "{what} was issued from a CSR (gen_mode CSR): its private key is held outside the PCA, so the PCA cannot sign with it; use a CA whose key the PCA holds (gen_mode GENERATE or IMPORT)"
            ),
        ));
    }
    let is_sm = |v: &Option<String>| v.as_deref().is_some_and(|a| a.to_ascii_uppercase().starts_with("SM"));
    if is_sm(&ca.key_algorithm) || is_sm(&ca.signature_algorithm) {
        return Some((
            CA_ALGORITHM_UNSUPPORTED,
            format!(
                "{what} uses {} with {}: SM2 CAs are not supported: TLS clients in Kubernetes cannot use them",
                ca.key_algorithm.as_deref().unwrap_or("an unreported key algorithm"),
                ca.signature_algorithm
                    .as_deref()
                    .unwrap_or("an unreported signature algorithm"),
            ),
        ));
    }
    if let Some(nb) = ca.not_before.filter(|nb| *nb > now_ms) {
        return Some((
            CA_NOT_YET_VALID,
            format!("{what} is not valid before {}", rfc3339_ms(nb)),
        ));
    }
    if let Some(na) = ca.not_after.filter(|na| *na <= now_ms) {
        return Some((
            CA_EXPIRED,
            format!("{what} expired on {}; renew or replace it", rfc3339_ms(na)),
        ));
    }
    None
}

/// Judges a CA as the PCA reported it.
pub fn evaluate_ca(ca: CertificateAuthority, spec: &IssuerSpec, now_ms: i64, warn_window: Duration) -> Verdict {
    let subject = ca.distinguished_name.display();
    let until = ca.not_after.map(rfc3339_ms).unwrap_or_else(|| "an unknown date".into());
    let window_ms = i64::try_from(warn_window.as_millis()).unwrap_or(i64::MAX);
    let expiring = ca.not_after.filter(|na| na - now_ms < window_ms).map(|na| {
        let days = (na - now_ms).max(0) / 86_400_000;
        format!("PCA CA {} ({subject}) expires on {until}, in {days} days: certificates are clamped to its validity; renew or replace the CA", spec.urn)
    });
    if let Some((reason, message)) = signing_blocker(&ca, &spec.urn, now_ms) {
        return Verdict {
            ready: Some(false),
            reason,
            message,
            ca: Some(ca),
            expiring,
            transient: false,
        };
    }
    let mut message = format!("PCA CA {} ({subject}) is ACTIVED and valid until {until}", spec.urn);
    if let Some(len) = ca.path_length
        && i64::from(spec.path_length()) >= len
    {
        message.push_str(&format!(
            "; note: its path length {len} does not allow CA certificates with pathLength {}, so isCA requests will fail",
            spec.path_length()
        ));
    }
    Verdict {
        ready: Some(true),
        reason: VERIFIED,
        message,
        ca: Some(ca),
        expiring,
        transient: false,
    }
}

/// Checks the Secret and the CA.
async fn check(issuer: &AnyIssuer, ctx: &Context) -> Verdict {
    let spec = issuer.spec();
    let client = match ctx.pca.client_for(&ctx.client, issuer, None).await {
        Ok(c) => c,
        Err(p) => return Verdict::problem(p),
    };
    match client.show_ca(&spec.urn).await {
        Ok(ca) => evaluate_ca(
            ca,
            spec,
            jiff::Timestamp::now().as_millisecond(),
            ctx.config.ca_expiry_warning,
        ),
        Err(e) if e.is_not_found() => Verdict::problem(IssuerProblem {
            reason: CA_NOT_FOUND,
            message: format!("PCA CA {} does not exist at {}: {e}", spec.urn, client.endpoint()),
            retryable: false,
        }),
        Err(e) => {
            if e.is_credentials() {
                ctx.pca.invalidate(&issuer.key());
            }
            Verdict::problem(IssuerProblem {
                reason: e.reason(),
                message: e.to_string(),
                retryable: e.is_retryable(),
            })
        }
    }
}

/// Reconciles a CCMIssuer.
pub async fn reconcile_namespaced(issuer: Arc<CCMIssuer>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile(AnyIssuer::Namespaced(issuer), &ctx).await
}

/// Reconciles a CCMClusterIssuer.
pub async fn reconcile_cluster(issuer: Arc<CCMClusterIssuer>, ctx: Arc<Context>) -> Result<Action, Error> {
    reconcile(AnyIssuer::Cluster(issuer), &ctx).await
}

#[instrument(skip_all, fields(issuer = %issuer.key()))]
async fn reconcile(issuer: AnyIssuer, ctx: &Context) -> Result<Action, Error> {
    let started = Instant::now();
    let key = issuer.key();
    let controller = if matches!(key, IssuerKey::Namespaced { .. }) {
        "ccmissuer"
    } else {
        "ccmclusterissuer"
    };
    if issuer.meta().deletion_timestamp.is_some() {
        ctx.secret_watches.forget(&key);
        ctx.pca.invalidate(&key);
        ctx.metrics.issuer_gone(&key.to_string());
        return Ok(Action::await_change());
    }
    if let Ok(location) = super::credentials::secret_location(&issuer, &ctx.config.cluster_resource_namespace) {
        ctx.secret_watches.ensure(location, key.clone());
    }
    let verdict = check(&issuer, ctx).await;
    let previous = issuer.ready_condition().cloned();
    // A passing blip must not take a working issuer out of service: keep Ready=True for the
    // current generation and re-check soon.
    if verdict.transient && issuer.is_ready() {
        warn!(reason = verdict.reason, message = %verdict.message, "transient failure re-checking a ready issuer");
        ctx.metrics.reconciled(controller, "transient", started.elapsed());
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    let status = status_from(&issuer, &verdict);
    issuer.patch_status(&ctx.client, &status).await?;
    publish_transitions(&issuer, ctx, previous.as_ref(), &verdict).await;
    ctx.metrics
        .issuer_ready(key.to_string(), key.kind(), verdict.ready == Some(true));
    let result = if verdict.ready == Some(true) {
        "ready"
    } else {
        "not_ready"
    };
    ctx.metrics.reconciled(controller, result, started.elapsed());
    Ok(if verdict.transient {
        Action::requeue(Duration::from_secs(15))
    } else {
        Action::requeue(ctx.config.issuer_recheck_interval)
    })
}

fn status_from(issuer: &AnyIssuer, verdict: &Verdict) -> IssuerStatus {
    let existing = issuer.status().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let generation = issuer.meta().generation;
    let mut conditions = vec![issuer_condition(
        existing,
        READY,
        verdict.ready,
        verdict.reason,
        verdict.message.clone(),
        generation,
    )];
    if let Some(ca) = &verdict.ca {
        let (status, reason, message) = match &verdict.expiring {
            Some(m) => (Some(true), CA_EXPIRING_SOON, m.clone()),
            None => (
                Some(false),
                CA_VALID,
                format!(
                    "PCA CA valid until {}",
                    ca.not_after.map(rfc3339_ms).unwrap_or_default()
                ),
            ),
        };
        conditions.push(issuer_condition(
            existing,
            CA_EXPIRING_SOON,
            status,
            reason,
            message,
            generation,
        ));
    }
    let ca = verdict.ca.as_ref().map(|ca| CaSummary {
        subject: Some(ca.distinguished_name.display()).filter(|s| !s.is_empty()),
        status: Some(ca.status.to_string()),
        r#type: Some(ca.ca_type.to_string()),
        key_algorithm: ca.key_algorithm.clone(),
        path_length: ca.path_length,
        not_before: ca.not_before.map(rfc3339_ms),
        not_after: ca.not_after.map(rfc3339_ms),
    });
    IssuerStatus {
        conditions,
        // Keep the last known CA when a check could not reach it.
        ca: ca.or_else(|| issuer.status().and_then(|s| s.ca.clone())),
        last_check_time: Some(super::now_rfc3339()),
    }
}

async fn publish_transitions(issuer: &AnyIssuer, ctx: &Context, previous: Option<&Condition>, verdict: &Verdict) {
    let reference = issuer.object_ref();
    let changed =
        previous.is_none_or(|p| p.reason != verdict.reason || p.status != super::conditions::status_str(verdict.ready));
    if changed {
        let type_ = if verdict.ready == Some(true) {
            EventType::Normal
        } else {
            EventType::Warning
        };
        info!(reason = verdict.reason, message = %verdict.message, "issuer readiness changed");
        ctx.event(&reference, type_, verdict.reason, "Check", verdict.message.clone())
            .await;
    }
    let was_expiring = issuer
        .status()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == CA_EXPIRING_SOON))
        .is_some_and(|c| c.status == "True");
    if let (Some(m), false) = (&verdict.expiring, was_expiring) {
        ctx.event(&reference, EventType::Warning, CA_EXPIRING_SOON, "Check", m.clone())
            .await;
    }
}

/// Marks an issuer not ready because a request's PCA call was refused (credentials, CA gone),
/// and schedules a re-check.
pub async fn report_problem(ctx: &Context, issuer: &AnyIssuer, reason: &'static str, message: String) {
    let key = issuer.key();
    ctx.pca.invalidate(&key);
    let verdict = Verdict {
        ready: Some(false),
        reason,
        message,
        ca: None,
        expiring: None,
        transient: false,
    };
    let previous = issuer.ready_condition().cloned();
    let status = status_from(issuer, &verdict);
    if let Err(e) = issuer.patch_status(&ctx.client, &status).await {
        warn!(issuer = %key, error = %e, "could not mark issuer not ready");
    } else {
        publish_transitions(issuer, ctx, previous.as_ref(), &verdict).await;
        ctx.metrics.issuer_ready(key.to_string(), key.kind(), false);
    }
    // Re-check, but not at once: the refusal was just observed, and repeating failed calls gets
    // the access key locked by the gateway (5 failures → 5 minutes). A Secret change re-checks
    // immediately anyway.
    ctx.triggers.recheck_after(&key, ctx.config.problem_recheck_delay);
}

/// Error policy of both issuer controllers: back off and retry.
pub fn error_policy<K>(_issuer: Arc<K>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(error = %error, "issuer reconciliation failed");
    Action::requeue(Duration::from_secs(15))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        cert_manager::{CertificateRequestSpec, IssuerRef},
        pca::types::{CaStatus, CaType, DistinguishedName},
    };

    fn spec() -> IssuerSpec {
        crate::crd::test_spec(None)
    }

    fn ca(status: &str, not_after_ms: i64) -> CertificateAuthority {
        let status: CaStatus = serde_json::from_value(serde_json::json!(status)).unwrap();
        CertificateAuthority {
            ca_id: Some(spec().urn),
            ca_type: CaType::Subordinate,
            status,
            distinguished_name: DistinguishedName {
                common_name: Some("sub".into()),
                ..Default::default()
            },
            path_length: Some(1),
            issuer_id: None,
            issuer_name: None,
            key_algorithm: Some("EC256".into()),
            signature_algorithm: Some("SHA256".into()),
            freeze_flag: Some(0),
            gen_mode: Some(GenMode::Generate),
            serial_number: None,
            create_time: None,
            delete_time: None,
            not_before: Some(0),
            not_after: Some(not_after_ms),
            enterprise_project_id: None,
        }
    }

    const DAY: i64 = 86_400_000;
    const WINDOW: Duration = Duration::from_secs(30 * 86_400);

    #[test]
    fn only_actived_is_ready() {
        let v = evaluate_ca(ca("ACTIVED", 400 * DAY), &spec(), 0, WINDOW);
        assert_eq!((v.ready, v.reason), (Some(true), "Verified"));
        assert!(v.expiring.is_none());
        for status in ["DISABLED", "PENDING", "EXPIRED", "DELETED"] {
            let v = evaluate_ca(ca(status, 400 * DAY), &spec(), 0, WINDOW);
            assert_eq!((v.ready, v.reason), (Some(false), "CANotActive"), "{status}");
            assert!(v.message.contains(status));
        }
    }

    #[test]
    fn cas_that_cannot_sign_are_not_ready_with_a_reason_naming_why() {
        type Change = fn(&mut CertificateAuthority);
        let cases: [(&str, Change, &str); 7] = [
            (CA_FROZEN, |c| c.freeze_flag = Some(1), "freeze_flag 1"),
            (CA_KEY_NOT_IN_PCA, |c| c.gen_mode = Some(GenMode::Csr), "gen_mode CSR"),
            (
                CA_ALGORITHM_UNSUPPORTED,
                |c| c.key_algorithm = Some("SM2".into()),
                "SM2 CAs are not supported: TLS clients in Kubernetes cannot use them",
            ),
            (
                CA_ALGORITHM_UNSUPPORTED,
                |c| c.signature_algorithm = Some("SM3".into()),
                "SM2 CAs are not supported",
            ),
            (CA_NOT_YET_VALID, |c| c.not_before = Some(10 * DAY), "not valid before"),
            (CA_EXPIRED, |c| c.not_after = Some(DAY / 2), "expired on"),
            (
                CA_NOT_ACTIVE,
                |c| c.status = CaStatus::Other("FROZEN".into()),
                "is FROZEN",
            ),
        ];
        for (reason, change, text) in cases {
            let mut c = ca("ACTIVED", 400 * DAY);
            change(&mut c);
            let v = evaluate_ca(c, &spec(), DAY, WINDOW);
            assert_eq!((v.ready, v.reason), (Some(false), reason), "{text}");
            assert!(v.message.contains(text), "{reason}: {}", v.message);
            assert!(v.ca.is_some() && !v.transient);
        }
    }

    #[test]
    fn unreported_properties_forbid_nothing() {
        let mut c = ca("ACTIVED", 400 * DAY);
        (
            c.freeze_flag,
            c.gen_mode,
            c.key_algorithm,
            c.signature_algorithm,
            c.not_before,
            c.not_after,
        ) = (None, None, None, None, None, None);
        let v = evaluate_ca(c, &spec(), DAY, WINDOW);
        assert_eq!((v.ready, v.reason), (Some(true), VERIFIED), "{}", v.message);
        for gen_mode in [GenMode::Generate, GenMode::Import] {
            let mut c = ca("ACTIVED", 400 * DAY);
            c.gen_mode = Some(gen_mode);
            assert_eq!(evaluate_ca(c, &spec(), DAY, WINDOW).reason, VERIFIED);
        }
    }

    #[test]
    fn expiry_within_thirty_days_warns() {
        let v = evaluate_ca(ca("ACTIVED", 20 * DAY), &spec(), 0, WINDOW);
        assert_eq!(v.ready, Some(true));
        let m = v.expiring.unwrap();
        assert!(m.contains("in 20 days"), "{m}");
    }

    #[test]
    fn path_length_too_small_for_ca_requests_is_noted() {
        let mut c = ca("ACTIVED", 400 * DAY);
        c.path_length = Some(0);
        let v = evaluate_ca(c, &spec(), 0, WINDOW);
        assert_eq!(v.ready, Some(true));
        assert!(v.message.contains("isCA requests will fail"), "{}", v.message);
    }

    fn request(group: Option<&str>, kind: Option<&str>) -> CertificateRequest {
        let mut cr = CertificateRequest::new(
            "r",
            CertificateRequestSpec {
                issuer_ref: IssuerRef {
                    name: "iss".into(),
                    kind: kind.map(str::to_owned),
                    group: group.map(str::to_owned),
                },
                ..Default::default()
            },
        );
        cr.metadata.namespace = Some("ns".into());
        cr
    }

    #[test]
    fn only_our_group_and_kinds_are_ours() {
        assert_eq!(
            IssuerKey::for_request(&request(Some(GROUP), Some("CCMIssuer"))),
            Some(IssuerKey::Namespaced {
                namespace: "ns".into(),
                name: "iss".into()
            })
        );
        assert_eq!(
            IssuerKey::for_request(&request(Some(GROUP), Some("CCMClusterIssuer"))),
            Some(IssuerKey::Cluster { name: "iss".into() })
        );
        for (g, k) in [
            (None, Some("CCMIssuer")),
            (Some(""), Some("CCMIssuer")),
            (Some("cert-manager.io"), Some("CCMIssuer")),
            (Some(GROUP), None),
            (Some(GROUP), Some("Issuer")),
            (Some(GROUP), Some("ccmissuer")),
        ] {
            assert_eq!(IssuerKey::for_request(&request(g, k)), None, "{g:?} {k:?}");
        }
    }

    #[test]
    fn readiness_requires_current_generation() {
        let mut i = CCMIssuer::new("i", spec());
        i.metadata.generation = Some(2);
        i.status = Some(IssuerStatus {
            conditions: vec![issuer_condition(
                &[],
                READY,
                Some(true),
                "Verified",
                "ok".into(),
                Some(1),
            )],
            ..Default::default()
        });
        let any = AnyIssuer::Namespaced(Arc::new(i.clone()));
        assert!(!any.is_ready(), "stale generation must not count");
        i.status = Some(IssuerStatus {
            conditions: vec![issuer_condition(
                &[],
                READY,
                Some(true),
                "Verified",
                "ok".into(),
                Some(2),
            )],
            ..Default::default()
        });
        assert!(AnyIssuer::Namespaced(Arc::new(i)).is_ready());
    }
}
