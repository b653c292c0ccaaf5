//! Errors of the PCA client, classified for callers (pca-api.md §3): which answers mean "try
//! again", which mean "fix the credentials" (the whole issuer), and which refuse one request.

use std::{fmt, time::Duration};

use super::{
    error_body::ServiceError,
    scrub::{scrub, scrub_to},
};

/// A PCA, IAM or STS API operation, named as in the official SDKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// `GET /v1/private-certificate-authorities/{ca_id}`
    ShowCertificateAuthority,
    /// `POST /v1/private-certificate-authorities/{ca_id}/export`
    ExportCertificateAuthorityCertificate,
    /// `POST /v1/private-certificates/csr`
    CreateCertificateByCsr,
    /// `POST /v1/private-certificates/{certificate_id}/export`
    ExportCertificate,
    /// `GET /v1/private-certificates`
    ListCertificate,
    /// `GET /v1/private-certificates/quotas`
    ShowCertificateQuota,
    /// IAM `GET /v3/auth/domains`
    KeystoneListAuthDomains,
    /// STS `GET /v5/caller-identity`, when IAM lists no domain.
    GetCallerIdentity,
}

impl Operation {
    /// Every operation, for metrics pre-registration and docs.
    pub const ALL: [Operation; 8] = [
        Operation::ShowCertificateAuthority,
        Operation::ExportCertificateAuthorityCertificate,
        Operation::CreateCertificateByCsr,
        Operation::ExportCertificate,
        Operation::ListCertificate,
        Operation::ShowCertificateQuota,
        Operation::KeystoneListAuthDomains,
        Operation::GetCallerIdentity,
    ];

    /// SDK name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            Operation::ShowCertificateAuthority => "ShowCertificateAuthority",
            Operation::ExportCertificateAuthorityCertificate => "ExportCertificateAuthorityCertificate",
            Operation::CreateCertificateByCsr => "CreateCertificateByCsr",
            Operation::ExportCertificate => "ExportCertificate",
            Operation::ListCertificate => "ListCertificate",
            Operation::ShowCertificateQuota => "ShowCertificateQuota",
            Operation::KeystoneListAuthDomains => "KeystoneListAuthDomains",
            Operation::GetCallerIdentity => "GetCallerIdentity",
        }
    }

    /// Whether repeating the call cannot change anything at the service, so a retry after an
    /// ambiguous failure is safe. Issue-from-CSR has no idempotency token (pca-api.md §2.2).
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Operation::CreateCertificateByCsr)
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
    /// Throttling, server errors, time-outs, connection errors, incomplete answers: try again
    /// later.
    Retryable,
    /// The AK/SK, their permissions or the account were refused: fix the credentials. Affects
    /// every request of the issuer.
    Credentials,
    /// The request itself was refused (including a PCA state conflict): repeating it will not
    /// help, and it says nothing about the issuer's other requests.
    Permanent,
}

/// The error code of "CA or certificate does not exist" (an HTTP 400, pca-api.md §3.2).
pub const NOT_FOUND_CODE: &str = "PCA.10010002";
/// The gateway's throttling error code.
pub const THROTTLED_CODE: &str = "APIGW.0308";
/// The gateway's signature / AK error code.
pub const AUTH_FAILED_CODE: &str = "APIGW.0301";
/// Prefixes of the service's own error codes. A 403 with one of them is a refusal of this
/// operation in the current state (e.g. `PCA.10010071`, OCSP already in the requested state),
/// not of the credentials.
pub const SERVICE_CODE_PREFIXES: [&str; 2] = ["PCA.", "CCM."];

/// Reasons of [`PcaError::reason`], for conditions, events and metric labels.
pub mod reason {
    /// HTTP 429.
    pub const THROTTLED: &str = "PCAThrottled";
    /// HTTP 5xx.
    pub const SERVER_ERROR: &str = "PCAServerError";
    /// HTTP 401: the signature, AK/SK, account id or clock was refused.
    pub const AUTHENTICATION_FAILED: &str = "PCAAuthenticationFailed";
    /// HTTP 403 from the gateway or IAM (no PCA code, or an IAM policy denial): the credentials
    /// may not do this.
    pub const PERMISSION_DENIED: &str = "PCAPermissionDenied";
    /// HTTP 403 with a PCA code: refused in the current state of the CA or certificate.
    pub const STATE_CONFLICT: &str = "PCAStateConflict";
    /// HTTP 400 `PCA.10010002`.
    pub const NOT_FOUND: &str = "PCANotFound";
    /// Any other refusal.
    pub const REJECTED: &str = "PCARejected";
    /// No connection.
    pub const UNREACHABLE: &str = "PCAUnreachable";
    /// No answer in time.
    pub const TIMEOUT: &str = "PCATimeout";
    /// The connection broke.
    pub const CONNECTION_BROKEN: &str = "PCAConnectionBroken";
    /// A success answer that is not what the API documents (incomplete, wrong types, not JSON).
    pub const BAD_RESPONSE: &str = "PCABadResponse";
    /// Neither IAM nor STS told the account id.
    pub const DOMAIN_UNKNOWN: &str = "DomainIdUnknown";
    /// Our configuration is unusable.
    pub const INVALID_CONFIG: &str = "InvalidPCAConfig";
    /// An argument cannot be sent.
    pub const INVALID_REQUEST: &str = "InvalidPCARequest";
}

/// An error from a PCA, IAM or STS call. Every text in it went through [`scrub`] (built only by
/// the constructors below), so it may be shown in status, events, logs and metrics.
#[derive(Debug, thiserror::Error)]
pub enum PcaError {
    /// The service answered with an error status.
    #[error("{operation} failed: HTTP {status} {code}: {message} (request id {request_id}){}", authorization_note(.authorization_message.as_deref()))]
    Api {
        /// Operation.
        operation: Operation,
        /// HTTP status.
        status: u16,
        /// The body's error code, or `HTTP<status>` if it had none.
        code: String,
        /// The body's error message (with `details`), or its text.
        message: String,
        /// `X-Request-Id` (or the body's `request_id`), `unknown` if absent.
        request_id: String,
        /// `encoded_authorization_message`, if the body had one (not shown in the message:
        /// it is long and only IAM can decode it).
        authorization_message: Option<String>,
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
    /// The service answered success with a body we cannot use: not JSON, a field of the wrong
    /// type, or a field a decision depends on missing or `null` (the detail names it). The
    /// service may have acted, so this is ambiguous; the answer may be complete next time, so it
    /// is retryable.
    #[error("{operation} returned an unexpected response (HTTP {status}, request id {request_id}): {detail}")]
    Decode {
        /// Operation.
        operation: Operation,
        /// HTTP status.
        status: u16,
        /// `X-Request-Id`.
        request_id: String,
        /// What was wrong, naming the field.
        detail: String,
    },
    /// IAM listed no account for the credentials and STS could not tell it either.
    #[error("cannot find the account (domain) id of these credentials: {0}")]
    DomainUnknown(String),
    /// Our own configuration is unusable (bad endpoint, bad CA bundle, ...).
    #[error("invalid PCA client configuration: {0}")]
    Config(String),
    /// An argument cannot be sent (e.g. an id that is not UUID-shaped).
    #[error("invalid PCA request: {0}")]
    Invalid(String),
}

/// Longest `encoded_authorization_message` kept.
const MAX_AUTHORIZATION_MESSAGE: usize = 4096;
/// Longest error code kept (the API documents 3..36 characters).
const MAX_CODE: usize = 64;
/// Longest request id kept.
const MAX_REQUEST_ID: usize = 64;
/// Longest endpoint shown.
const MAX_ENDPOINT: usize = 200;

impl PcaError {
    /// An error answer: the body is read as the SDKs read it ([`ServiceError`]), every text
    /// scrubbed and bounded.
    pub fn from_answer(operation: Operation, status: u16, body: &[u8], request_id: &str) -> Self {
        let parsed = ServiceError::parse(body);
        let code = parsed
            .code
            .as_deref()
            .map(|c| scrub_to(c, MAX_CODE))
            .unwrap_or_else(|| format!("HTTP{status}"));
        let mut message = match parsed.message.as_deref().filter(|m| !m.trim().is_empty()) {
            Some(m) => m.trim().to_owned(),
            None => body_text(status, body),
        };
        let details: Vec<String> = parsed
            .details
            .iter()
            .filter_map(|d| match (&d.code, &d.message) {
                (Some(c), Some(m)) => Some(format!("{c}: {m}")),
                (None, Some(m)) => Some(m.clone()),
                _ => None,
            })
            .collect();
        if !details.is_empty() {
            message = format!("{message} (details: {})", details.join("; "));
        }
        let authorization_message = parsed.encoded_authorization_message.filter(|m| !m.is_empty()).map(|m| {
            m.chars()
                .filter(|c| !c.is_control())
                .take(MAX_AUTHORIZATION_MESSAGE)
                .collect()
        });
        PcaError::Api {
            operation,
            status,
            code,
            message: scrub(&message),
            request_id: request_id_text(Some(request_id)),
            authorization_message,
        }
    }

    /// A success answer we cannot use; `detail` should name the field.
    pub fn decode(operation: Operation, status: u16, request_id: &str, detail: &str) -> Self {
        PcaError::Decode {
            operation,
            status,
            request_id: request_id_text(Some(request_id)),
            detail: scrub(detail),
        }
    }

    /// No connection could be made.
    pub fn connect(operation: Operation, endpoint: &str, detail: &str) -> Self {
        PcaError::Connect {
            operation,
            endpoint: scrub_to(endpoint, MAX_ENDPOINT),
            detail: scrub(detail),
        }
    }

    /// No answer in time.
    pub fn timeout(operation: Operation, endpoint: &str, timeout: Duration) -> Self {
        PcaError::Timeout {
            operation,
            endpoint: scrub_to(endpoint, MAX_ENDPOINT),
            timeout,
        }
    }

    /// The connection broke.
    pub fn transport(operation: Operation, endpoint: &str, detail: &str) -> Self {
        PcaError::Transport {
            operation,
            endpoint: scrub_to(endpoint, MAX_ENDPOINT),
            detail: scrub(detail),
        }
    }

    /// Neither IAM nor STS told the account id.
    pub fn domain_unknown(detail: &str) -> Self {
        PcaError::DomainUnknown(scrub(detail))
    }

    /// Unusable configuration.
    pub fn config(detail: &str) -> Self {
        PcaError::Config(scrub(detail))
    }

    /// An argument that cannot be sent.
    pub fn invalid(detail: &str) -> Self {
        PcaError::Invalid(scrub(detail))
    }

    /// How to react.
    pub fn class(&self) -> ErrorClass {
        match self {
            PcaError::Api {
                status,
                code,
                authorization_message,
                ..
            } => match status {
                429 | 500..=599 => ErrorClass::Retryable,
                401 => ErrorClass::Credentials,
                403 if is_service_code(code) && authorization_message.is_none() => ErrorClass::Permanent,
                403 => ErrorClass::Credentials,
                _ => ErrorClass::Permanent,
            },
            PcaError::Connect { .. }
            | PcaError::Timeout { .. }
            | PcaError::Transport { .. }
            | PcaError::Decode { .. } => ErrorClass::Retryable,
            PcaError::DomainUnknown(_) => ErrorClass::Credentials,
            PcaError::Config(_) | PcaError::Invalid(_) => ErrorClass::Permanent,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// Whether the credentials (or their permissions) were refused: the issuer as a whole
    /// cannot work.
    pub fn is_credentials(&self) -> bool {
        self.class() == ErrorClass::Credentials
    }

    /// Whether the service may have acted on the request even though we saw an error: time-outs,
    /// broken connections, 5xx and unusable success bodies. A non-idempotent call must not be
    /// repeated blindly after such an error.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            PcaError::Timeout { .. } | PcaError::Transport { .. } | PcaError::Decode { .. } => true,
            // A redirect to a POST comes from something between us and the service (or a
            // broken one): whether the service acted is not known.
            PcaError::Api { status, .. } => *status >= 500 || (300..400).contains(status),
            PcaError::Connect { .. } | PcaError::DomainUnknown(_) | PcaError::Config(_) | PcaError::Invalid(_) => false,
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

    /// IAM's encoded explanation of a policy denial, if the answer had one.
    pub fn authorization_message(&self) -> Option<&str> {
        match self {
            PcaError::Api {
                authorization_message, ..
            } => authorization_message.as_deref(),
            _ => None,
        }
    }

    /// A stable, CamelCase reason for conditions, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            PcaError::Api { status: 429, .. } => reason::THROTTLED,
            PcaError::Api { status, .. } if *status >= 500 => reason::SERVER_ERROR,
            PcaError::Api { status: 401, .. } => reason::AUTHENTICATION_FAILED,
            PcaError::Api { status: 403, .. } if self.is_credentials() => reason::PERMISSION_DENIED,
            PcaError::Api { status: 403, .. } => reason::STATE_CONFLICT,
            PcaError::Api { .. } if self.is_not_found() => reason::NOT_FOUND,
            PcaError::Api { .. } => reason::REJECTED,
            PcaError::Connect { .. } => reason::UNREACHABLE,
            PcaError::Timeout { .. } => reason::TIMEOUT,
            PcaError::Transport { .. } => reason::CONNECTION_BROKEN,
            PcaError::Decode { .. } => reason::BAD_RESPONSE,
            PcaError::DomainUnknown(_) => reason::DOMAIN_UNKNOWN,
            PcaError::Config(_) => reason::INVALID_CONFIG,
            PcaError::Invalid(_) => reason::INVALID_REQUEST,
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
            PcaError::DomainUnknown(_) | PcaError::Config(_) | PcaError::Invalid(_) => None,
        }
    }
}

fn authorization_note(message: Option<&str>) -> &'static str {
    match message {
        Some(_) => {
            "; the answer carries an encoded authorization message: decode it with IAM to see which permission is missing"
        }
        None => "",
    }
}

/// Whether `code` is one of the service's own codes (not the gateway's or IAM's).
fn is_service_code(code: &str) -> bool {
    SERVICE_CODE_PREFIXES.iter().any(|p| code.starts_with(p))
}

/// The body as the message when it has no error pair (as the SDKs do), or the status text.
fn body_text(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("")
            .to_owned()
    } else {
        text.trim().to_owned()
    }
}

/// A request id as received, if it looks like one (`[A-Za-z0-9._:-]`, at most 64 characters);
/// `unknown` when absent, `malformed` otherwise (never the text itself).
pub fn request_id_text(raw: Option<&str>) -> String {
    match raw.map(str::trim) {
        None | Some("") | Some("unknown") => "unknown".into(),
        Some(id)
            if id.len() <= MAX_REQUEST_ID
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')) =>
        {
            id.to_owned()
        }
        Some(_) => "malformed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> PcaError {
        PcaError::from_answer(Operation::CreateCertificateByCsr, status, body.as_bytes(), "rid-1")
    }

    fn api(status: u16, code: &str) -> PcaError {
        answer(status, &format!(r#"{{"error_code":"{code}","error_msg":"text"}}"#))
    }

    #[test]
    fn classification_follows_the_documented_codes() {
        assert_eq!(api(429, THROTTLED_CODE).class(), ErrorClass::Retryable);
        assert_eq!(api(500, "PCA.1").class(), ErrorClass::Retryable);
        assert_eq!(api(503, "APIGW.0101").class(), ErrorClass::Retryable);
        assert_eq!(api(401, AUTH_FAILED_CODE).class(), ErrorClass::Credentials);
        assert_eq!(api(400, "PCA.00020102").class(), ErrorClass::Permanent);
        assert!(api(400, NOT_FOUND_CODE).is_not_found());
        assert_eq!(api(400, NOT_FOUND_CODE).reason(), reason::NOT_FOUND);
    }

    #[test]
    fn forbidden_is_classified_by_code() {
        // A PCA code on 403 refuses this operation in the current state (e.g. OCSP already
        // switched): permanent for the request, nothing wrong with the credentials.
        for code in ["PCA.10010071", "PCA.10010072", "CCM.0001"] {
            let e = api(403, code);
            assert_eq!(e.class(), ErrorClass::Permanent, "{code}");
            assert!(!e.is_credentials() && !e.is_retryable(), "{code}");
            assert_eq!(e.reason(), reason::STATE_CONFLICT, "{code}");
        }
        // The gateway, IAM, a body without a code, or a policy denial: the credentials may not.
        for e in [
            api(403, "APIGW.0302"),
            api(403, "APIG.0401"),
            api(403, "IAM.0003"),
            answer(403, ""),
            answer(
                403,
                r#"{"error":{"code":403,"message":"You are not authorized to perform the requested action.","title":"Forbidden"}}"#,
            ),
            answer(
                403,
                r#"{"error_code":"PCA.10010001","error_msg":"Policy doesn't allow pca:cert:issue to be performed.","encoded_authorization_message":"ZW5j"}"#,
            ),
        ] {
            assert_eq!(e.class(), ErrorClass::Credentials, "{e}");
            assert_eq!(e.reason(), reason::PERMISSION_DENIED, "{e}");
        }
        assert_eq!(api(401, AUTH_FAILED_CODE).reason(), reason::AUTHENTICATION_FAILED);
    }

    #[test]
    fn every_error_body_shape_gives_code_and_message() {
        for (body, code, message) in [
            (r#"{"error_code":"PCA.1","error_msg":"one"}"#, "PCA.1", "one"),
            (r#"{"errorCode":"PCA.2","errorMsg":"two"}"#, "PCA.2", "two"),
            (r#"{"code":"PCA.3","message":"three"}"#, "PCA.3", "three"),
            (r#"{"error":{"code":"IAM.4","message":"four"}}"#, "IAM.4", "four"),
            (
                r#"{"error":{"code":401,"message":"five","title":"Unauthorized"}}"#,
                "401",
                "five",
            ),
            ("<html>bad gateway</html>", "HTTP502", "<html>bad gateway</html>"),
            ("", "HTTP502", "Bad Gateway"),
            (r#"{"unexpected":true}"#, "HTTP502", r#"{"unexpected":true}"#),
        ] {
            let e = answer(502, body);
            assert_eq!(e.code(), Some(code), "{body}");
            let PcaError::Api { message: m, .. } = &e else {
                panic!("not an API error: {e:?}");
            };
            assert_eq!(m, message, "{body}");
        }
        let e = answer(
            400,
            r#"{"error_code":"PCA.00020001","error_msg":"Incorrect parameter","details":[{"error_code":"PCA.00020110","error_msg":"bad domain"}]}"#,
        );
        assert!(e.to_string().contains("(details: PCA.00020110: bad domain)"), "{e}");
        let e = answer(
            403,
            r#"{"error_msg":"denied","error_code":"PCA.10010001","encoded_authorization_message":"ZW5jb2RlZA=="}"#,
        );
        assert_eq!(e.authorization_message(), Some("ZW5jb2RlZA=="));
        assert!(!e.to_string().contains("ZW5jb2RlZA"), "kept out of the message: {e}");
        assert!(e.to_string().contains("encoded authorization message"), "{e}");
    }

    const TOKEN: &str = "gQpjbi1ub3J0aC00jHt9b4Bc9xQ2EVSGcW+7q/fZSEUuNdfKH8Yw1b0dsyO0Hg==";

    #[test]
    fn every_constructor_scrubs_and_bounds() {
        let hostile = format!(
            "verify aksk signature fail, canonicalRequest:GET|/v1/x||host:h|x-security-token:{TOKEN}||host;x-security-token|{}{}",
            "ab".repeat(40),
            "z".repeat(100_000)
        );
        let body = serde_json::json!({"error_code": format!("APIGW.0301{TOKEN}"), "error_msg": hostile}).to_string();
        let errors = [
            PcaError::from_answer(Operation::ShowCertificateAuthority, 401, body.as_bytes(), "r"),
            PcaError::from_answer(Operation::ShowCertificateAuthority, 401, hostile.as_bytes(), &hostile),
            PcaError::decode(Operation::ListCertificate, 200, &hostile, &hostile),
            PcaError::connect(Operation::ListCertificate, &hostile, &hostile),
            PcaError::transport(Operation::ListCertificate, &hostile, &hostile),
            PcaError::timeout(Operation::ListCertificate, &hostile, Duration::from_secs(1)),
            PcaError::domain_unknown(&hostile),
            PcaError::config(&hostile),
            PcaError::invalid(&hostile),
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.contains(TOKEN) && !text.contains("jHt9b4Bc9xQ2"), "{text}");
            assert!(!text.contains("x-security-token:"), "{text}");
            assert!(text.chars().count() < 1600, "{} characters: {e:?}", text.len());
        }
    }

    #[test]
    fn request_ids_are_checked() {
        assert_eq!(
            request_id_text(Some("0a1b2c3d4e5f60718293a4b5c6d7e8f9")),
            "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
        );
        assert_eq!(request_id_text(None), "unknown");
        assert_eq!(request_id_text(Some(&"a".repeat(65))), "malformed");
        assert_eq!(request_id_text(Some("x-security-token: abc")), "malformed");
    }

    #[test]
    fn ambiguity_is_what_may_have_been_processed() {
        assert!(!api(429, THROTTLED_CODE).is_ambiguous());
        assert!(!api(400, "PCA.00020001").is_ambiguous());
        assert!(api(502, "x").is_ambiguous());
        assert!(
            api(302, "HTTP302").is_ambiguous(),
            "a redirect to a POST: unknown whether it landed"
        );
        assert!(
            !api(302, "HTTP302").is_retryable(),
            "but no reason to expect another answer"
        );
        let timeout = PcaError::timeout(Operation::CreateCertificateByCsr, "https://e", Duration::from_secs(1));
        assert!(timeout.is_ambiguous() && timeout.is_retryable());
        let connect = PcaError::connect(Operation::CreateCertificateByCsr, "https://e", "refused");
        assert!(!connect.is_ambiguous() && connect.is_retryable());
        let incomplete = PcaError::decode(Operation::ListCertificate, 200, "r", "missing field `total`");
        assert!(incomplete.is_ambiguous() && incomplete.is_retryable());
        assert_eq!(incomplete.reason(), reason::BAD_RESPONSE);
    }

    #[test]
    fn message_names_code_text_and_request_id() {
        let msg = api(400, "PCA.00020109").to_string();
        assert_eq!(
            msg,
            "CreateCertificateByCsr failed: HTTP 400 PCA.00020109: text (request id rid-1)"
        );
    }

    #[test]
    fn only_issue_is_not_idempotent() {
        for op in Operation::ALL {
            assert_eq!(op.is_idempotent(), op != Operation::CreateCertificateByCsr, "{op}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, max_shrink_time: 10_000, ..ProptestConfig::default() })]

            #[test]
            fn any_error_body_gives_a_bounded_error(
                status in 400u16..600,
                body in prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..2048),
                    "\\PC{0,2000}".prop_map(String::into_bytes),
                    ("[A-Za-z.0-9]{0,80}", "\\PC{0,2000}").prop_map(|(c, m)| serde_json::json!({"error": {"code": c, "message": m}}).to_string().into_bytes()),
                ],
                request_id in "\\PC{0,100}",
            ) {
                let e = PcaError::from_answer(Operation::ListCertificate, status, &body, &request_id);
                prop_assert!(e.to_string().chars().count() < MAX_TEXT_BOUND);
                prop_assert!(e.code().is_some());
            }
        }

        /// Operation, status, code (64), message (512), request id (64) and fixed text.
        const MAX_TEXT_BOUND: usize = 900;
    }
}
