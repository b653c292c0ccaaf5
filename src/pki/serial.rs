//! Certificate serial numbers in one comparable form, whether read from a certificate's DER or
//! from the hexadecimal text of a PCA list entry.

use x509_parser::{certificate::X509Certificate, prelude::FromDer};

use super::pem::{CERTIFICATE, first_block};

/// Longest serial RFC 5280 allows (20 octets); longer ones are not represented.
const MAX_LEN: usize = 20;

/// A serial number's magnitude: leading zero octets dropped, right-aligned in 20 bytes, so the
/// DER form (a sign octet may lead) and any hex spelling of the same number compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Serial([u8; MAX_LEN]);

impl Serial {
    /// From big-endian octets; `None` when empty or longer than 20 significant octets.
    pub fn from_bytes(bytes: &[u8]) -> Option<Serial> {
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
    pub fn from_hex(text: &str) -> Option<Serial> {
        let digits: String = text.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect();
        let padded = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        Serial::from_bytes(&hex::decode(padded).ok()?)
    }

    /// The serial of the first certificate in `pem` (a leaf followed by its chain).
    pub fn of_certificate_pem(pem: &[u8]) -> Option<Serial> {
        let der = first_block(pem, CERTIFICATE).ok()?;
        let (_, cert) = X509Certificate::from_der(&der).ok()?;
        Serial::from_bytes(cert.tbs_certificate.raw_serial())
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

    #[test]
    fn reads_the_leaf_of_a_pem_chain() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["a.example".into()]).expect("params");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x80, 0x01, 0x02]));
        let leaf = params.self_signed(&key).expect("cert").pem();
        let other = rcgen::CertificateParams::new(vec![])
            .expect("params")
            .self_signed(&key)
            .expect("cert")
            .pem();
        let chain = format!("{leaf}{other}");
        assert_eq!(Serial::of_certificate_pem(chain.as_bytes()), Serial::from_hex("800102"));
        assert_eq!(Serial::of_certificate_pem(b"not pem"), None);
    }
}
