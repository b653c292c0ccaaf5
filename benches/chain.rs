//! Cost of chain normalisation (issue 10 item 3: a 1,000-certificate export answer is refused in
//! under 100 ms; signature checks grow linearly). Honest chains of each CA key type, hostile
//! answers of 100, 1,000 and 10,000 same-named certificates (refused by the PEM caps before any
//! decoding) and the worst case under the caps: 16 same-named certificates that do not link,
//! which stops at the signature-check budget.
//!
//! Needs the `openssl` command (RSA keys; ring cannot generate them).
//!
//! Run: `cargo bench --bench chain`
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code

use std::{hint::black_box, process::Command};

use ccm_issuer::pki::{PkiError, normalize_chain};
use criterion::{Criterion, criterion_group, criterion_main};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};

fn openssl_rsa(bits: u32) -> KeyPair {
    let out = Command::new("openssl")
        .args(["genpkey", "-quiet", "-algorithm", "RSA", "-pkeyopt"])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .output()
        .expect("openssl");
    assert!(out.status.success());
    KeyPair::from_pem(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p
}

/// Root → intermediate (both with `ca_key`'s type) → EC P-256 leaf, as one PEM bundle.
fn honest_chain(root_key: KeyPair, int_key: KeyPair) -> String {
    let root_params = ca_params("Bench Root");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let int_params = ca_params("Bench Intermediate");
    let int = int_params.signed_by(&int_key, &root_issuer).unwrap();
    let int_issuer = Issuer::new(int_params, int_key);
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = CertificateParams::new(vec!["leaf.example".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &int_issuer)
        .unwrap();
    format!("{}{}{}", leaf.pem(), int.pem(), root.pem())
}

/// `n` distinct certificates with one subject and issuer name, none signed by another's key.
fn same_named(n: usize, subject_key: &KeyPair, issuer_key: KeyPair) -> String {
    let params = ca_params("Same Name");
    let issuer = Issuer::new(params.clone(), issuer_key);
    (0..n)
        .map(|i| {
            let mut p = params.clone();
            p.serial_number = Some(rcgen::SerialNumber::from((i as u64 + 1).to_be_bytes().to_vec()));
            p.signed_by(subject_key, &issuer).unwrap().pem()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ec = || KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    for (name, root, int) in [
        ("EC P-256", ec(), ec()),
        ("RSA-2048", openssl_rsa(2048), openssl_rsa(2048)),
        ("RSA-4096", openssl_rsa(4096), openssl_rsa(4096)),
    ] {
        let pem = honest_chain(root, int);
        normalize_chain([pem.as_bytes()]).expect("honest chain links");
        c.bench_function(&format!("normalise a 3-certificate chain, {name} CAs"), |b| {
            b.iter(|| black_box(normalize_chain([black_box(pem.as_bytes())]).unwrap()))
        });
    }
    let key = ec();
    for n in [100, 1_000, 10_000] {
        let pem = same_named(n, &key, ec());
        let err = normalize_chain([pem.as_bytes()]).unwrap_err();
        // Under the byte cap the block count refuses it, over it the size: never a decode.
        assert!(
            matches!(err, PkiError::TooLarge { .. } | PkiError::TooMany { .. }),
            "{err}"
        );
        c.bench_function(
            &format!("refuse {n} same-named certificates ({} KiB)", pem.len() / 1024),
            |b| b.iter(|| black_box(normalize_chain([black_box(pem.as_bytes())]).unwrap_err())),
        );
    }
    let rsa = openssl_rsa(4096);
    for (name, subject, issuer) in [("EC P-256", ec(), ec()), ("RSA-4096", openssl_rsa(4096), rsa)] {
        let pem = same_named(16, &subject, issuer);
        let err = normalize_chain([pem.as_bytes()]).unwrap_err();
        assert!(err.to_string().contains("signature checks"), "{err}");
        c.bench_function(
            &format!("refuse 16 same-named unlinked {name} certificates (check budget)"),
            |b| b.iter(|| black_box(normalize_chain([black_box(pem.as_bytes())]).unwrap_err())),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
