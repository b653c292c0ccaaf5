//! What a reconciliation concludes about a request, before it is written.

use std::time::Duration;

/// Why a request is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Another issuer's request.
    NotOurs,
    /// Already Issued, Failed or Denied: never signed again.
    Final,
    /// Not approved yet; approval is a status change that brings it back.
    Unapproved,
    /// Deleted, or replaced by another request with the same name.
    Gone,
}

impl Ignored {
    /// Metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Ignored::NotOurs => "ignored",
            Ignored::Final => "final",
            Ignored::Unapproved => "unapproved",
            Ignored::Gone => "gone",
        }
    }

    /// Whether per-request memory can be dropped.
    pub fn is_finished(self) -> bool {
        matches!(self, Ignored::Final | Ignored::Gone)
    }
}

/// How a pending request counts against `--max-retry-duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Waiting for something outside the request (its issuer, a CA): no retry clock runs, and
    /// a running episode ends.
    External,
    /// A transient error: retried with back-off within an episode recorded on the request.
    Retrying(super::retry::Episode),
    /// An earlier attempt's outcome is being decided (the PCA answered, or the attempt may
    /// still land): looked at again after a fixed wait, never failed by a timer; a running
    /// episode ends.
    Unresolved,
}

/// A request that is not done yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Stable CamelCase cause (events, metrics), from `reasons` or `PcaError::reason`.
    pub cause: &'static str,
    /// Message of the Ready condition. Stable for a cause, so retries do not rewrite status.
    pub message: String,
    /// When to look again (`None`: on a change of the request or its issuer, plus a slow
    /// safety re-check).
    pub requeue: Option<Duration>,
    /// How it counts against the retry budget.
    pub waiting: Waiting,
}

/// A request that failed for good.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Stable CamelCase cause.
    pub cause: &'static str,
    /// Message of the Ready condition.
    pub message: String,
    /// Also set `InvalidRequest=True` (the request itself is wrong).
    pub invalid: bool,
}

/// A signed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    /// Leaf + intermediates, PEM.
    pub certificate: String,
    /// Root, PEM.
    pub ca: String,
    /// Message of the Ready condition.
    pub message: String,
    /// A CA certificate (metrics).
    pub is_ca: bool,
}

/// What a request should become.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to write.
    Ignore(Ignored),
    /// Nothing to write; look again later (this replica may not act now).
    Later(Duration),
    /// Denied by an approver (the approver's message).
    Denied(String),
    /// Not yet.
    Pending(Pending),
    /// Terminal failure.
    Failed(Failure),
    /// Signed.
    Issued(Issued),
}

impl Outcome {
    /// Metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ignore(i) => i.label(),
            Outcome::Later(_) => "later",
            Outcome::Denied(_) => "denied",
            Outcome::Pending(_) => "pending",
            Outcome::Failed(_) => "failed",
            Outcome::Issued(_) => "issued",
        }
    }

    /// Waiting for something outside the request.
    pub fn waiting(cause: &'static str, message: String, requeue: Option<Duration>) -> Outcome {
        Outcome::Pending(Pending {
            cause,
            message,
            requeue,
            waiting: Waiting::External,
        })
    }

    /// Pending until an earlier attempt's outcome is decided.
    pub fn unresolved(cause: &'static str, message: String, requeue: Duration) -> Outcome {
        Outcome::Pending(Pending {
            cause,
            message,
            requeue: Some(requeue),
            waiting: Waiting::Unresolved,
        })
    }

    /// A terminal failure that is not the request's fault.
    pub fn failed(cause: &'static str, message: String) -> Outcome {
        Outcome::Failed(Failure {
            cause,
            message,
            invalid: false,
        })
    }

    /// The request itself is wrong.
    pub fn invalid(message: String) -> Outcome {
        Outcome::Failed(Failure {
            cause: super::reasons::INVALID_REQUEST,
            message,
            invalid: true,
        })
    }
}

/// An early end of the signing pipeline: the outcome to write instead of a certificate, or a
/// Kubernetes error for the error policy.
#[derive(Debug)]
pub enum Halt {
    /// Write this instead.
    Outcome(Outcome),
    /// A Kubernetes call failed.
    Kube(kube::Error),
}

impl From<Outcome> for Halt {
    fn from(o: Outcome) -> Self {
        Halt::Outcome(o)
    }
}

impl From<kube::Error> for Halt {
    fn from(e: kube::Error) -> Self {
        Halt::Kube(e)
    }
}
