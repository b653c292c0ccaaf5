//! Key usages and extended key usages, in cert-manager's vocabulary.

use std::{collections::BTreeSet, fmt};

use x509_parser::extensions::{ExtendedKeyUsage, KeyUsage};

use super::PkiError;

/// X.509 keyUsage bits (RFC 5280 §4.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ku {
    /// digitalSignature
    DigitalSignature,
    /// nonRepudiation / contentCommitment
    ContentCommitment,
    /// keyEncipherment
    KeyEncipherment,
    /// dataEncipherment
    DataEncipherment,
    /// keyAgreement
    KeyAgreement,
    /// keyCertSign
    CertSign,
    /// cRLSign
    CrlSign,
    /// encipherOnly
    EncipherOnly,
    /// decipherOnly
    DecipherOnly,
}

/// Extended key usages cert-manager knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Eku {
    /// anyExtendedKeyUsage
    Any,
    /// id-kp-serverAuth
    ServerAuth,
    /// id-kp-clientAuth
    ClientAuth,
    /// id-kp-codeSigning
    CodeSigning,
    /// id-kp-emailProtection
    EmailProtection,
    /// id-kp-ipsecEndSystem
    IpsecEndSystem,
    /// id-kp-ipsecTunnel
    IpsecTunnel,
    /// id-kp-ipsecUser
    IpsecUser,
    /// id-kp-timeStamping
    TimeStamping,
    /// id-kp-OCSPSigning
    OcspSigning,
    /// Microsoft Server Gated Crypto
    MicrosoftSgc,
    /// Netscape Server Gated Crypto
    NetscapeSgc,
}

impl Eku {
    /// Every variant.
    pub const ALL: [Eku; 12] = [
        Eku::Any,
        Eku::ServerAuth,
        Eku::ClientAuth,
        Eku::CodeSigning,
        Eku::EmailProtection,
        Eku::IpsecEndSystem,
        Eku::IpsecTunnel,
        Eku::IpsecUser,
        Eku::TimeStamping,
        Eku::OcspSigning,
        Eku::MicrosoftSgc,
        Eku::NetscapeSgc,
    ];

    fn oid(self) -> &'static str {
        match self {
            Eku::Any => "2.5.29.37.0",
            Eku::ServerAuth => "1.3.6.1.5.5.7.3.1",
            Eku::ClientAuth => "1.3.6.1.5.5.7.3.2",
            Eku::CodeSigning => "1.3.6.1.5.5.7.3.3",
            Eku::EmailProtection => "1.3.6.1.5.5.7.3.4",
            Eku::IpsecEndSystem => "1.3.6.1.5.5.7.3.5",
            Eku::IpsecTunnel => "1.3.6.1.5.5.7.3.6",
            Eku::IpsecUser => "1.3.6.1.5.5.7.3.7",
            Eku::TimeStamping => "1.3.6.1.5.5.7.3.8",
            Eku::OcspSigning => "1.3.6.1.5.5.7.3.9",
            Eku::MicrosoftSgc => "1.3.6.1.4.1.311.10.3.3",
            Eku::NetscapeSgc => "2.16.840.1.113730.4.1",
        }
    }
}

/// A usage requested in `CertificateRequest.spec.usages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A keyUsage bit.
    Key(Ku),
    /// An extended key usage.
    Extended(Eku),
}

/// Maps cert-manager's usage names (`spec.usages`) to X.509 usages.
pub fn parse_usage(name: &str) -> Result<Usage, PkiError> {
    use Eku::*;
    use Ku::*;
    Ok(match name {
        "signing" | "digital signature" => Usage::Key(DigitalSignature),
        "content commitment" => Usage::Key(ContentCommitment),
        "key encipherment" => Usage::Key(KeyEncipherment),
        "key agreement" => Usage::Key(KeyAgreement),
        "data encipherment" => Usage::Key(DataEncipherment),
        "cert sign" => Usage::Key(CertSign),
        "crl sign" => Usage::Key(CrlSign),
        "encipher only" => Usage::Key(EncipherOnly),
        "decipher only" => Usage::Key(DecipherOnly),
        "any" => Usage::Extended(Any),
        "server auth" => Usage::Extended(ServerAuth),
        "client auth" => Usage::Extended(ClientAuth),
        "code signing" => Usage::Extended(CodeSigning),
        "email protection" | "s/mime" => Usage::Extended(EmailProtection),
        "ipsec end system" => Usage::Extended(IpsecEndSystem),
        "ipsec tunnel" => Usage::Extended(IpsecTunnel),
        "ipsec user" => Usage::Extended(IpsecUser),
        "timestamping" => Usage::Extended(TimeStamping),
        "ocsp signing" => Usage::Extended(OcspSigning),
        "microsoft sgc" => Usage::Extended(MicrosoftSgc),
        "netscape sgc" => Usage::Extended(NetscapeSgc),
        other => return Err(PkiError::UnknownUsage(other.to_owned())),
    })
}

/// The keyUsage and extendedKeyUsage of a CSR or certificate. `None` = extension absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usages {
    /// keyUsage bits, if the extension is present.
    pub key: Option<BTreeSet<Ku>>,
    /// Extended key usages, if the extension is present (unknown OIDs kept as text).
    pub extended: Option<BTreeSet<String>>,
}

impl Usages {
    /// Reads the two extensions' parsed values.
    pub fn from_extensions(ku: Option<&KeyUsage>, eku: Option<&ExtendedKeyUsage<'_>>) -> Self {
        let key = ku.map(|ku| {
            let bits = [
                (ku.digital_signature(), Ku::DigitalSignature),
                (ku.non_repudiation(), Ku::ContentCommitment),
                (ku.key_encipherment(), Ku::KeyEncipherment),
                (ku.data_encipherment(), Ku::DataEncipherment),
                (ku.key_agreement(), Ku::KeyAgreement),
                (ku.key_cert_sign(), Ku::CertSign),
                (ku.crl_sign(), Ku::CrlSign),
                (ku.encipher_only(), Ku::EncipherOnly),
                (ku.decipher_only(), Ku::DecipherOnly),
            ];
            bits.into_iter().filter(|(set, _)| *set).map(|(_, k)| k).collect()
        });
        let extended = eku.map(|e| {
            let known = [
                (e.any, Eku::Any),
                (e.server_auth, Eku::ServerAuth),
                (e.client_auth, Eku::ClientAuth),
                (e.code_signing, Eku::CodeSigning),
                (e.email_protection, Eku::EmailProtection),
                (e.time_stamping, Eku::TimeStamping),
                (e.ocsp_signing, Eku::OcspSigning),
            ];
            known
                .into_iter()
                .filter(|(set, _)| *set)
                .map(|(_, k)| k.oid().to_owned())
                .chain(e.other.iter().map(|o| o.to_id_string()))
                .collect()
        });
        Self { key, extended }
    }

    /// Whether the keyUsage extension carries `ku`.
    pub fn has_key(&self, ku: Ku) -> bool {
        self.key.as_ref().is_some_and(|k| k.contains(&ku))
    }

    /// Whether the extendedKeyUsage extension carries `eku`.
    pub fn has_extended(&self, eku: Eku) -> bool {
        self.extended.as_ref().is_some_and(|e| e.contains(eku.oid()))
    }

    /// Whether a usage is present.
    pub fn has(&self, usage: Usage) -> bool {
        match usage {
            Usage::Key(k) => self.has_key(k),
            Usage::Extended(e) => self.has_extended(e),
        }
    }

    /// What `self` requests that `granted` lacks, as readable names (empty when all granted).
    pub fn missing_in(&self, granted: &Usages) -> Vec<String> {
        let mut missing = Vec::new();
        for ku in self.key.iter().flatten() {
            if !granted.has_key(*ku) {
                missing.push(format!("keyUsage {ku:?}"));
            }
        }
        for oid in self.extended.iter().flatten() {
            if !granted.extended.as_ref().is_some_and(|e| e.contains(oid)) {
                missing.push(format!("extendedKeyUsage {}", eku_name(oid)));
            }
        }
        missing
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Usage::Key(k) => write!(f, "keyUsage {k:?}"),
            Usage::Extended(e) => write!(f, "extendedKeyUsage {e:?}"),
        }
    }
}

fn eku_name(oid: &str) -> String {
    Eku::ALL
        .into_iter()
        .find(|e| e.oid() == oid)
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| oid.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cert_manager_name_maps() {
        for name in [
            "signing",
            "digital signature",
            "content commitment",
            "key encipherment",
            "key agreement",
            "data encipherment",
            "cert sign",
            "crl sign",
            "encipher only",
            "decipher only",
            "any",
            "server auth",
            "client auth",
            "code signing",
            "email protection",
            "s/mime",
            "ipsec end system",
            "ipsec tunnel",
            "ipsec user",
            "timestamping",
            "ocsp signing",
            "microsoft sgc",
            "netscape sgc",
        ] {
            assert!(parse_usage(name).is_ok(), "{name}");
        }
        let err = parse_usage("server-auth").unwrap_err().to_string();
        assert!(err.contains("server-auth"), "{err}");
    }

    #[test]
    fn missing_lists_what_was_not_granted() {
        let wanted = Usages {
            key: Some([Ku::DigitalSignature, Ku::CertSign].into()),
            extended: Some([Eku::ServerAuth.oid().to_owned()].into()),
        };
        let granted = Usages {
            key: Some([Ku::DigitalSignature].into()),
            extended: None,
        };
        assert_eq!(
            wanted.missing_in(&granted),
            vec![
                "keyUsage CertSign".to_string(),
                "extendedKeyUsage ServerAuth".to_string()
            ]
        );
        assert!(wanted.missing_in(&wanted).is_empty());
    }
}
