//! Chain normalisation, as cert-manager's `pki.ParseSingleCertificateChain` does it:
//! order-independent, de-duplicated, every link checked by name *and* signature, exactly one
//! chain; then split into `status.certificate` (leaf + intermediates) and `status.ca` (root).
//!
//! The work is bounded for hostile answers: at most [`MAX_CHAIN_CERTIFICATES`] distinct
//! certificates, candidates for a certificate's issuer looked up by the raw DER of its issuer
//! name (and narrowed by authority/subject key identifier) so only name-matching pairs cost a
//! signature check, each pair checked at most once, and at most
//! [`CHECKS_PER_CERTIFICATE`] signature checks per certificate in all. An honest chain of
//! `n` certificates needs `n` checks (one per link and one for a self-signed root).
//!
//! Normalising is CPU-bound (up to a few milliseconds for RSA-4096 chains): async callers run
//! it on a blocking thread (`tokio::task::spawn_blocking`), not on the async workers.

use std::collections::HashMap;

use x509_parser::{certificate::X509Certificate, extensions::ParsedExtension, prelude::FromDer};

use super::{
    PkiError,
    pem::{CERTIFICATE, encode_blocks, first_block, parse_blocks},
    signature::{SignatureAlgorithm, VerifyingKey},
};

/// Most distinct certificates in one chain (a PCA chain is a leaf and a few CAs).
pub const MAX_CHAIN_CERTIFICATES: usize = 16;
/// Signature checks allowed per certificate while linking. Honest chains need one each; the
/// rest is slack for a few same-named candidates (e.g. a re-keyed CA) before giving up.
pub const CHECKS_PER_CERTIFICATE: usize = 4;

/// A verified chain, leaf first, each certificate signed by the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    ders: Vec<Vec<u8>>,
    top_is_self_signed: bool,
}

impl Chain {
    /// DER of the leaf (the certificate nothing else in the set was issued by).
    pub fn leaf_der(&self) -> &[u8] {
        self.ders.first().map(Vec::as_slice).unwrap_or_default()
    }

    /// All certificates, leaf first.
    pub fn ders(&self) -> &[Vec<u8>] {
        &self.ders
    }

    /// Whether the chain ends in a self-signed root.
    pub fn has_root(&self) -> bool {
        self.top_is_self_signed
    }

    /// `status.certificate`: the leaf up to the highest certificate that is not self-signed. A
    /// lone self-signed certificate is its own chain.
    pub fn chain_pem(&self) -> String {
        let end = if self.top_is_self_signed && self.ders.len() > 1 {
            self.ders.len() - 1
        } else {
            self.ders.len()
        };
        encode_blocks(CERTIFICATE, self.ders[..end].iter().map(Vec::as_slice))
    }

    /// `status.ca`: the self-signed root if present, else the topmost intermediate.
    pub fn ca_pem(&self) -> String {
        encode_blocks(CERTIFICATE, self.ders.last().map(Vec::as_slice))
    }
}

/// Normalises any number of PEM inputs (e.g. an exported certificate and its chain) into one
/// chain. CPU-bound: call it from a blocking thread in async code.
pub fn normalize_chain<'a>(inputs: impl IntoIterator<Item = &'a [u8]>) -> Result<Chain, PkiError> {
    let ders = distinct_certificates(inputs)?;
    let certs = ders
        .iter()
        .enumerate()
        .map(|(i, der)| parse_certificate(i, der))
        .collect::<Result<Vec<_>, _>>()?;
    let mut linker = Linker::new(&certs);
    let order = linker.link()?;
    let top_is_self_signed = match order.last() {
        Some(&top) => linker.issued_by(top, top)?,
        None => false,
    };
    Ok(Chain {
        ders: order.into_iter().map(|i| ders[i].clone()).collect(),
        top_is_self_signed,
    })
}

/// Normalises an export answer (`certificate` and `certificate_chain`) and checks that the
/// exported certificate is the chain's leaf, so a chain holding a certificate issued *by* the
/// exported one cannot pass it off as the leaf. CPU-bound like [`normalize_chain`].
pub fn normalize_export(certificate: &str, chain: &str) -> Result<Chain, PkiError> {
    let normalized = normalize_chain([certificate.as_bytes(), chain.as_bytes()])?;
    if first_block(certificate.as_bytes(), CERTIFICATE)? != normalized.leaf_der() {
        return Err(PkiError::Mismatch(
            "the exported chain contains a certificate issued by the exported certificate".into(),
        ));
    }
    Ok(normalized)
}

/// Every distinct certificate of the inputs, in order of appearance, within the cap.
fn distinct_certificates<'a>(inputs: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut ders: Vec<Vec<u8>> = Vec::new();
    for input in inputs {
        for der in parse_blocks(input, CERTIFICATE)? {
            if !ders.contains(&der) {
                ders.push(der);
            }
        }
        if ders.len() > MAX_CHAIN_CERTIFICATES {
            return Err(PkiError::TooMany {
                what: "certificates in the chain",
                found: ders.len(),
                max: MAX_CHAIN_CERTIFICATES,
            });
        }
    }
    Ok(ders)
}

fn parse_certificate(index: usize, der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    let what = || format!("certificate #{}", index + 1);
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::Der {
        what: what(),
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(PkiError::Der {
            what: what(),
            detail: format!("{} bytes of trailing data", rest.len()),
        });
    }
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(PkiError::Der {
            what: what(),
            detail: "the signature algorithm differs between the signed part and the signature".into(),
        });
    }
    Ok(cert)
}

/// A certificate's key identifiers, which narrow the issuer candidates among same-named ones.
#[derive(Debug, Clone, Copy, Default)]
struct KeyIds<'c> {
    /// subjectKeyIdentifier.
    subject: Option<&'c [u8]>,
    /// keyIdentifier of the authorityKeyIdentifier.
    authority: Option<&'c [u8]>,
}

impl<'c> KeyIds<'c> {
    fn of(cert: &'c X509Certificate<'_>) -> Self {
        let mut ids = Self::default();
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => ids.subject = Some(id.0),
                ParsedExtension::AuthorityKeyIdentifier(a) => ids.authority = a.key_identifier.as_ref().map(|id| id.0),
                _ => {}
            }
        }
        ids
    }
}

/// Links certificates with name-indexed candidates and memoised, budgeted signature checks.
struct Linker<'c> {
    certs: &'c [X509Certificate<'c>],
    /// Certificate indices by the raw DER of their subject name.
    by_subject: HashMap<&'c [u8], Vec<usize>>,
    /// Key identifiers per certificate.
    key_ids: Vec<KeyIds<'c>>,
    /// Parsed public keys, on first use.
    keys: HashMap<usize, VerifyingKey>,
    /// Result of "child was signed by parent's key", per (child, parent).
    verdicts: HashMap<(usize, usize), bool>,
    checks: usize,
    budget: usize,
}

impl<'c> Linker<'c> {
    fn new(certs: &'c [X509Certificate<'c>]) -> Self {
        let mut by_subject: HashMap<&'c [u8], Vec<usize>> = HashMap::new();
        for (i, cert) in certs.iter().enumerate() {
            by_subject
                .entry(cert.tbs_certificate.subject.as_raw())
                .or_default()
                .push(i);
        }
        Self {
            certs,
            by_subject,
            key_ids: certs.iter().map(KeyIds::of).collect(),
            keys: HashMap::new(),
            verdicts: HashMap::new(),
            checks: 0,
            budget: CHECKS_PER_CERTIFICATE * certs.len(),
        }
    }

    /// Whether `child` names `parent` as issuer and carries a valid signature by its key.
    fn issued_by(&mut self, child: usize, parent: usize) -> Result<bool, PkiError> {
        let (c, p) = (&self.certs[child], &self.certs[parent]);
        if c.issuer().as_raw() != p.subject().as_raw() {
            return Ok(false);
        }
        if let (Some(aki), Some(ski)) = (self.key_ids[child].authority, self.key_ids[parent].subject)
            && aki != ski
        {
            return Ok(false);
        }
        if let Some(&verdict) = self.verdicts.get(&(child, parent)) {
            return Ok(verdict);
        }
        if self.checks >= self.budget {
            return Err(PkiError::BrokenChain(format!(
                "linking {} certificates needs more than {} signature checks: too many share the same names without key identifiers",
                self.certs.len(),
                self.budget
            )));
        }
        self.checks += 1;
        let algorithm = SignatureAlgorithm::from_identifier(&c.signature_algorithm, &describe(c))?;
        let verdict = self
            .key(parent)?
            .verifies(algorithm, c.tbs_certificate.as_ref(), &c.signature_value.data);
        self.verdicts.insert((child, parent), verdict);
        Ok(verdict)
    }

    fn key(&mut self, index: usize) -> Result<&VerifyingKey, PkiError> {
        if !self.keys.contains_key(&index) {
            let cert = &self.certs[index];
            let key = VerifyingKey::from_spki(cert.public_key())
                .map_err(|e| PkiError::BrokenChain(format!("cannot check signatures by {}: {e}", describe(cert))))?;
            self.keys.insert(index, key);
        }
        self.keys
            .get(&index)
            .ok_or_else(|| PkiError::BrokenChain("internal: key cache".into()))
    }

    /// Indices of certificates whose subject is `child`'s issuer, other than `child`.
    fn candidates(&self, child: usize) -> Vec<usize> {
        self.by_subject
            .get(self.certs[child].issuer().as_raw())
            .map(|list| list.iter().copied().filter(|&p| p != child).collect())
            .unwrap_or_default()
    }

    /// The issuer of each certificate within the set, if any; more than one is an error.
    fn parents(&mut self) -> Result<Vec<Option<usize>>, PkiError> {
        let mut parent = vec![None; self.certs.len()];
        for (child, slot) in parent.iter_mut().enumerate() {
            for candidate in self.candidates(child) {
                if !self.issued_by(child, candidate)? {
                    continue;
                }
                if slot.is_some() {
                    return Err(PkiError::BrokenChain(format!(
                        "{} has more than one issuer in the set (cross-signed chains are not supported)",
                        describe(&self.certs[child])
                    )));
                }
                *slot = Some(candidate);
            }
        }
        Ok(parent)
    }

    /// Orders certificate indices leaf → top, or explains why they do not form one chain.
    fn link(&mut self) -> Result<Vec<usize>, PkiError> {
        let n = self.certs.len();
        if n == 0 {
            return Err(PkiError::NoPem(CERTIFICATE));
        }
        let parent = self.parents()?;
        let mut has_child = vec![false; n];
        for p in parent.iter().flatten() {
            has_child[*p] = true;
        }
        let leaves: Vec<usize> = (0..n).filter(|&i| !has_child[i]).collect();
        let leaf = match leaves.as_slice() {
            [one] => *one,
            [] => return Err(loop_error()),
            many => {
                let names: Vec<String> = many.iter().map(|&i| describe(&self.certs[i])).collect();
                return Err(PkiError::BrokenChain(format!(
                    "certificates do not form a single chain; unconnected ends: {}",
                    names.join("; ")
                )));
            }
        };
        let mut order = vec![leaf];
        let mut seen = vec![false; n];
        seen[leaf] = true;
        let mut current = leaf;
        while let Some(p) = parent[current] {
            if seen[p] {
                return Err(loop_error());
            }
            seen[p] = true;
            order.push(p);
            current = p;
        }
        if order.len() != n {
            let stray: Vec<String> = (0..n).filter(|&i| !seen[i]).map(|i| describe(&self.certs[i])).collect();
            return Err(PkiError::BrokenChain(format!(
                "not linked to the chain of {}: {}",
                describe(&self.certs[leaf]),
                stray.join("; ")
            )));
        }
        Ok(order)
    }
}

fn loop_error() -> PkiError {
    PkiError::BrokenChain("the certificates issue each other in a loop".into())
}

/// Longest subject or serial quoted in an error (hostile certificates can carry huge ones).
const MAX_DESCRIBED_CHARS: usize = 128;

fn describe(cert: &X509Certificate<'_>) -> String {
    let clip = |text: String| match text.char_indices().nth(MAX_DESCRIBED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    };
    format!(
        "\"{}\" (serial {})",
        clip(cert.subject().to_string()),
        clip(cert.raw_serial_as_string())
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    use super::*;

    /// root → intermediate → leaf, as PEM with CRLF endings (like the PCA's exports).
    pub(crate) struct TestPki {
        pub root: String,
        pub intermediate: String,
        pub leaf: String,
    }

    fn ca_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p
    }

    pub(crate) fn test_pki() -> TestPki {
        let root_key = KeyPair::generate().unwrap();
        let root_params = ca_params("Test Root");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let int_key = KeyPair::generate().unwrap();
        let int_params = ca_params("Test Intermediate");
        let int = int_params.signed_by(&int_key, &root_issuer).unwrap();
        let int_issuer = Issuer::new(int_params, int_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["leaf.example".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &int_issuer)
            .unwrap();
        let crlf = |s: String| s.replace('\n', "\r\n");
        TestPki {
            root: crlf(root.pem()),
            intermediate: crlf(int.pem()),
            leaf: crlf(leaf.pem()),
        }
    }

    fn subjects(chain: &Chain) -> Vec<String> {
        chain
            .ders()
            .iter()
            .map(|d| X509Certificate::from_der(d).unwrap().1.subject().to_string())
            .collect()
    }

    #[test]
    fn any_order_gives_leaf_to_root_and_splits_root_off() {
        let p = test_pki();
        let expected = vec!["CN=rcgen self signed cert", "CN=Test Intermediate", "CN=Test Root"];
        for order in [
            [&p.leaf, &p.intermediate, &p.root],
            [&p.root, &p.intermediate, &p.leaf],
            [&p.intermediate, &p.root, &p.leaf],
        ] {
            let chain = normalize_chain(order.map(|s| s.as_bytes())).unwrap();
            assert_eq!(subjects(&chain), expected);
            assert!(chain.has_root());
            assert_eq!(
                parse_blocks(chain.chain_pem().as_bytes(), CERTIFICATE).unwrap().len(),
                2
            );
            assert!(!chain.chain_pem().contains('\r'));
            let ca = parse_blocks(chain.ca_pem().as_bytes(), CERTIFICATE).unwrap();
            assert_eq!(ca, parse_blocks(p.root.as_bytes(), CERTIFICATE).unwrap());
        }
    }

    #[test]
    fn duplicates_and_mixed_line_endings_are_fine() {
        let p = test_pki();
        let lf_int = p.intermediate.replace("\r\n", "\n");
        let blob = format!("{}{}{}{}{}", p.leaf, lf_int, p.intermediate, p.root, p.leaf);
        let chain = normalize_chain([blob.as_bytes()]).unwrap();
        assert_eq!(chain.ders().len(), 3);
    }

    #[test]
    fn missing_root_makes_the_top_intermediate_the_ca() {
        let p = test_pki();
        let chain = normalize_chain([p.intermediate.as_bytes(), p.leaf.as_bytes()]).unwrap();
        assert!(!chain.has_root());
        assert_eq!(
            parse_blocks(chain.chain_pem().as_bytes(), CERTIFICATE).unwrap().len(),
            2
        );
        assert_eq!(
            parse_blocks(chain.ca_pem().as_bytes(), CERTIFICATE).unwrap(),
            parse_blocks(p.intermediate.as_bytes(), CERTIFICATE).unwrap()
        );
    }

    #[test]
    fn lone_self_signed_is_chain_and_ca() {
        let p = test_pki();
        let chain = normalize_chain([p.root.as_bytes()]).unwrap();
        assert_eq!(chain.chain_pem(), chain.ca_pem());
    }

    #[test]
    fn broken_link_is_an_error_naming_the_stray() {
        let p = test_pki();
        // Leaf and root without the intermediate: two unconnected ends.
        let err = normalize_chain([p.leaf.as_bytes(), p.root.as_bytes()]).unwrap_err();
        assert!(matches!(err, PkiError::BrokenChain(_)), "{err}");
        assert!(err.to_string().contains("Test Root"), "{err}");
    }

    #[test]
    fn same_names_but_wrong_signature_do_not_link() {
        let p = test_pki();
        let other = test_pki(); // same subject names, different keys
        let err =
            normalize_chain([p.leaf.as_bytes(), other.intermediate.as_bytes(), other.root.as_bytes()]).unwrap_err();
        assert!(matches!(err, PkiError::BrokenChain(_)), "{err}");
    }

    /// `n` distinct certificates that all carry the same subject and issuer name, signed by one
    /// key: the shape that made linking quadratic.
    pub(crate) fn same_named_bundle(n: usize) -> String {
        let key = KeyPair::generate().unwrap();
        let params = ca_params("Same Name");
        let issuer = Issuer::new(params.clone(), KeyPair::generate().unwrap());
        (0..n)
            .map(|i| {
                let mut p = params.clone();
                p.serial_number = Some(rcgen::SerialNumber::from((i as u64 + 1).to_be_bytes().to_vec()));
                p.signed_by(&key, &issuer).unwrap().pem()
            })
            .collect()
    }

    #[test]
    fn oversized_answers_are_refused_naming_the_cap() {
        let err = normalize_chain([same_named_bundle(MAX_CHAIN_CERTIFICATES + 1).as_bytes()]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("17") && text.contains("at most 16"), "{text}");
        let err = normalize_chain([same_named_bundle(1000).as_bytes()]).unwrap_err();
        assert!(err.to_string().contains("bytes, more than the"), "{err}");
    }

    /// A chain of `n` certificates (each a CA issued by the next, the last self-signed), leaf
    /// first, as DER; `name(i)` is the subject of certificate `i`; `key_ids` adds
    /// authority key identifiers (rcgen always writes subject key identifiers for CAs).
    fn long_chain(n: usize, name: impl Fn(usize) -> String, key_ids: bool) -> Vec<Vec<u8>> {
        let mut top_params = ca_params(&name(n - 1));
        top_params.use_authority_key_identifier_extension = key_ids;
        let top_key = KeyPair::generate().unwrap();
        let mut ders = vec![top_params.self_signed(&top_key).unwrap().der().to_vec()];
        let mut issuer = Issuer::new(top_params, top_key);
        for i in (0..n - 1).rev() {
            let mut p = ca_params(&name(i));
            p.use_authority_key_identifier_extension = key_ids;
            let key = KeyPair::generate().unwrap();
            ders.push(p.signed_by(&key, &issuer).unwrap().der().to_vec());
            issuer = Issuer::new(p, key);
        }
        ders.reverse();
        ders
    }

    /// Links `ders` without the size cap; returns the order (or error) and the signature checks made.
    fn link_counting(ders: &[Vec<u8>]) -> (Result<Vec<usize>, PkiError>, usize) {
        let certs: Vec<_> = ders
            .iter()
            .enumerate()
            .map(|(i, d)| parse_certificate(i, d).unwrap())
            .collect();
        let mut linker = Linker::new(&certs);
        let order = linker.link().and_then(|order| {
            let top = *order.last().unwrap();
            linker.issued_by(top, top).map(|_| order)
        });
        (order, linker.checks)
    }

    #[test]
    fn signature_checks_grow_linearly_with_distinct_names() {
        for n in [3, 10, 40] {
            let mut ders = long_chain(n, |i| format!("Level {i}"), false);
            ders.reverse(); // order of the input does not matter
            let (order, checks) = link_counting(&ders);
            assert_eq!(order.unwrap().len(), n);
            assert_eq!(checks, n, "one check per link plus the root's self-signature");
        }
    }

    #[test]
    fn key_identifiers_narrow_same_named_candidates() {
        let ders = long_chain(12, |_| "Same Name".to_owned(), true);
        let (order, checks) = link_counting(&ders);
        assert_eq!(order.unwrap(), (0..12).collect::<Vec<_>>());
        assert_eq!(checks, 12);
    }

    #[test]
    fn same_names_without_key_identifiers_stop_at_the_check_budget() {
        // Linkable, but every certificate is a candidate for every other: without a budget this
        // is n·(n-1) checks (the old quadratic cost); with it, at most 4·n.
        let ders = long_chain(MAX_CHAIN_CERTIFICATES, |_| "Same Name".to_owned(), false);
        let (order, checks) = link_counting(&ders);
        assert!(checks <= CHECKS_PER_CERTIFICATE * MAX_CHAIN_CERTIFICATES, "{checks}");
        let err = order.unwrap_err().to_string();
        assert!(
            err.contains("signature checks") && err.contains("key identifiers"),
            "{err}"
        );
        // The unlinkable hostile shape fails the same way through the public entry point.
        let bundle = same_named_bundle(MAX_CHAIN_CERTIFICATES);
        let err = normalize_chain([bundle.as_bytes()]).unwrap_err().to_string();
        assert!(err.contains("signature checks"), "{err}");
    }

    /// Every CA key the PCA offers × every signature hash × RSA and EC leaves (issue 11).
    #[test]
    fn every_pca_signature_algorithm_links() {
        use crate::pki::fixtures::{Digest, KeySpec, Openssl};
        let mut ssl = Openssl::new();
        for (name, spec) in [
            ("rsa2048", KeySpec::Rsa2048),
            ("rsa4096", KeySpec::Rsa4096),
            ("ec256", KeySpec::Ec256),
            ("ec384", KeySpec::Ec384),
        ] {
            ssl.key(name, spec);
        }
        for ca in ["rsa2048", "rsa4096", "ec256", "ec384"] {
            for digest in [Digest::Sha256, Digest::Sha384, Digest::Sha512] {
                for leaf in ["rsa2048", "ec256"] {
                    let pki = ssl.root_and_leaf(ca, leaf, digest);
                    let chain = normalize_chain([pki.leaf.as_bytes(), pki.root.as_bytes()])
                        .unwrap_or_else(|e| panic!("{ca} CA, {digest:?}, {leaf} leaf: {e}"));
                    assert_eq!(chain.ders().len(), 2, "{ca} {digest:?} {leaf}");
                    assert!(chain.has_root(), "{ca} {digest:?} {leaf}");
                }
            }
        }
    }

    /// Two PKIs made once for all property cases: `[leaf, intermediate, root]` of each, as DER.
    fn seed_pkis() -> &'static [[Vec<u8>; 3]; 2] {
        static SEED: std::sync::OnceLock<[[Vec<u8>; 3]; 2]> = std::sync::OnceLock::new();
        SEED.get_or_init(|| {
            [test_pki(), test_pki()]
                .map(|p| [p.leaf, p.intermediate, p.root].map(|pem| first_block(pem.as_bytes(), CERTIFICATE).unwrap()))
        })
    }

    fn pem_of(ders: &[&Vec<u8>]) -> String {
        encode_blocks(CERTIFICATE, ders.iter().map(|d| d.as_slice()))
    }

    proptest! {
        #![proptest_config(crate::pki::fixtures::proptest_config())]

        /// Any order, any duplication, any split into inputs: the same chain.
        #[test]
        fn normalisation_is_order_independent(
            order in Just(vec![0usize, 1, 2, 0, 1, 2]).prop_shuffle(),
            keep in 3usize..=6,
            splits in proptest::collection::vec(any::<bool>(), 6),
        ) {
            let [pki, _] = seed_pkis();
            let picked: Vec<usize> = order[..keep].to_vec();
            let missing = (0..3).find(|i| !picked.contains(i));
            // Split into several (non-empty) inputs where `splits` says so.
            let mut inputs: Vec<String> = Vec::new();
            for (n, &i) in picked.iter().enumerate() {
                if n == 0 || splits[n] {
                    inputs.push(String::new());
                }
                inputs.last_mut().unwrap().push_str(&pem_of(&[&pki[i]]));
            }
            let result = normalize_chain(inputs.iter().map(|s| s.as_bytes()));
            match missing {
                None => {
                    let chain = result.unwrap();
                    prop_assert_eq!(chain.ders(), &pki[..]);
                    prop_assert!(chain.has_root());
                }
                // Without the intermediate, leaf and root do not link; without the root or
                // the leaf, the rest is still one chain.
                Some(1) => prop_assert!(matches!(result, Err(PkiError::BrokenChain(_)))),
                Some(0) => prop_assert_eq!(result.unwrap().ders().to_vec(), pki[1..].to_vec()),
                Some(_) => prop_assert_eq!(result.unwrap().ders().to_vec(), pki[..2].to_vec()),
            }
        }

        /// Any mix of certificates from two PKIs with the same names either forms one chain
        /// of exactly the given certificates or is refused as broken; never a panic.
        #[test]
        fn mixed_sets_link_or_are_refused(picks in proptest::collection::vec((0usize..2, 0usize..3), 1..6)) {
            let pkis = seed_pkis();
            let ders: Vec<&Vec<u8>> = picks.iter().map(|&(p, i)| &pkis[p][i]).collect();
            match normalize_chain([pem_of(&ders).as_bytes()]) {
                Ok(chain) => {
                    let mut given: Vec<&Vec<u8>> = ders.clone();
                    given.sort();
                    given.dedup();
                    prop_assert_eq!(chain.ders().len(), given.len());
                    prop_assert!(chain.ders().iter().all(|d| given.contains(&d)));
                }
                Err(e) => prop_assert!(matches!(e, PkiError::BrokenChain(_)), "{}", e),
            }
        }

        /// Corrupted certificates never panic the linker.
        #[test]
        fn corrupted_certificates_never_panic(
            which in 0usize..3,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let [pki, _] = seed_pkis();
            let mut ders = pki.clone();
            for (at, byte) in &edits {
                let i = at.index(ders[which].len());
                ders[which][i] = *byte;
            }
            let refs: Vec<&Vec<u8>> = ders.iter().collect();
            let _ = normalize_chain([pem_of(&refs).as_bytes()]);
        }
    }

    #[test]
    fn export_answers_must_put_the_exported_certificate_first() {
        let p = test_pki();
        let chain = format!("{}{}", p.intermediate, p.root);
        let ok = normalize_export(&p.leaf, &chain).unwrap();
        assert_eq!(ok.leaf_der(), first_block(p.leaf.as_bytes(), CERTIFICATE).unwrap());
        // The "exported certificate" is the intermediate, but the chain holds a leaf it issued.
        let swapped = format!("{}{}", p.leaf, p.root);
        let err = normalize_export(&p.intermediate, &swapped).unwrap_err();
        assert!(matches!(err, PkiError::Mismatch(_)), "{err}");
        assert!(matches!(normalize_export("", &chain), Err(PkiError::NoPem(_))));
    }

    #[test]
    fn errors_quote_at_most_a_clipped_subject() {
        let key = KeyPair::generate().unwrap();
        let long = "x".repeat(5000);
        let a = CertificateParams::new(vec![long.clone()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let mut p = ca_params(&long);
        p.is_ca = IsCa::NoCa;
        let b = p.self_signed(&key).unwrap();
        let err = normalize_chain([a.pem().as_bytes(), b.pem().as_bytes()])
            .unwrap_err()
            .to_string();
        assert!(err.len() < 1000, "{} bytes", err.len());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            b"hello",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            assert!(normalize_chain([input]).is_err());
        }
    }
}
