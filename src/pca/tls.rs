//! TLS settings of the PCA clients.
//!
//! Left to itself, reqwest builds a new `rustls-platform-verifier` for every client, and that
//! reads and parses every system root certificate (`/etc/ssl/certs`) again. With one client per
//! issuer that costs memory and time per issuer (figures in `docs/benchmarks.md`, "Memory
//! soak"). The verifier is immutable, so one per set of
//! roots is built and shared by every client; a `caBundle` (an issuer's own few certificates)
//! still gets its own small store. Each client keeps its own TLS configuration (session cache)
//! and connection pool: tenants share no connection state.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::{
    ClientConfig, RootCertStore,
    client::{WebPkiServerVerifier, danger::ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, pem::PemObject},
};

use super::error::PcaError;

/// The last verifier of the system roots, with the extra roots it was built with. One slot:
/// the extra roots come from the controller's configuration, which does not change while it
/// runs, so a second key only appears in tests (a rebuild, never growth).
static SYSTEM_VERIFIER: Mutex<Option<SystemVerifier>> = Mutex::new(None);

/// A verifier of the system roots and the extra roots (PEM) it also trusts.
type SystemVerifier = (Option<Vec<u8>>, Arc<dyn ServerCertVerifier>);

/// The TLS configuration of one client: trusts only `ca_bundle` when set, else the system
/// roots plus `extra_roots`. HTTP/1.1 only (the client is `http1_only`).
pub(super) fn client_config(ca_bundle: Option<&[u8]>, extra_roots: Option<&[u8]>) -> Result<ClientConfig, PcaError> {
    crate::install_crypto_provider();
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = match ca_bundle {
        Some(pem) => bundle_verifier(pem, provider.clone())?,
        None => system_verifier(extra_roots, provider.clone())?,
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PcaError::config(&format!("cannot configure TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A verifier trusting only the certificates of an issuer's `caBundle`.
fn bundle_verifier(pem: &[u8], provider: Arc<CryptoProvider>) -> Result<Arc<dyn ServerCertVerifier>, PcaError> {
    let mut roots = RootCertStore::empty();
    for (i, der) in pem_certificates(pem, "caBundle")?.into_iter().enumerate() {
        roots
            .add(der)
            .map_err(|e| PcaError::config(&format!("caBundle: certificate {} is not a usable root: {e}", i + 1)))?;
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| PcaError::config(&format!("caBundle cannot verify servers: {e}")))?;
    Ok(verifier)
}

/// The shared verifier of the system roots (plus `extra_roots`), built on first use.
fn system_verifier(
    extra_roots: Option<&[u8]>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, PcaError> {
    let mut slot = SYSTEM_VERIFIER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((key, verifier)) = slot.as_ref()
        && key.as_deref() == extra_roots
    {
        return Ok(verifier.clone());
    }
    let extra = match extra_roots {
        Some(pem) => pem_certificates(pem, "the extra CA bundle")?,
        None => Vec::new(),
    };
    let verifier: Arc<dyn ServerCertVerifier> = Arc::new(
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
            .map_err(|e| PcaError::config(&format!("cannot load the system's root certificates: {e}")))?,
    );
    *slot = Some((extra_roots.map(<[u8]>::to_vec), verifier.clone()));
    Ok(verifier)
}

/// The certificates of a PEM bundle; `what` names it in errors.
fn pem_certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, PcaError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PcaError::config(&format!("{what} is not a PEM certificate bundle: {e}")))?;
    if certs.is_empty() {
        return Err(PcaError::config(&format!("{what} contains no certificate")));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_pem() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem().into_bytes()
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn same(a: &Arc<dyn ServerCertVerifier>, b: &Arc<dyn ServerCertVerifier>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
    }

    #[test]
    fn clients_without_a_ca_bundle_share_one_verifier_of_the_system_roots() {
        let extra = root_pem();
        let a = system_verifier(Some(&extra), provider()).unwrap();
        let b = system_verifier(Some(&extra), provider()).unwrap();
        assert!(same(&a, &b), "the second client parsed the system roots again");
        let config = client_config(None, Some(&extra)).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_ca_bundle_gets_its_own_verifier() {
        let bundle = root_pem();
        let a = bundle_verifier(&bundle, provider()).unwrap();
        let b = bundle_verifier(&bundle, provider()).unwrap();
        let system = system_verifier(None, provider()).unwrap();
        assert!(!same(&a, &b) && !same(&a, &system));
    }

    #[test]
    fn bundles_that_are_not_certificates_are_refused_with_their_name() {
        let e = client_config(Some(b"not pem"), None).unwrap_err().to_string();
        assert!(e.contains("caBundle contains no certificate"), "{e}");
        let e = client_config(
            None,
            Some(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("the extra CA bundle is not a PEM certificate bundle"), "{e}");
    }
}
