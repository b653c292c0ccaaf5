//! ccm-issuer: a cert-manager external issuer for Huawei Cloud CCM Private CA.
//!
//! The library holds all logic; `src/main.rs` is a thin command-line front end.

pub mod cert_manager;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod http;
pub mod metrics;
pub mod pca;
pub mod pki;
pub mod signing;
pub mod telemetry;

/// Installs rustls' `ring` provider as the process default (idempotent). Every TLS user in this
/// process (kube, reqwest) then agrees on one provider.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
