//! Hostile CSRs, shared by ccm-issuer's unit tests (the parsing layer) and the end-to-end
//! hostile-input suite (the same inputs through the controller on a real control plane).
//!
//! Each case says what the final failure message must contain, so a test can check that the
//! refusal names the problem. Most are built in memory (rcgen for keys and well-formed
//! requests, yasna for the DER rcgen refuses to write); keys and signatures rcgen/ring cannot
//! make (RSA 1024/3072, P-521, secp256k1, brainpool, explicit curve parameters, Ed448, SM2,
//! SHA-1, RSA-PSS) come from the `openssl` command, which the test setup already requires.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, KeyPair, PKCS_ED25519, PublicKeyData,
    SigningKey,
};
use yasna::{DERWriter, Tag, models::ObjectIdentifier, tags::TAG_UTF8STRING};

/// Largest CSR input the issuer accepts (`ccm_issuer::pki::csr::MAX_CSR_BYTES`).
pub const MAX_CSR_BYTES: usize = 64 * 1024;
/// Most subject alternative names the issuer accepts in one CSR.
pub const MAX_SANS: usize = 100;

/// Where a hostile CSR is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedBy {
    /// `parse_csr` refuses it.
    Parser,
    /// It parses, but the request's planning refuses it (e.g. a CA claim on a leaf request).
    Plan,
}

/// One hostile CertificateRequest input.
#[derive(Debug, Clone)]
pub struct HostileCsr {
    /// Short name, for test output.
    pub name: &'static str,
    /// The bytes for `spec.request`.
    pub request: Vec<u8>,
    /// Text the failure message must contain.
    pub problem: &'static str,
    /// Which layer refuses it.
    pub refused_by: RefusedBy,
}

fn case(name: &'static str, request: impl Into<Vec<u8>>, problem: &'static str) -> HostileCsr {
    HostileCsr {
        name,
        request: request.into(),
        problem,
        refused_by: RefusedBy::Parser,
    }
}

/// Every hostile CSR. Needs the `openssl` command; takes a second or two (RSA key generation).
pub fn csrs() -> Result<Vec<HostileCsr>> {
    let mut all = keys_and_curves()?;
    all.extend(signatures()?);
    all.extend(framing()?);
    all.extend(subjects()?);
    all.extend(extensions()?);
    Ok(all)
}

fn keys_and_curves() -> Result<Vec<HostileCsr>> {
    let rsa = |bits: &str| {
        openssl_csr(
            &["-algorithm", "RSA", "-pkeyopt", &format!("rsa_keygen_bits:{bits}")],
            &[],
        )
    };
    let ec = |curve: &str| {
        openssl_csr(
            &["-algorithm", "EC", "-pkeyopt", &format!("ec_paramgen_curve:{curve}")],
            &[],
        )
    };
    let ed25519 = KeyPair::generate_for(&PKCS_ED25519)?;
    Ok(vec![
        case("rsa-1024", rsa("1024")?, "RSA 1024-bit"),
        case("rsa-3072", rsa("3072")?, "RSA 3072-bit"),
        case("ecdsa-p521", ec("P-521")?, "P-521"),
        case("ecdsa-secp256k1", ec("secp256k1")?, "secp256k1"),
        case("ecdsa-brainpool", ec("brainpoolP256r1")?, "brainpoolP256r1"),
        case(
            "ec-explicit-parameters",
            openssl_csr(
                &[
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-pkeyopt",
                    "ec_param_enc:explicit",
                ],
                &[],
            )?,
            "without a named curve",
        ),
        case("ed25519", rcgen_csr(&ed25519, |_| {})?, "Ed25519"),
        case("ed448", openssl_csr(&["-algorithm", "ED448"], &[])?, "Ed448"),
        case("sm2", openssl_csr(&["-algorithm", "SM2"], &["-sm3"])?, "SM2"),
        case("ec-point-off-curve", off_curve_point()?, "unreadable public key"),
    ])
}

fn signatures() -> Result<Vec<HostileCsr>> {
    let key = KeyPair::generate()?;
    let good = der_of(&rcgen_csr(&key, |_| {})?)?;
    let mut flipped_signature = good.clone();
    if let Some(last) = flipped_signature.last_mut() {
        *last ^= 0x01;
    }
    let other = KeyPair::generate()?;
    let info = request_info(&key.subject_public_key_info(), &name_cn("signed by another key"));
    let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
    Ok(vec![
        case("signature-bit-flipped", flipped_signature, "signature does not verify"),
        case(
            "subject-altered-after-signing",
            altered_subject(&key)?,
            "signature does not verify",
        ),
        case(
            "signed-by-another-key",
            sign_info(&other, &info)?,
            "signature does not verify",
        ),
        case("sha1-with-rsa", openssl_csr(&rsa, &["-sha1"])?, "sha1WithRSAEncryption"),
        case(
            "rsa-pss",
            openssl_csr(&rsa, &["-sha256", "-sigopt", "rsa_padding_mode:pss"])?,
            "rsassa-pss",
        ),
    ])
}

fn framing() -> Result<Vec<HostileCsr>> {
    let key = KeyPair::generate()?;
    let pem = rcgen_csr(&key, |_| {})?;
    let der = der_of(&pem)?;
    let cert_params = CertificateParams::new(vec!["cert.example".to_owned()])?;
    let cert = cert_params.self_signed(&key)?;
    let mut der_with_junk = der.clone();
    der_with_junk.extend_from_slice(b"\x05\x00junk");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(vec![
        case("empty", Vec::new(), "no CERTIFICATE REQUEST PEM block"),
        case("whitespace-only", " \n\t\r\n", "no CERTIFICATE REQUEST PEM block"),
        case("text-without-pem", "hello, issuer", "no CERTIFICATE REQUEST PEM block"),
        case(
            "base64-garbage",
            "-----BEGIN CERTIFICATE REQUEST-----\n!!!not*base64***\n-----END CERTIFICATE REQUEST-----\n",
            "invalid PEM",
        ),
        case(
            "base64-of-non-der",
            format!(
                "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
                "aGVsbG8gd29ybGQ="
            ),
            "not valid DER",
        ),
        case("truncated-der", der[..der.len() / 2].to_vec(), "not valid DER"),
        case(
            "trailing-data-after-pem",
            format!("{pem}trailing junk\n"),
            "after the CERTIFICATE REQUEST block",
        ),
        case(
            "data-before-pem",
            format!("junk\n{pem}"),
            "before the CERTIFICATE REQUEST block",
        ),
        case("trailing-data-after-der", der_with_junk, "trailing"),
        case("two-csr-blocks", format!("{pem}{pem}"), "found 2 PEM blocks"),
        case("certificate-pem", cert.pem(), "\"CERTIFICATE\""),
        case(
            "certificate-der",
            cert.der().to_vec(),
            "a certificate, not a certificate request",
        ),
        case("private-key-pem", key.serialize_pem(), "\"PRIVATE KEY\""),
        case(
            "unterminated-pem",
            format!("-----BEGIN CERTIFICATE REQUEST-----\n{body}\n"),
            "invalid PEM",
        ),
        case(
            "oversized",
            format!("{pem}{}", " ".repeat(MAX_CSR_BYTES)),
            "bytes, more than the 65536 allowed",
        ),
    ])
}

fn subjects() -> Result<Vec<HostileCsr>> {
    let key = KeyPair::generate()?;
    let spki = key.subject_public_key_info();
    let non_utf8 = name_of(&[(&[2, 5, 4, 3], raw_value(TAG_UTF8STRING, b"caf\xe9 \xff\xfe"))]);
    let mut nested = yasna::construct_der(|w| w.write_null());
    for _ in 0..2000 {
        nested = yasna::construct_der(|w| w.write_sequence(|w| w.next().write_der(&nested)));
    }
    let nested_name = name_of(&[(&[2, 5, 4, 3], nested)]);
    let many: Vec<(&[u64], Vec<u8>)> = (0..1000)
        .map(|i| (&[2u64, 5, 4, 11][..], utf8_value(&format!("unit {i}"))))
        .collect();
    let many_name = name_of(&many);
    Ok(vec![
        case(
            "subject-not-utf8",
            sign_info(&key, &request_info(&spki, &non_utf8))?,
            "not valid UTF-8",
        ),
        case(
            "subject-deeply-nested",
            sign_info(&key, &request_info(&spki, &nested_name))?,
            "not text",
        ),
        case(
            "subject-1000-attributes",
            sign_info(&key, &request_info(&spki, &many_name))?,
            "subject attributes",
        ),
    ])
}

fn extensions() -> Result<Vec<HostileCsr>> {
    let key = KeyPair::generate()?;
    let names = |n: usize| (0..n).map(|i| format!("h{i}.example")).collect::<Vec<_>>();
    let ca_claim = rcgen_csr(&key, |p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained))?;
    let bad_ip = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_tagged_implicit(Tag::context(7), |w| w.write_bytes(&[10, 0, 0, 1, 9]))
        })
    });
    let bad_dns = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_tagged_implicit(Tag::context(2), |w| w.write_bytes(b"\xff\xfe.example"))
        })
    });
    Ok(vec![
        HostileCsr {
            refused_by: RefusedBy::Plan,
            ..case("ca-claim-on-leaf-request", ca_claim, "basicConstraints")
        },
        case(
            "1000-sans",
            rcgen_csr(&key, |p| p.subject_alt_names = sans(names(1000)))?,
            "subject alternative names",
        ),
        case(
            "10000-sans",
            rcgen_csr(&key, |p| p.subject_alt_names = sans(names(10_000)))?,
            "bytes, more than the 65536 allowed",
        ),
        case(
            "san-extension-garbage",
            rcgen_csr(&key, |p| only_custom_san(p, b"\x30\x05\x82\x09oops".to_vec()))?,
            "subjectAltName extension does not parse",
        ),
        case(
            "san-ip-of-5-bytes",
            rcgen_csr(&key, |p| only_custom_san(p, bad_ip))?,
            "IP address",
        ),
        case(
            "san-dns-not-ascii",
            rcgen_csr(&key, |p| only_custom_san(p, bad_dns))?,
            "subjectAltName holds a name that does not decode",
        ),
        case(
            "two-san-extensions",
            rcgen_csr(&key, |p| {
                p.subject_alt_names = sans(names(1));
                p.custom_extensions = vec![CustomExtension::from_oid_content(
                    &SAN_OID,
                    yasna::construct_der(|w| {
                        w.write_sequence(|w| {
                            w.next()
                                .write_tagged_implicit(Tag::context(2), |w| w.write_bytes(b"b.example"))
                        })
                    }),
                )];
            })?,
            "more than one subjectAltName",
        ),
    ])
}

/// Replaces rcgen's SAN extension by one with raw `content`.
fn only_custom_san(p: &mut CertificateParams, content: Vec<u8>) {
    p.subject_alt_names.clear();
    p.custom_extensions = vec![CustomExtension::from_oid_content(&SAN_OID, content)];
}

const SAN_OID: [u64; 4] = [2, 5, 29, 17];

fn sans(names: Vec<String>) -> Vec<rcgen::SanType> {
    names
        .into_iter()
        .filter_map(|n| n.try_into().ok().map(rcgen::SanType::DnsName))
        .collect()
}

/// A PEM CSR from rcgen with CN "hostile" and SAN "hostile.example", shaped by `tweak`.
fn rcgen_csr(key: &KeyPair, tweak: impl FnOnce(&mut CertificateParams)) -> Result<String> {
    let mut p = CertificateParams::new(vec!["hostile.example".to_owned()])?;
    p.distinguished_name.push(DnType::CommonName, "hostile");
    tweak(&mut p);
    Ok(p.serialize_request(key)?.pem()?)
}

/// A PEM CSR from `openssl req` for a fresh key made by `openssl genpkey <keygen>`.
fn openssl_csr(keygen: &[&str], req_args: &[&str]) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("key.pem");
    let status = Command::new("openssl")
        .args(["genpkey", "-quiet"])
        .args(keygen)
        .arg("-out")
        .arg(&key)
        .status()
        .context("running openssl (needed for hostile CSR fixtures)")?;
    ensure!(status.success(), "openssl genpkey {keygen:?} failed");
    let out = Command::new("openssl")
        .args(["req", "-new", "-subj", "/CN=hostile"])
        .args(req_args)
        .arg("-key")
        .arg(&key)
        .output()?;
    ensure!(
        out.status.success(),
        "openssl req {req_args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn der_of(pem: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(body)?)
}

const ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];

/// CertificationRequestInfo: version 0, `name`, `spki`, no attributes.
fn request_info(spki: &[u8], name: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0);
            w.next().write_der(name);
            w.next().write_der(spki);
            w.next().write_tagged_implicit(Tag::context(0), |w| w.write_set(|_| {}));
        })
    })
}

/// A complete CSR (PEM) of `info` signed by `key` (a P-256 key: ECDSA with SHA-256).
fn sign_info(key: &KeyPair, info: &[u8]) -> Result<String> {
    ensure!(
        key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256,
        "hostile CSRs are signed with P-256 keys"
    );
    let signature = key.sign(info)?;
    let der = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(info);
            w.next()
                .write_sequence(|w| w.next().write_oid(&ObjectIdentifier::from_slice(ECDSA_WITH_SHA256)));
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    });
    Ok(pem_of(&der))
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines.join("\n")
    )
}

/// A Name of one attribute per RDN; values are raw DER.
fn name_of(attributes: &[(&[u64], Vec<u8>)]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (oid, value) in attributes {
                write_rdn(w.next(), oid, value);
            }
        })
    })
}

fn write_rdn(w: DERWriter<'_>, oid: &[u64], value: &[u8]) {
    w.write_set(|w| {
        w.next().write_sequence(|w| {
            w.next().write_oid(&ObjectIdentifier::from_slice(oid));
            w.next().write_der(value);
        })
    })
}

fn name_cn(cn: &str) -> Vec<u8> {
    name_of(&[(&[2, 5, 4, 3], utf8_value(cn))])
}

fn utf8_value(text: &str) -> Vec<u8> {
    yasna::construct_der(|w| w.write_utf8_string(text))
}

/// A string value of the given tag holding arbitrary bytes (e.g. invalid UTF-8).
fn raw_value(tag: Tag, bytes: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| w.write_tagged_implicit(tag, |w| w.write_bytes(bytes)))
}

/// A CSR whose CN was changed after signing.
fn altered_subject(key: &KeyPair) -> Result<String> {
    let info = request_info(&key.subject_public_key_info(), &name_cn("original"));
    let signed = der_of(&sign_info(key, &info)?)?;
    let swapped = replace_once(&signed, b"original", b"replaced").context("CN in the signed CSR")?;
    Ok(pem_of(&swapped))
}

/// A P-256 SPKI whose point is not on the curve, in an otherwise well-formed, signed CSR.
fn off_curve_point() -> Result<String> {
    let key = KeyPair::generate()?;
    let mut spki = key.subject_public_key_info();
    let len = spki.len();
    // Last byte of the point's y coordinate: (x, y+1) is not on the curve.
    spki[len - 1] = spki[len - 1].wrapping_add(1);
    let info = request_info(&spki, &name_cn("off curve"));
    sign_info(&key, &info)
}

fn replace_once(haystack: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let at = haystack.windows(needle.len()).position(|w| w == needle)?;
    let mut out = haystack.to_vec();
    out[at..at + needle.len()].copy_from_slice(with);
    Some(out)
}
