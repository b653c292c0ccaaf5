//! Checks that what the PCA returned is what was asked for, before cert-manager sees it.

use x509_parser::{certificate::X509Certificate, extensions::ParsedExtension, prelude::FromDer};

use super::{Chain, CsrInfo, Ku, PkiError, SubjectAltNames, Usages};

/// What the certificate must be.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// The validated CSR.
    pub csr: &'a CsrInfo,
    /// CA certificate wanted (`spec.isCA`).
    pub is_ca: bool,
    /// For CA certificates: the path length that was requested.
    pub path_length: Option<u32>,
    /// Current time, seconds since the epoch.
    pub now: i64,
}

/// Facts about an issued certificate, for status and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedFacts {
    /// Serial number, hex.
    pub serial: String,
    /// Start of validity, seconds since the epoch.
    pub not_before: i64,
    /// End of validity, seconds since the epoch.
    pub not_after: i64,
}

/// Verifies the chain's leaf against the expectation. Every mismatch is listed in the error.
pub fn verify_issued(chain: &Chain, expect: &Expectation<'_>) -> Result<IssuedFacts, PkiError> {
    check_certificate(chain.leaf_der(), expect)
}

/// Checks one DER certificate against the expectation (also used to recognise a certificate
/// issued by an earlier, interrupted attempt).
pub fn check_certificate(der: &[u8], expect: &Expectation<'_>) -> Result<IssuedFacts, PkiError> {
    let (_, leaf) = X509Certificate::from_der(der).map_err(|e| PkiError::Der {
        what: "issued certificate".into(),
        detail: e.to_string(),
    })?;
    let mut problems = Vec::new();
    if leaf.public_key().raw != expect.csr.spki_der.as_slice() {
        problems.push("its public key is not the CSR's".to_owned());
    }
    let mut sans = SubjectAltNames::default();
    let mut ku = None;
    let mut eku = None;
    let mut ca = None;
    for ext in leaf.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(s) => sans = SubjectAltNames::from_general_names(&s.general_names),
            ParsedExtension::KeyUsage(k) => ku = Some(k),
            ParsedExtension::ExtendedKeyUsage(e) => eku = Some(e),
            ParsedExtension::BasicConstraints(bc) => ca = Some((bc.ca, bc.path_len_constraint)),
            _ => {}
        }
    }
    let missing_sans = expect.csr.sans.missing_in(&sans);
    if !missing_sans.is_empty() {
        problems.push(format!("requested SANs missing: {}", missing_sans.join(", ")));
    }
    let granted = Usages::from_extensions(ku, eku);
    let missing_usages = expect.csr.usages.missing_in(&granted);
    if !missing_usages.is_empty() {
        problems.push(format!("requested usages missing: {}", missing_usages.join(", ")));
    }
    check_ca(expect, ca, &granted, &mut problems);
    let not_before = leaf.validity().not_before.timestamp();
    let not_after = leaf.validity().not_after.timestamp();
    if not_after <= expect.now {
        problems.push(format!("it expired at {}", leaf.validity().not_after));
    }
    if !problems.is_empty() {
        return Err(PkiError::Mismatch(problems.join("; ")));
    }
    Ok(IssuedFacts {
        serial: leaf.raw_serial_as_string(),
        not_before,
        not_after,
    })
}

fn check_ca(expect: &Expectation<'_>, ca: Option<(bool, Option<u32>)>, granted: &Usages, problems: &mut Vec<String>) {
    let is_ca = ca.is_some_and(|(ca, _)| ca);
    match (expect.is_ca, is_ca) {
        (true, false) => problems.push("a CA certificate was requested but it is not a CA (basicConstraints)".into()),
        (false, true) => problems.push("a leaf certificate was requested but it is a CA".into()),
        _ => {}
    }
    if expect.is_ca {
        if granted.key.is_some() && !granted.has_key(Ku::CertSign) {
            problems.push("a CA certificate was requested but its keyUsage lacks keyCertSign".into());
        }
        let got = ca.and_then(|(_, len)| len);
        if let (Some(want), Some(got)) = (expect.path_length, got)
            && got > want
        {
            problems.push(format!("its path length is {got}, more than the {want} requested"));
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    use super::*;
    use crate::pki::{csr::tests::csr_with, normalize_chain, parse_csr};

    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        pem: String,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "root");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = p.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(p, key),
            pem,
        }
    }

    /// Signs a certificate for `key` shaped by `tweak`, returns the normalised chain.
    fn issue(ca: &Ca, key: &KeyPair, tweak: impl FnOnce(&mut CertificateParams)) -> Chain {
        let mut p = CertificateParams::new(vec!["a.example".to_string(), "b.example".to_string()]).unwrap();
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://cluster.local/ns/a/sa/b".try_into().unwrap(),
        ));
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        tweak(&mut p);
        let cert = p.signed_by(key, &ca.issuer).unwrap();
        normalize_chain([cert.pem().as_bytes(), ca.pem.as_bytes()]).unwrap()
    }

    fn expect(csr: &CsrInfo, is_ca: bool) -> Expectation<'_> {
        Expectation {
            csr,
            is_ca,
            path_length: Some(0),
            now: jiff::Timestamp::now().as_second(),
        }
    }

    #[test]
    fn matching_certificate_passes() {
        let ca = ca();
        let key = KeyPair::generate().unwrap();
        let csr = parse_csr(csr_with(&key, &["a.example", "b.example"], "cn").as_bytes()).unwrap();
        let facts = verify_issued(&issue(&ca, &key, |_| {}), &expect(&csr, false)).unwrap();
        assert!(facts.not_after > facts.not_before);
    }

    #[test]
    fn every_mismatch_is_named() {
        let ca = ca();
        let key = KeyPair::generate().unwrap();
        let other_key = KeyPair::generate().unwrap();
        let csr = parse_csr(csr_with(&key, &["a.example", "b.example"], "cn").as_bytes()).unwrap();
        let chain = issue(&ca, &other_key, |p| {
            p.subject_alt_names
                .retain(|s| !matches!(s, rcgen::SanType::DnsName(d) if d.as_str() == "b.example"));
            p.extended_key_usages.clear();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        });
        let err = verify_issued(&chain, &expect(&csr, false)).unwrap_err().to_string();
        for needle in [
            "public key",
            "DNS:b.example",
            "extendedKeyUsage ServerAuth",
            "it is a CA",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }

    #[test]
    fn ca_request_needs_ca_flag_cert_sign_and_bounded_path_length() {
        let ca = ca();
        let key = KeyPair::generate().unwrap();
        let csr = parse_csr(csr_with(&key, &["a.example", "b.example"], "cn").as_bytes()).unwrap();
        let leafish = issue(&ca, &key, |_| {});
        let err = verify_issued(&leafish, &expect(&csr, true)).unwrap_err().to_string();
        assert!(err.contains("not a CA") && err.contains("keyCertSign"), "{err}");
        let deep = issue(&ca, &key, |p| {
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(3));
            p.key_usages.push(KeyUsagePurpose::KeyCertSign);
        });
        let err = verify_issued(&deep, &expect(&csr, true)).unwrap_err().to_string();
        assert!(err.contains("path length is 3"), "{err}");
        let good = issue(&ca, &key, |p| {
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            p.key_usages.push(KeyUsagePurpose::KeyCertSign);
        });
        verify_issued(&good, &expect(&csr, true)).unwrap();
    }
}
