//! Every forged certificate parses, and is wrong in exactly the promised way.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

/// A real root (EC256) and a leaf it issued.
fn root_and_leaf() -> (CaKey, Dn, Vec<u8>, Vec<u8>) {
    let key = CaKey::generate(KeyAlgorithm::Ec256).unwrap();
    let dn = Dn {
        common_name: Some("forge root".into()),
        country: Some("CN".into()),
        ..Dn::default()
    };
    let now = time::OffsetDateTime::from_unix_timestamp(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let root = ca::make_ca_cert(
        &ca::CaCertSpec {
            dn: &dn,
            key: &key,
            path_length: None,
            key_usages: vec![KeyUsagePurpose::KeyCertSign],
            not_before: now,
            not_after: now + time::Duration::days(30),
            serial: &ca::random_serial(),
            hash: HashAlg::Sha384,
        },
        None,
    )
    .unwrap();
    let csr = ca::parse_csr(&ca::test_support::csr("leaf.forge", &["leaf.forge"])).unwrap();
    let kid = key.key_id();
    let issuer = IssuerMaterial {
        dn: &dn,
        key_id: &kid,
        key: &key,
    };
    let leaf = ca::issue_from_csr(
        &csr,
        &issuer,
        ca::IssueKind::Entity,
        now,
        now + time::Duration::days(1),
        &ca::random_serial(),
    )
    .unwrap();
    (key, dn, root, leaf)
}

#[test]
fn for_another_key_keeps_names_and_issuer_but_not_the_key() {
    let (key, dn, root, leaf) = root_and_leaf();
    let kid = key.key_id();
    let issuer = IssuerMaterial {
        dn: &dn,
        key_id: &kid,
        key: &key,
    };
    let forged = for_another_key(&leaf, &issuer).unwrap();
    let (real, fake, root) = (parse(&leaf), parse(&forged), parse(&root));
    fake.verify_signature(Some(root.public_key())).unwrap();
    assert_eq!(fake.subject().as_raw(), real.subject().as_raw());
    assert_eq!(fake.issuer().as_raw(), real.issuer().as_raw());
    assert_ne!(fake.public_key().raw, real.public_key().raw);
    let san = |c: &X509Certificate<'_>| format!("{:?}", c.subject_alternative_name().unwrap().unwrap().value);
    assert_eq!(san(&fake), san(&real));
}

#[test]
fn unlinked_chain_has_the_names_but_not_the_signatures() {
    let (_, _, root, leaf) = root_and_leaf();
    let fakes = unlinked(std::slice::from_ref(&root)).unwrap();
    assert_eq!(fakes.len(), 1);
    let (fake, real, leaf) = (parse(&fakes[0]), parse(&root), parse(&leaf));
    assert_eq!(fake.subject().as_raw(), real.subject().as_raw());
    assert_eq!(leaf.issuer().as_raw(), fake.subject().as_raw(), "names link");
    assert!(
        leaf.verify_signature(Some(fake.public_key())).is_err(),
        "signatures do not"
    );
    fake.verify_signature(None).unwrap();
}

#[test]
fn chain_loop_is_a_and_b_issuing_each_other() {
    let (key, _, root, leaf) = root_and_leaf();
    let pair = chain_loop(&root, &key).unwrap();
    let (a, b, leaf) = (parse(&pair[0]), parse(&pair[1]), parse(&leaf));
    leaf.verify_signature(Some(a.public_key())).unwrap();
    a.verify_signature(Some(b.public_key())).unwrap();
    b.verify_signature(Some(a.public_key())).unwrap();
    assert_eq!(a.issuer().as_raw(), b.subject().as_raw());
    assert_eq!(b.issuer().as_raw(), a.subject().as_raw());
    assert_ne!(a.subject().as_raw(), a.issuer().as_raw(), "neither is self-issued");
}

#[test]
fn huge_chain_is_count_long_same_named_and_ends_with_the_real_chain() {
    let (_, _, root, _) = root_and_leaf();
    let chain = huge_chain(std::slice::from_ref(&root), &root, 10_000).unwrap();
    assert_eq!(chain.len(), 10_000);
    assert_eq!(chain.last(), Some(&root));
    let real = parse(&root);
    let distinct: std::collections::HashSet<&Vec<u8>> = chain.iter().collect();
    assert_eq!(distinct.len(), IMPOSTOR_POOL + 1);
    for der in distinct.iter().filter(|d| **d != &root) {
        let c = parse(der);
        assert_eq!(c.subject().as_raw(), real.subject().as_raw());
        assert_ne!(c.public_key().raw, real.public_key().raw);
    }
}
