//! Every cause and event reason the CertificateRequest controller reports, one spelling each.
//! The `Ready` condition's reason is always one of cert-manager's (`Pending`, `Failed`,
//! `Issued`, `Denied`, in `cert_manager::reason`); these name the cause in events, metrics and
//! the `InvalidRequest` condition. PCA causes come from `PcaError::reason`.

/// The request's issuer is not Ready (or stopped being usable mid-request).
pub const ISSUER_NOT_READY: &str = "IssuerNotReady";
/// The request's issuer does not exist.
pub const ISSUER_NOT_FOUND: &str = "IssuerNotFound";
/// The issuer could not be read from the API server.
pub const ISSUER_UNAVAILABLE: &str = "IssuerUnavailable";
/// The request itself is wrong (CSR, usages, duration, CA flags); also the `InvalidRequest`
/// condition's reason.
pub const INVALID_REQUEST: &str = "InvalidRequest";
/// The PCA's certificate is not what was asked for.
pub const CERTIFICATE_MISMATCH: &str = "CertificateMismatch";
/// An earlier issue attempt's outcome is being established.
pub const VERIFYING_EARLIER_ATTEMPT: &str = "VerifyingEarlierAttempt";
/// The issued certificate's validity was shortened (PCA limit, or the CA ends sooner).
pub const DURATION_CLAMPED: &str = "DurationClamped";
/// The PCA CA ends too soon to sign a certificate of at least an hour.
pub const CA_ENDS_TOO_SOON: &str = "CAEndsTooSoon";
/// The certificate of an attempt whose answer was lost was found; not issued again.
pub const RECOVERED: &str = "Recovered";
/// Another worker recorded its intent first (metrics only).
pub const INTENT_CONFLICT: &str = "IntentConflict";
/// A CA certificate was issued again after an attempt whose outcome cannot be established.
pub const REISSUED_AFTER_UNKNOWN_OUTCOME: &str = "ReissuedAfterUnknownOutcome";
/// The PCA throttled calls and the client lowered its rate (event on the issuer).
pub const PCA_RATE_LOWERED: &str = "PCARateLowered";
