//! Certificates that are wrong on purpose, for hostile answers (`/_mock/faults` `hostile`):
//! every one is a real, well-formed certificate signed by a real key, so a client has to
//! find the problem by checking, not by failing to parse.

use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{self, CaKey, Dn, HashAlg, IssuerMaterial, KeyAlgorithm, PkiError};

/// How many distinct same-named impostors a huge chain cycles through (each costs a key
/// generation and a signature; the chain repeats them).
const IMPOSTOR_POOL: usize = 16;

/// What a forged certificate keeps of the original.
#[derive(Clone)]
struct Template {
    subject: rcgen::DistinguishedName,
    subject_dn: Dn,
    issuer_dn: Dn,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
    is_ca: Option<Option<u8>>,
    sans: Vec<rcgen::SanType>,
    spki_der: Vec<u8>,
    key_bits: Vec<u8>,
}

fn template(der: &[u8]) -> Result<Template, PkiError> {
    let bad = |e: String| PkiError::Cert(format!("cannot read certificate to forge from: {e}"));
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    let tbs = &cert.tbs_certificate;
    let is_ca = match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => Some(bc.value.path_len_constraint.and_then(|n| u8::try_from(n).ok())),
        _ => None,
    };
    let sans = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| ca::convert_san(n).ok())
            .collect(),
        _ => Vec::new(),
    };
    let time = |t: &x509_parser::time::ASN1Time| {
        time::OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| bad(e.to_string()))
    };
    Ok(Template {
        subject: ca::x509_name_to_rcgen(&tbs.subject).map_err(bad)?,
        subject_dn: Dn::from_x509_name(&tbs.subject),
        issuer_dn: Dn::from_x509_name(&tbs.issuer),
        not_before: time(&tbs.validity.not_before)?,
        not_after: time(&tbs.validity.not_after)?,
        is_ca,
        sans,
        spki_der: tbs.subject_pki.raw.to_vec(),
        key_bits: tbs.subject_pki.subject_public_key.data.to_vec(),
    })
}

/// Sign a copy of `t` for the public key `(spki_der, key_bits)`, issued by `issuer`.
fn sign_copy(t: &Template, spki_der: &[u8], key_bits: &[u8], issuer: &IssuerMaterial<'_>) -> Result<Vec<u8>, PkiError> {
    let mut p = ca::build_params(
        t.subject.clone(),
        ca::key_id_of(key_bits),
        &ca::random_serial(),
        t.not_before,
        t.not_after,
    );
    p.subject_alt_names = t.sans.clone();
    match t.is_ca {
        Some(path_len) => {
            p.is_ca = IsCa::Ca(path_len.map_or(BasicConstraints::Unconstrained, BasicConstraints::Constrained));
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
            ];
        }
        None => {
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyAgreement];
        }
    }
    ca::sign_params(&p, spki_der, issuer, HashAlg::Sha384)
}

fn fresh_key() -> Result<CaKey, PkiError> {
    CaKey::generate(KeyAlgorithm::Ec256)
}

/// The same certificate (subject, SANs, validity, issuer) for a freshly generated key,
/// signed by the real issuer: "a certificate for another key".
pub fn for_another_key(cert_der: &[u8], issuer: &IssuerMaterial<'_>) -> Result<Vec<u8>, PkiError> {
    let t = template(cert_der)?;
    let key = fresh_key()?;
    let bits = public_key_bits(key.spki_der())?;
    sign_copy(&t, key.spki_der(), &bits, issuer)
}

/// Look-alikes of `chain` (same subjects and issuers, fresh keys, signed by each other's
/// fresh keys): names link, signatures do not.
pub fn unlinked(chain: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, PkiError> {
    let templates = chain.iter().map(|d| template(d)).collect::<Result<Vec<_>, _>>()?;
    let keys = (0..templates.len())
        .map(|_| fresh_key())
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(chain.len());
    for (i, t) in templates.iter().enumerate() {
        let signer = keys.get(i + 1).unwrap_or(&keys[i]);
        let signer_id = signer.key_id();
        let issuer = IssuerMaterial {
            dn: &t.issuer_dn,
            key_id: &signer_id,
            key: signer,
        };
        let bits = public_key_bits(keys[i].spki_der())?;
        out.push(sign_copy(t, keys[i].spki_der(), &bits, &issuer)?);
    }
    Ok(out)
}

/// A two-certificate loop above a certificate issued by `issuing_ca_der` (whose key is
/// `issuing_key`): A = the issuing CA's subject and key, issued by B; B = a "Loop CA",
/// issued by A's key. Every signature verifies; the chain never reaches a root.
pub fn chain_loop(issuing_ca_der: &[u8], issuing_key: &CaKey) -> Result<Vec<Vec<u8>>, PkiError> {
    let a = template(issuing_ca_der)?;
    let b_key = fresh_key()?;
    let b_id = b_key.key_id();
    let b_dn = Dn {
        common_name: Some("ccm-mock-pca Loop CA".to_owned()),
        organization: Some("ccm-mock-pca".to_owned()),
        ..Dn::default()
    };
    let a_issued_by_b = Template {
        issuer_dn: b_dn.clone(),
        ..a.clone()
    };
    let a_cert = sign_copy(
        &a_issued_by_b,
        &a.spki_der,
        &a.key_bits,
        &IssuerMaterial {
            dn: &b_dn,
            key_id: &b_id,
            key: &b_key,
        },
    )?;
    let b_bits = public_key_bits(b_key.spki_der())?;
    let b_issued_by_a = Template {
        subject: b_dn.to_rcgen().map_err(PkiError::Cert)?,
        subject_dn: b_dn,
        issuer_dn: a.subject_dn.clone(),
        is_ca: Some(None),
        sans: Vec::new(),
        ..a.clone()
    };
    let a_id = ca::key_id_of(&a.key_bits);
    let b_cert = sign_copy(
        &b_issued_by_a,
        b_key.spki_der(),
        &b_bits,
        &IssuerMaterial {
            dn: &a.subject_dn,
            key_id: &a_id,
            key: issuing_key,
        },
    )?;
    Ok(vec![a_cert, b_cert])
}

/// `count` same-named impostors of the issuing CA (its subject and issuer names, other
/// keys, signed by unrelated keys), cycling through a small pool, followed by `real`:
/// a linker that matches names has to check every one.
pub fn huge_chain(real: &[Vec<u8>], issuing_ca_der: &[u8], count: usize) -> Result<Vec<Vec<u8>>, PkiError> {
    let t = template(issuing_ca_der)?;
    let mut pool = Vec::with_capacity(IMPOSTOR_POOL);
    for _ in 0..IMPOSTOR_POOL.min(count.max(1)) {
        let key = fresh_key()?;
        let signer = fresh_key()?;
        let signer_id = signer.key_id();
        let issuer = IssuerMaterial {
            dn: &t.issuer_dn,
            key_id: &signer_id,
            key: &signer,
        };
        let bits = public_key_bits(key.spki_der())?;
        pool.push(sign_copy(&t, key.spki_der(), &bits, &issuer)?);
    }
    let impostors = count.saturating_sub(real.len());
    let mut out: Vec<Vec<u8>> = pool.iter().cycle().take(impostors).cloned().collect();
    out.extend(real.iter().cloned());
    Ok(out)
}

fn public_key_bits(spki_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    let (_, spki) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| PkiError::Key(e.to_string()))?;
    Ok(spki.subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests;
