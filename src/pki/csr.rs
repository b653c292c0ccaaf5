//! CSR validation before anything is sent to the PCA.

use std::{fmt, net::IpAddr};

use x509_parser::{
    certification_request::X509CertificationRequest,
    extensions::{GeneralName, ParsedExtension},
    prelude::FromDer,
    public_key::PublicKey,
    x509::SubjectPublicKeyInfo,
};

use super::{
    PkiError, Usages,
    pem::{CERTIFICATE_REQUEST, encode_blocks, parse_blocks},
};

const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// Key algorithms the PCA signs (pca-api.md §5), named as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// RSA, 2048-bit modulus.
    Rsa2048,
    /// RSA, 4096-bit modulus.
    Rsa4096,
    /// ECDSA on P-256.
    Ec256,
    /// ECDSA on P-384.
    Ec384,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::Rsa2048 => "RSA2048",
            KeyAlgorithm::Rsa4096 => "RSA4096",
            KeyAlgorithm::Ec256 => "EC256",
            KeyAlgorithm::Ec384 => "EC384",
        })
    }
}

/// Subject alternative names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectAltNames {
    /// dNSName entries.
    pub dns: Vec<String>,
    /// iPAddress entries.
    pub ips: Vec<IpAddr>,
    /// uniformResourceIdentifier entries.
    pub uris: Vec<String>,
    /// rfc822Name entries.
    pub emails: Vec<String>,
    /// Other kinds, described (e.g. otherName OIDs).
    pub other: Vec<String>,
}

impl SubjectAltNames {
    pub(crate) fn from_general_names(names: &[GeneralName<'_>]) -> Self {
        let mut out = Self::default();
        for name in names {
            match name {
                GeneralName::DNSName(d) => out.dns.push((*d).to_owned()),
                GeneralName::URI(u) => out.uris.push((*u).to_owned()),
                GeneralName::RFC822Name(e) => out.emails.push((*e).to_owned()),
                GeneralName::IPAddress(raw) => match ip_from_bytes(raw) {
                    Some(ip) => out.ips.push(ip),
                    None => out.other.push(format!("malformed IP address ({} bytes)", raw.len())),
                },
                GeneralName::OtherName(oid, _) => out.other.push(format!("otherName {oid}")),
                other => out.other.push(format!("{other:?}")),
            }
        }
        out
    }

    /// Every name in `self` missing from `issued`, described; DNS names compare case-insensitively.
    pub fn missing_in(&self, issued: &SubjectAltNames) -> Vec<String> {
        let mut missing = Vec::new();
        for d in &self.dns {
            if !issued.dns.iter().any(|i| i.eq_ignore_ascii_case(d)) {
                missing.push(format!("DNS:{d}"));
            }
        }
        for ip in &self.ips {
            if !issued.ips.contains(ip) {
                missing.push(format!("IP:{ip}"));
            }
        }
        for u in &self.uris {
            if !issued.uris.contains(u) {
                missing.push(format!("URI:{u}"));
            }
        }
        for e in &self.emails {
            if !issued.emails.contains(e) {
                missing.push(format!("email:{e}"));
            }
        }
        missing
    }
}

fn ip_from_bytes(raw: &[u8]) -> Option<IpAddr> {
    match raw.len() {
        4 => <[u8; 4]>::try_from(raw).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(raw).ok().map(IpAddr::from),
        _ => None,
    }
}

/// What the controller needs to know about a validated CSR.
#[derive(Debug, Clone)]
pub struct CsrInfo {
    /// The CSR re-encoded as LF PEM (what is sent to the PCA).
    pub pem: String,
    /// DER SubjectPublicKeyInfo, to compare with the issued certificate.
    pub spki_der: Vec<u8>,
    /// Key algorithm.
    pub key: KeyAlgorithm,
    /// Subject, RFC 4514-ish text.
    pub subject: String,
    /// Subject common name, if any.
    pub common_name: Option<String>,
    /// Requested SANs.
    pub sans: SubjectAltNames,
    /// Requested keyUsage / extendedKeyUsage.
    pub usages: Usages,
    /// basicConstraints CA flag, if the CSR carries the extension.
    pub basic_constraints_ca: Option<bool>,
}

/// Parses a PEM (or DER) CSR, verifies its self-signature and checks the key is one the PCA
/// accepts.
pub fn parse_csr(input: &[u8]) -> Result<CsrInfo, PkiError> {
    let der = if input.first() == Some(&0x30) {
        input.to_vec()
    } else {
        let mut blocks = parse_blocks(input, CERTIFICATE_REQUEST)?;
        if blocks.len() != 1 {
            return Err(PkiError::Pem(format!(
                "expected exactly one CERTIFICATE REQUEST block, found {}",
                blocks.len()
            )));
        }
        blocks.remove(0)
    };
    let (rest, csr) = X509CertificationRequest::from_der(&der).map_err(|e| PkiError::Der {
        what: "CSR".into(),
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(PkiError::Der {
            what: "CSR".into(),
            detail: format!("{} trailing bytes", rest.len()),
        });
    }
    let info = &csr.certification_request_info;
    // Key first: ring cannot verify signatures of keys we reject anyway (RSA-1024, P-521), and
    // "unsupported key" is the more useful message.
    let key = key_algorithm(&info.subject_pki)?;
    csr.verify_signature().map_err(|_| PkiError::CsrSignature)?;
    let mut sans = SubjectAltNames::default();
    let mut ku = None;
    let mut eku = None;
    let mut basic_constraints_ca = None;
    for ext in csr.requested_extensions().into_iter().flatten() {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                sans = SubjectAltNames::from_general_names(&san.general_names)
            }
            ParsedExtension::KeyUsage(k) => ku = Some(k),
            ParsedExtension::ExtendedKeyUsage(e) => eku = Some(e),
            ParsedExtension::BasicConstraints(bc) => basic_constraints_ca = Some(bc.ca),
            _ => {}
        }
    }
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(CsrInfo {
        pem: encode_blocks(CERTIFICATE_REQUEST, [der.as_slice()]),
        spki_der: info.subject_pki.raw.to_vec(),
        key,
        subject: info.subject.to_string(),
        common_name,
        sans,
        usages: Usages::from_extensions(ku, eku),
        basic_constraints_ca,
    })
}

/// Classifies a public key; anything the PCA does not sign is an error naming it.
pub fn key_algorithm(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyAlgorithm, PkiError> {
    let parsed = spki
        .parsed()
        .map_err(|e| PkiError::UnsupportedKey(format!("unreadable public key ({e})")))?;
    match parsed {
        PublicKey::RSA(rsa) => match rsa.key_size() {
            2048 => Ok(KeyAlgorithm::Rsa2048),
            4096 => Ok(KeyAlgorithm::Rsa4096),
            bits => Err(PkiError::UnsupportedKey(format!("RSA {bits}-bit"))),
        },
        PublicKey::EC(_) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref() {
                Some(OID_P256) => Ok(KeyAlgorithm::Ec256),
                Some(OID_P384) => Ok(KeyAlgorithm::Ec384),
                Some("1.3.132.0.35") => Err(PkiError::UnsupportedKey("ECDSA P-521".into())),
                Some(other) => Err(PkiError::UnsupportedKey(format!("EC curve {other}"))),
                None => Err(PkiError::UnsupportedKey("EC key without a named curve".into())),
            }
        }
        _ => {
            let oid = spki.algorithm.algorithm.to_id_string();
            let name = match oid.as_str() {
                "1.3.101.112" => "Ed25519".to_owned(),
                "1.3.101.113" => "Ed448".to_owned(),
                "1.2.840.10040.4.1" => "DSA".to_owned(),
                _ => format!("key algorithm {oid}"),
            };
            Err(PkiError::UnsupportedKey(name))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
        PKCS_ECDSA_P384_SHA384, PKCS_ED25519, SanType,
    };

    use super::*;
    use crate::pki::{Eku, Ku};

    pub(crate) fn csr_with(key: &KeyPair, sans: &[&str], cn: &str) -> String {
        let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.subject_alt_names
            .push(SanType::URI("spiffe://cluster.local/ns/a/sa/b".try_into().unwrap()));
        p.serialize_request(key).unwrap().pem().unwrap()
    }

    /// A CSR made by openssl, for keys rcgen/ring cannot generate (RSA sizes, P-521).
    pub(crate) fn openssl_csr(keyspec: &[&str]) -> Option<String> {
        let dir = tempfile::tempdir().ok()?;
        let key = dir.path().join("k.pem");
        let status = std::process::Command::new("openssl")
            .args(["genpkey", "-quiet"])
            .args(keyspec)
            .arg("-out")
            .arg(&key)
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        let out = std::process::Command::new("openssl")
            .args(["req", "-new", "-subj", "/CN=openssl", "-key"])
            .arg(&key)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn parses_ec_csr_with_extensions() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let pem = csr_with(&key, &["a.example", "B.example"], "my-cn");
        let info = parse_csr(pem.as_bytes()).unwrap();
        assert_eq!(info.key, KeyAlgorithm::Ec256);
        assert_eq!(info.common_name.as_deref(), Some("my-cn"));
        assert_eq!(info.sans.dns, vec!["a.example", "B.example"]);
        assert_eq!(info.sans.ips, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(info.sans.uris, vec!["spiffe://cluster.local/ns/a/sa/b"]);
        assert!(info.usages.has_key(Ku::DigitalSignature) && info.usages.has_key(Ku::KeyEncipherment));
        assert!(info.usages.has_extended(Eku::ServerAuth));
        assert_eq!(
            parse_blocks(key.public_key_pem().as_bytes(), "PUBLIC KEY").unwrap()[0],
            info.spki_der
        );
        // CRLF input and DER input give the same result.
        let crlf = pem.replace('\n', "\r\n");
        assert_eq!(parse_csr(crlf.as_bytes()).unwrap().spki_der, info.spki_der);
        let der = parse_blocks(pem.as_bytes(), CERTIFICATE_REQUEST).unwrap().remove(0);
        assert_eq!(parse_csr(&der).unwrap().pem, info.pem);
    }

    #[test]
    fn p384_is_accepted_ed25519_is_not() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        assert_eq!(
            parse_csr(csr_with(&key, &["x"], "x").as_bytes()).unwrap().key,
            KeyAlgorithm::Ec384
        );
        let ed = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let err = parse_csr(csr_with(&ed, &["x"], "x").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("Ed25519"), "{err}");
    }

    #[test]
    fn rsa_sizes_and_p521_via_openssl() {
        let cases: [(&[&str], Result<KeyAlgorithm, &str>); 5] = [
            (
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                Ok(KeyAlgorithm::Rsa2048),
            ),
            (
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
                Ok(KeyAlgorithm::Rsa4096),
            ),
            (
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
                Err("RSA 1024-bit"),
            ),
            (
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
                Err("RSA 3072-bit"),
            ),
            (
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
                Err("P-521"),
            ),
        ];
        for (spec, want) in cases {
            let pem = openssl_csr(spec).expect("openssl must be installed for this test");
            match (parse_csr(pem.as_bytes()), want) {
                (Ok(info), Ok(alg)) => assert_eq!(info.key, alg),
                (Err(e), Err(text)) => assert!(e.to_string().contains(text), "{e}"),
                (got, want) => panic!("{spec:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn tampered_csr_fails_signature_check() {
        let key = KeyPair::generate().unwrap();
        let pem = csr_with(&key, &["good.example"], "cn");
        let mut der = parse_blocks(pem.as_bytes(), CERTIFICATE_REQUEST).unwrap().remove(0);
        // Flip a byte inside the DNS name "good.example".
        let pos = der.windows(4).position(|w| w == b"good").unwrap();
        der[pos] = b'f';
        assert!(matches!(parse_csr(&der), Err(PkiError::CsrSignature)));
    }

    #[test]
    fn garbage_never_panics() {
        for input in [
            &b""[..],
            b"\x30",
            b"\x30\x03\x02\x01\x01",
            b"not pem",
            b"-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            assert!(parse_csr(input).is_err());
        }
    }

    #[test]
    fn san_comparison() {
        let want = SubjectAltNames {
            dns: vec!["A.example".into()],
            ips: vec!["::1".parse().unwrap()],
            ..Default::default()
        };
        let got = SubjectAltNames {
            dns: vec!["a.example".into()],
            ..Default::default()
        };
        assert_eq!(want.missing_in(&got), vec!["IP:::1".to_string()]);
    }
}
