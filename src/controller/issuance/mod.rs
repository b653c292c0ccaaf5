//! Exactly one PCA certificate per CertificateRequest, even across crashes, time-outs and
//! leader changes.
//!
//! The PCA's issue-from-CSR call has no idempotency token. So before calling it we record an
//! *intent* on the request: an annotation bound to its UID holding the attempt's start and a
//! *deadline*, written with a resourceVersion precondition so two workers cannot both win. The
//! call is never sent after the deadline (the rate-limiter wait, domain discovery and the lease
//! check all happen before the intent is written, and the call itself runs under the deadline),
//! so once the deadline (plus a margin for clock differences between replicas) has passed, no
//! earlier attempt can still create a certificate.
//!
//! A request with an intent but no known certificate had an attempt with an unknown outcome.
//! For a leaf we search the PCA's list for it ([`recovery`]) and issue again only once the
//! search has read the whole window and the attempt can no longer be in flight. A CA
//! certificate issued from a CSR is not listed by the PCA, so its id is recorded on the request
//! right after the call; if that answer was lost, the documented choice (README, "How it stays
//! correct") is to issue again with the same CSR once the attempt is over: the possible orphan
//! is a second certificate for the same key and subject that nobody else holds, which is less
//! harm than failing the request (cert-manager would back off for an hour and then issue
//! another CA certificate anyway).

pub mod handover;
pub mod intent;
pub mod recovery;

use std::time::Duration;

use kube::{Resource, runtime::events::EventType};
use tracing::{info, warn};

use self::{
    intent::{CERTIFICATE_ID_ANNOTATION, INTENT_ANNOTATION, Intent, RecordedIntent, bind, bound, recorded_intent},
    recovery::{Search, Target},
};
use super::{
    Context,
    certificate_request::reasons,
    tracked::{Tracked, Write},
};
use crate::{
    pca::{PcaClient, PcaError, types::ExportedPem},
    signing::{self, SignError, SignRequest, Verified},
};

/// Time between the intent and the latest moment the issue call may be sent, beyond the
/// request time-out: covers the intent write and scheduling.
const SEND_SLACK: Duration = Duration::from_secs(5);

/// Why no certificate id is available yet.
#[derive(Debug, thiserror::Error)]
pub enum IssuanceError {
    /// The issue call failed and certainly issued nothing (refused, throttled, not sent), after
    /// an attempt of this long (from sending; the rate limiter's wait before it excluded), or
    /// the call's time limit where the client's own waits cannot be told apart.
    #[error("{0}")]
    NotIssued(PcaError, Duration),
    /// The issue call failed after it may have reached the PCA: the outcome is unknown until
    /// recovery decides it.
    #[error("the issue call's outcome is unknown: {0}")]
    Unknown(PcaError),
    /// Looking for the certificate of an earlier attempt failed; the outcome is still unknown.
    #[error("looking for the certificate of an earlier attempt failed: {0}")]
    Recovery(PcaError),
    /// An earlier attempt may still be in flight, or recovery needs another pass.
    #[error("{message}")]
    Undecided {
        /// What is being waited for.
        message: String,
        /// When to look again.
        wait: Duration,
    },
    /// The request changed under us (another worker or replica): re-read and decide again.
    #[error("the request changed while it was being processed")]
    Conflict,
    /// This replica cannot prove it holds the leader lease: it must not send an issue call.
    #[error("this replica does not hold the leader lease")]
    NotLeader,
    /// A Kubernetes call failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
}

/// What an issuance attempt produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Obtained {
    /// The PCA id of this request's certificate (for CA certificates, the CA id).
    Id(String),
    /// The certificate of an earlier attempt, found by recovery with its export answer (no
    /// second export needed).
    Found {
        /// Its id.
        id: String,
        /// The PCA's export answer.
        exported: ExportedPem,
    },
    /// The request was deleted, replaced or finished elsewhere: nothing to do.
    Gone,
}

/// Gets the PCA id of the certificate for this request, issuing at most once.
pub async fn obtain(
    ctx: &Context,
    tracked: &mut Tracked,
    client: &PcaClient,
    request: &SignRequest<'_>,
) -> Result<Obtained, IssuanceError> {
    let uid = tracked.uid().to_owned();
    if let Some(id) = ctx.requests.issued_for(&uid) {
        return Ok(Obtained::Id(id));
    }
    // Two rounds at most: the first on the cache's view, the second after a conflict proved
    // that view stale.
    for round in 0..2 {
        if tracked.object().is_final() {
            return Ok(Obtained::Gone);
        }
        if let Some(id) = bound(tracked.object(), CERTIFICATE_ID_ANNOTATION, &uid) {
            return Ok(Obtained::Id(id.to_owned()));
        }
        if let Some((id, exported)) = resolve_earlier_attempt(ctx, tracked, client, request).await? {
            return Ok(Obtained::Found { id, exported });
        }
        match issue(ctx, tracked, client, request).await {
            Err(IssuanceError::Conflict) if round == 0 => match tracked.refresh().await? {
                Write::Written => continue,
                Write::Gone | Write::Conflict => return Ok(Obtained::Gone),
            },
            other => return other,
        }
    }
    Err(IssuanceError::Conflict)
}

/// Decides the outcome of an earlier attempt recorded on the request. `Ok(Some(..))`: its
/// certificate, exported; `Ok(None)`: nothing is recorded, or it certainly issued nothing.
async fn resolve_earlier_attempt(
    ctx: &Context,
    tracked: &mut Tracked,
    client: &PcaClient,
    request: &SignRequest<'_>,
) -> Result<Option<(String, ExportedPem)>, IssuanceError> {
    let uid = tracked.uid().to_owned();
    let intent = match recorded_intent(tracked.object(), &uid, legacy_grace(ctx)) {
        RecordedIntent::None => return Ok(None),
        RecordedIntent::Valid(i) => i,
        RecordedIntent::Malformed(value) => return Err(replace_malformed_intent(ctx, tracked, &value).await),
    };
    let now = jiff::Timestamp::now().as_millisecond();
    if request.kind.is_ca() {
        if now < intent.in_flight_until() {
            return Err(in_flight(&intent, now));
        }
        warn!(request = %tracked.name(), "the outcome of an earlier CA issue attempt is unknown and the PCA cannot list CA certificates; issuing again with the same CSR");
        ctx.metrics.unknown_outcome_reissue(request.kind.label());
        ctx.event(
            &tracked.object().object_ref(&()),
            EventType::Warning,
            reasons::REISSUED_AFTER_UNKNOWN_OUTCOME,
            "Issue",
            format!(
                "An earlier attempt to issue this CA certificate (started {}) ended without an answer, and the PCA does not list CA certificates issued from CSRs; issuing again with the same CSR. At most one unused certificate for the same key may exist at the PCA",
                super::rfc3339_ms(intent.start_ms)
            ),
        )
        .await;
        return Ok(None);
    }
    let target = Target {
        request,
        intent: intent.clone(),
        pass_time: ctx.config.recovery_pass_time,
        delivered: ctx.delivered.identities(),
        claimed: ctx.delivered.claimed_by_others(tracked.object()),
    };
    let mut checked = ctx.requests.checked_candidates(&uid);
    // What the search rules out is offered to our other requests while it goes on.
    let (strangers, mut ruled_out) = tokio::sync::mpsc::unbounded_channel();
    let finder = tracked.object().clone();
    let searching = async {
        // Dropped when the search ends, which ends the hand-over below.
        let strangers = strangers;
        recovery::search(client, &target, &mut checked, &strangers).await
    };
    let handing_over = async {
        while let Some(batch) = ruled_out.recv().await {
            handover::hand_over(ctx, &finder, batch).await;
        }
    };
    let (result, ()) = futures::join!(searching, handing_over);
    ctx.requests.set_checked_candidates(&uid, checked);
    match result.map_err(IssuanceError::Recovery)? {
        Search::Found { id, exported } => {
            info!(request = %tracked.name(), certificate_id = %id, "found the certificate of an earlier attempt; not issuing again");
            ctx.metrics.duplicate_avoided(reasons::RECOVERED);
            ctx.event(
                &tracked.object().object_ref(&()),
                EventType::Normal,
                reasons::RECOVERED,
                "Issue",
                format!("Found PCA certificate {id} issued by an earlier attempt whose outcome was unknown; not issuing again"),
            )
            .await;
            ctx.requests.remember_issued(&uid, &id);
            Ok(Some((id, exported)))
        }
        Search::NotIssued if now >= intent.in_flight_until() => {
            info!(request = %tracked.name(), "no certificate from the earlier attempt exists and it can no longer land; issuing again");
            Ok(None)
        }
        Search::NotIssued => Err(in_flight(&intent, now)),
        Search::Undecided { why, progress } => {
            // Progress is kept only once the attempt can no longer land: before that, its
            // certificate could still appear behind the position.
            if let (Some(searched), true) = (progress, now >= intent.in_flight_until()) {
                let kept = Intent {
                    searched: Some(searched),
                    ..intent
                };
                if let Write::Conflict | Write::Gone = tracked
                    .annotate(&[(INTENT_ANNOTATION, Some(kept.encode(&uid)))])
                    .await?
                {
                    return Err(IssuanceError::Conflict);
                }
            }
            Err(IssuanceError::Undecided {
                message: format!("Looking for the certificate of an earlier attempt whose outcome is unknown: {why}"),
                wait: Duration::from_secs(1),
            })
        }
    }
}

fn in_flight(intent: &Intent, now: i64) -> IssuanceError {
    let wait = u64::try_from(intent.in_flight_until().saturating_sub(now)).unwrap_or(0);
    IssuanceError::Undecided {
        message: format!(
            "An earlier issue attempt (deadline {}) has an unknown outcome and may still reach the PCA; looking for its certificate again when it cannot",
            super::rfc3339_ms(intent.deadline_ms)
        ),
        wait: Duration::from_millis(wait.max(1000)),
    }
}

/// An unreadable intent says an attempt may have happened, but not when: replace it with one
/// that starts at the request's creation (no attempt can be older) and whose deadline is a
/// full attempt from now, then decide it like any other.
async fn replace_malformed_intent(ctx: &Context, tracked: &mut Tracked, value: &str) -> IssuanceError {
    warn!(request = %tracked.name(), %value, "the issuance intent annotation is unreadable; treating it as an attempt of unknown time");
    let created = tracked
        .object()
        .meta()
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond())
        .unwrap_or_else(|| jiff::Timestamp::now().as_millisecond());
    let now = jiff::Timestamp::now().as_millisecond();
    let budget = attempt_budget(ctx);
    let replacement = Intent {
        start_ms: created.min(now),
        deadline_ms: Intent::new(now, budget).deadline_ms,
        searched: None,
    };
    match tracked
        .annotate(&[(INTENT_ANNOTATION, Some(replacement.encode(tracked.uid())))])
        .await
    {
        Ok(Write::Written) => in_flight(&replacement, now),
        Ok(_) => IssuanceError::Conflict,
        Err(e) => e.into(),
    }
}

/// Records the intent and calls the PCA once.
async fn issue(
    ctx: &Context,
    tracked: &mut Tracked,
    client: &PcaClient,
    request: &SignRequest<'_>,
) -> Result<Obtained, IssuanceError> {
    // Everything that may wait comes before the intent, so its deadline bounds the call alone.
    // Account discovery waits for the rate limiter and retries inside the client, where its
    // waits cannot be told apart from its calls: charged up to the call's time limit.
    client
        .domain_id()
        .await
        .map_err(|e| IssuanceError::NotIssued(e, ctx.config.pca_timeout))?;
    let turn = client.wait_for_turn().await;
    // The attempt's own time (intent write and call) is what a failure charges to the retry
    // budget; the wait for the turn above is not.
    let sent = tokio::time::Instant::now();
    if !ctx.fence.holds() {
        return Err(IssuanceError::NotLeader);
    }
    let start = jiff::Timestamp::now().as_millisecond();
    let intent = Intent::new(start, attempt_budget(ctx));
    let uid = tracked.uid().to_owned();
    match tracked
        .annotate(&[(INTENT_ANNOTATION, Some(intent.encode(&uid)))])
        .await?
    {
        Write::Written => {}
        Write::Conflict => {
            ctx.metrics.duplicate_avoided(reasons::INTENT_CONFLICT);
            return Err(IssuanceError::Conflict);
        }
        Write::Gone => return Ok(Obtained::Gone),
    }
    if !ctx.fence.holds() {
        // The intent stays: another replica treats this as an attempt of unknown outcome.
        return Err(IssuanceError::NotLeader);
    }
    let deadline = tokio::time::Instant::now() + remaining(intent.deadline_ms);
    let body = request.issue_body();
    let result = match tokio::time::timeout_at(deadline, client.issue_from_csr_once(turn, &body)).await {
        Ok(r) => r,
        Err(_) => Err(PcaError::Timeout {
            operation: crate::pca::Operation::CreateCertificateByCsr,
            endpoint: client.endpoint().to_string(),
            timeout: attempt_budget(ctx),
        }),
    };
    match result {
        Ok(issued) => {
            let id = issued.certificate_id;
            ctx.requests.remember_issued(&uid, &id);
            if request.kind.is_ca() {
                record_id(tracked, &id).await;
            }
            Ok(Obtained::Id(id))
        }
        Err(e) if e.is_ambiguous() => {
            warn!(request = %tracked.name(), error = %e, "issue outcome unknown; the next attempt looks for the certificate first");
            Err(IssuanceError::Unknown(e))
        }
        Err(e) => {
            // Certainly not issued: clear the intent so the next attempt need not search.
            if let Err(k) = tracked.annotate(&[(INTENT_ANNOTATION, None)]).await {
                warn!(request = %tracked.name(), error = %k, "could not clear the issuance intent");
            }
            Err(IssuanceError::NotIssued(e, sent.elapsed()))
        }
    }
}

/// How long the PCA may take to answer (lately, send to answer) before a leaf's id is recorded
/// while its export goes on. A PCA answers in well under this, so the write is spent only when
/// the answer is at risk for longer: a slow PCA (chaos run 6: 1–3 s a call, leaders killed
/// every 5–15 s). A rate limiter's wait does not count: a throttled backlog keeps its three
/// writes per request.
const RECORD_ID_ABOVE: Duration = Duration::from_millis(500);

/// Exports and verifies `id`, the certificate of this request. A leaf's id is not recorded
/// after its issue call (listing can find it, so the write is saved), but while the PCA is
/// slow it is recorded as the export goes on, so a replica that dies during the export leaves
/// the id rather than a search.
pub async fn export_keeping_id(
    tracked: &mut Tracked,
    client: &PcaClient,
    id: &str,
    request: &SignRequest<'_>,
) -> Result<Verified, SignError> {
    let exporting = signing::export_verified(client, id, request);
    let recorded = bound(tracked.object(), CERTIFICATE_ID_ANNOTATION, tracked.uid()) == Some(id);
    if recorded || client.recent_answer_time().is_none_or(|t| t <= RECORD_ID_ABOVE) {
        return exporting.await;
    }
    let (verified, ()) = futures::join!(exporting, record_id(tracked, id));
    verified
}

/// Records the certificate id on the request (a CA's cannot be found by listing: before
/// anything else).
async fn record_id(tracked: &mut Tracked, id: &str) {
    let value = bind(tracked.uid(), id);
    for _ in 0..3 {
        match tracked
            .annotate(&[(CERTIFICATE_ID_ANNOTATION, Some(value.clone()))])
            .await
        {
            Ok(Write::Written | Write::Gone) => return,
            Ok(Write::Conflict) => {
                if !matches!(tracked.refresh().await, Ok(Write::Written)) {
                    return;
                }
            }
            Err(e) => {
                // The in-memory copy covers this process; a restart searches (a leaf) or issues
                // again (a CA, documented).
                warn!(request = %tracked.name(), error = %e, "could not record the certificate id on the request");
                return;
            }
        }
    }
}

/// How long one issue call may take, from the intent to the answer.
fn attempt_budget(ctx: &Context) -> Duration {
    ctx.pca.request_timeout() + SEND_SLACK
}

/// The implicit deadline of intents written by earlier versions (one field, no deadline).
fn legacy_grace(ctx: &Context) -> Duration {
    ctx.pca.request_timeout() + Duration::from_secs(30)
}

fn remaining(deadline_ms: i64) -> Duration {
    let now = jiff::Timestamp::now().as_millisecond();
    Duration::from_millis(u64::try_from(deadline_ms.saturating_sub(now)).unwrap_or(0))
}
