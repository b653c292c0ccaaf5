//! Writing an outcome: the request's status (one conditional server-side apply), the retry
//! episode annotation, events on transitions and metrics.

use std::time::Duration;

use k8s_openapi::ByteString;
use kube::{
    Resource,
    runtime::{controller::Action, events::EventType},
};
use serde::Serialize;
use tracing::{info, warn};

use super::outcome::{Failure, Issued, Outcome, Pending, Waiting};
use crate::{
    cert_manager::{CertificateRequestCondition, INVALID_REQUEST, READY, reason},
    controller::{
        Context, Error,
        conditions::request_condition,
        issuance::intent::{RETRYING_SINCE_ANNOTATION, bound},
        now_rfc3339,
        tracked::{Tracked, Write},
    },
};

/// Re-check of requests waiting for something outside them, in case an event was missed.
const WAITING_RECHECK: Duration = Duration::from_secs(120);

/// What writing an outcome did.
#[derive(Debug)]
pub enum Written {
    /// Done; the controller's next step.
    Done(Action),
    /// The request changed since it was read: nothing was written; read it again and decide again.
    Conflict,
}

/// The status fields we own.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestStatus {
    conditions: Vec<CertificateRequestCondition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<ByteString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<ByteString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_time: Option<String>,
}

impl RequestStatus {
    fn ready(existing: &[CertificateRequestCondition], ready: bool, reason: &str, message: &str) -> Self {
        Self {
            conditions: vec![request_condition(
                existing,
                READY,
                Some(ready),
                reason,
                message.to_owned(),
            )],
            certificate: None,
            ca: None,
            failure_time: None,
        }
    }

    fn failed(existing: &[CertificateRequestCondition], reason: &str, failure: &Failure) -> Self {
        let mut status = Self::ready(existing, false, reason, &failure.message);
        if failure.invalid {
            status.conditions.push(request_condition(
                existing,
                INVALID_REQUEST,
                Some(true),
                failure.cause,
                failure.message.clone(),
            ));
        }
        status.failure_time = Some(now_rfc3339());
        status
    }

    fn issued(existing: &[CertificateRequestCondition], issued: &Issued) -> Self {
        let mut status = Self::ready(existing, true, reason::ISSUED, &issued.message);
        status.certificate = Some(ByteString(issued.certificate.clone().into_bytes()));
        status.ca = Some(ByteString(issued.ca.clone().into_bytes()));
        status
    }
}

/// Writes the outcome and publishes events on transitions.
pub async fn write(tracked: &mut Tracked, ctx: &Context, outcome: Outcome) -> Result<Written, Error> {
    let uid = tracked.uid().to_owned();
    match outcome {
        Outcome::Ignore(ignored) => {
            if ignored.is_finished() {
                ctx.requests.forget(&uid);
            }
            Ok(Written::Done(Action::await_change()))
        }
        Outcome::Later(after) => Ok(Written::Done(Action::requeue(after))),
        Outcome::Denied(why) => {
            let message = format!("The CertificateRequest was denied by an approver: {why}");
            let mut status = RequestStatus::ready(existing(tracked), false, reason::DENIED, &message);
            status.failure_time = Some(now_rfc3339());
            finish(tracked, ctx, status, EventType::Warning, reason::DENIED, message).await
        }
        Outcome::Pending(pending) => write_pending(tracked, ctx, pending).await,
        Outcome::Failed(failure) => {
            warn!(cause = failure.cause, message = %failure.message, "certificate request failed");
            let status = RequestStatus::failed(existing(tracked), reason::FAILED, &failure);
            finish(tracked, ctx, status, EventType::Warning, failure.cause, failure.message).await
        }
        Outcome::Issued(issued) => {
            let status = RequestStatus::issued(existing(tracked), &issued);
            let message = issued.message.clone();
            let done = finish(tracked, ctx, status, EventType::Normal, reason::ISSUED, message.clone()).await?;
            if matches!(done, Written::Done(_)) {
                info!(%message, "certificate issued");
                ctx.metrics.certificate_issued(issued.is_ca);
            }
            Ok(done)
        }
    }
}

fn existing(tracked: &Tracked) -> &[CertificateRequestCondition] {
    tracked
        .object()
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
}

/// A final status: written once, then the request is never touched again.
async fn finish(
    tracked: &mut Tracked,
    ctx: &Context,
    status: RequestStatus,
    type_: EventType,
    reason: &str,
    message: String,
) -> Result<Written, Error> {
    match apply(tracked, &status).await? {
        Write::Written => {
            ctx.requests.forget(tracked.uid());
            ctx.final_event(&tracked.object().object_ref(&()), type_, reason, "Sign", message)
                .await;
            Ok(Written::Done(Action::await_change()))
        }
        Write::Conflict => Ok(Written::Conflict),
        Write::Gone => {
            info!("request was deleted or replaced while being processed; nothing to write");
            ctx.requests.forget(tracked.uid());
            Ok(Written::Done(Action::await_change()))
        }
    }
}

async fn write_pending(tracked: &mut Tracked, ctx: &Context, pending: Pending) -> Result<Written, Error> {
    match record_episode(tracked, pending.waiting).await? {
        Write::Written => {}
        Write::Conflict => return Ok(Written::Conflict),
        Write::Gone => return Ok(Written::Done(Action::await_change())),
    }
    let requeue = Action::requeue(pending.requeue.unwrap_or(WAITING_RECHECK));
    let unchanged = tracked.object().condition(READY).is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(reason::PENDING)
            && c.message.as_deref() == Some(&pending.message)
    });
    if unchanged {
        return Ok(Written::Done(requeue));
    }
    let status = RequestStatus::ready(existing(tracked), false, reason::PENDING, &pending.message);
    match apply(tracked, &status).await? {
        Write::Written => {
            // The recorder folds repeats of the same event into a series.
            ctx.event(
                &tracked.object().object_ref(&()),
                EventType::Normal,
                pending.cause,
                "Sign",
                pending.message,
            )
            .await;
            Ok(Written::Done(requeue))
        }
        Write::Conflict => Ok(Written::Conflict),
        Write::Gone => Ok(Written::Done(Action::await_change())),
    }
}

/// Records the retry episode as of this error, or ends one when the request waits for
/// something outside it or recovery got answers.
async fn record_episode(tracked: &mut Tracked, waiting: Waiting) -> Result<Write, Error> {
    let value = match waiting {
        Waiting::Retrying(episode) => Some(episode.encode(tracked.uid())),
        // Waiting outside the request, or deciding an earlier attempt with answers from the PCA:
        // the run of transient errors is over.
        Waiting::External | Waiting::Unresolved
            if bound(tracked.object(), RETRYING_SINCE_ANNOTATION, tracked.uid()).is_some() =>
        {
            None
        }
        _ => return Ok(Write::Written),
    };
    Ok(tracked.annotate(&[(RETRYING_SINCE_ANNOTATION, value)]).await?)
}

async fn apply(tracked: &mut Tracked, status: &RequestStatus) -> Result<Write, Error> {
    let value = serde_json::to_value(status)?;
    Ok(tracked.apply_status(value).await?)
}
