//! Signature verification for exactly the algorithms the PCA signs with: RSA (PKCS#1 v1.5) and
//! ECDSA on P-256/P-384, each with SHA-256, SHA-384 or SHA-512 (a CA's `signature_algorithm`).
//!
//! Why not x509-parser's `verify` (ring): ring has no ECDSA with SHA-512, so an EC CA created
//! with `SHA512` could not be checked at all. The RustCrypto crates (`rsa`, `p256`, `p384`,
//! `sha2`) cover the whole set with one code path, are already what the mock signs with, and
//! verification only touches public data (the `rsa` crate's timing advisory concerns private-key
//! operations). RSA-PSS is refused by name: the PCA has no PSS option. SM2 with SM3 (China site)
//! is refused with its own message: no TLS client in Kubernetes can use such a chain.

use rsa::{Pkcs1v15Sign, pkcs8::DecodePublicKey, signature::hazmat::PrehashVerifier};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_parser::{
    objects::{oid_registry, oid2sn},
    oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA256WITHRSA,
        OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
        OID_SIG_ECDSA_WITH_SHA512,
    },
    x509::{AlgorithmIdentifier, SubjectPublicKeyInfo},
};

use super::PkiError;

/// Name used for SM2 signatures with SM3 (OID 1.2.156.10197.1.501) in errors.
pub const SM2_WITH_SM3: &str = "SM2 with SM3";
const OID_SM2_WITH_SM3: &str = "1.2.156.10197.1.501";
/// Why an EC point was refused (the curve crates' error says only "signature error").
const OFF_CURVE: &str = "the EC point is malformed or not on the curve";

/// Message digests the PCA signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Hash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha384 => Sha384::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// A supported signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// `sha{256,384,512}WithRSAEncryption`.
    RsaPkcs1(Hash),
    /// `ecdsa-with-SHA{256,384,512}` (P-256 or P-384 key).
    Ecdsa(Hash),
}

impl SignatureAlgorithm {
    /// Recognises a supported algorithm; anything else is [`PkiError::UnsupportedAlgorithm`]
    /// naming it, `what` saying which object carries it.
    pub fn from_identifier(alg: &AlgorithmIdentifier<'_>, what: &str) -> Result<Self, PkiError> {
        let oid = &alg.algorithm;
        let found = if *oid == OID_PKCS1_SHA256WITHRSA {
            Self::RsaPkcs1(Hash::Sha256)
        } else if *oid == OID_PKCS1_SHA384WITHRSA {
            Self::RsaPkcs1(Hash::Sha384)
        } else if *oid == OID_PKCS1_SHA512WITHRSA {
            Self::RsaPkcs1(Hash::Sha512)
        } else if *oid == OID_SIG_ECDSA_WITH_SHA256 {
            Self::Ecdsa(Hash::Sha256)
        } else if *oid == OID_SIG_ECDSA_WITH_SHA384 {
            Self::Ecdsa(Hash::Sha384)
        } else if *oid == OID_SIG_ECDSA_WITH_SHA512 {
            Self::Ecdsa(Hash::Sha512)
        } else {
            let dotted = oid.to_id_string();
            let algorithm = if dotted == OID_SM2_WITH_SM3 {
                SM2_WITH_SM3.to_owned()
            } else {
                oid2sn(oid, oid_registry())
                    .map_or_else(|_| format!("algorithm {dotted}"), |sn| format!("{sn} ({dotted})"))
            };
            return Err(PkiError::UnsupportedAlgorithm {
                what: what.to_owned(),
                algorithm,
            });
        };
        Ok(found)
    }
}

/// A public key that can check signatures, parsed once per certificate.
#[derive(Debug, Clone)]
pub enum VerifyingKey {
    /// RSA key.
    Rsa(rsa::PublicKey),
    /// ECDSA P-256 key.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA P-384 key.
    P384(p384::ecdsa::VerifyingKey),
}

impl VerifyingKey {
    /// Parses a SubjectPublicKeyInfo; keys that cannot sign with a supported algorithm are
    /// [`PkiError::UnsupportedKey`].
    pub fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, PkiError> {
        let unreadable = |e: &dyn std::fmt::Display| PkiError::UnsupportedKey(format!("unreadable public key ({e})"));
        let alg = &spki.algorithm.algorithm;
        if *alg == OID_PKCS1_RSAENCRYPTION {
            return rsa::PublicKey::from_public_key_der(spki.raw)
                .map(Self::Rsa)
                .map_err(|e| unreadable(&e));
        }
        if *alg != OID_KEY_TYPE_EC_PUBLIC_KEY {
            let dotted = alg.to_id_string();
            return Err(PkiError::UnsupportedKey(
                oid2sn(alg, oid_registry()).map_or_else(|_| format!("key algorithm {dotted}"), str::to_owned),
            ));
        }
        let curve = super::csr::named_curve(spki);
        let point = spki.subject_public_key.data.as_ref();
        match curve {
            Some(c) if c == OID_EC_P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map(Self::P256)
                .map_err(|_| unreadable(&OFF_CURVE)),
            Some(c) if c == OID_NIST_EC_P384 => p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map(Self::P384)
                .map_err(|_| unreadable(&OFF_CURVE)),
            Some(c) => Err(PkiError::UnsupportedKey(super::csr::curve_name(&c.to_id_string()))),
            None => Err(PkiError::UnsupportedKey(
                "EC key without a named curve (explicit curve parameters)".into(),
            )),
        }
    }

    /// Whether `signature` over `signed` was made by this key with `alg`. A key of the wrong
    /// type for `alg` simply did not make it.
    pub fn verifies(&self, alg: SignatureAlgorithm, signed: &[u8], signature: &[u8]) -> bool {
        match (self, alg) {
            (VerifyingKey::Rsa(key), SignatureAlgorithm::RsaPkcs1(hash)) => {
                let padding = match hash {
                    Hash::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
                    Hash::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
                    Hash::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
                };
                key.verify(padding, &hash.digest(signed), signature).is_ok()
            }
            (VerifyingKey::P256(key), SignatureAlgorithm::Ecdsa(hash)) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify_prehash(&hash.digest(signed), &sig).is_ok()),
            (VerifyingKey::P384(key), SignatureAlgorithm::Ecdsa(hash)) => p384::ecdsa::Signature::from_der(signature)
                .is_ok_and(|sig| key.verify_prehash(&hash.digest(signed), &sig).is_ok()),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use x509_parser::{certification_request::X509CertificationRequest, prelude::FromDer};

    use super::*;
    use crate::pki::{
        KeyAlgorithm, first_block,
        fixtures::{Digest, KeySpec, Openssl},
        normalize_chain, parse_csr,
    };

    #[test]
    fn sm2_chains_get_their_own_error() {
        let mut ssl = Openssl::new();
        ssl.key("sm2-ca", KeySpec::Sm2);
        ssl.key("leaf", KeySpec::Ec256);
        let pki = ssl.root_and_leaf("sm2-ca", "leaf", Digest::Sm3);
        let err = normalize_chain([pki.leaf.as_bytes(), pki.root.as_bytes()]).unwrap_err();
        assert!(err.is_sm2(), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("SM2 with SM3: SM2 CAs are not supported: TLS clients in Kubernetes cannot use them"),
            "{text}"
        );
        // A lone SM2 root fails the same way (its self-signature cannot be checked).
        assert!(normalize_chain([pki.root.as_bytes()]).unwrap_err().is_sm2());
    }

    #[test]
    fn csrs_signed_with_any_supported_hash_verify() {
        let ssl = Openssl::new();
        for (key, spec, want) in [
            ("rsa", KeySpec::Rsa2048, KeyAlgorithm::Rsa2048),
            ("p256", KeySpec::Ec256, KeyAlgorithm::Ec256),
            ("p384", KeySpec::Ec384, KeyAlgorithm::Ec384),
        ] {
            ssl.key(key, spec);
            for digest in [Digest::Sha256, Digest::Sha384, Digest::Sha512] {
                let info = parse_csr(ssl.csr(key, digest).as_bytes())
                    .unwrap_or_else(|e| panic!("{key} CSR with {digest:?}: {e}"));
                assert_eq!(info.key, want);
            }
        }
    }

    #[test]
    fn unsupported_algorithms_are_named() {
        let ssl = Openssl::new();
        ssl.key("rsa", KeySpec::Rsa2048);
        let sha1 = parse_csr(ssl.csr_with("rsa", &["-sha1"]).as_bytes()).unwrap_err();
        assert!(sha1.to_string().contains("sha1WithRSAEncryption"), "{sha1}");
        let pss = parse_csr(
            ssl.csr_with("rsa", &["-sha256", "-sigopt", "rsa_padding_mode:pss"])
                .as_bytes(),
        )
        .unwrap_err();
        assert!(pss.to_string().contains("rsassa-pss"), "{pss}");
        assert!(!pss.is_sm2());
    }

    #[test]
    fn a_key_of_the_wrong_type_never_verifies() {
        let ssl = Openssl::new();
        ssl.key("rsa", KeySpec::Rsa2048);
        ssl.key("ec", KeySpec::Ec256);
        let rsa_csr = ssl.csr("rsa", Digest::Sha256);
        let ec_csr = ssl.csr("ec", Digest::Sha256);
        let rsa_der = first_block(rsa_csr.as_bytes(), "CERTIFICATE REQUEST").unwrap();
        let ec_der = first_block(ec_csr.as_bytes(), "CERTIFICATE REQUEST").unwrap();
        let (_, rsa) = X509CertificationRequest::from_der(&rsa_der).unwrap();
        let (_, ec) = X509CertificationRequest::from_der(&ec_der).unwrap();
        let ec_key = VerifyingKey::from_spki(&ec.certification_request_info.subject_pki).unwrap();
        let rsa_key = VerifyingKey::from_spki(&rsa.certification_request_info.subject_pki).unwrap();
        let rsa_signed = (rsa.certification_request_info.raw, rsa.signature_value.data.as_ref());
        let ec_signed = (ec.certification_request_info.raw, ec.signature_value.data.as_ref());
        for hash in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            assert!(!ec_key.verifies(SignatureAlgorithm::RsaPkcs1(hash), rsa_signed.0, rsa_signed.1));
            assert!(!rsa_key.verifies(SignatureAlgorithm::Ecdsa(hash), ec_signed.0, ec_signed.1));
        }
        assert!(rsa_key.verifies(SignatureAlgorithm::RsaPkcs1(Hash::Sha256), rsa_signed.0, rsa_signed.1));
        assert!(ec_key.verifies(SignatureAlgorithm::Ecdsa(Hash::Sha256), ec_signed.0, ec_signed.1));
        // Right key, wrong hash: no.
        assert!(!ec_key.verifies(SignatureAlgorithm::Ecdsa(Hash::Sha384), ec_signed.0, ec_signed.1));
    }
}
