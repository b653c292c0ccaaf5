//! Self-signed TLS for `--tls`: a throwaway CA and a server certificate for the loopback
//! names plus any `--tls-san`.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating TLS material: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("building rustls config: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid --tls-san {0:?}")]
    San(String),
}

/// Generated TLS material.
pub struct TlsMaterial {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Make a CA and a server certificate with SANs IP 127.0.0.1, IP ::1, DNS localhost and
/// `extra_sans` (IP literals become IP SANs, anything else a DNS SAN).
pub fn generate(extra_sans: &[String]) -> Result<TlsMaterial, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ccm-mock-pca TLS CA");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "ccm-mock-pca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let mut sans = vec![
        SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
        SanType::IpAddress(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        SanType::DnsName("localhost".try_into()?),
    ];
    for s in extra_sans {
        match s.parse::<IpAddr>() {
            Ok(ip) => sans.push(SanType::IpAddress(ip)),
            Err(_) => sans.push(SanType::DnsName(
                s.as_str().try_into().map_err(|_| TlsError::San(s.clone()))?,
            )),
        }
    }
    let server_key = KeyPair::generate()?;
    let mut sp = CertificateParams::default();
    sp.distinguished_name.push(DnType::CommonName, "ccm-mock-pca");
    sp.subject_alt_names = sans;
    sp.is_ca = IsCa::ExplicitNoCa;
    sp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    sp.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    sp.use_authority_key_identifier_extension = true;
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_cert = sp.signed_by(&server_key, &issuer)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone(), ca_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(cfg),
    })
}
