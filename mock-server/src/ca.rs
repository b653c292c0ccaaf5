//! Keys, CSR parsing/validation and X.509 issuance.
//!
//! Certificates are assembled with rcgen; signatures are produced by [`CaKey`]:
//! RSA with ring (PKCS#1 v1.5, SHA-256/384/512), P-256 and P-384 with the RustCrypto
//! `p256`/`p384` crates over a prehash. That is what makes `ecdsa-with-SHA384` possible
//! for an EC256 CA (ring only signs P-256 with SHA-256): ECDSA truncates the 384-bit
//! digest to the curve order size, exactly as X9.62/FIPS 186 specify, and verifiers
//! (ring, OpenSSL, Go) accept P-256 + SHA-384.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm, SigningKey,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384, Sha512};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509CertificationRequest, X509Name};

/// Maximum accepted CSR PEM length. Documented for ParseCertificateSigningRequest; the
/// same limit is assumed for CreateCertificateByCsr [unconfirmed] — enforcing it is the
/// safe choice for a client (it cannot come to rely on larger CSRs).
pub const MAX_CSR_LEN: usize = 5120;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("key generation failed: {0}")]
    KeyGen(String),
    #[error("invalid key: {0}")]
    Key(String),
    #[error("signing failed")]
    Sign,
    #[error("certificate assembly failed: {0}")]
    Cert(String),
}

/// Why a CSR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    #[error("csr is not a valid PEM certificate request: {0}")]
    Garbage(String),
    #[error("csr signature verification failed")]
    BadSignature,
    #[error("unsupported key algorithm in csr: {0} (supported: RSA2048, RSA4096, EC256, EC384)")]
    UnsupportedKey(String),
    #[error("incorrect distinguished name in csr: {0}")]
    BadDn(String),
    #[error("unsupported subject alternative name in csr: {0}")]
    BadSan(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    #[serde(rename = "RSA2048")]
    Rsa2048,
    #[serde(rename = "RSA4096")]
    Rsa4096,
    #[serde(rename = "EC256")]
    Ec256,
    #[serde(rename = "EC384")]
    Ec384,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa2048 => "RSA2048",
            Self::Rsa4096 => "RSA4096",
            Self::Ec256 => "EC256",
            Self::Ec384 => "EC384",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RSA2048" => Some(Self::Rsa2048),
            "RSA4096" => Some(Self::Rsa4096),
            "EC256" => Some(Self::Ec256),
            "EC384" => Some(Self::Ec384),
            _ => None,
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa4096)
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("unsupported key algorithm {s} (RSA2048|RSA4096|EC256|EC384)"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashAlg {
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA384")]
    Sha384,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl std::str::FromStr for HashAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("unsupported signature algorithm {s} (SHA256|SHA384|SHA512)"))
    }
}

impl HashAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA256",
            Self::Sha384 => "SHA384",
            Self::Sha512 => "SHA512",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SHA256" => Some(Self::Sha256),
            "SHA384" => Some(Self::Sha384),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

enum KeySigner {
    Rsa(ring::signature::RsaKeyPair),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

/// A CA private key plus its public parts.
pub struct CaKey {
    pub alg: KeyAlgorithm,
    pkcs8: Vec<u8>,
    spki_der: Vec<u8>,
    public_raw: Vec<u8>,
    signer: KeySigner,
}

impl std::fmt::Debug for CaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaKey").field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl CaKey {
    /// Generate a fresh key. RSA generation is slow (seconds in debug builds): call it
    /// from a blocking context.
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, PkiError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = match alg {
            KeyAlgorithm::Ec256 | KeyAlgorithm::Ec384 => {
                let ring_alg = if alg == KeyAlgorithm::Ec256 {
                    &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING
                };
                ring::signature::EcdsaKeyPair::generate_pkcs8(ring_alg, &rng)
                    .map_err(|e| PkiError::KeyGen(e.to_string()))?
                    .as_ref()
                    .to_vec()
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa4096 => {
                use rsa::pkcs8::EncodePrivateKey;
                let bits = if alg == KeyAlgorithm::Rsa2048 { 2048 } else { 4096 };
                let key =
                    rsa::PrivateKey::new(&mut getrandom::SysRng, bits).map_err(|e| PkiError::KeyGen(e.to_string()))?;
                key.to_pkcs8_der()
                    .map_err(|e| PkiError::KeyGen(e.to_string()))?
                    .as_bytes()
                    .to_vec()
            }
        };
        Self::from_pkcs8(alg, &pkcs8)
    }

    /// Load a PKCS#8 DER key of the given algorithm.
    pub fn from_pkcs8(alg: KeyAlgorithm, der: &[u8]) -> Result<Self, PkiError> {
        use p256::pkcs8::DecodePrivateKey;
        let key_err = PkiError::Key;
        let (signer, kp) = match alg {
            KeyAlgorithm::Ec256 => {
                let k = p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| key_err(e.to_string()))?;
                let kp = rcgen::KeyPair::try_from(der).map_err(|e| key_err(e.to_string()))?;
                (KeySigner::P256(k), kp)
            }
            KeyAlgorithm::Ec384 => {
                let k = p384::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| key_err(e.to_string()))?;
                let kp = rcgen::KeyPair::try_from(der).map_err(|e| key_err(e.to_string()))?;
                (KeySigner::P384(k), kp)
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa4096 => {
                let k = ring::signature::RsaKeyPair::from_pkcs8(der).map_err(|e| key_err(e.to_string()))?;
                let want = if alg == KeyAlgorithm::Rsa2048 { 256 } else { 512 };
                if k.public().modulus_len() != want {
                    return Err(key_err(format!(
                        "RSA modulus is {} bytes, expected {want}",
                        k.public().modulus_len()
                    )));
                }
                let kp = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
                    &rustls::pki_types::PrivatePkcs8KeyDer::from(der),
                    &rcgen::PKCS_RSA_SHA256,
                )
                .map_err(|e| key_err(e.to_string()))?;
                (KeySigner::Rsa(k), kp)
            }
        };
        Ok(Self {
            alg,
            pkcs8: der.to_vec(),
            spki_der: kp.subject_public_key_info(),
            public_raw: kp.public_key_raw().to_vec(),
            signer,
        })
    }

    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Subject key identifier: leftmost 160 bits of SHA-256 of the subjectPublicKey bits
    /// (RFC 7093 §2 method 1).
    pub fn key_id(&self) -> Vec<u8> {
        key_id_of(&self.public_raw)
    }

    /// Sign `msg` (a TBS structure) with the given hash.
    pub fn sign(&self, hash: HashAlg, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let prehash = |h: HashAlg| -> Vec<u8> {
            match h {
                HashAlg::Sha256 => Sha256::digest(msg).to_vec(),
                HashAlg::Sha384 => Sha384::digest(msg).to_vec(),
                HashAlg::Sha512 => Sha512::digest(msg).to_vec(),
            }
        };
        match &self.signer {
            KeySigner::Rsa(k) => {
                let enc: &'static dyn ring::signature::RsaEncoding = match hash {
                    HashAlg::Sha256 => &ring::signature::RSA_PKCS1_SHA256,
                    HashAlg::Sha384 => &ring::signature::RSA_PKCS1_SHA384,
                    HashAlg::Sha512 => &ring::signature::RSA_PKCS1_SHA512,
                };
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(enc, &ring::rand::SystemRandom::new(), msg, &mut sig)
                    .map_err(|_| PkiError::Sign)?;
                Ok(sig)
            }
            KeySigner::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign_prehash(&prehash(hash)).map_err(|_| PkiError::Sign)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            KeySigner::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign_prehash(&prehash(hash)).map_err(|_| PkiError::Sign)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }

    /// The rcgen algorithm whose AlgorithmIdentifier names (this key type, `hash`).
    fn signature_algorithm(&self, hash: HashAlg) -> Result<&'static SignatureAlgorithm, PkiError> {
        Ok(match (self.alg.is_rsa(), hash) {
            (true, HashAlg::Sha256) => &rcgen::PKCS_RSA_SHA256,
            (true, HashAlg::Sha384) => &rcgen::PKCS_RSA_SHA384,
            (true, HashAlg::Sha512) => &rcgen::PKCS_RSA_SHA512,
            // ecdsa-with-SHA256 / ecdsa-with-SHA384 AlgorithmIdentifiers carry no curve
            // parameter, so these two constants name the right OIDs for either curve.
            (false, HashAlg::Sha256) => &rcgen::PKCS_ECDSA_P256_SHA256,
            (false, HashAlg::Sha384) => &rcgen::PKCS_ECDSA_P384_SHA384,
            // rcgen has no ecdsa-with-SHA512 identifier without aws-lc-rs: rcgen writes the
            // SHA-384 one and `der_patch` rewrites it (see `Signer::sha512_by_patch`).
            (false, HashAlg::Sha512) => &rcgen::PKCS_ECDSA_P384_SHA384,
        })
    }
}

pub fn key_id_of(subject_public_key_bits: &[u8]) -> Vec<u8> {
    Sha256::digest(subject_public_key_bits)[..20].to_vec()
}

/// rcgen signing adapter. `algorithm()` is only used by rcgen to write the signature
/// AlgorithmIdentifier: key identifiers are always pre-specified, so rcgen never derives
/// an SPKI from this adapter.
struct Signer<'a> {
    key: &'a CaKey,
    hash: HashAlg,
    alg: &'static SignatureAlgorithm,
    /// ECDSA with SHA-512: rcgen wrote ecdsa-with-SHA384 into the TBS; the signature must
    /// cover the TBS as it will finally read (ecdsa-with-SHA512), so patch it first.
    sha512_by_patch: bool,
}

impl PublicKeyData for Signer<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.key.public_raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

impl SigningKey for Signer<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        if self.sha512_by_patch {
            let mut tbs = msg.to_vec();
            der_patch::tbs_to_ecdsa_sha512(&mut tbs).map_err(|_| rcgen::Error::RingUnspecified)?;
            return self
                .key
                .sign(self.hash, &tbs)
                .map_err(|_| rcgen::Error::RingUnspecified);
        }
        self.key.sign(self.hash, msg).map_err(|_| rcgen::Error::RingUnspecified)
    }
}

/// ecdsa-with-SHA512 for certificates rcgen assembled with the ecdsa-with-SHA384
/// identifier. Hand-written because rcgen only has an ecdsa-with-SHA512 identifier with its
/// aws-lc-rs backend (a C build this crate avoids); the two AlgorithmIdentifiers have the
/// same length and differ in the OID's last byte, so DER lengths never change.
mod der_patch {
    use super::PkiError;

    /// AlgorithmIdentifier { ecdsa-with-SHA384 (1.2.840.10045.4.3.3) }, no parameters.
    const ECDSA_SHA384: [u8; 12] = [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    /// Last OID byte of ecdsa-with-SHA512 (1.2.840.10045.4.3.4).
    const SHA512_LAST: u8 = 0x04;

    fn bad() -> PkiError {
        PkiError::Cert("unexpected DER while writing ecdsa-with-SHA512".to_owned())
    }

    /// (content start, end) of the DER element at `pos`.
    fn element(buf: &[u8], pos: usize) -> Result<(usize, usize), PkiError> {
        let first = usize::from(*buf.get(pos + 1).ok_or_else(bad)?);
        let (len, header) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            if n == 0 || n > 4 {
                return Err(bad());
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | usize::from(*buf.get(pos + 2 + i).ok_or_else(bad)?);
            }
            (len, 2 + n)
        };
        let start = pos + header;
        let end = start.checked_add(len).filter(|e| *e <= buf.len()).ok_or_else(bad)?;
        Ok((start, end))
    }

    fn patch_alg_id(buf: &mut [u8], pos: usize) -> Result<(), PkiError> {
        if buf.get(pos..pos + ECDSA_SHA384.len()) != Some(&ECDSA_SHA384[..]) {
            return Err(bad());
        }
        buf[pos + ECDSA_SHA384.len() - 1] = SHA512_LAST;
        Ok(())
    }

    /// The `signature` field of a TBSCertificate (the element starting at 0).
    pub(super) fn tbs_to_ecdsa_sha512(tbs: &mut [u8]) -> Result<(), PkiError> {
        let (mut pos, _) = element(tbs, 0)?;
        if tbs.get(pos) == Some(&0xa0) {
            pos = element(tbs, pos)?.1; // [0] version
        }
        pos = element(tbs, pos)?.1; // serialNumber
        patch_alg_id(tbs, pos)
    }

    /// Both AlgorithmIdentifiers of a Certificate (inside the TBS and after it).
    pub(super) fn cert_to_ecdsa_sha512(cert: &mut [u8]) -> Result<(), PkiError> {
        let (tbs_pos, _) = element(cert, 0)?;
        let (_, tbs_end) = element(cert, tbs_pos)?;
        tbs_to_ecdsa_sha512(&mut cert[tbs_pos..tbs_end])?;
        patch_alg_id(cert, tbs_end)
    }
}

/// The six DN fields PCA models (`distinguished_name` in responses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizational_unit: Option<String>,
}

impl Dn {
    /// The six PCA fields of an X.509 name (first value of each).
    pub fn from_x509_name(name: &X509Name<'_>) -> Self {
        Self {
            common_name: first_attr(name.iter_common_name()),
            country: first_attr(name.iter_country()),
            state: first_attr(name.iter_state_or_province()),
            locality: first_attr(name.iter_locality()),
            organization: first_attr(name.iter_organization()),
            organizational_unit: first_attr(name.iter_organizational_unit()),
        }
    }

    pub fn cn(&self) -> &str {
        self.common_name.as_deref().unwrap_or("")
    }

    /// Encode as an X.509 Name in the order C, ST, L, O, OU, CN (country as
    /// PrintableString, the rest UTF8String). Deterministic, so a CA's subject and the
    /// issuer field of everything it signs are byte-identical.
    pub fn to_rcgen(&self) -> Result<DistinguishedName, String> {
        let mut dn = DistinguishedName::new();
        if let Some(c) = &self.country {
            let p = rcgen::string::PrintableString::try_from(c.as_str()).map_err(|e| e.to_string())?;
            dn.push(DnType::CountryName, DnValue::PrintableString(p));
        }
        let utf8 = [
            (DnType::StateOrProvinceName, &self.state),
            (DnType::LocalityName, &self.locality),
            (DnType::OrganizationName, &self.organization),
            (DnType::OrganizationalUnitName, &self.organizational_unit),
            (DnType::CommonName, &self.common_name),
        ];
        for (ty, v) in utf8 {
            if let Some(v) = v {
                dn.push(ty, DnValue::Utf8String(v.clone()));
            }
        }
        Ok(dn)
    }

    /// Validate the CA DN rules (terraform/doc: all six required; CN 1..64, country two
    /// letters, state/locality 1..128, O/OU 1..64).
    pub fn validate_for_ca(&self) -> Result<(), String> {
        let check = |name: &str, v: &Option<String>, max: usize| -> Result<(), String> {
            let v = v.as_deref().ok_or_else(|| format!("{name} is required"))?;
            let n = v.chars().count();
            if n == 0 || n > max {
                return Err(format!("{name} length must be in [1,{max}]"));
            }
            if !v.chars().all(|c| c.is_alphanumeric() || "-_., *".contains(c)) {
                return Err(format!("{name} contains unsupported characters"));
            }
            Ok(())
        };
        check("common_name", &self.common_name, 64)?;
        check("state", &self.state, 128)?;
        check("locality", &self.locality, 128)?;
        check("organization", &self.organization, 64)?;
        check("organizational_unit", &self.organizational_unit, 64)?;
        let c = self.country.as_deref().ok_or("country is required")?;
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err("country must be two letters".into());
        }
        Ok(())
    }
}

/// A validated CSR.
#[derive(Debug, Clone)]
pub struct ParsedCsr {
    pub spki_der: Vec<u8>,
    pub public_key_bits: Vec<u8>,
    pub key_algorithm: KeyAlgorithm,
    pub subject: DistinguishedName,
    pub dn: Dn,
    pub sans: Vec<SanType>,
    pub key_usages: Option<Vec<KeyUsagePurpose>>,
    pub ekus: Vec<ExtendedKeyUsagePurpose>,
    /// Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub spki_sha256: String,
    /// Signature algorithm of the CSR itself, e.g. `SHA256withRSA` (for ParseCSR).
    pub signature_algorithm: String,
}

pub(crate) fn x509_name_to_rcgen(name: &X509Name<'_>) -> Result<DistinguishedName, String> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        // [unconfirmed] how PCA treats unusual subjects. Multi-valued RDNs are flattened; a
        // repeated attribute type keeps its last value
        // (rcgen's model) — PCA itself only models one value per DN field.
        for attr in rdn.iter() {
            let oid: Vec<u64> = attr.attr_type().iter().ok_or("unsupported attribute OID")?.collect();
            let ty = DnType::from_oid(&oid);
            let data = attr.attr_value().data;
            let s = || std::str::from_utf8(data).map_err(|_| "attribute value is not UTF-8".to_string());
            let v = match attr.attr_value().header.tag() {
                Tag::PrintableString => {
                    DnValue::PrintableString(rcgen::string::PrintableString::try_from(s()?).map_err(|e| e.to_string())?)
                }
                Tag::Ia5String => {
                    DnValue::Ia5String(rcgen::string::Ia5String::try_from(s()?).map_err(|e| e.to_string())?)
                }
                Tag::Utf8String | Tag::T61String => DnValue::Utf8String(s()?.to_owned()),
                Tag::BmpString => DnValue::BmpString(
                    rcgen::string::BmpString::from_utf16be(data.to_vec()).map_err(|e| e.to_string())?,
                ),
                other => return Err(format!("unsupported attribute string type {other:?}")),
            };
            dn.push(ty, v);
        }
    }
    Ok(dn)
}

fn first_attr<'x, 'y: 'x>(
    mut it: impl Iterator<Item = &'x x509_parser::x509::AttributeTypeAndValue<'y>>,
) -> Option<String> {
    it.next().and_then(|a| a.as_str().ok().map(str::to_owned))
}

fn oid_string(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    oid.to_id_string()
}

/// Whether a CSR must carry a common name. Which one the real service applies is
/// unconfirmed; the mock runs either (`--csr-cn-rule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CnRule {
    /// A CSR without a common name is refused (`PCA.00020101`): the safe side for a client.
    #[default]
    Strict,
    /// A CSR may have no common name (SAN-only, as istio-csr's workload CSRs).
    Lenient,
}

/// Parse and validate a PEM CSR under the strict common-name rule.
pub fn parse_csr(pem_str: &str) -> Result<ParsedCsr, CsrError> {
    parse_csr_with(pem_str, CnRule::Strict)
}

/// Parse and validate a PEM CSR. Checks, in order: PEM/DER shape, key algorithm (the
/// supported set is RSA2048, RSA4096, EC256, EC384), self-signature, subject, SANs.
pub fn parse_csr_with(pem_str: &str, cn_rule: CnRule) -> Result<ParsedCsr, CsrError> {
    if pem_str.len() > MAX_CSR_LEN {
        return Err(CsrError::Garbage(format!("csr longer than {MAX_CSR_LEN} characters")));
    }
    let block = pem::parse(pem_str.trim()).map_err(|e| CsrError::Garbage(e.to_string()))?;
    if block.tag() != "CERTIFICATE REQUEST" && block.tag() != "NEW CERTIFICATE REQUEST" {
        return Err(CsrError::Garbage(format!("unexpected PEM label {}", block.tag())));
    }
    let der = block.contents();
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|e| CsrError::Garbage(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Garbage("trailing data after CSR".into()));
    }
    let info = &csr.certification_request_info;
    let spki = &info.subject_pki;

    // [unconfirmed] exact behaviour for CSRs with unsupported keys: refused with 400
    // PCA.00020102, the documented "invalid key algorithm" code (RSA2048/4096, EC256/384).
    let key_algorithm = classify_key(spki)?;
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;

    let subject = x509_name_to_rcgen(&info.subject).map_err(CsrError::BadDn)?;
    let dn = Dn::from_x509_name(&info.subject);
    // [unconfirmed] PCA's certificate model and name filter revolve around the CN and
    // CreateCertificate requires a 1..64 character common_name; we require the same of a
    // CSR. Strict is the safe side: a client that passes here also passes if the real
    // service insists on a CN.
    match dn.common_name.as_deref() {
        None | Some("") if cn_rule == CnRule::Lenient => {}
        None | Some("") => return Err(CsrError::BadDn("the CSR subject must contain a common name".into())),
        Some(cn) if cn.chars().count() > 64 => {
            return Err(CsrError::BadDn("common name longer than 64 characters".into()));
        }
        _ => {}
    }

    let mut sans = Vec::new();
    let mut key_usages = None;
    let mut ekus = Vec::new();
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        sans.push(convert_san(name)?);
                    }
                }
                ParsedExtension::KeyUsage(ku) => {
                    let mut v = Vec::new();
                    let flags = [
                        (ku.digital_signature(), KeyUsagePurpose::DigitalSignature),
                        (ku.non_repudiation(), KeyUsagePurpose::ContentCommitment),
                        (ku.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
                        (ku.data_encipherment(), KeyUsagePurpose::DataEncipherment),
                        (ku.key_agreement(), KeyUsagePurpose::KeyAgreement),
                        (ku.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
                        (ku.crl_sign(), KeyUsagePurpose::CrlSign),
                        (ku.encipher_only(), KeyUsagePurpose::EncipherOnly),
                        (ku.decipher_only(), KeyUsagePurpose::DecipherOnly),
                    ];
                    for (set, p) in flags {
                        if set {
                            v.push(p);
                        }
                    }
                    key_usages = Some(v);
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    let known = [
                        (eku.any, ExtendedKeyUsagePurpose::Any),
                        (eku.server_auth, ExtendedKeyUsagePurpose::ServerAuth),
                        (eku.client_auth, ExtendedKeyUsagePurpose::ClientAuth),
                        (eku.code_signing, ExtendedKeyUsagePurpose::CodeSigning),
                        (eku.email_protection, ExtendedKeyUsagePurpose::EmailProtection),
                        (eku.time_stamping, ExtendedKeyUsagePurpose::TimeStamping),
                        (eku.ocsp_signing, ExtendedKeyUsagePurpose::OcspSigning),
                    ];
                    for (set, p) in known {
                        if set {
                            ekus.push(p);
                        }
                    }
                    for oid in &eku.other {
                        let arcs: Vec<u64> = oid
                            .iter()
                            .ok_or_else(|| CsrError::Garbage("extended key usage OID too large".into()))?
                            .collect();
                        ekus.push(ExtendedKeyUsagePurpose::Other(arcs));
                    }
                }
                // basicConstraints is decided by the service (from `type`), and other
                // requested extensions are not copied.
                _ => {}
            }
        }
    }

    let sig_oid = oid_string(&csr.signature_algorithm.algorithm);
    let signature_algorithm = match sig_oid.as_str() {
        "1.2.840.113549.1.1.11" => "SHA256withRSA",
        "1.2.840.113549.1.1.12" => "SHA384withRSA",
        "1.2.840.113549.1.1.13" => "SHA512withRSA",
        "1.2.840.10045.4.3.2" => "SHA256withECDSA",
        "1.2.840.10045.4.3.3" => "SHA384withECDSA",
        "1.2.840.10045.4.3.4" => "SHA512withECDSA",
        other => other,
    }
    .to_owned();

    Ok(ParsedCsr {
        spki_sha256: hex::encode(Sha256::digest(spki.raw)),
        spki_der: spki.raw.to_vec(),
        public_key_bits: spki.subject_public_key.data.to_vec(),
        key_algorithm,
        subject,
        dn,
        sans,
        key_usages,
        ekus,
        signature_algorithm,
    })
}

fn classify_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<KeyAlgorithm, CsrError> {
    let alg = oid_string(&spki.algorithm.algorithm);
    match alg.as_str() {
        "1.2.840.113549.1.1.1" => {
            let bits = match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
                _ => return Err(CsrError::Garbage("malformed RSA public key".into())),
            };
            match bits {
                2048 => Ok(KeyAlgorithm::Rsa2048),
                4096 => Ok(KeyAlgorithm::Rsa4096),
                n => Err(CsrError::UnsupportedKey(format!("RSA{n}"))),
            }
        }
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| oid_string(&o))
                .ok_or_else(|| CsrError::UnsupportedKey("EC key without named curve".into()))?;
            match curve.as_str() {
                "1.2.840.10045.3.1.7" => Ok(KeyAlgorithm::Ec256),
                "1.3.132.0.34" => Ok(KeyAlgorithm::Ec384),
                "1.3.132.0.35" => Err(CsrError::UnsupportedKey("EC P-521".into())),
                other => Err(CsrError::UnsupportedKey(format!("EC curve {other}"))),
            }
        }
        "1.3.101.112" => Err(CsrError::UnsupportedKey("Ed25519".into())),
        "1.3.101.113" => Err(CsrError::UnsupportedKey("Ed448".into())),
        "1.2.840.113549.1.1.10" => Err(CsrError::UnsupportedKey("RSASSA-PSS".into())),
        other => Err(CsrError::UnsupportedKey(format!("key type {other}"))),
    }
}

fn modulus_bits(m: &[u8]) -> usize {
    let m = match m.iter().position(|&b| b != 0) {
        Some(i) => &m[i..],
        None => return 0,
    };
    (m.len() - 1) * 8 + (8 - m[0].leading_zeros() as usize)
}

pub(crate) fn convert_san(name: &GeneralName<'_>) -> Result<SanType, CsrError> {
    let ia5 = |s: &str| rcgen::string::Ia5String::try_from(s).map_err(|e| CsrError::BadSan(e.to_string()));
    Ok(match name {
        GeneralName::DNSName(s) => SanType::DnsName(ia5(s)?),
        GeneralName::RFC822Name(s) => SanType::Rfc822Name(ia5(s)?),
        GeneralName::URI(s) => SanType::URI(ia5(s)?),
        GeneralName::IPAddress(b) => match b.len() {
            4 => SanType::IpAddress(IpAddr::from([b[0], b[1], b[2], b[3]])),
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                SanType::IpAddress(IpAddr::from(a))
            }
            n => return Err(CsrError::BadSan(format!("IP address of {n} bytes"))),
        },
        // PCA supports DNS, IP, EMAIL and URI SANs only.
        other => return Err(CsrError::BadSan(format!("{other:?}").chars().take(60).collect())),
    })
}

/// What kind of certificate to issue from a CSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    Entity,
    Intermediate { path_length: u8 },
}

/// Everything about the issuing CA needed to sign.
pub struct IssuerMaterial<'a> {
    pub dn: &'a Dn,
    pub key_id: &'a [u8],
    pub key: &'a CaKey,
}

/// A random positive serial number (16 bytes, top bit clear, never leading zero).
pub fn random_serial() -> Vec<u8> {
    use rand::RngCore;
    let mut s = vec![0u8; 16];
    rand::rng().fill_bytes(&mut s);
    s[0] = (s[0] & 0x7f) | 0x10;
    s
}

pub(crate) fn build_params(
    subject: DistinguishedName,
    subject_key_id: Vec<u8>,
    serial: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = subject;
    p.key_identifier_method = KeyIdMethod::PreSpecified(subject_key_id);
    p.serial_number = Some(SerialNumber::from_slice(serial));
    p.not_before = not_before;
    p.not_after = not_after;
    p.use_authority_key_identifier_extension = true;
    p
}

pub(crate) fn sign_params(
    params: &CertificateParams,
    subject_spki_der: &[u8],
    issuer: &IssuerMaterial<'_>,
    hash: HashAlg,
) -> Result<Vec<u8>, PkiError> {
    let subject_key =
        rcgen::SubjectPublicKeyInfo::from_der(subject_spki_der).map_err(|e| PkiError::Cert(e.to_string()))?;
    let mut issuer_params = CertificateParams::default();
    issuer_params.distinguished_name = issuer.dn.to_rcgen().map_err(PkiError::Cert)?;
    issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(issuer.key_id.to_vec());
    issuer_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let sha512_by_patch = !issuer.key.alg.is_rsa() && hash == HashAlg::Sha512;
    let signer = Signer {
        key: issuer.key,
        hash,
        alg: issuer.key.signature_algorithm(hash)?,
        sha512_by_patch,
    };
    let issuer = Issuer::new(issuer_params, signer);
    let cert = params
        .signed_by(&subject_key, &issuer)
        .map_err(|e| PkiError::Cert(e.to_string()))?;
    let mut der = cert.der().to_vec();
    if sha512_by_patch {
        der_patch::cert_to_ecdsa_sha512(&mut der)?;
    }
    Ok(der)
}

/// Issue a certificate for a validated CSR. The caller has already checked validity
/// against the issuer and path-length rules.
pub fn issue_from_csr(
    csr: &ParsedCsr,
    issuer: &IssuerMaterial<'_>,
    kind: IssueKind,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: &[u8],
) -> Result<Vec<u8>, PkiError> {
    let mut p = build_params(
        csr.subject.clone(),
        key_id_of(&csr.public_key_bits),
        serial,
        not_before,
        not_after,
    );
    // [unconfirmed] whether PCA copies SANs/EKUs from the CSR (docs/pca-behaviour.md, question 3).
    // Copying is what a CSR-based issuer needs (cert-manager puts dnsNames/ipAddresses/
    // usages only in the CSR), so the mock copies them.
    p.subject_alt_names = csr.sans.clone();
    p.extended_key_usages = csr.ekus.clone();
    match kind {
        IssueKind::Entity => {
            // [unconfirmed] basicConstraints is set by the service: CA:FALSE for ENTITY_CERT
            // whatever the CSR asks for (a CSR cannot make itself a CA).
            // Documented default for ENTITY_CERT; the CSR's keyUsage takes precedence.
            // (whether the default also applies to RSA keys is unconfirmed; we apply
            // the documented default regardless of key type.)
            p.key_usages = csr
                .key_usages
                .clone()
                .unwrap_or_else(|| vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyAgreement]);
            p.is_ca = IsCa::ExplicitNoCa;
        }
        IssueKind::Intermediate { path_length } => {
            p.key_usages = csr.key_usages.clone().unwrap_or_else(|| {
                vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::CrlSign,
                ]
            });
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_length));
        }
    }
    // Signature hash for CSR issuance is the documented default SHA-384 (the call has no field).
    sign_params(&p, &csr.spki_der, issuer, HashAlg::Sha384)
}

/// Parameters for a CA certificate made by the mock itself.
pub struct CaCertSpec<'a> {
    pub dn: &'a Dn,
    pub key: &'a CaKey,
    /// `None` → unconstrained (roots).
    pub path_length: Option<u8>,
    pub key_usages: Vec<KeyUsagePurpose>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub serial: &'a [u8],
    pub hash: HashAlg,
}

/// Make a CA certificate: self-signed when `issuer` is `None`.
pub fn make_ca_cert(spec: &CaCertSpec<'_>, issuer: Option<&IssuerMaterial<'_>>) -> Result<Vec<u8>, PkiError> {
    let key_id = spec.key.key_id();
    let mut p = build_params(
        spec.dn.to_rcgen().map_err(PkiError::Cert)?,
        key_id.clone(),
        spec.serial,
        spec.not_before,
        spec.not_after,
    );
    p.is_ca = IsCa::Ca(match spec.path_length {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = spec.key_usages.clone();
    let self_material = IssuerMaterial {
        dn: spec.dn,
        key_id: &key_id,
        key: spec.key,
    };
    let issuer = issuer.unwrap_or(&self_material);
    sign_params(&p, spec.key.spki_der(), issuer, spec.hash)
}

/// Build a CSR for a PENDING CA (ExportCertificateAuthorityCsr).
pub fn make_ca_csr(dn: &Dn, key: &CaKey) -> Result<Vec<u8>, PkiError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn.to_rcgen().map_err(PkiError::Cert)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // The request is signed by the CA key itself; ring can do that for every supported
    // key type with its natural hash.
    let kp = match key.alg {
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa4096 => rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls::pki_types::PrivatePkcs8KeyDer::from(key.pkcs8_der()),
            &rcgen::PKCS_RSA_SHA256,
        ),
        _ => rcgen::KeyPair::try_from(key.pkcs8_der()),
    }
    .map_err(|e| PkiError::Cert(e.to_string()))?;
    let csr = p.serialize_request(&kp).map_err(|e| PkiError::Cert(e.to_string()))?;
    Ok(csr.der().to_vec())
}

/// PEM with CRLF line endings (the API's output format).
pub fn pem_crlf(tag: &str, der: &[u8]) -> String {
    let p = pem::Pem::new(tag, der.to_vec());
    pem::encode_config(&p, pem::EncodeConfig::new().set_line_ending(pem::LineEnding::CRLF))
}

/// Lowercase hex of the serial number bytes without leading zero bytes.
pub fn serial_hex(serial: &[u8]) -> String {
    let start = serial
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(serial.len().saturating_sub(1));
    hex::encode(&serial[start..])
}

#[cfg(test)]
pub(crate) mod test_support {
    //! CSR builders for tests (the "client side").
    use super::*;

    pub fn ec_key() -> rcgen::KeyPair {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
    }

    pub fn csr_with(key: &rcgen::KeyPair, cn: &str, f: impl FnOnce(&mut CertificateParams)) -> String {
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        if !cn.is_empty() {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        f(&mut p);
        p.serialize_request(key).unwrap().pem().unwrap()
    }

    pub fn csr(cn: &str, dns: &[&str]) -> String {
        let key = ec_key();
        csr_with(&key, cn, |p| {
            p.subject_alt_names = dns
                .iter()
                .map(|d| SanType::DnsName(rcgen::string::Ia5String::try_from(*d).unwrap()))
                .collect();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use x509_parser::prelude::{X509Certificate, parse_x509_certificate};

    fn dn(cn: &str) -> Dn {
        Dn {
            common_name: Some(cn.into()),
            country: Some("CN".into()),
            state: Some("Guangdong".into()),
            locality: Some("Shenzhen".into()),
            organization: Some("ccm-mock-pca".into()),
            organizational_unit: Some("test".into()),
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
    }

    fn mk_root(alg: KeyAlgorithm) -> (CaKey, Dn, Vec<u8>) {
        let key = CaKey::generate(alg).unwrap();
        let d = dn("root");
        let der = make_ca_cert(
            &CaCertSpec {
                dn: &d,
                key: &key,
                path_length: None,
                key_usages: vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
                not_before: now(),
                not_after: now() + time::Duration::days(3650),
                serial: &random_serial(),
                hash: HashAlg::Sha384,
            },
            None,
        )
        .unwrap();
        (key, d, der)
    }

    fn parse(der: &[u8]) -> X509Certificate<'_> {
        parse_x509_certificate(der).unwrap().1
    }

    #[test]
    fn ec256_ca_signs_leaf_with_ecdsa_sha384_and_copies_extensions() {
        let (key, d, root_der) = mk_root(KeyAlgorithm::Ec256);
        let root = parse(&root_der);
        root.verify_signature(None).unwrap();
        assert_eq!(root.signature_algorithm.algorithm.to_id_string(), "1.2.840.10045.4.3.3");

        let ck = ec_key();
        let pem = csr_with(&ck, "leaf.example", |p| {
            p.subject_alt_names = vec![
                SanType::DnsName("leaf.example".try_into().unwrap()),
                SanType::IpAddress("10.0.0.1".parse().unwrap()),
                SanType::URI("spiffe://td/ns/x".try_into().unwrap()),
            ];
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        });
        let csr = parse_csr(&pem).unwrap();
        assert_eq!(csr.key_algorithm, KeyAlgorithm::Ec256);
        let kid = key.key_id();
        let issuer = IssuerMaterial {
            dn: &d,
            key_id: &kid,
            key: &key,
        };
        let leaf_der = issue_from_csr(
            &csr,
            &issuer,
            IssueKind::Entity,
            now(),
            now() + time::Duration::days(30),
            &random_serial(),
        )
        .unwrap();
        let leaf = parse(&leaf_der);
        leaf.verify_signature(Some(root.public_key())).unwrap();
        assert_eq!(leaf.signature_algorithm.algorithm.to_id_string(), "1.2.840.10045.4.3.3");
        assert_eq!(
            leaf.tbs_certificate.issuer.as_raw(),
            root.tbs_certificate.subject.as_raw()
        );
        assert_eq!(leaf.public_key().raw, csr.spki_der.as_slice());
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 3);
        let ku = leaf.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_agreement());
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let bc = leaf.basic_constraints().unwrap().unwrap().value;
        assert!(!bc.ca);
        let aki = leaf
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0.to_vec()),
                _ => None,
            })
            .unwrap();
        assert_eq!(aki, kid);
        assert!(
            leaf.iter_extensions()
                .any(|e| matches!(e.parsed_extension(), ParsedExtension::SubjectKeyIdentifier(_)))
        );
        assert!(leaf.tbs_certificate.serial.bits() > 0);
    }

    #[test]
    fn default_key_usages_and_intermediate_basic_constraints() {
        let (key, d, root_der) = mk_root(KeyAlgorithm::Ec384);
        let root = parse(&root_der);
        let kid = key.key_id();
        let issuer = IssuerMaterial {
            dn: &d,
            key_id: &kid,
            key: &key,
        };
        let csr = parse_csr(&csr("nokus", &["a.example"])).unwrap();
        let leaf_der = issue_from_csr(
            &csr,
            &issuer,
            IssueKind::Entity,
            now(),
            now() + time::Duration::hours(1),
            &random_serial(),
        )
        .unwrap();
        let leaf = parse(&leaf_der);
        leaf.verify_signature(Some(root.public_key())).unwrap();
        let ku = leaf.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && ku.key_agreement() && !ku.key_cert_sign());
        assert!(leaf.extended_key_usage().unwrap().is_none());

        let int_der = issue_from_csr(
            &csr,
            &issuer,
            IssueKind::Intermediate { path_length: 2 },
            now(),
            now() + time::Duration::hours(1),
            &random_serial(),
        )
        .unwrap();
        let int = parse(&int_der);
        let bc = int.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(2));
        let ku = int.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
    }

    #[test]
    fn rsa_ca_uses_sha384_with_rsa() {
        let (key, d, root_der) = mk_root(KeyAlgorithm::Rsa2048);
        let root = parse(&root_der);
        root.verify_signature(None).unwrap();
        assert_eq!(
            root.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.113549.1.1.12"
        );
        let kid = key.key_id();
        let issuer = IssuerMaterial {
            dn: &d,
            key_id: &kid,
            key: &key,
        };
        let csr = parse_csr(&csr("rsa-issued", &[])).unwrap();
        let leaf_der = issue_from_csr(
            &csr,
            &issuer,
            IssueKind::Entity,
            now(),
            now() + time::Duration::hours(1),
            &random_serial(),
        )
        .unwrap();
        let leaf = parse(&leaf_der);
        leaf.verify_signature(Some(root.public_key())).unwrap();
        assert_eq!(
            leaf.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.113549.1.1.12"
        );
        // The RSA key round-trips through PKCS#8 for persistence.
        let again = CaKey::from_pkcs8(KeyAlgorithm::Rsa2048, key.pkcs8_der()).unwrap();
        assert_eq!(again.spki_der(), key.spki_der());
    }

    /// ecdsa-with-SHA512 (rewritten identifier, see `der_patch`): the signature covers the
    /// final TBS and verifies with SHA-512 on both curves.
    #[test]
    fn ec_ca_signs_with_ecdsa_sha512() {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        for alg in [KeyAlgorithm::Ec256, KeyAlgorithm::Ec384] {
            let key = CaKey::generate(alg).unwrap();
            let d = dn("sha512 root");
            let der = make_ca_cert(
                &CaCertSpec {
                    dn: &d,
                    key: &key,
                    path_length: None,
                    key_usages: vec![KeyUsagePurpose::KeyCertSign],
                    not_before: now(),
                    not_after: now() + time::Duration::days(1),
                    serial: &random_serial(),
                    hash: HashAlg::Sha512,
                },
                None,
            )
            .unwrap();
            let cert = parse(&der);
            assert_eq!(cert.signature_algorithm.algorithm.to_id_string(), "1.2.840.10045.4.3.4");
            assert_eq!(
                cert.tbs_certificate.signature.algorithm.to_id_string(),
                "1.2.840.10045.4.3.4"
            );
            let digest = Sha512::digest(cert.tbs_certificate.as_ref());
            let point = cert.public_key().subject_public_key.data.as_ref();
            let sig = cert.signature_value.data.as_ref();
            if alg == KeyAlgorithm::Ec256 {
                let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
                let sig = p256::ecdsa::Signature::from_der(sig).unwrap();
                vk.verify_prehash(&digest, &sig).unwrap();
            } else {
                let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
                let sig = p384::ecdsa::Signature::from_der(sig).unwrap();
                vk.verify_prehash(&digest, &sig).unwrap();
            }
        }
    }

    #[test]
    fn csr_key_algorithms() {
        // EC384 accepted.
        let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert_eq!(
            parse_csr(&csr_with(&k, "p384", |_| {})).unwrap().key_algorithm,
            KeyAlgorithm::Ec384
        );
        // Ed25519 refused.
        let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert!(matches!(
            parse_csr(&csr_with(&k, "ed", |_| {})),
            Err(CsrError::UnsupportedKey(_))
        ));
        // OpenSSL-made fixtures for the other sizes/curves.
        for (name, expect) in [
            ("rsa1024", Err(CsrError::UnsupportedKey("RSA1024".into()))),
            ("rsa3072", Err(CsrError::UnsupportedKey("RSA3072".into()))),
            ("p521", Err(CsrError::UnsupportedKey("EC P-521".into()))),
            ("ed25519", Err(CsrError::UnsupportedKey("Ed25519".into()))),
            ("rsa2048", Ok(KeyAlgorithm::Rsa2048)),
            ("rsa4096", Ok(KeyAlgorithm::Rsa4096)),
        ] {
            let pem = std::fs::read_to_string(format!("{}/testdata/{name}.csr", env!("CARGO_MANIFEST_DIR"))).unwrap();
            assert_eq!(parse_csr(&pem).map(|c| c.key_algorithm), expect, "{name}");
        }
    }

    #[test]
    fn csr_garbage_bad_signature_and_missing_cn() {
        assert!(matches!(parse_csr("hello"), Err(CsrError::Garbage(_))));
        assert!(matches!(
            parse_csr("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"),
            Err(CsrError::Garbage(_))
        ));
        assert!(matches!(
            parse_csr(&"A".repeat(MAX_CSR_LEN + 1)),
            Err(CsrError::Garbage(_))
        ));
        // Flip a byte inside the signature.
        let good = csr("tamper", &[]);
        let block = pem::parse(&good).unwrap();
        let mut der = block.contents().to_vec();
        let n = der.len();
        der[n - 5] ^= 0x01;
        let bad = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
        assert_eq!(parse_csr(&bad).unwrap_err(), CsrError::BadSignature);
        // No CN: refused by the strict rule, accepted by the lenient one (but not a long CN).
        assert!(matches!(parse_csr(&csr("", &["x.example"])), Err(CsrError::BadDn(_))));
        let no_cn = parse_csr_with(&csr("", &["x.example"]), CnRule::Lenient).unwrap();
        assert_eq!((no_cn.dn.common_name, no_cn.sans.len()), (None, 1));
        let long = "c".repeat(65);
        assert!(matches!(
            parse_csr_with(&csr(&long, &[]), CnRule::Lenient),
            Err(CsrError::BadDn(_))
        ));
        // CRLF PEM is fine.
        assert!(parse_csr(&good.replace('\n', "\r\n")).is_ok());
    }

    #[test]
    fn pem_output_uses_crlf() {
        let s = pem_crlf("CERTIFICATE", &[1, 2, 3]);
        assert!(s.starts_with("-----BEGIN CERTIFICATE-----\r\n"));
        assert!(s.ends_with("-----END CERTIFICATE-----\r\n"));
        assert!(!s.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn serial_is_positive_and_hex() {
        let s = random_serial();
        assert!(s[0] & 0x80 == 0 && s[0] != 0);
        assert_eq!(serial_hex(&[0, 0, 0x1a]), "1a");
    }
}
