//! Chain normalisation, as cert-manager's `pki.ParseSingleCertificateChain` does it:
//! order-independent, de-duplicated, every link checked by name *and* signature, exactly one
//! chain; then split into `status.certificate` (leaf + intermediates) and `status.ca` (root).

use x509_parser::{certificate::X509Certificate, prelude::FromDer};

use super::{
    PkiError,
    pem::{CERTIFICATE, encode_blocks, parse_blocks},
};

const MAX_CERTIFICATES: usize = 1000;

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

/// Normalises any number of PEM inputs (e.g. an exported certificate and its chain) into one chain.
pub fn normalize_chain<'a>(inputs: impl IntoIterator<Item = &'a [u8]>) -> Result<Chain, PkiError> {
    let mut ders: Vec<Vec<u8>> = Vec::new();
    for input in inputs {
        for der in parse_blocks(input, CERTIFICATE)? {
            if !ders.contains(&der) {
                ders.push(der);
            }
        }
        if ders.len() > MAX_CERTIFICATES {
            return Err(PkiError::ChainTooLong(ders.len()));
        }
    }
    let certs = ders
        .iter()
        .enumerate()
        .map(|(i, der)| {
            X509Certificate::from_der(der)
                .map(|(_, c)| c)
                .map_err(|e| PkiError::Der {
                    what: format!("certificate #{}", i + 1),
                    detail: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let order = link(&certs)?;
    let top_is_self_signed = order.last().is_some_and(|&i| is_self_signed(&certs[i]));
    Ok(Chain {
        ders: order.into_iter().map(|i| ders[i].clone()).collect(),
        top_is_self_signed,
    })
}

/// Whether `child` names `parent` as issuer and carries a valid signature by its key.
fn issued_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> bool {
    child.issuer().as_raw() == parent.subject().as_raw() && child.verify_signature(Some(parent.public_key())).is_ok()
}

fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    issued_by(cert, cert)
}

/// Orders certificate indices leaf → top, or explains why they do not form one chain.
fn link(certs: &[X509Certificate<'_>]) -> Result<Vec<usize>, PkiError> {
    let n = certs.len();
    if n == 0 {
        return Err(PkiError::NoPem(CERTIFICATE));
    }
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let mut has_child = vec![false; n];
    for (c, child) in certs.iter().enumerate() {
        for (p, candidate) in certs.iter().enumerate() {
            if c == p || !issued_by(child, candidate) {
                continue;
            }
            if parent[c].is_some() {
                return Err(PkiError::BrokenChain(format!(
                    "{} has more than one issuer in the set (cross-signed chains are not supported)",
                    describe(child)
                )));
            }
            parent[c] = Some(p);
            has_child[p] = true;
        }
    }
    let leaves: Vec<usize> = (0..n).filter(|&i| !has_child[i]).collect();
    let leaf = match leaves.as_slice() {
        [one] => *one,
        [] => {
            return Err(PkiError::BrokenChain(
                "the certificates issue each other in a loop".into(),
            ));
        }
        many => {
            let names: Vec<String> = many.iter().map(|&i| describe(&certs[i])).collect();
            return Err(PkiError::BrokenChain(format!(
                "certificates do not form a single chain; unconnected ends: {}",
                names.join("; ")
            )));
        }
    };
    let mut order = vec![leaf];
    let mut current = leaf;
    while let Some(p) = parent[current] {
        if order.contains(&p) {
            return Err(PkiError::BrokenChain(
                "the certificates issue each other in a loop".into(),
            ));
        }
        order.push(p);
        current = p;
    }
    if order.len() != n {
        let stray: Vec<String> = (0..n)
            .filter(|i| !order.contains(i))
            .map(|i| describe(&certs[i]))
            .collect();
        return Err(PkiError::BrokenChain(format!(
            "not linked to the chain of {}: {}",
            describe(&certs[leaf]),
            stray.join("; ")
        )));
    }
    Ok(order)
}

fn describe(cert: &X509Certificate<'_>) -> String {
    format!("\"{}\" (serial {})", cert.subject(), cert.raw_serial_as_string())
}

#[cfg(test)]
pub(crate) mod tests {
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
