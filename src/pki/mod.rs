//! X.509 handling on the controller side: PEM, CSR validation, chain normalisation and the
//! checks that an issued certificate is what was asked for. The controller never mints
//! certificates itself.

pub mod chain;
pub mod csr;
pub mod pem;
pub mod usage;
pub mod verify;

pub use chain::{Chain, normalize_chain};
pub use csr::{CsrInfo, KeyAlgorithm, SubjectAltNames, parse_csr};
pub use pem::CERTIFICATE as CERT_PEM_TAG;
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
    /// DER does not parse.
    #[error("{what} is not valid DER: {detail}")]
    Der {
        /// Which object.
        what: String,
        /// Parser message.
        detail: String,
    },
    /// The CSR's self-signature does not verify.
    #[error("the CSR's signature does not verify (it was not signed by the key it carries, or it was altered)")]
    CsrSignature,
    /// The CSR's key is one the PCA does not sign.
    #[error("unsupported key in CSR: {0}; the PCA accepts RSA 2048, RSA 4096, ECDSA P-256 and ECDSA P-384")]
    UnsupportedKey(String),
    /// A usage name cert-manager does not define.
    #[error("unknown usage {0:?} in spec.usages")]
    UnknownUsage(String),
    /// Too many certificates in a chain.
    #[error("chain has {0} certificates, more than the 1000 allowed")]
    ChainTooLong(usize),
    /// Certificates do not link into exactly one chain.
    #[error("certificate chain is broken: {0}")]
    BrokenChain(String),
    /// The issued certificate differs from the request.
    #[error("issued certificate does not match the request: {0}")]
    Mismatch(String),
}
