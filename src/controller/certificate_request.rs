//! The CertificateRequest controller, in the order of cert-manager's external-issuer contract:
//! ours? → final? → denied? → approved? → issuer ready? → valid CSR? → issue (once) → verify →
//! one status patch with certificate, CA and Ready.

use std::{sync::Arc, time::Duration};

use k8s_openapi::ByteString;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{controller::Action, events::EventType},
};
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;
use tracing::{info, instrument, warn};

use super::{
    AnyIssuer, Context, Error, FIELD_MANAGER, IssuerKey,
    conditions::request_condition,
    is_gone,
    issuance::{self, IssuanceError, IssueInput, Obtained},
    issuer::report_problem,
};
use crate::{
    cert_manager::{
        APPROVED, CertificateRequest, CertificateRequestCondition, DENIED, INVALID_REQUEST, READY, parse_go_duration,
        reason,
    },
    crd::{CCMClusterIssuer, CCMIssuer},
    pca::{
        PcaError,
        types::{CertificateType, IssueFromCsr, Validity, ValidityUnit},
    },
    pki::{CsrInfo, Expectation, Ku, PkiError, normalize_chain, parse_csr, parse_usage, verify_issued},
};

/// cert-manager's default certificate duration (90 days).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(90 * 24 * 3600);
/// The PCA's limit for certificates (20 years of 365 days).
const MAX_HOURS: u64 = 20 * 365 * 24;
/// Kept between a clamped certificate's end and the CA's, for clock skew.
const CA_END_MARGIN_SECS: i64 = 3600;
/// Re-check of requests waiting for their issuer, in case an issuer event was missed.
const WAITING_RECHECK: Duration = Duration::from_secs(120);

/// What a request should become.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to do (not ours, final, unapproved, gone); the label is for metrics.
    Ignore(&'static str),
    /// Denied by an approver.
    Denied(String),
    /// Not yet; `why` is a stable CamelCase cause used for events and metrics.
    Pending {
        /// Cause.
        why: &'static str,
        /// Message for the Ready condition.
        message: String,
        /// When to look again (`None`: on the next change only, plus a slow safety re-check).
        requeue: Option<Duration>,
    },
    /// Terminal failure.
    Failed {
        /// Cause.
        why: &'static str,
        /// Message.
        message: String,
        /// Also set `InvalidRequest=True` (the request itself is wrong).
        invalid: bool,
    },
    /// Signed.
    Issued {
        /// Leaf + intermediates.
        certificate: String,
        /// Root.
        ca: String,
        /// Summary.
        message: String,
        /// A CA certificate was issued.
        is_ca: bool,
    },
}

fn pending(why: &'static str, message: String, requeue: Option<Duration>) -> Outcome {
    Outcome::Pending { why, message, requeue }
}

fn invalid(message: String) -> Outcome {
    Outcome::Failed {
        why: "InvalidRequest",
        message,
        invalid: true,
    }
}

/// A validated request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The CSR.
    pub csr: CsrInfo,
    /// `spec.isCA`.
    pub is_ca: bool,
    /// `spec.duration` or the default.
    pub duration: Duration,
}

/// Validates a request before any PCA call; the error names the problem.
pub fn plan(cr: &CertificateRequest) -> Result<Plan, String> {
    let csr = parse_csr(&cr.spec.request.0).map_err(|e| format!("spec.request: {e}"))?;
    let is_ca = cr.spec.is_ca.unwrap_or(false);
    if let Some(ca) = csr.basic_constraints_ca
        && ca != is_ca
    {
        return Err(format!(
            "the CSR's basicConstraints says CA={ca} but spec.isCA is {is_ca}"
        ));
    }
    for name in cr.spec.usages.iter().flatten() {
        let usage = parse_usage(name).map_err(|e| e.to_string())?;
        if !csr.usages.has(usage) {
            return Err(format!(
                "spec.usages asks for {name:?} but the CSR does not carry it ({usage}); the PCA takes usages only from the CSR"
            ));
        }
    }
    if is_ca && csr.usages.key.is_some() && !csr.usages.has_key(Ku::CertSign) {
        return Err("spec.isCA is true but the CSR's keyUsage lacks keyCertSign (\"cert sign\")".into());
    }
    let duration = match cr.spec.duration.as_deref() {
        Some(d) => parse_go_duration(d).map_err(|e| format!("spec.duration: {e}"))?,
        None => DEFAULT_DURATION,
    };
    let duration = if duration.is_zero() { DEFAULT_DURATION } else { duration };
    Ok(Plan { csr, is_ca, duration })
}

/// Maps a duration to the PCA's validity (whole days → `DAY`, else `HOUR`, rounded up), clamped
/// to the PCA's 20-year limit and to end an hour before the CA does. Returns a note when clamped.
pub fn validity_for(
    duration: Duration,
    ca_not_after: Option<i64>,
    now: i64,
) -> Result<(Validity, Option<String>), String> {
    let requested = duration.as_secs().div_ceil(3600).max(1);
    let mut hours = requested.min(MAX_HOURS);
    let mut note = (requested > MAX_HOURS)
        .then(|| format!("requested {requested}h exceeds the PCA's 20-year limit; clamped to {MAX_HOURS}h"));
    if let Some(not_after) = ca_not_after {
        let available = (not_after - now - CA_END_MARGIN_SECS) / 3600;
        if available < 1 {
            return Err(format!(
                "the PCA CA ends at {} and cannot sign a certificate of at least one hour; renew the CA",
                jiff::Timestamp::from_second(not_after)
                    .map(super::rfc3339)
                    .unwrap_or_default()
            ));
        }
        let available = u64::try_from(available).unwrap_or(0);
        if hours > available {
            note = Some(format!(
                "requested duration of {requested}h would outlive the PCA CA (notAfter {}); clamped to {available}h",
                jiff::Timestamp::from_second(not_after)
                    .map(super::rfc3339)
                    .unwrap_or_default()
            ));
            hours = available;
        }
    }
    let validity = if hours.is_multiple_of(24) {
        Validity {
            unit: ValidityUnit::Day,
            value: u32::try_from(hours / 24).unwrap_or(u32::MAX),
            start_from: None,
        }
    } else {
        Validity {
            unit: ValidityUnit::Hour,
            value: u32::try_from(hours).unwrap_or(u32::MAX),
            start_from: None,
        }
    };
    Ok((validity, note))
}

/// Reconciles one CertificateRequest.
#[instrument(skip_all, fields(request = %format!("{}/{}", cr.namespace().unwrap_or_default(), cr.name_any())))]
pub async fn reconcile(cr: Arc<CertificateRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let outcome = decide(&cr, &ctx).await;
    let label = label(&outcome);
    let result = apply(&cr, &ctx, outcome).await;
    let label = if result.is_err() { "error" } else { label };
    ctx.metrics.reconciled("certificaterequest", label, started.elapsed());
    result
}

fn label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Ignore(l) => l,
        Outcome::Denied(_) => "denied",
        Outcome::Pending { .. } => "pending",
        Outcome::Failed { .. } => "failed",
        Outcome::Issued { .. } => "issued",
    }
}

/// Decides what the request should become; every PCA and issuer problem becomes an outcome.
pub async fn decide(cr: &CertificateRequest, ctx: &Context) -> Outcome {
    let Some(key) = IssuerKey::for_request(cr) else {
        return Outcome::Ignore("ignored");
    };
    if cr.is_final() {
        return Outcome::Ignore("final");
    }
    if cr.is_true(DENIED) {
        let why = cr.condition(DENIED).and_then(|c| c.message.clone()).unwrap_or_default();
        return Outcome::Denied(why);
    }
    if !cr.is_true(APPROVED) {
        return Outcome::Ignore("unapproved");
    }
    let issuer = match ready_issuer(ctx, &key).await {
        Ok(i) => i,
        Err(o) => return o,
    };
    let plan = match plan(cr) {
        Ok(p) => p,
        Err(message) => return invalid(message),
    };
    match sign(cr, ctx, &issuer, &plan).await {
        Ok(o) | Err(o) => o,
    }
}

/// The request's issuer if it exists and is Ready for its current generation.
async fn ready_issuer(ctx: &Context, key: &IssuerKey) -> Result<AnyIssuer, Outcome> {
    let cached = cached_issuer(ctx, key);
    let issuer = match cached {
        Some(i) if i.is_ready() => return Ok(i),
        // The cache may lag behind the issuer controller's own write: ask the API server.
        _ => live_issuer(ctx, key).await,
    };
    match issuer {
        Ok(Some(i)) if i.is_ready() => Ok(i),
        Ok(Some(i)) => {
            let why = i
                .ready_condition()
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_else(|| "not checked yet".into());
            Err(pending(
                "IssuerNotReady",
                format!("Waiting for {key} to become ready ({why})"),
                None,
            ))
        }
        Ok(None) => Err(pending(
            "IssuerNotFound",
            format!("{key} does not exist; waiting for it to be created"),
            None,
        )),
        Err(e) => Err(pending(
            "IssuerUnavailable",
            format!("cannot read {key}: {e}"),
            Some(Duration::from_secs(5)),
        )),
    }
}

fn cached_issuer(ctx: &Context, key: &IssuerKey) -> Option<AnyIssuer> {
    match key {
        IssuerKey::Namespaced { namespace, name } => ctx
            .issuers
            .namespaced
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))
            .map(AnyIssuer::Namespaced),
        IssuerKey::Cluster { name } => ctx
            .issuers
            .cluster
            .get(&kube::runtime::reflector::ObjectRef::new(name))
            .map(AnyIssuer::Cluster),
    }
}

async fn live_issuer(ctx: &Context, key: &IssuerKey) -> Result<Option<AnyIssuer>, kube::Error> {
    Ok(match key {
        IssuerKey::Namespaced { namespace, name } => Api::<CCMIssuer>::namespaced(ctx.client.clone(), namespace)
            .get_opt(name)
            .await?
            .map(|i| AnyIssuer::Namespaced(Arc::new(i))),
        IssuerKey::Cluster { name } => Api::<CCMClusterIssuer>::all(ctx.client.clone())
            .get_opt(name)
            .await?
            .map(|i| AnyIssuer::Cluster(Arc::new(i))),
    })
}

/// Issues, exports and verifies. `Err` carries the non-success outcome.
async fn sign(cr: &CertificateRequest, ctx: &Context, issuer: &AnyIssuer, plan: &Plan) -> Result<Outcome, Outcome> {
    let spec = issuer.spec();
    let client = match ctx.pca.client_for(&ctx.client, issuer).await {
        Ok(c) => c,
        Err(p) if p.retryable => return Err(transient(cr, ctx, p.reason, p.message)),
        Err(p) => {
            let message = format!("Waiting for {}: {}", issuer.key(), p.message);
            report_problem(ctx, issuer, p.reason, p.message).await;
            return Err(pending("IssuerNotReady", message, None));
        }
    };
    let now = jiff::Timestamp::now().as_second();
    let (validity, note) = validity_for(plan.duration, issuer.ca_not_after(), now).map_err(invalid)?;
    // Once per issuance, not on every retry or recovery of the same attempt.
    let first_attempt = issuance::bound(cr, issuance::INTENT_ANNOTATION, &cr.uid().unwrap_or_default()).is_none();
    if let (Some(note), true) = (note, first_attempt) {
        ctx.event(&cr.object_ref(&()), EventType::Normal, "DurationClamped", "Issue", note)
            .await;
    }
    let body = IssueFromCsr {
        issuer_id: spec.urn.clone(),
        csr: plan.csr.pem.clone(),
        validity,
        cert_type: if plan.is_ca {
            CertificateType::IntermediateCa
        } else {
            CertificateType::EntityCert
        },
        path_length: plan.is_ca.then(|| spec.path_length()),
        enterprise_project_id: spec.enterprise_project_id.clone(),
    };
    let input = IssueInput {
        request: cr,
        client: &client,
        body: &body,
        csr: &plan.csr,
        is_ca: plan.is_ca,
    };
    let id = match issuance::obtain(ctx, &input).await {
        Ok(Obtained::Id(id)) => id,
        Ok(Obtained::Gone) => return Err(Outcome::Ignore("gone")),
        Err(e) => return Err(issuance_outcome(cr, ctx, issuer, e).await),
    };
    let exported = if plan.is_ca {
        client.export_ca(&id).await
    } else {
        client.export_certificate(&id).await
    };
    let exported = match exported {
        Ok(x) => x,
        Err(e) => return Err(pca_outcome(cr, ctx, issuer, e).await),
    };
    let certificate = exported.certificate.unwrap_or_default();
    let chain_pem = exported.certificate_chain.unwrap_or_default();
    let chain = normalize_chain([certificate.as_bytes(), chain_pem.as_bytes()]).map_err(|e| mismatch(&id, &e))?;
    let exported_leaf = crate::pki::pem::parse_blocks(certificate.as_bytes(), crate::pki::CERT_PEM_TAG)
        .ok()
        .and_then(|mut b| (!b.is_empty()).then(|| b.remove(0)));
    if exported_leaf.as_deref() != Some(chain.leaf_der()) {
        return Err(mismatch(
            &id,
            &PkiError::Mismatch("the exported chain contains a certificate issued by the exported certificate".into()),
        ));
    }
    let facts = verify_issued(
        &chain,
        &Expectation {
            csr: &plan.csr,
            is_ca: plan.is_ca,
            path_length: body.path_length,
            now,
        },
    )
    .map_err(|e| mismatch(&id, &e))?;
    let until = jiff::Timestamp::from_second(facts.not_after)
        .map(super::rfc3339)
        .unwrap_or_default();
    Ok(Outcome::Issued {
        certificate: chain.chain_pem(),
        ca: chain.ca_pem(),
        message: format!(
            "Certificate issued by PCA CA {} (certificate id {id}, serial {}, valid until {until})",
            spec.urn, facts.serial
        ),
        is_ca: plan.is_ca,
    })
}

fn mismatch(id: &str, e: &PkiError) -> Outcome {
    Outcome::Failed {
        why: "CertificateMismatch",
        message: format!("PCA certificate {id} was not written: {e}"),
        invalid: false,
    }
}

async fn issuance_outcome(cr: &CertificateRequest, ctx: &Context, issuer: &AnyIssuer, e: IssuanceError) -> Outcome {
    match e {
        IssuanceError::Pca(e) => pca_outcome(cr, ctx, issuer, e).await,
        IssuanceError::Kube(e) => transient(cr, ctx, "KubernetesAPIError", e.to_string()),
        IssuanceError::InFlight(wait) => pending(
            "VerifyingEarlierAttempt",
            "An earlier issuance attempt has an unknown outcome; waiting before looking for its certificate again"
                .into(),
            Some(wait),
        ),
        IssuanceError::Conflict => pending(
            "IssuanceInProgress",
            "Another worker recorded an issuance for this request".into(),
            Some(Duration::from_secs(2)),
        ),
        IssuanceError::Unrecoverable(message) => Outcome::Failed {
            why: "UnknownIssuanceOutcome",
            message,
            invalid: false,
        },
    }
}

/// Credential errors wait for the issuer; transient ones retry until `--max-retry-duration`;
/// the rest fail at once with the PCA's code, message and request id.
async fn pca_outcome(cr: &CertificateRequest, ctx: &Context, issuer: &AnyIssuer, e: PcaError) -> Outcome {
    let issue_call = e.operation() == Some(crate::pca::Operation::CreateCertificateByCsr);
    if e.is_credentials() || (issue_call && e.is_not_found()) {
        let reason = if e.is_not_found() { "CANotFound" } else { e.reason() };
        let message = format!("Waiting for {} after the PCA refused a call: {e}", issuer.key());
        report_problem(ctx, issuer, reason, e.to_string()).await;
        return pending("IssuerNotReady", message, None);
    }
    if e.is_retryable() {
        return transient(cr, ctx, e.reason(), e.to_string());
    }
    Outcome::Failed {
        why: e.reason(),
        message: format!("The PCA refused the request: {e}"),
        invalid: false,
    }
}

/// Pending with exponential back-off, or Failed once `--max-retry-duration` has passed.
fn transient(cr: &CertificateRequest, ctx: &Context, why: &'static str, message: String) -> Outcome {
    let created = cr
        .creation_timestamp()
        .map(|t| t.0.as_second())
        .unwrap_or_else(|| jiff::Timestamp::now().as_second());
    let age = jiff::Timestamp::now().as_second() - created;
    let limit = i64::try_from(ctx.config.max_retry_duration.as_secs()).unwrap_or(i64::MAX);
    if age > limit {
        return Outcome::Failed {
            why,
            message: format!(
                "Giving up after {}s of transient errors (--max-retry-duration): {message}",
                ctx.config.max_retry_duration.as_secs()
            ),
            invalid: false,
        };
    }
    let attempt = ctx.requests.failed(&cr.uid().unwrap_or_default());
    ctx.metrics.request_retry(why);
    let delay = backoff(attempt);
    pending(
        why,
        format!("Will retry in {}s: {message}", delay.as_secs().max(1)),
        Some(delay),
    )
}

/// 2s, 4s, 8s, … capped at 2 minutes, ±20% jitter.
pub fn backoff(attempt: u32) -> Duration {
    let base = 2f64 * 2f64.powi(i32::try_from(attempt.saturating_sub(1).min(16)).unwrap_or(16));
    let capped = base.min(120.0);
    let jitter = rand::rng().random_range(0.8..1.2);
    Duration::from_secs_f64(capped * jitter)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusPatch {
    conditions: Vec<CertificateRequestCondition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<ByteString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<ByteString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_time: Option<String>,
}

/// Writes the outcome (one server-side apply) and publishes events on transitions.
async fn apply(cr: &CertificateRequest, ctx: &Context, outcome: Outcome) -> Result<Action, Error> {
    let existing = cr.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let uid = cr.uid().unwrap_or_default();
    let reference = cr.object_ref(&());
    match outcome {
        Outcome::Ignore(label) => {
            if matches!(label, "gone" | "final") {
                ctx.requests.forget(&uid);
            }
            Ok(Action::await_change())
        }
        Outcome::Denied(why) => {
            let message = format!("The CertificateRequest was denied by an approver: {why}");
            let ready = request_condition(existing, READY, Some(false), reason::DENIED, message.clone());
            write(cr, ctx, vec![ready], None, None, Some(super::now_rfc3339())).await?;
            ctx.requests.forget(&uid);
            ctx.event(&reference, EventType::Warning, "Denied", "Sign", message)
                .await;
            Ok(Action::await_change())
        }
        Outcome::Pending { why, message, requeue } => {
            let unchanged = cr.condition(READY).is_some_and(|c| {
                c.status == "False"
                    && c.reason.as_deref() == Some(reason::PENDING)
                    && c.message.as_deref() == Some(&message)
            });
            if !unchanged {
                let ready = request_condition(existing, READY, Some(false), reason::PENDING, message.clone());
                write(cr, ctx, vec![ready], None, None, None).await?;
                // The recorder folds repeats of the same event into a series.
                ctx.event(&reference, EventType::Normal, why, "Sign", message).await;
            }
            Ok(Action::requeue(requeue.unwrap_or(WAITING_RECHECK)))
        }
        Outcome::Failed { why, message, invalid } => {
            let mut conditions = vec![request_condition(
                existing,
                READY,
                Some(false),
                reason::FAILED,
                message.clone(),
            )];
            if invalid {
                conditions.push(request_condition(
                    existing,
                    INVALID_REQUEST,
                    Some(true),
                    why,
                    message.clone(),
                ));
            }
            warn!(why, %message, "certificate request failed");
            write(cr, ctx, conditions, None, None, Some(super::now_rfc3339())).await?;
            ctx.requests.forget(&uid);
            ctx.event(&reference, EventType::Warning, why, "Sign", message).await;
            Ok(Action::await_change())
        }
        Outcome::Issued {
            certificate,
            ca,
            message,
            is_ca,
        } => {
            let ready = request_condition(existing, READY, Some(true), reason::ISSUED, message.clone());
            let written = write(cr, ctx, vec![ready], Some(certificate), Some(ca), None).await?;
            ctx.requests.forget(&uid);
            if written {
                info!(%message, "certificate issued");
                ctx.metrics.certificate_issued(is_ca);
                ctx.event(&reference, EventType::Normal, reason::ISSUED, "Sign", message)
                    .await;
            }
            Ok(Action::await_change())
        }
    }
}

/// One server-side apply of our status fields, bound to the request's UID. Returns false when the
/// request is gone (deleted mid-flight, e.g. by istio-csr, or replaced) — not an error.
async fn write(
    cr: &CertificateRequest,
    ctx: &Context,
    conditions: Vec<CertificateRequestCondition>,
    certificate: Option<String>,
    ca: Option<String>,
    failure_time: Option<String>,
) -> Result<bool, Error> {
    let namespace = cr.namespace().unwrap_or_default();
    let api: Api<CertificateRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    let status = StatusPatch {
        conditions,
        certificate: certificate.map(|c| ByteString(c.into_bytes())),
        ca: ca.map(|c| ByteString(c.into_bytes())),
        failure_time,
    };
    let body = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"name": cr.name_any(), "namespace": namespace, "uid": cr.uid()},
        "status": status,
    });
    match api
        .patch_status(
            &cr.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_gone(&e) => {
            info!("request was deleted or replaced while being processed; nothing to write");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Error policy: only Kubernetes write failures reach here; retry with back-off.
pub fn error_policy(cr: Arc<CertificateRequest>, error: &Error, ctx: Arc<Context>) -> Action {
    let attempt = ctx.requests.failed(&cr.uid().unwrap_or_default());
    warn!(error = %error, attempt, "could not update CertificateRequest");
    Action::requeue(backoff(attempt))
}

/// Requests that name an issuer and are not final (for "issuer changed → requeue").
pub fn waiting_on<'a>(
    requests: impl IntoIterator<Item = Arc<CertificateRequest>> + 'a,
    key: &'a IssuerKey,
) -> impl Iterator<Item = kube::runtime::reflector::ObjectRef<CertificateRequest>> + 'a {
    requests
        .into_iter()
        .filter(move |cr| key.matches(cr) && !cr.is_final())
        .map(|cr| kube::runtime::reflector::ObjectRef::from(&*cr))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    #[test]
    fn whole_days_map_to_day_else_hour() {
        let (v, note) = validity_for(Duration::from_secs(7200 * H), None, 0).unwrap();
        assert_eq!((v.unit, v.value, note), (ValidityUnit::Day, 300, None));
        let (v, _) = validity_for(Duration::from_secs(25 * H), None, 0).unwrap();
        assert_eq!((v.unit, v.value), (ValidityUnit::Hour, 25));
        let (v, _) = validity_for(Duration::from_secs(90 * 60), None, 0).unwrap();
        assert_eq!((v.unit, v.value), (ValidityUnit::Hour, 2), "rounded up");
        let (v, _) = validity_for(Duration::from_secs(60), None, 0).unwrap();
        assert_eq!((v.unit, v.value), (ValidityUnit::Hour, 1));
    }

    #[test]
    fn clamps_to_the_ca_with_a_note() {
        let now = 1_000_000;
        let ca_end = now + 10 * 24 * 3600; // CA ends in 10 days
        let (v, note) = validity_for(Duration::from_secs(7200 * H), Some(ca_end), now).unwrap();
        assert_eq!(
            (v.unit, v.value),
            (ValidityUnit::Hour, 239),
            "10 days minus the 1h margin"
        );
        assert!(note.unwrap().contains("clamped to 239h"));
        let err = validity_for(Duration::from_secs(H), Some(now + 1800), now).unwrap_err();
        assert!(err.contains("renew the CA"), "{err}");
    }

    #[test]
    fn clamps_to_twenty_years() {
        let (v, note) = validity_for(Duration::from_secs(30 * 365 * 24 * H), None, 0).unwrap();
        assert_eq!((v.unit, v.value), (ValidityUnit::Day, 20 * 365));
        assert!(note.unwrap().contains("20-year"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff(1).as_secs_f64();
        assert!((1.6..=2.4).contains(&first), "{first}");
        let late = backoff(30).as_secs_f64();
        assert!((96.0..=144.0).contains(&late), "{late}");
    }
}
