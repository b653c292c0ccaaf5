//! PEM in (CRLF, LF or mixed line endings, text between blocks tolerated) and out (LF).
//!
//! Input is bounded before any decoding: at most [`MAX_PEM_BYTES`] bytes and
//! [`MAX_BLOCKS`] blocks, so a hostile answer costs a byte scan, not a decode of every block.

use ::pem::{EncodeConfig, LineEnding, Pem};

use super::PkiError;

/// `CERTIFICATE` block tag.
pub const CERTIFICATE: &str = "CERTIFICATE";
/// `CERTIFICATE REQUEST` block tag.
pub const CERTIFICATE_REQUEST: &str = "CERTIFICATE REQUEST";
/// Largest PEM input accepted: 16 RSA-4096 certificates with generous extensions take about
/// 40 KiB, so this leaves room for unusual but honest bundles.
pub const MAX_PEM_BYTES: usize = 256 * 1024;
/// Most blocks accepted in one PEM input (a PCA chain is a leaf and a few CAs).
pub const MAX_BLOCKS: usize = 16;

const BEGIN: &str = "-----BEGIN ";

/// Every block of `input` with the given tag, as DER. Blocks of other types are an error, so
/// a key or a CSR pasted into a chain is noticed.
pub fn parse_blocks(input: &[u8], tag: &'static str) -> Result<Vec<Vec<u8>>, PkiError> {
    let blocks = decode(input)?;
    if blocks.is_empty() {
        return Err(PkiError::NoPem(tag));
    }
    blocks.into_iter().map(|b| contents_if(b, tag)).collect()
}

/// The first block of `input` with the given tag, as DER (e.g. the certificate of an export
/// whose chain follows it). Every block must have the tag.
pub fn first_block(input: &[u8], tag: &'static str) -> Result<Vec<u8>, PkiError> {
    parse_blocks(input, tag)?.into_iter().next().ok_or(PkiError::NoPem(tag))
}

/// The single block of `input`, as DER: several blocks, or anything but whitespace around
/// the block, is an error naming it (for inputs that must hold exactly one object, like a CSR).
pub fn only_block(input: &[u8], tag: &'static str) -> Result<Vec<u8>, PkiError> {
    let text = normalise(input)?;
    let blocks = decode_text(&text)?;
    let block = match blocks.len() {
        0 => return Err(PkiError::NoPem(tag)),
        1 => blocks.into_iter().next().ok_or(PkiError::NoPem(tag))?,
        n => {
            return Err(PkiError::Pem(format!(
                "expected exactly one {tag} block, found {n} PEM blocks"
            )));
        }
    };
    let start = text.find(BEGIN).unwrap_or(0);
    let end_marker = format!("-----END {}-----", block.tag());
    let end = text.find(&end_marker).map_or(text.len(), |i| i + end_marker.len());
    let outside = |s: &str| s.chars().filter(|c| !c.is_whitespace()).count();
    match (outside(&text[..start]), outside(&text[end..])) {
        (0, 0) => contents_if(block, tag),
        (0, after) => Err(PkiError::Pem(format!(
            "{after} characters of unexpected data after the {tag} block"
        ))),
        (before, _) => Err(PkiError::Pem(format!(
            "{before} characters of unexpected data before the {tag} block"
        ))),
    }
}

/// Encodes DER blocks as PEM with LF line endings.
pub fn encode_blocks<'a>(tag: &str, ders: impl IntoIterator<Item = &'a [u8]>) -> String {
    let config = EncodeConfig::new().set_line_ending(LineEnding::LF);
    ders.into_iter()
        .map(|d| ::pem::encode_config(&Pem::new(tag, d.to_vec()), config))
        .collect()
}

/// Checks the caps, then normalises line endings: the pem crate wants LF or CRLF per line, so
/// stray CRs (mixed endings) become LF.
fn normalise(input: &[u8]) -> Result<String, PkiError> {
    if input.len() > MAX_PEM_BYTES {
        return Err(PkiError::TooLarge {
            what: "PEM input",
            size: input.len(),
            max: MAX_PEM_BYTES,
        });
    }
    let text = String::from_utf8_lossy(input).replace("\r\n", "\n").replace('\r', "\n");
    let found = text.matches(BEGIN).count();
    if found > MAX_BLOCKS {
        return Err(PkiError::TooMany {
            what: "PEM blocks",
            found,
            max: MAX_BLOCKS,
        });
    }
    Ok(text)
}

fn decode(input: &[u8]) -> Result<Vec<Pem>, PkiError> {
    decode_text(&normalise(input)?)
}

fn decode_text(text: &str) -> Result<Vec<Pem>, PkiError> {
    let blocks = ::pem::parse_many(text.as_bytes()).map_err(|e| PkiError::Pem(e.to_string()))?;
    // The pem crate skips a BEGIN line without its END line; a truncated block is an error.
    let begun = text.matches(BEGIN).count();
    if begun != blocks.len() {
        return Err(PkiError::Pem(format!(
            "{} of {begun} PEM blocks have no matching END line",
            begun - blocks.len().min(begun)
        )));
    }
    Ok(blocks)
}

fn contents_if(block: Pem, tag: &'static str) -> Result<Vec<u8>, PkiError> {
    if block.tag() == tag || (tag == CERTIFICATE_REQUEST && block.tag() == "NEW CERTIFICATE REQUEST") {
        Ok(block.into_contents())
    } else {
        Err(PkiError::UnexpectedPemTag {
            found: block.tag().to_owned(),
            wanted: tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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

    fn block(tag: &str) -> String {
        format!("-----BEGIN {tag}-----\n{BODY}\n-----END {tag}-----\n")
    }

    #[test]
    fn caps_are_checked_before_decoding_and_named() {
        let at_cap = block(CERTIFICATE).repeat(MAX_BLOCKS);
        assert_eq!(parse_blocks(at_cap.as_bytes(), CERTIFICATE).unwrap().len(), MAX_BLOCKS);
        let over = block(CERTIFICATE).repeat(MAX_BLOCKS + 1);
        let err = parse_blocks(over.as_bytes(), CERTIFICATE).unwrap_err();
        assert!(matches!(err, PkiError::TooMany { found: 17, max: 16, .. }), "{err}");
        assert_eq!(err.to_string(), "too many PEM blocks: 17, at most 16 are allowed");
        // Base64 garbage in the 17th block does not matter: nothing is decoded.
        let over_with_garbage = format!(
            "{}{}",
            block(CERTIFICATE).repeat(MAX_BLOCKS),
            block(CERTIFICATE).replace(BODY, "!!")
        );
        assert!(matches!(
            parse_blocks(over_with_garbage.as_bytes(), CERTIFICATE),
            Err(PkiError::TooMany { .. })
        ));
        let huge = vec![b'A'; MAX_PEM_BYTES + 1];
        let err = first_block(&huge, CERTIFICATE).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "PEM input is {} bytes, more than the {MAX_PEM_BYTES} allowed",
                MAX_PEM_BYTES + 1
            )
        );
    }

    #[test]
    fn first_block_and_only_block() {
        let two = format!("{}{}", block(CERTIFICATE), block(CERTIFICATE).replace(BODY, "MAMCAQI="));
        assert_eq!(
            first_block(two.as_bytes(), CERTIFICATE).unwrap(),
            vec![0x30, 0x03, 0x02, 0x01, 0x01]
        );
        assert!(matches!(first_block(b"", CERTIFICATE), Err(PkiError::NoPem(_))));
        let one = block(CERTIFICATE_REQUEST);
        assert_eq!(
            only_block(format!("\n  {one}\r\n").as_bytes(), CERTIFICATE_REQUEST)
                .unwrap()
                .len(),
            5
        );
        let new_tag = block("NEW CERTIFICATE REQUEST");
        assert!(only_block(new_tag.as_bytes(), CERTIFICATE_REQUEST).is_ok());
        for (input, needle) in [
            (format!("{one}{one}"), "found 2 PEM blocks"),
            (format!("{one}x"), "1 characters of unexpected data after"),
            (format!("x{one}"), "1 characters of unexpected data before"),
            (block(CERTIFICATE), "\"CERTIFICATE\" where CERTIFICATE REQUEST"),
            (
                "-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQE=\n".to_owned(),
                "no matching END line",
            ),
        ] {
            let err = only_block(input.as_bytes(), CERTIFICATE_REQUEST)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }

    /// Text made of PEM-like pieces: armour lines with any tag, base64-ish lines, noise.
    fn pemish() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "-----BEGIN [A-Z ]{0,24}-----\r?\n",
            "-----END [A-Z ]{0,24}-----\r?\n",
            "[A-Za-z0-9+/=]{0,80}\r?\n",
            "[ -~]{0,40}\r?\n?",
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(crate::pki::fixtures::proptest_config())]

        #[test]
        fn encode_then_parse_round_trips(
            ders in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 1..=MAX_BLOCKS),
            crlf in any::<bool>(),
            noise in "[ -,.-~]{0,20}",
        ) {
            let mut pem = encode_blocks(CERTIFICATE, ders.iter().map(Vec::as_slice));
            if crlf {
                pem = pem.replace('\n', "\r\n");
            }
            let with_noise = format!("{noise}\n{pem}{noise}");
            prop_assert_eq!(&parse_blocks(pem.as_bytes(), CERTIFICATE).unwrap(), &ders);
            prop_assert_eq!(&parse_blocks(with_noise.as_bytes(), CERTIFICATE).unwrap(), &ders);
            prop_assert_eq!(&first_block(pem.as_bytes(), CERTIFICATE).unwrap(), &ders[0]);
            if ders.len() == 1 {
                prop_assert_eq!(&only_block(pem.as_bytes(), CERTIFICATE).unwrap(), &ders[0]);
            }
        }

        #[test]
        fn parsers_never_panic(text in pemish(), bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            for input in [text.as_bytes(), bytes.as_slice()] {
                let all = parse_blocks(input, CERTIFICATE);
                let first = first_block(input, CERTIFICATE);
                let only = only_block(input, CERTIFICATE);
                // Agreement: the first block is the first of all blocks; a single block is `only`'s.
                if let Ok(all) = &all {
                    prop_assert_eq!(first.as_ref().ok(), all.first());
                }
                if let Ok(one) = &only {
                    prop_assert_eq!(all.as_ref().ok().map(Vec::as_slice), Some(std::slice::from_ref(one)));
                }
            }
        }
    }

    #[test]
    fn encodes_with_lf() {
        let out = encode_blocks(CERTIFICATE, [&[1u8, 2, 3][..]]);
        assert!(!out.contains('\r'));
        assert_eq!(parse_blocks(out.as_bytes(), CERTIFICATE).unwrap(), vec![vec![1, 2, 3]]);
    }
}
