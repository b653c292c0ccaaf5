//! Seeded CAs: algorithms honoured, kinds that cannot issue.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::MockConfig;
use crate::state::Store;

const ID: &str = "11111111-2222-4333-8444-555555555555";

fn seeded(spec: SeedCa) -> Arc<Mock> {
    let m = Mock::new(MockConfig::default(), Store::in_memory());
    m.seed(&spec).unwrap();
    m
}

#[test]
fn signature_algorithm_signs_both_ca_certificates() {
    for (alg, hash, oid) in [
        (KeyAlgorithm::Ec256, HashAlg::Sha256, "1.2.840.10045.4.3.2"),
        (KeyAlgorithm::Ec384, HashAlg::Sha512, "1.2.840.10045.4.3.4"),
        (KeyAlgorithm::Rsa2048, HashAlg::Sha512, "1.2.840.113549.1.1.13"),
    ] {
        let m = seeded(SeedCa {
            signature_algorithm: hash,
            ..SeedCa::new(ID, alg, 1)
        });
        let sub = m.store.get_ca(ID).unwrap();
        let root = m.store.get_ca(sub.issuer_id.as_deref().unwrap()).unwrap();
        for ca in [&sub, &root] {
            assert_eq!((ca.signature_algorithm, ca.key_algorithm), (hash, alg));
            let der = ca.cert_der.clone().unwrap();
            let cert = X509Certificate::from_der(&der).unwrap().1;
            assert_eq!(
                cert.signature_algorithm.algorithm.to_id_string(),
                oid,
                "{alg:?} {hash:?}"
            );
        }
    }
}

#[test]
fn csr_subordinate_has_no_hosted_key() {
    let m = seeded(SeedCa {
        kind: SeedKind::CsrSubordinate,
        ..SeedCa::new(ID, KeyAlgorithm::Ec256, 1)
    });
    let sub = m.store.get_ca(ID).unwrap();
    assert_eq!(
        (sub.gen_mode, sub.status, sub.freeze_flag),
        (GenMode::Csr, CaStatus::Actived, 0)
    );
    assert!(sub.key.is_none() && sub.key_pkcs8.is_none() && !sub.hidden);
}

#[test]
fn frozen_subordinate_keeps_its_key() {
    let m = seeded(SeedCa {
        kind: SeedKind::Frozen,
        ..SeedCa::new(ID, KeyAlgorithm::Ec256, 1)
    });
    let sub = m.store.get_ca(ID).unwrap();
    assert_eq!((sub.gen_mode, sub.freeze_flag), (GenMode::Generate, 1));
    assert!(sub.key.is_some());
}

#[test]
fn bad_ids_and_path_lengths_are_refused() {
    let m = Mock::new(MockConfig::default(), Store::in_memory());
    assert!(m.seed(&SeedCa::new("NOT-A-UUID", KeyAlgorithm::Ec256, 1)).is_err());
    assert!(m.seed(&SeedCa::new(ID, KeyAlgorithm::Ec256, 0)).is_err());
    assert!(m.seed(&SeedCa::new(ID, KeyAlgorithm::Ec256, 7)).is_err());
}
