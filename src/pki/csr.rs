//! CSR validation before anything is sent to the PCA.

use std::{fmt, net::IpAddr};

use x509_parser::{
    certificate::X509Certificate,
    certification_request::X509CertificationRequest,
    cri_attributes::ParsedCriAttribute,
    der_parser::{asn1_rs::Tag, oid::Oid},
    extensions::{ExtendedKeyUsage, GeneralName, KeyUsage, ParsedExtension, X509Extension},
    objects::{oid_registry, oid2abbrev, oid2sn},
    oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION},
    prelude::FromDer,
    public_key::PublicKey,
    x509::{SubjectPublicKeyInfo, X509Name},
};

use super::{
    PkiError, Usages,
    pem::{CERTIFICATE_REQUEST, encode_blocks, only_block},
    signature::{SignatureAlgorithm, VerifyingKey},
};

/// Key algorithms the PCA signs, named as its API names them (`key_algorithm`).
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

/// Largest CSR accepted (PEM or DER). The PCA documents 5,120 characters for its CSR parser;
/// this cap only keeps hostile input from costing work, the PCA enforces its own.
pub const MAX_CSR_BYTES: usize = 64 * 1024;
/// Most subject alternative names in one CSR (as many as the largest public CAs allow).
pub const MAX_SANS: usize = 100;
/// Most attributes in a CSR's subject (cert-manager writes at most a dozen kinds).
pub const MAX_SUBJECT_ATTRIBUTES: usize = 64;

/// Parses a PEM (or DER) CSR, verifies its self-signature and checks the key is one the PCA
/// accepts. Every refusal names the problem: size, framing, key, signature algorithm,
/// signature, subject, extensions. CPU-bound (one signature check).
pub fn parse_csr(input: &[u8]) -> Result<CsrInfo, PkiError> {
    let der = csr_der(input)?;
    let csr = decode(&der)?;
    let info = &csr.certification_request_info;
    // Key first: "unsupported key" is the most useful message for keys the PCA refuses.
    let key = key_algorithm(&info.subject_pki)?;
    verify_self_signature(&csr)?;
    check_subject(&info.subject)?;
    let requested = Requested::from_csr(&csr)?;
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
        sans: requested.sans,
        usages: Usages::from_extensions(requested.key_usage, requested.extended_key_usage),
        basic_constraints_ca: requested.basic_constraints_ca,
    })
}

/// The public key (SPKI DER) of a CSR, nothing else checked: a cheap first filter before
/// [`parse_csr`], which verifies the signature.
pub fn csr_public_key(input: &[u8]) -> Option<Vec<u8>> {
    let der = csr_der(input).ok()?;
    let csr = decode(&der).ok()?;
    Some(csr.certification_request_info.subject_pki.raw.to_vec())
}

/// A CSR's DER from DER or PEM input, within the size limit.
fn csr_der(input: &[u8]) -> Result<Vec<u8>, PkiError> {
    if input.len() > MAX_CSR_BYTES {
        return Err(PkiError::TooLarge {
            what: "CSR",
            size: input.len(),
            max: MAX_CSR_BYTES,
        });
    }
    if input.first() == Some(&0x30) {
        Ok(input.to_vec())
    } else {
        only_block(input, CERTIFICATE_REQUEST)
    }
}

/// DER → CSR, with no trailing data; a certificate is recognised and named.
fn decode(der: &[u8]) -> Result<X509CertificationRequest<'_>, PkiError> {
    match X509CertificationRequest::from_der(der) {
        Ok((rest, _)) if !rest.is_empty() => Err(PkiError::Der {
            what: "CSR".into(),
            detail: format!("{} trailing bytes", rest.len()),
        }),
        Ok((_, csr)) => Ok(csr),
        Err(_) if X509Certificate::from_der(der).is_ok() => {
            Err(PkiError::Csr("this is a certificate, not a certificate request".into()))
        }
        Err(e) => Err(PkiError::Der {
            what: "CSR".into(),
            detail: e.to_string(),
        }),
    }
}

fn verify_self_signature(csr: &X509CertificationRequest<'_>) -> Result<(), PkiError> {
    let info = &csr.certification_request_info;
    let algorithm = SignatureAlgorithm::from_identifier(&csr.signature_algorithm, "the CSR")?;
    let key = VerifyingKey::from_spki(&info.subject_pki)?;
    if key.verifies(algorithm, info.raw, &csr.signature_value.data) {
        Ok(())
    } else {
        Err(PkiError::CsrSignature)
    }
}

/// Subjects are bounded and textual: every value a string that decodes.
fn check_subject(subject: &X509Name<'_>) -> Result<(), PkiError> {
    let found = subject.iter_attributes().count();
    if found > MAX_SUBJECT_ATTRIBUTES {
        return Err(PkiError::TooMany {
            what: "subject attributes in the CSR",
            found,
            max: MAX_SUBJECT_ATTRIBUTES,
        });
    }
    for attr in subject.iter_attributes() {
        let value = attr.attr_value();
        let name = || {
            oid2abbrev(attr.attr_type(), oid_registry()).map_or_else(|_| attr.attr_type().to_id_string(), str::to_owned)
        };
        match value.tag() {
            Tag::Utf8String
            | Tag::PrintableString
            | Tag::Ia5String
            | Tag::NumericString
            | Tag::VisibleString
            | Tag::T61String => {
                if std::str::from_utf8(value.data).is_err() {
                    return Err(PkiError::Csr(format!(
                        "subject attribute {} is not valid UTF-8",
                        name()
                    )));
                }
            }
            Tag::BmpString if value.data.len() % 2 == 0 => {}
            tag => {
                return Err(PkiError::Csr(format!(
                    "subject attribute {} holds ASN.1 tag {}, not text",
                    name(),
                    tag.0
                )));
            }
        }
    }
    Ok(())
}

/// What the CSR's extensionRequest asks for.
#[derive(Default)]
struct Requested<'c> {
    sans: SubjectAltNames,
    key_usage: Option<&'c KeyUsage>,
    extended_key_usage: Option<&'c ExtendedKeyUsage<'c>>,
    basic_constraints_ca: Option<bool>,
}

impl<'c> Requested<'c> {
    /// Reads the extensions; a duplicate or unparsable one is an error naming it.
    fn from_csr(csr: &'c X509CertificationRequest<'_>) -> Result<Self, PkiError> {
        let mut out = Self::default();
        let extensions = requested_extensions(csr)?;
        for ext in extensions {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    out.sans = requested_sans(&san.general_names)?;
                }
                ParsedExtension::KeyUsage(k) => out.key_usage = Some(k),
                ParsedExtension::ExtendedKeyUsage(e) => out.extended_key_usage = Some(e),
                ParsedExtension::BasicConstraints(bc) => out.basic_constraints_ca = Some(bc.ca),
                ParsedExtension::ParseError { error } => {
                    return Err(PkiError::Csr(format!(
                        "its {} extension does not parse: {error}",
                        extension_name(&ext.oid)
                    )));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The extensions of the (single) extensionRequest attribute, each OID at most once.
fn requested_extensions<'c>(csr: &'c X509CertificationRequest<'_>) -> Result<Vec<&'c X509Extension<'c>>, PkiError> {
    let mut requests =
        csr.certification_request_info
            .attributes()
            .iter()
            .filter_map(|attr| match attr.parsed_attribute() {
                ParsedCriAttribute::ExtensionRequest(req) => Some(req),
                _ => None,
            });
    let Some(request) = requests.next() else {
        return Ok(Vec::new());
    };
    if requests.next().is_some() {
        return Err(PkiError::Csr("more than one extensionRequest attribute".into()));
    }
    let extensions: Vec<&X509Extension<'c>> = request.extensions.iter().collect();
    for (i, ext) in extensions.iter().enumerate() {
        if extensions[..i].iter().any(|earlier| earlier.oid == ext.oid) {
            return Err(PkiError::Csr(format!(
                "more than one {} extension",
                extension_name(&ext.oid)
            )));
        }
    }
    Ok(extensions)
}

fn requested_sans(names: &[GeneralName<'_>]) -> Result<SubjectAltNames, PkiError> {
    if names.len() > MAX_SANS {
        return Err(PkiError::TooMany {
            what: "subject alternative names in the CSR",
            found: names.len(),
            max: MAX_SANS,
        });
    }
    for name in names {
        match name {
            GeneralName::IPAddress(raw) if ip_from_bytes(raw).is_none() => {
                return Err(PkiError::Csr(format!(
                    "subjectAltName holds an IP address of {} bytes (4 or 16 expected)",
                    raw.len()
                )));
            }
            GeneralName::Invalid(tag, _) => {
                return Err(PkiError::Csr(format!(
                    "subjectAltName holds a name that does not decode (context tag {})",
                    tag.0
                )));
            }
            _ => {}
        }
    }
    Ok(SubjectAltNames::from_general_names(names))
}

fn extension_name(oid: &Oid<'_>) -> String {
    oid2sn(oid, oid_registry()).map_or_else(|_| format!("{oid}"), str::to_owned)
}

/// Classifies a public key; anything the PCA does not sign is an error naming it.
pub fn key_algorithm(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyAlgorithm, PkiError> {
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_PKCS1_RSAENCRYPTION {
        return match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => match rsa.key_size() {
                2048 => Ok(KeyAlgorithm::Rsa2048),
                4096 => Ok(KeyAlgorithm::Rsa4096),
                bits => Err(PkiError::UnsupportedKey(format!("RSA {bits}-bit"))),
            },
            Ok(_) => Err(PkiError::UnsupportedKey("unreadable RSA public key".into())),
            Err(e) => Err(PkiError::UnsupportedKey(format!("unreadable public key ({e})"))),
        };
    }
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let Some(curve) = named_curve(spki) else {
            return Err(PkiError::UnsupportedKey(
                "EC key without a named curve (explicit curve parameters)".into(),
            ));
        };
        return if curve == OID_EC_P256 {
            Ok(KeyAlgorithm::Ec256)
        } else if curve == OID_NIST_EC_P384 {
            Ok(KeyAlgorithm::Ec384)
        } else {
            Err(PkiError::UnsupportedKey(curve_name(&curve.to_id_string())))
        };
    }
    let dotted = alg.to_id_string();
    let name = match dotted.as_str() {
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        "1.2.840.10040.4.1" => "DSA".to_owned(),
        "1.2.840.113549.1.1.10" => "RSASSA-PSS key".to_owned(),
        _ => format!("key algorithm {dotted}"),
    };
    Err(PkiError::UnsupportedKey(name))
}

/// The named curve of an EC key (`None` for explicit curve parameters).
pub(crate) fn named_curve<'a>(spki: &'a SubjectPublicKeyInfo<'_>) -> Option<Oid<'a>> {
    spki.algorithm
        .parameters
        .as_ref()
        .filter(|p| p.tag() == Tag::Oid)
        .and_then(|p| p.as_oid().ok())
}

/// Names an elliptic curve the PCA does not sign, by its dotted OID.
pub(crate) fn curve_name(dotted: &str) -> String {
    match dotted {
        "1.3.132.0.35" => "ECDSA P-521".to_owned(),
        "1.3.132.0.10" => "EC curve secp256k1".to_owned(),
        "1.2.156.10197.1.301" => "SM2".to_owned(),
        "1.3.36.3.3.2.8.1.1.7" => "EC curve brainpoolP256r1".to_owned(),
        "1.3.36.3.3.2.8.1.1.11" => "EC curve brainpoolP384r1".to_owned(),
        "1.3.36.3.3.2.8.1.1.13" => "EC curve brainpoolP512r1".to_owned(),
        other => format!("EC curve {other}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
        PKCS_ECDSA_P384_SHA384, PKCS_ED25519, SanType,
    };

    use proptest::prelude::*;

    use super::*;
    use crate::pki::{Eku, Ku, pem::first_block};

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

    #[test]
    fn csr_public_key_is_the_key_parse_csr_reads_from_pem_or_der() {
        let key = KeyPair::generate().unwrap();
        let pem = csr_with(&key, &["a.example"], "a");
        let parsed = parse_csr(pem.as_bytes()).unwrap();
        assert_eq!(csr_public_key(pem.as_bytes()), Some(parsed.spki_der.clone()));
        let der = first_block(pem.as_bytes(), "CERTIFICATE REQUEST").unwrap();
        assert_eq!(csr_public_key(&der), Some(parsed.spki_der));
        assert_eq!(csr_public_key(b"not a CSR"), None);
        assert_eq!(csr_public_key(&vec![0x30; MAX_CSR_BYTES + 1]), None);
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
            first_block(key.public_key_pem().as_bytes(), "PUBLIC KEY").unwrap(),
            info.spki_der
        );
        // CRLF input and DER input give the same result.
        let crlf = pem.replace('\n', "\r\n");
        assert_eq!(parse_csr(crlf.as_bytes()).unwrap().spki_der, info.spki_der);
        let der = first_block(pem.as_bytes(), CERTIFICATE_REQUEST).unwrap();
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
        let mut der = first_block(pem.as_bytes(), CERTIFICATE_REQUEST).unwrap();
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

    /// The shared hostile list (also driven end to end through the controller): every case
    /// is refused with a message naming its problem, never a panic.
    #[test]
    fn hostile_csrs_are_refused_naming_the_problem() {
        use ccm_e2e::hostile::{self, RefusedBy};
        let cases = hostile::csrs().expect("hostile CSR fixtures (needs openssl)");
        assert!(cases.len() >= 30, "{} cases", cases.len());
        assert_eq!(hostile::MAX_CSR_BYTES, MAX_CSR_BYTES);
        assert_eq!(hostile::MAX_SANS, MAX_SANS);
        let mut failures = Vec::new();
        for case in &cases {
            match (parse_csr(&case.request), case.refused_by) {
                (Err(e), RefusedBy::Parser) if e.to_string().contains(case.problem) => {}
                (Ok(info), RefusedBy::Plan) if info.basic_constraints_ca == Some(true) => {}
                (got, _) => failures.push(format!("{}: want {:?}, got {got:?}", case.name, case.problem)),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// One valid CSR (DER) and what it parses to, made once for all property cases.
    fn seed_csr() -> &'static (Vec<u8>, CsrInfo) {
        static SEED: std::sync::OnceLock<(Vec<u8>, CsrInfo)> = std::sync::OnceLock::new();
        SEED.get_or_init(|| {
            let key = KeyPair::generate().unwrap();
            let pem = csr_with(&key, &["a.example", "b.example"], "seed");
            let der = first_block(pem.as_bytes(), CERTIFICATE_REQUEST).unwrap();
            let info = parse_csr(&der).unwrap();
            (der, info)
        })
    }

    proptest! {
        #![proptest_config(crate::pki::fixtures::proptest_config())]

        /// Mutated CSRs never panic the parser, and whatever still parses is what was signed:
        /// the key and the SANs cannot change under a valid signature.
        #[test]
        fn mutated_csrs_never_panic_and_never_change_what_was_signed(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in proptest::option::of(any::<prop::sample::Index>()),
            as_pem in any::<bool>(),
        ) {
            let (seed, original) = seed_csr();
            let mut der = seed.clone();
            for (at, byte) in &edits {
                let i = at.index(der.len());
                der[i] = *byte;
            }
            if let Some(cut) = cut {
                der.truncate(cut.index(der.len()));
            }
            let input = if as_pem { encode_blocks(CERTIFICATE_REQUEST, [der.as_slice()]).into_bytes() } else { der.clone() };
            if let Ok(info) = parse_csr(&input) {
                prop_assert_eq!(&info.spki_der, &original.spki_der);
                prop_assert_eq!(&info.sans, &original.sans);
                prop_assert_eq!(&info.subject, &original.subject);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut der = vec![0x30];
            der.extend_from_slice(&body);
            prop_assert!(parse_csr(&der).is_err());
            let pem = encode_blocks(CERTIFICATE_REQUEST, [body.as_slice()]);
            let _ = parse_csr(pem.as_bytes());
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
