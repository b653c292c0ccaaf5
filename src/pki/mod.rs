//! X.509 handling on the controller side: PEM, CSR validation, chain normalisation and the
//! checks that an issued certificate is what was asked for. The controller never mints
//! certificates itself.
//!
//! Input from outside (CSRs, PCA answers) is bounded before it is decoded: see the caps in
//! [`pem`], [`csr`] and [`chain`]; every refusal is a [`PkiError`] naming the problem.
//!
//! Threading: [`parse_csr`], [`normalize_chain`] and [`normalize_export`] check signatures and
//! are CPU-bound (a 3-certificate chain costs 0.4–2.2 ms depending on the CA keys; the worst
//! case under the caps is 64 signature checks, about 30 ms; figures in `docs/benchmarks.md`). Async callers run them with `tokio::task::spawn_blocking`, off the
//! async workers. [`verify_issued`] and [`check_certificate`] only parse and compare.

pub mod chain;
pub mod csr;
pub mod identity;
pub mod pem;
pub mod signature;
pub mod usage;
pub mod verify;

#[cfg(test)]
mod fixtures;

pub use chain::{Chain, normalize_chain, normalize_export};
pub use csr::{CsrInfo, KeyAlgorithm, SubjectAltNames, csr_public_key, parse_csr};
pub use identity::CertificateIdentity;
pub use pem::{CERTIFICATE as CERT_PEM_TAG, first_block};
pub use signature::SM2_WITH_SM3;
pub use usage::{Eku, Ku, Usage, Usages, parse_usage};
pub use verify::{Expectation, IssuedFacts, check_certificate, verify_issued};

/// Problems with certificates, CSRs and chains. Messages name the offending item.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Input holds no PEM block of the wanted type.
    #[error("no {0} PEM block found")]
    NoPem(&'static str),
    /// PEM framing or base64 is broken.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// A PEM block of an unexpected type.
    #[error("unexpected PEM block {found:?} where {wanted} was expected")]
    UnexpectedPemTag {
        /// Tag seen.
        found: String,
        /// Tag wanted.
        wanted: &'static str,
    },
    /// Input larger than accepted, refused before decoding.
    #[error("{what} is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Which input.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// More items than accepted (PEM blocks, certificates, SANs, subject attributes).
    #[error("too many {what}: {found}, at most {max} are allowed")]
    TooMany {
        /// Which items.
        what: &'static str,
        /// How many were found (or counted before giving up).
        found: usize,
        /// The cap.
        max: usize,
    },
    /// DER does not parse.
    #[error("{what} is not valid DER: {detail}")]
    Der {
        /// Which object.
        what: String,
        /// Parser message.
        detail: String,
    },
    /// A CSR that parses but is malformed or hostile (subject, extensions, wrong object).
    #[error("invalid CSR: {0}")]
    Csr(String),
    /// The CSR's self-signature does not verify.
    #[error("the CSR's signature does not verify (it was not signed by the key it carries, or it was altered)")]
    CsrSignature,
    /// The CSR's key is one the PCA does not sign.
    #[error("unsupported key: {0}; the PCA accepts RSA 2048, RSA 4096, ECDSA P-256 and ECDSA P-384")]
    UnsupportedKey(String),
    /// A signature algorithm outside what the PCA uses for RSA and EC CAs.
    #[error("{}", unsupported_algorithm(what, algorithm))]
    UnsupportedAlgorithm {
        /// Which object carries the signature.
        what: String,
        /// The algorithm, named (e.g. [`SM2_WITH_SM3`]).
        algorithm: String,
    },
    /// A usage name cert-manager does not define.
    #[error("unknown usage {0:?} in spec.usages")]
    UnknownUsage(String),
    /// Certificates do not link into exactly one chain.
    #[error("certificate chain is broken: {0}")]
    BrokenChain(String),
    /// The issued certificate differs from the request.
    #[error("issued certificate does not match the request: {0}")]
    Mismatch(String),
}

impl PkiError {
    /// Whether this is a chain or CSR signed with SM2/SM3 (the China site's SM2 CAs): the
    /// issuer reports such a CA as unusable rather than failing each request.
    pub fn is_sm2(&self) -> bool {
        matches!(self, PkiError::UnsupportedAlgorithm { algorithm, .. } if algorithm == SM2_WITH_SM3)
    }
}

fn unsupported_algorithm(what: &str, algorithm: &str) -> String {
    if algorithm == SM2_WITH_SM3 {
        format!(
            "{what} is signed with {SM2_WITH_SM3}: SM2 CAs are not supported: TLS clients in Kubernetes cannot use them"
        )
    } else {
        format!(
            "{what} is signed with {algorithm}, which is not supported (supported: RSA PKCS#1 v1.5 or ECDSA P-256/P-384, each with SHA-256, SHA-384 or SHA-512)"
        )
    }
}
