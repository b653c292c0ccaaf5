//! Every reason the issuer controller reports, one spelling each: the `Ready` condition's
//! reasons (with [`crate::pca::error::reason`]'s for failed PCA calls), the `CAExpiringSoon`
//! condition, and event reasons. The README's troubleshooting table lists exactly
//! [`READY_REASONS`] (a test checks it).

use crate::pca::error::reason as pca;

/// Ready: the CA can issue.
pub const VERIFIED: &str = "Verified";
/// The Secret does not exist.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
/// A CCMIssuer named a Secret in another namespace.
pub const SECRET_NAMESPACE_NOT_ALLOWED: &str = "SecretNamespaceNotAllowed";
/// The controller may not read Secrets in that namespace.
pub const SECRET_FORBIDDEN: &str = "SecretForbidden";
/// The Secret could not be read (API trouble); retried.
pub const SECRET_UNAVAILABLE: &str = "SecretUnavailable";
/// The Secret lacks the access/secret key entries.
pub const SECRET_INVALID: &str = "SecretInvalid";
/// An endpoint or other spec field cannot be used.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// `caBundle` is not PEM (or base64 of PEM).
pub const INVALID_CA_BUNDLE: &str = "InvalidCABundle";
/// A namespaced issuer overrides an endpoint the administrator did not allow.
pub const ENDPOINT_NOT_ALLOWED: &str = "EndpointNotAllowed";
/// A plain-http endpoint without the opt-in, or with a security token.
pub const INSECURE_ENDPOINT: &str = "InsecureEndpoint";
/// The region has no known PCA endpoint and none is configured.
pub const UNKNOWN_REGION: &str = "UnknownRegion";
/// The CA does not exist (wrong `urn` or region).
pub const CA_NOT_FOUND: &str = "CANotFound";
/// The CA's status is not `ACTIVED`.
pub const CA_NOT_ACTIVE: &str = "CANotActive";
/// The CA is frozen (`freeze_flag` ≠ 0).
pub const CA_FROZEN: &str = "CAFrozen";
/// The CA was issued from a CSR (`gen_mode` `CSR`): its key is not in the PCA.
pub const CA_KEY_NOT_IN_PCA: &str = "CAKeyNotInPCA";
/// An SM2 CA (key algorithm `SM2` or signature algorithm `SM3`).
pub const CA_ALGORITHM_UNSUPPORTED: &str = "CAAlgorithmUnsupported";
/// The CA's validity has not begun.
pub const CA_NOT_YET_VALID: &str = "CANotYetValid";
/// The CA's validity has ended (while its status still says otherwise).
pub const CA_EXPIRED: &str = "CAExpired";

/// Condition type, its reason when True, and the event: the CA ends within the warning window.
pub const CA_EXPIRING_SOON: &str = "CAExpiringSoon";
/// `CAExpiringSoon` reason when False.
pub const CA_VALID: &str = "CAValid";

/// Every reason the `Ready` condition can carry.
pub const READY_REASONS: &[&str] = &[
    VERIFIED,
    SECRET_NOT_FOUND,
    SECRET_NAMESPACE_NOT_ALLOWED,
    SECRET_FORBIDDEN,
    SECRET_UNAVAILABLE,
    SECRET_INVALID,
    INVALID_SPEC,
    INVALID_CA_BUNDLE,
    ENDPOINT_NOT_ALLOWED,
    INSECURE_ENDPOINT,
    UNKNOWN_REGION,
    CA_NOT_FOUND,
    CA_NOT_ACTIVE,
    CA_FROZEN,
    CA_KEY_NOT_IN_PCA,
    CA_ALGORITHM_UNSUPPORTED,
    CA_NOT_YET_VALID,
    CA_EXPIRED,
    pca::THROTTLED,
    pca::SERVER_ERROR,
    pca::AUTHENTICATION_FAILED,
    pca::PERMISSION_DENIED,
    pca::STATE_CONFLICT,
    pca::REJECTED,
    pca::UNREACHABLE,
    pca::TIMEOUT,
    pca::CONNECTION_BROKEN,
    pca::BAD_RESPONSE,
    pca::DOMAIN_UNKNOWN,
    pca::INVALID_CONFIG,
    pca::INVALID_REQUEST,
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The README's issuer troubleshooting table names every Ready reason, and nothing else.
    #[test]
    fn the_readme_lists_exactly_the_ready_reasons() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("## Troubleshooting").expect("troubleshooting section");
        let table: String = readme[start..]
            .lines()
            .skip_while(|l| !l.starts_with("| reason |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.split('|').nth(1).unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
            .join(",");
        let listed: BTreeSet<&str> = table
            .split(',')
            .map(|s| s.trim().trim_matches('`'))
            .filter(|s| !s.is_empty())
            .collect();
        let known: BTreeSet<&str> = READY_REASONS.iter().copied().collect();
        assert_eq!(
            listed.difference(&known).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "README lists reasons the controller never reports"
        );
        assert_eq!(
            known.difference(&listed).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "reasons missing from the README's table"
        );
    }
}
