//! What identifies a certificate both in its DER and in a PCA list entry: its issuer's common
//! name, serial number and start of validity. The serial alone is unique only per CA, and the
//! PCA's serial scheme is not documented (sequential serials would repeat across CAs), so all
//! three must agree.

use std::hash::{DefaultHasher, Hash, Hasher};

use x509_parser::{certificate::X509CertificateParser, nom::Parser};

use super::pem::{CERTIFICATE, first_block};
use crate::pca::types::PrivateCertificate;

/// Longest serial RFC 5280 allows (20 octets); longer ones are not represented.
const MAX_LEN: usize = 20;

/// A certificate's issuer common name (hashed), serial number and `notBefore` (epoch seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertificateIdentity {
    issuer: u64,
    serial: Serial,
    not_before: i64,
}

impl CertificateIdentity {
    /// The identity of the first certificate in `pem` (a leaf followed by its chain). Runs for
    /// every finished request a restarted controller lists, so extensions are left unparsed.
    pub fn of_certificate_pem(pem: &[u8]) -> Option<CertificateIdentity> {
        let der = first_block(pem, CERTIFICATE).ok()?;
        let (_, cert) = X509CertificateParser::new()
            .with_deep_parse_extensions(false)
            .parse(&der)
            .ok()?;
        let issuer = cert.issuer().iter_common_name().next()?.as_str().ok()?;
        Some(CertificateIdentity {
            issuer: hash(issuer),
            serial: Serial::from_bytes(cert.tbs_certificate.raw_serial())?,
            not_before: cert.validity().not_before.timestamp(),
        })
    }

    /// The identity of a listed certificate; `None` when the entry lacks a part of it.
    pub fn of_listed(entry: &PrivateCertificate) -> Option<CertificateIdentity> {
        Some(CertificateIdentity {
            issuer: hash(entry.issuer_name.as_deref()?),
            serial: Serial::from_hex(entry.serial_number.as_deref()?)?,
            not_before: entry.not_before?.div_euclid(1000),
        })
    }
}

fn hash(issuer: &str) -> u64 {
    let mut h = DefaultHasher::new();
    issuer.hash(&mut h);
    h.finish()
}

/// A serial number's magnitude: leading zero octets dropped, right-aligned in 20 bytes, so the
/// DER form (a sign octet may lead) and any hex spelling of the same number compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Serial([u8; MAX_LEN]);

impl Serial {
    /// From big-endian octets; `None` when empty or longer than 20 significant octets.
    fn from_bytes(bytes: &[u8]) -> Option<Serial> {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        let significant = &bytes[start..];
        if bytes.is_empty() || significant.len() > MAX_LEN {
            return None;
        }
        let mut out = [0u8; MAX_LEN];
        out[MAX_LEN - significant.len()..].copy_from_slice(significant);
        Some(Serial(out))
    }

    /// From hexadecimal text, either case, with or without `:` separators or spaces; `None`
    /// for anything else (the PCA's spelling is not documented: text we cannot read matches
    /// nothing).
    fn from_hex(text: &str) -> Option<Serial> {
        let digits: String = text.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect();
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        Serial::from_bytes(&hex::decode(padded).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_and_hex_spellings_of_one_number_are_equal() {
        let der = Serial::from_bytes(&[0x00, 0x8f, 0x01]).expect("serial");
        for text in ["8f01", "8F01", "8f:01", "008F01", "8f 01"] {
            assert_eq!(Serial::from_hex(text), Some(der), "{text}");
        }
        assert_eq!(Serial::from_hex("f01"), Serial::from_bytes(&[0x0f, 0x01]));
        assert_ne!(Serial::from_hex("8f02"), Some(der));
    }

    #[test]
    fn unreadable_or_oversized_serials_are_none() {
        for text in ["", "xyz", "12-34", "0x8f01"] {
            assert_eq!(Serial::from_hex(text), None, "{text}");
        }
        assert!(Serial::from_bytes(&[1u8; 21]).is_none());
        assert!(Serial::from_bytes(&[0u8; 1]).is_some(), "zero is a number");
        assert!(Serial::from_bytes(&[]).is_none());
    }

    fn listed(issuer: Option<&str>, serial: Option<&str>, not_before_ms: Option<i64>) -> PrivateCertificate {
        serde_json::from_value(serde_json::json!({
            "certificate_id": "00000000-0000-4000-8000-000000000000", "status": "ISSUED",
            "issuer_id": "ca", "create_time": 0,
            "issuer_name": issuer, "serial_number": serial, "not_before": not_before_ms,
        }))
        .expect("entry")
    }

    #[test]
    fn a_leaf_and_its_list_entry_agree_on_issuer_serial_and_start() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["a.example".into()]).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, "Mesh CA");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x80, 0x01, 0x02]));
        params.not_before = rcgen::date_time_ymd(2026, 1, 2);
        let leaf = params.self_signed(&key).expect("cert").pem();
        let other = rcgen::CertificateParams::new(vec![])
            .expect("params")
            .self_signed(&key)
            .expect("cert")
            .pem();
        let chain = format!("{leaf}{other}");
        let from_pem = CertificateIdentity::of_certificate_pem(chain.as_bytes()).expect("identity");
        let start_ms = 1_767_312_000_000; // 2026-01-02T00:00:00Z
        let same = |issuer, serial, start| CertificateIdentity::of_listed(&listed(issuer, serial, start));
        assert_eq!(
            same(Some("Mesh CA"), Some("80:01:02"), Some(start_ms + 999)),
            Some(from_pem)
        );
        for (issuer, serial, start) in [
            (Some("Other CA"), Some("800102"), Some(start_ms)),
            (Some("Mesh CA"), Some("800103"), Some(start_ms)),
            (Some("Mesh CA"), Some("800102"), Some(start_ms + 1000)),
        ] {
            assert_ne!(
                same(issuer, serial, start),
                Some(from_pem),
                "{issuer:?} {serial:?} {start:?}"
            );
        }
        for (issuer, serial, start) in [
            (None, Some("800102"), Some(start_ms)),
            (Some("Mesh CA"), None, Some(start_ms)),
            (Some("Mesh CA"), Some("800102"), None),
            (Some("Mesh CA"), Some("not hex"), Some(start_ms)),
        ] {
            assert_eq!(
                same(issuer, serial, start),
                None,
                "an entry missing a part identifies nothing"
            );
        }
        assert_eq!(CertificateIdentity::of_certificate_pem(b"not pem"), None);
    }
}
