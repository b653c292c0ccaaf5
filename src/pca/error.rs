//! Errors of the PCA client, classified for callers (pca-api.md §3).

use std::{fmt, time::Duration};

/// A PCA (or IAM) API operation, named as in the official SDKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `GET /v1/private-certificate-authorities/{ca_id}`
    ShowCertificateAuthority,
    /// `GET /v1/private-certificate-authorities`
    ListCertificateAuthority,
    /// `POST /v1/private-certificate-authorities/{ca_id}/export`
    ExportCertificateAuthorityCertificate,
    /// `GET /v1/private-certificate-authorities/quotas`
    ShowCertificateAuthorityQuota,
    /// `POST /v1/private-certificates/csr`
    CreateCertificateByCsr,
    /// `POST /v1/private-certificates/{certificate_id}/export`
    ExportCertificate,
    /// `GET /v1/private-certificates/{certificate_id}`
    ShowCertificate,
    /// `GET /v1/private-certificates`
    ListCertificate,
    /// `POST /v1/private-certificates/{certificate_id}/revoke`
    RevokeCertificate,
    /// `GET /v1/private-certificates/quotas`
    ShowCertificateQuota,
    /// IAM `GET /v3/auth/domains`
    KeystoneListAuthDomains,
}

impl Operation {
    /// Every operation, for metrics pre-registration and docs.
    pub const ALL: [Operation; 11] = [
        Operation::ShowCertificateAuthority,
        Operation::ListCertificateAuthority,
        Operation::ExportCertificateAuthorityCertificate,
        Operation::ShowCertificateAuthorityQuota,
        Operation::CreateCertificateByCsr,
        Operation::ExportCertificate,
        Operation::ShowCertificate,
        Operation::ListCertificate,
        Operation::RevokeCertificate,
        Operation::ShowCertificateQuota,
        Operation::KeystoneListAuthDomains,
    ];

    /// SDK name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            Operation::ShowCertificateAuthority => "ShowCertificateAuthority",
            Operation::ListCertificateAuthority => "ListCertificateAuthority",
            Operation::ExportCertificateAuthorityCertificate => "ExportCertificateAuthorityCertificate",
            Operation::ShowCertificateAuthorityQuota => "ShowCertificateAuthorityQuota",
            Operation::CreateCertificateByCsr => "CreateCertificateByCsr",
            Operation::ExportCertificate => "ExportCertificate",
            Operation::ShowCertificate => "ShowCertificate",
            Operation::ListCertificate => "ListCertificate",
            Operation::RevokeCertificate => "RevokeCertificate",
            Operation::ShowCertificateQuota => "ShowCertificateQuota",
            Operation::KeystoneListAuthDomains => "KeystoneListAuthDomains",
        }
    }

    /// Whether repeating the call cannot change anything at the service, so a retry after an
    /// ambiguous failure is safe. Issue-from-CSR has no idempotency token (pca-api.md §2.2), and
    /// a repeated revoke may answer an error for an already-revoked certificate.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Operation::CreateCertificateByCsr | Operation::RevokeCertificate)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a caller should react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, server errors, time-outs, connection errors: try again later.
    Retryable,
    /// The AK/SK (or their permissions) were refused: fix the credentials.
    Credentials,
    /// The request itself was refused: repeating it will not help.
    Permanent,
}

/// The error code of "CA or certificate does not exist" (an HTTP 400, pca-api.md §3.2).
pub const NOT_FOUND_CODE: &str = "PCA.10010002";
/// The gateway's throttling error code.
pub const THROTTLED_CODE: &str = "APIGW.0308";
/// The gateway's signature / AK error code.
pub const AUTH_FAILED_CODE: &str = "APIGW.0301";

/// An error from a PCA or IAM call. Messages name the operation, the service's code and text and
/// the request id, and never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum PcaError {
    /// The service answered with an error status.
    #[error("{operation} failed: HTTP {status} {code}: {message} (request id {request_id})")]
    Api {
        /// Operation.
        operation: Operation,
        /// HTTP status.
        status: u16,
        /// `error_code`, or `HTTP<status>` if the body had none.
        code: String,
        /// `error_msg`.
        message: String,
        /// `X-Request-Id` (or the body's `request_id`), `unknown` if absent.
        request_id: String,
    },
    /// Nothing was sent: the connection (TCP, TLS, proxy) could not be set up.
    #[error("{operation} failed: cannot connect to {endpoint}: {detail}")]
    Connect {
        /// Operation.
        operation: Operation,
        /// Base URL.
        endpoint: String,
        /// Cause.
        detail: String,
    },
    /// The request may have reached the service, but no answer came in time.
    #[error("{operation} failed: no answer from {endpoint} within {timeout:?} (request id unknown)")]
    Timeout {
        /// Operation.
        operation: Operation,
        /// Base URL.
        endpoint: String,
        /// The request timeout.
        timeout: Duration,
    },
    /// The connection broke after the request may have been sent.
    #[error("{operation} failed: connection to {endpoint} broke: {detail} (request id unknown)")]
    Transport {
        /// Operation.
        operation: Operation,
        /// Base URL.
        endpoint: String,
        /// Cause.
        detail: String,
    },
    /// The service answered success with a body we cannot understand.
    #[error("{operation} returned an unexpected response (HTTP {status}, request id {request_id}): {detail}")]
    Decode {
        /// Operation.
        operation: Operation,
        /// HTTP status.
        status: u16,
        /// `X-Request-Id`.
        request_id: String,
        /// What was wrong.
        detail: String,
    },
    /// Our own configuration is unusable (bad endpoint, bad CA bundle, ...).
    #[error("invalid PCA client configuration: {0}")]
    Config(String),
    /// An argument cannot be sent (e.g. an id that is not UUID-shaped).
    #[error("invalid PCA request: {0}")]
    Invalid(String),
}

impl PcaError {
    /// How to react.
    pub fn class(&self) -> ErrorClass {
        match self {
            PcaError::Api { status, .. } => match status {
                429 | 500..=599 => ErrorClass::Retryable,
                401 | 403 => ErrorClass::Credentials,
                _ => ErrorClass::Permanent,
            },
            PcaError::Connect { .. }
            | PcaError::Timeout { .. }
            | PcaError::Transport { .. }
            | PcaError::Decode { .. } => ErrorClass::Retryable,
            PcaError::Config(_) | PcaError::Invalid(_) => ErrorClass::Permanent,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// Whether the credentials were refused.
    pub fn is_credentials(&self) -> bool {
        self.class() == ErrorClass::Credentials
    }

    /// Whether the service may have acted on the request even though we saw an error: time-outs,
    /// broken connections, 5xx and undecodable success bodies. A non-idempotent call must not be
    /// repeated blindly after such an error.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            PcaError::Timeout { .. } | PcaError::Transport { .. } | PcaError::Decode { .. } => true,
            PcaError::Api { status, .. } => *status >= 500,
            PcaError::Connect { .. } | PcaError::Config(_) | PcaError::Invalid(_) => false,
        }
    }

    /// Whether the service said the CA or certificate does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PcaError::Api { code, .. } if code == NOT_FOUND_CODE)
    }

    /// The service's error code, if it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            PcaError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A stable, CamelCase reason for conditions, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            PcaError::Api { status: 429, .. } => "PCAThrottled",
            PcaError::Api { status, .. } if *status >= 500 => "PCAServerError",
            PcaError::Api { status: 401 | 403, .. } => "PCAAuthenticationFailed",
            PcaError::Api { .. } if self.is_not_found() => "PCANotFound",
            PcaError::Api { .. } => "PCARejected",
            PcaError::Connect { .. } => "PCAUnreachable",
            PcaError::Timeout { .. } => "PCATimeout",
            PcaError::Transport { .. } => "PCAConnectionBroken",
            PcaError::Decode { .. } => "PCABadResponse",
            PcaError::Config(_) => "InvalidPCAConfig",
            PcaError::Invalid(_) => "InvalidPCARequest",
        }
    }

    /// The operation the error belongs to, if any.
    pub fn operation(&self) -> Option<Operation> {
        match self {
            PcaError::Api { operation, .. }
            | PcaError::Connect { operation, .. }
            | PcaError::Timeout { operation, .. }
            | PcaError::Transport { operation, .. }
            | PcaError::Decode { operation, .. } => Some(*operation),
            PcaError::Config(_) | PcaError::Invalid(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> PcaError {
        PcaError::Api {
            operation: Operation::CreateCertificateByCsr,
            status,
            code: code.into(),
            message: "text".into(),
            request_id: "rid-1".into(),
        }
    }

    #[test]
    fn classification_follows_the_documented_codes() {
        assert_eq!(api(429, THROTTLED_CODE).class(), ErrorClass::Retryable);
        assert_eq!(api(500, "PCA.1").class(), ErrorClass::Retryable);
        assert_eq!(api(503, "APIGW.0101").class(), ErrorClass::Retryable);
        assert_eq!(api(401, AUTH_FAILED_CODE).class(), ErrorClass::Credentials);
        assert_eq!(api(403, "PCA.10010071").class(), ErrorClass::Credentials);
        assert_eq!(api(400, "PCA.00020102").class(), ErrorClass::Permanent);
        assert!(api(400, NOT_FOUND_CODE).is_not_found());
        assert_eq!(api(400, NOT_FOUND_CODE).reason(), "PCANotFound");
    }

    #[test]
    fn ambiguity_is_what_may_have_been_processed() {
        assert!(!api(429, THROTTLED_CODE).is_ambiguous());
        assert!(!api(400, "PCA.00020001").is_ambiguous());
        assert!(api(502, "x").is_ambiguous());
        let timeout = PcaError::Timeout {
            operation: Operation::CreateCertificateByCsr,
            endpoint: "https://e".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(timeout.is_ambiguous() && timeout.is_retryable());
        let connect = PcaError::Connect {
            operation: Operation::CreateCertificateByCsr,
            endpoint: "https://e".into(),
            detail: "refused".into(),
        };
        assert!(!connect.is_ambiguous() && connect.is_retryable());
    }

    #[test]
    fn message_names_code_text_and_request_id() {
        let msg = api(400, "PCA.00020109").to_string();
        assert!(
            msg.contains("PCA.00020109") && msg.contains("text") && msg.contains("rid-1"),
            "{msg}"
        );
        assert!(msg.contains("CreateCertificateByCsr"));
    }

    #[test]
    fn only_issue_and_revoke_are_not_idempotent() {
        for op in Operation::ALL {
            let expected = !matches!(op, Operation::CreateCertificateByCsr | Operation::RevokeCertificate);
            assert_eq!(op.is_idempotent(), expected, "{op}");
        }
    }
}
