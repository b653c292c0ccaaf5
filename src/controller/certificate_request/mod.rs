//! The CertificateRequest controller, in the order of cert-manager's external-issuer contract:
//! ours? → final? → denied? → approved? → issuer ready? → valid CSR? → issue (once) → export
//! and verify → one conditional status write with certificate, CA and Ready.

pub mod cache;
pub mod delivered;
pub mod outcome;
pub mod plan;
pub mod reasons;
pub mod retry;
pub mod status;

use std::{sync::Arc, time::Duration};

use kube::{
    Api, Resource, ResourceExt,
    runtime::{controller::Action, events::EventType, reflector::ObjectRef},
};
use tokio::time::Instant;
use tracing::{instrument, warn};

use self::{
    outcome::{Halt, Ignored, Issued, Outcome},
    plan::{Plan, plan, validity_for},
    retry::{Attempt, Budget, Phase, transient},
    status::Written,
};
use super::{
    AnyIssuer, Context, Error, IssuerKey,
    issuance::{
        self, IssuanceError, Obtained,
        intent::{INTENT_ANNOTATION, bound},
    },
    issuer::{reasons::CA_NOT_FOUND, report_problem},
    tracked::{Tracked, Write},
};
use crate::{
    cert_manager::{APPROVED, CertificateRequest, DENIED},
    crd::{CCMClusterIssuer, CCMIssuer},
    pca::{Operation, PcaClient, PcaError},
    signing::{self, Kind, SignError, SignRequest},
};

/// Reconciles one CertificateRequest: acts, then writes the outcome; when the write finds the
/// request changed, reads it again and decides once more.
#[instrument(skip_all, fields(request = %format!("{}/{}", cr.namespace().unwrap_or_default(), cr.name_any())))]
pub async fn reconcile(cr: Arc<CertificateRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let Some(mut tracked) = Tracked::new(&ctx.client, &cr) else {
        return Ok(Action::await_change());
    };
    let mut label = "error";
    let result = async {
        for _ in 0..2 {
            let outcome = act(&mut tracked, &ctx).await?;
            label = outcome.label();
            match status::write(&mut tracked, &ctx, outcome).await? {
                Written::Done(action) => return Ok(action),
                Written::Conflict => match tracked.refresh().await? {
                    Write::Written => {}
                    Write::Gone | Write::Conflict => return Ok(Action::await_change()),
                },
            }
        }
        label = "conflict";
        Ok(Action::requeue(Duration::from_secs(1)))
    }
    .await;
    let label = if result.is_err() { "error" } else { label };
    ctx.metrics.reconciled("certificaterequest", label, started.elapsed());
    result
}

/// Performs the request's next step and returns the status to write. This *acts*: it may call
/// the PCA (issue, list, export), record the issuance intent or certificate id on the request,
/// report a problem on the issuer, and publish events.
pub async fn act(tracked: &mut Tracked, ctx: &Context) -> Result<Outcome, Error> {
    let cr = tracked.object();
    let Some(key) = IssuerKey::for_request(cr) else {
        return Ok(Outcome::Ignore(Ignored::NotOurs));
    };
    if cr.is_final() {
        return Ok(Outcome::Ignore(Ignored::Final));
    }
    if cr.is_true(DENIED) {
        let why = cr.condition(DENIED).and_then(|c| c.message.clone()).unwrap_or_default();
        return Ok(Outcome::Denied(why));
    }
    if !cr.is_true(APPROVED) {
        return Ok(Outcome::Ignore(Ignored::Unapproved));
    }
    let issuer = match ready_issuer(ctx, &key).await {
        Ok(i) => i,
        Err(o) => return Ok(o),
    };
    // The slot comes before the CSR check: a request put back for want of one returns every
    // 10–20 s while it waits (thousands in a backlog) and must cost nothing each time.
    let Some(slot) = ctx.slots.try_acquire(&issuer.key(), ObjectRef::from(cr)) else {
        return Ok(Outcome::Later(super::slots::fallback_delay()));
    };
    // CSR parsing checks a signature: CPU work, off the async workers.
    let request = cr.clone();
    let plan = match tokio::task::spawn_blocking(move || plan(&request)).await {
        Ok(Ok(p)) => p,
        Ok(Err(message)) => return Ok(Outcome::invalid(message)),
        Err(e) => return Ok(Outcome::invalid(format!("the request could not be checked: {e}"))),
    };
    let result = sign(tracked, ctx, &issuer, &plan).await;
    drop(slot);
    match result {
        Ok(issued) => Ok(Outcome::Issued(issued)),
        Err(Halt::Outcome(o)) => Ok(o),
        Err(Halt::Kube(e)) => Err(e.into()),
    }
}

/// The request's issuer if it exists and is Ready for its current generation.
async fn ready_issuer(ctx: &Context, key: &IssuerKey) -> Result<AnyIssuer, Outcome> {
    ctx.issuers.wait_synced(key).await;
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
            Err(Outcome::waiting(
                reasons::ISSUER_NOT_READY,
                format!("Waiting for {key} to become ready ({why})"),
                None,
            ))
        }
        Ok(None) => Err(Outcome::waiting(
            reasons::ISSUER_NOT_FOUND,
            format!("{key} does not exist; waiting for it to be created"),
            None,
        )),
        Err(e) => Err(Outcome::waiting(
            reasons::ISSUER_UNAVAILABLE,
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
            .get(&ObjectRef::new(name).within(namespace))
            .map(AnyIssuer::Namespaced),
        IssuerKey::Cluster { name } => ctx.issuers.cluster.get(&ObjectRef::new(name)).map(AnyIssuer::Cluster),
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

/// Issues (at most once), exports and verifies; the caller holds one of the issuer's slots.
async fn sign(tracked: &mut Tracked, ctx: &Context, issuer: &AnyIssuer, plan: &Plan) -> Result<Issued, Halt> {
    let client = match ctx.pca.client_for(&ctx.client, issuer, Some(&ctx.secret_watches)).await {
        Ok(c) => c,
        Err(p) if p.retryable => {
            // No PCA call was sent: the back-off is all this error costs.
            let attempt = Attempt {
                phase: Phase::Issue,
                budget: Budget::Limited,
                took: Duration::ZERO,
            };
            return Err(transient(tracked.object(), ctx, p.reason, p.message, attempt).into());
        }
        Err(p) => {
            let message = format!("Waiting for {}: {}", issuer.key(), p.message);
            report_problem(ctx, issuer, p.reason, p.message).await;
            return Err(Outcome::waiting(reasons::ISSUER_NOT_READY, message, None).into());
        }
    };
    let result = sign_with(tracked, ctx, issuer, plan, &client).await;
    report_rate_drop(ctx, issuer, &client).await;
    result
}

/// Tells the issuer's users when the PCA throttled calls and the client slowed down: at most
/// one event a minute per endpoint and access key.
async fn report_rate_drop(ctx: &Context, issuer: &AnyIssuer, client: &PcaClient) {
    let Some(drop) = ctx.pca.bucket_of(client).take_drop_report() else {
        return;
    };
    ctx.event(
        &issuer.object_ref(),
        EventType::Warning,
        reasons::PCA_RATE_LOWERED,
        "Throttle",
        format!(
            "The PCA throttled {} call(s) (429); the client rate for {} and this access key went from {:.1} to {:.1} calls/s and rises again while calls succeed",
            drop.throttled,
            client.endpoint(),
            drop.from,
            drop.to
        ),
    )
    .await;
}

/// [`sign`] with the issuer's client.
async fn sign_with(
    tracked: &mut Tracked,
    ctx: &Context,
    issuer: &AnyIssuer,
    plan: &Plan,
    client: &PcaClient,
) -> Result<Issued, Halt> {
    let spec = issuer.spec();
    let now = jiff::Timestamp::now().as_second();
    let (validity, note) = validity_for(plan.duration, issuer.ca_not_after(), now).map_err(|m| {
        Outcome::waiting(
            reasons::CA_ENDS_TOO_SOON,
            format!("{m}; waiting for the issuer to use a CA that can sign it"),
            None,
        )
    })?;
    // Once per issuance, not on every retry or recovery of the same attempt.
    if let (Some(note), None) = (note, bound(tracked.object(), INTENT_ANNOTATION, tracked.uid())) {
        ctx.event(
            &tracked.object().object_ref(&()),
            EventType::Normal,
            reasons::DURATION_CLAMPED,
            "Issue",
            note,
        )
        .await;
    }
    let request = SignRequest {
        ca_id: &spec.urn,
        csr: &plan.csr,
        kind: Kind::new(plan.is_ca, spec.path_length()),
        validity,
        enterprise_project_id: spec.enterprise_project_id.clone(),
    };
    let (id, exported) = match issuance::obtain(ctx, tracked, client, &request).await {
        Ok(Obtained::Id(id)) => (id, None),
        Ok(Obtained::Found { id, exported }) => (id, Some(exported)),
        Ok(Obtained::Gone) => return Err(Outcome::Ignore(Ignored::Gone).into()),
        Err(e) => return Err(issuance_outcome(tracked.object(), ctx, issuer, e).await),
    };
    let verifying = match exported {
        Some(answer) => signing::verify_exported(&id, answer, &request).await,
        None => issuance::export_keeping_id(tracked, client, &id, &request).await,
    };
    let verified = match verifying {
        Ok(v) => v,
        Err(e) => return Err(delivery_outcome(tracked.object(), ctx, issuer, &id, e).await.into()),
    };
    let until = super::rfc3339_ms(verified.facts.not_after.saturating_mul(1000));
    Ok(Issued {
        certificate: verified.chain.chain_pem(),
        ca: verified.chain.ca_pem(),
        message: format!(
            "Certificate issued by PCA CA {} (certificate id {id}, serial {}, valid until {until})",
            spec.urn, verified.facts.serial
        ),
        is_ca: request.kind.is_ca(),
    })
}

/// Before or during the issue call.
async fn issuance_outcome(cr: &CertificateRequest, ctx: &Context, issuer: &AnyIssuer, e: IssuanceError) -> Halt {
    let unknown = |e: &PcaError| {
        format!(
            "The outcome of an issue call is unknown ({e}); its certificate is looked for before anything is issued again"
        )
    };
    match e {
        IssuanceError::NotIssued(e, attempt) => pca_outcome(cr, ctx, issuer, e, attempt).await.into(),
        IssuanceError::Unknown(e) | IssuanceError::Recovery(e) if e.is_credentials() => {
            refused_credentials(ctx, issuer, &e).await.into()
        }
        IssuanceError::Unknown(e) | IssuanceError::Recovery(e) => {
            let attempt = Attempt {
                phase: Phase::Recover,
                budget: Budget::Unlimited,
                took: ctx.config.pca_timeout,
            };
            transient(cr, ctx, e.reason(), unknown(&e), attempt).into()
        }
        IssuanceError::Undecided { message, wait } => {
            Outcome::unresolved(reasons::VERIFYING_EARLIER_ATTEMPT, message, wait).into()
        }
        IssuanceError::Conflict => Outcome::Later(Duration::from_secs(1)).into(),
        IssuanceError::NotLeader => Outcome::Later(Duration::from_secs(5)).into(),
        IssuanceError::Kube(e) => Halt::Kube(e),
    }
}

/// After the PCA issued `id`: never answered with another issue call. Transient export errors
/// (throttling, 5xx, time-outs) retry without limit (failing would strand the certificate);
/// "not found" right after the issue (read-after-write lag) and unusable answers retry within
/// the budget; a certificate that is not what was asked for fails the request.
async fn delivery_outcome(
    cr: &CertificateRequest,
    ctx: &Context,
    issuer: &AnyIssuer,
    id: &str,
    e: SignError,
) -> Outcome {
    // The export's own waits for the rate limiter happen inside the client: charged up to the
    // call's time limit.
    let delivery = |budget| Attempt {
        phase: Phase::Deliver,
        budget,
        took: ctx.config.pca_timeout,
    };
    match e {
        SignError::Mismatch { .. } => Outcome::failed(reasons::CERTIFICATE_MISMATCH, e.to_string()),
        SignError::Pca(e) if e.is_credentials() => refused_credentials(ctx, issuer, &e).await,
        SignError::Pca(e) if e.is_not_found() => transient(
            cr,
            ctx,
            e.reason(),
            format!("PCA certificate {id} was issued for this request but cannot be exported yet: {e}"),
            delivery(Budget::Limited),
        ),
        // An unusable answer (not JSON, a field missing or of the wrong type, too large) may be
        // a passing fault; it is retried within the budget, then reported.
        SignError::Pca(e @ PcaError::Decode { .. }) => transient(
            cr,
            ctx,
            e.reason(),
            format!("PCA certificate {id} was issued for this request; its export answer cannot be used: {e}"),
            delivery(Budget::Limited),
        ),
        SignError::Pca(e) if e.is_retryable() => transient(
            cr,
            ctx,
            e.reason(),
            format!("PCA certificate {id} was issued for this request; exporting it failed: {e}"),
            delivery(Budget::Unlimited),
        ),
        SignError::Pca(e) => Outcome::failed(
            e.reason(),
            format!("PCA certificate {id} was issued for this request but the PCA refused to export it: {e}"),
        ),
    }
}

/// An issue call's error, after an attempt that took `took`: credential errors wait for the
/// issuer; transient ones retry with back-off; the rest fail at once with the PCA's code,
/// message and request id.
async fn pca_outcome(
    cr: &CertificateRequest,
    ctx: &Context,
    issuer: &AnyIssuer,
    e: PcaError,
    took: Duration,
) -> Outcome {
    let issue_call = e.operation() == Some(Operation::CreateCertificateByCsr);
    if e.is_credentials() || (issue_call && e.is_not_found()) {
        return refused_credentials(ctx, issuer, &e).await;
    }
    if e.is_retryable() {
        let attempt = Attempt {
            phase: Phase::Issue,
            budget: Budget::Limited,
            took,
        };
        return transient(cr, ctx, e.reason(), e.to_string(), attempt);
    }
    Outcome::failed(e.reason(), format!("The PCA refused the request: {e}"))
}

/// The PCA refused the issuer's credentials (or its CA is gone): the issuer is re-checked and
/// the request waits for it.
async fn refused_credentials(ctx: &Context, issuer: &AnyIssuer, e: &PcaError) -> Outcome {
    let reason = if e.is_not_found() { CA_NOT_FOUND } else { e.reason() };
    let message = format!("Waiting for {} after the PCA refused a call: {e}", issuer.key());
    report_problem(ctx, issuer, reason, e.to_string()).await;
    Outcome::waiting(reasons::ISSUER_NOT_READY, message, None)
}

/// Error policy: only Kubernetes failures reach here; retry with back-off.
pub fn error_policy(cr: Arc<CertificateRequest>, error: &Error, ctx: Arc<Context>) -> Action {
    let attempt = ctx.requests.failed(&cr.uid().unwrap_or_default());
    warn!(error = %error, attempt, "could not update CertificateRequest");
    let elapsed = Duration::from_secs(2u64.saturating_pow(attempt.min(7)));
    Action::requeue(retry::backoff(elapsed))
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
