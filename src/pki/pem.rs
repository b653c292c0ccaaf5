//! PEM in (CRLF, LF or mixed line endings, text between blocks tolerated) and out (LF).

use ::pem::{EncodeConfig, LineEnding, Pem};

use super::PkiError;

/// `CERTIFICATE` block tag.
pub const CERTIFICATE: &str = "CERTIFICATE";
/// `CERTIFICATE REQUEST` block tag.
pub const CERTIFICATE_REQUEST: &str = "CERTIFICATE REQUEST";

/// Every block of `input` with the given tag, as DER. Blocks of other types are an error, so
/// a key or a CSR pasted into a chain is noticed.
pub fn parse_blocks(input: &[u8], tag: &'static str) -> Result<Vec<Vec<u8>>, PkiError> {
    // The pem crate wants LF or CRLF per line; normalise stray CRs (mixed endings) first.
    let text = String::from_utf8_lossy(input).replace("\r\n", "\n").replace('\r', "\n");
    let blocks = ::pem::parse_many(text.as_bytes()).map_err(|e| PkiError::Pem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(PkiError::NoPem(tag));
    }
    blocks
        .into_iter()
        .map(|b| {
            if b.tag() == tag || (tag == CERTIFICATE_REQUEST && b.tag() == "NEW CERTIFICATE REQUEST") {
                Ok(b.into_contents())
            } else {
                Err(PkiError::UnexpectedPemTag {
                    found: b.tag().to_owned(),
                    wanted: tag,
                })
            }
        })
        .collect()
}

/// Encodes DER blocks as PEM with LF line endings.
pub fn encode_blocks<'a>(tag: &str, ders: impl IntoIterator<Item = &'a [u8]>) -> String {
    let config = EncodeConfig::new().set_line_ending(LineEnding::LF);
    ders.into_iter()
        .map(|d| ::pem::encode_config(&Pem::new(tag, d.to_vec()), config))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "MAMCAQE=";

    #[test]
    fn accepts_crlf_lf_and_mixed_with_text_between() {
        let lf = format!("-----BEGIN CERTIFICATE-----\n{BODY}\n-----END CERTIFICATE-----\n");
        let crlf = lf.replace('\n', "\r\n");
        let mixed = format!("subject=foo\r\n{crlf}junk between\n{lf}");
        assert_eq!(parse_blocks(lf.as_bytes(), CERTIFICATE).unwrap().len(), 1);
        assert_eq!(parse_blocks(crlf.as_bytes(), CERTIFICATE).unwrap().len(), 1);
        let both = parse_blocks(mixed.as_bytes(), CERTIFICATE).unwrap();
        assert_eq!(both, vec![vec![0x30, 0x03, 0x02, 0x01, 0x01]; 2]);
    }

    #[test]
    fn rejects_other_blocks_and_empty_input() {
        let key = format!("-----BEGIN PRIVATE KEY-----\n{BODY}\n-----END PRIVATE KEY-----\n");
        let err = parse_blocks(key.as_bytes(), CERTIFICATE).unwrap_err();
        assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
        assert!(matches!(parse_blocks(b"", CERTIFICATE), Err(PkiError::NoPem(_))));
        assert!(
            parse_blocks(
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                CERTIFICATE
            )
            .is_err()
        );
    }

    #[test]
    fn encodes_with_lf() {
        let out = encode_blocks(CERTIFICATE, [&[1u8, 2, 3][..]]);
        assert!(!out.contains('\r'));
        assert_eq!(parse_blocks(out.as_bytes(), CERTIFICATE).unwrap(), vec![vec![1, 2, 3]]);
    }
}
