//! One place that makes foreign text safe to keep: whatever the PCA, IAM, STS or the API gateway
//! (or a transport library quoting them) says goes through [`scrub`] before it is stored in a
//! [`PcaError`](super::PcaError), and from there into status, events, logs and metrics.
//!
//! The gateway's 401 text can quote its canonical request — `x-security-token:` header line
//! included — and error texts can echo ids, keys or bodies we sent. The rules below remove what
//! looks like a credential, a signature or a canonical request, replace control characters, and
//! cut the result to a bounded length. They err on the side of removing too much: an error
//! message with a hole in it is still useful, a leaked token is not.
//!
//! Written with `regex` (linear-time matching, so hostile input cannot make it slow) rather than
//! a secret-scanning crate: none of those knows the Huawei gateway's formats, and their rule sets
//! are far larger than what an error message needs.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Longest text (in characters) [`scrub`] returns, plus an ellipsis when cut.
pub const MAX_TEXT: usize = 512;
/// Longest id (in characters) [`id_for_message`] quotes.
pub const MAX_ID: usize = 40;
/// Replacement for a removed secret.
pub const REMOVED: &str = "[removed]";

/// Only this many times the output bound is examined: what lies beyond is cut anyway, and
/// scanning megabytes of a hostile body would only cost time.
const SCAN_FACTOR: usize = 8;

/// Scrubs `text` and bounds it to [`MAX_TEXT`] characters.
pub fn scrub(text: &str) -> String {
    scrub_to(text, MAX_TEXT)
}

/// Scrubs `text` and bounds it to `max_chars` characters (plus `…` when it was cut).
pub fn scrub_to(text: &str, max_chars: usize) -> String {
    let head = char_prefix(text, max_chars.saturating_mul(SCAN_FACTOR).max(256));
    let mut out = head.to_owned();
    for rule in RULES.iter() {
        out = rule.apply(&out);
    }
    let cleaned: String = out.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let cut = head.len() < text.len();
    if cleaned.chars().count() <= max_chars && !cut {
        cleaned
    } else {
        format!("{}…", char_prefix(&cleaned, max_chars))
    }
}

/// An id (from an answer, an annotation or a caller) as it may appear in a message: scrubbed,
/// quoted, and cut to [`MAX_ID`] characters with its full length noted, so a megabyte-long
/// "id" never lands in a status.
pub fn id_for_message(id: &str) -> String {
    let length = id.chars().count();
    if length <= MAX_ID {
        format!("{:?}", scrub_to(id, MAX_ID))
    } else {
        format!("{:?} ({length} characters)", scrub_to(id, MAX_ID))
    }
}

fn char_prefix(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// One replacement: a pattern and what to put instead.
struct Rule {
    pattern: Regex,
    replace: fn(&Captures<'_>) -> String,
}

impl Rule {
    fn new(pattern: &str, replace: fn(&Captures<'_>) -> String) -> Self {
        // The patterns are constants checked by the unit tests; a typo fails every test at once.
        #[allow(clippy::expect_used)]
        let pattern = Regex::new(pattern).expect("scrub pattern compiles");
        Self { pattern, replace }
    }

    fn apply(&self, text: &str) -> String {
        self.pattern.replace_all(text, self.replace).into_owned()
    }
}

/// Characters that end a header or parameter value in the texts we see.
const VALUE: &str = r#"[^\s"',;&|}\]]+"#;

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        // A PEM private key, complete or cut off.
        Rule::new(
            r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)",
            |_| "[private key removed]".into(),
        ),
        // The gateway names what follows: everything after it is the canonical request.
        Rule::new(
            r"(?is)(canonical[ _-]?request|canonical[ _-]?string|string[ _-]?to[ _-]?sign)\b.*",
            |c| format!("{} {REMOVED}", &c[1]),
        ),
        // A canonical request without a name: a method, a line break (real, escaped, or the
        // gateway's `|`) and a path.
        Rule::new(
            r"(?s)\b(?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS)(?:\r?\n|\\n|\|)/.*",
            |_| "[canonical request removed]".into(),
        ),
        // `name: value` / `name=value` / `"name": "value"` of headers and fields that hold a
        // credential.
        Rule::new(
            &format!(
                r#"(?i)\b(x-security-token|x-auth-token|x-subject-token|x-sdk-token|security[_-]?token|session[_-]?token|authorization|access[_-]?key(?:[_-]?id)?|secret(?:[_-]?access)?[_-]?key|private[_-]?key|password|\bak\b|\bsk\b)("?\s*[:=]\s*"?)(?:SDK-HMAC-SHA256\s+|Bearer\s+)?{VALUE}"#
            ),
            |c| format!("{}{}{REMOVED}", &c[1], &c[2]),
        ),
        // Parts of an `Authorization: SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…`
        // header quoted on its own.
        Rule::new(&format!(r"(?i)\b(Access|Credential|Signature)=({VALUE})"), |c| {
            format!("{}={REMOVED}", &c[1])
        }),
        // Hex of 64 and more: signatures, payload hashes, derived keys.
        Rule::new(r"[0-9A-Fa-f]{64,}", |_| REMOVED.into()),
        // Long tokens of a key alphabet that are not plain lower-case text, ids or paths:
        // secret keys, security tokens, base64 blobs.
        Rule::new(r"[A-Za-z0-9+/=_\-]{32,}", |c| {
            let token = &c[0];
            if looks_like_secret(token) {
                REMOVED.into()
            } else {
                token.to_owned()
            }
        }),
        // An access key id: 20 upper-case letters and digits.
        Rule::new(r"\b[A-Z0-9]{20}\b", |c| {
            let token = &c[0];
            let letters = token.bytes().any(|b| b.is_ascii_uppercase());
            let digits = token.bytes().any(|b| b.is_ascii_digit());
            if letters && digits {
                REMOVED.into()
            } else {
                token.to_owned()
            }
        }),
    ]
});

/// Mixed case, or upper case with digits, or base64 padding/symbols among letters and digits.
/// Lower-case hex ids, UUIDs and URL paths are kept.
fn looks_like_secret(token: &str) -> bool {
    let upper = token.bytes().any(|b| b.is_ascii_uppercase());
    let lower = token.bytes().any(|b| b.is_ascii_lowercase());
    let digit = token.bytes().any(|b| b.is_ascii_digit());
    let symbol = token.bytes().any(|b| matches!(b, b'+' | b'='));
    upper && (lower || digit) || lower && digit && symbol
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "gQpjbi1ub3J0aC00jHt9b4Bc9xQ2EVSGcW+7q/fZSEUuNdfKH8Yw1b0dsyO0Hg==";
    const SK: &str = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc";
    const AK: &str = "QTWAOYTTINDUT2QVKYUC";
    const SIGNATURE: &str = "7be6668032f70e9f1a5e3b3e5e9a1d4d2a37e7c8b5e0c4f7d5a5f1e2d3c4b5a6";

    fn assert_clean(out: &str) {
        for secret in [TOKEN, SK, AK, SIGNATURE, "jHt9b4Bc9xQ2EVSGcW", "MIIEvQIBADANBgkq"] {
            assert!(!out.contains(secret), "{secret} survived in {out:?}");
        }
    }

    #[test]
    fn gateway_canonical_request_with_pipes_is_removed() {
        let text = format!(
            "Incorrect IAM authentication information: verify aksk signature fail, canonicalRequest:GET|/v1/private-certificate-authorities/x/||content-type:application/json|host:ccm.ap-southeast-3.myhuaweicloud.com|x-sdk-date:20240101T000000Z|x-security-token:{TOKEN}||content-type;host;x-sdk-date;x-security-token|{SIGNATURE}"
        );
        let out = scrub(&text);
        assert_clean(&out);
        assert!(
            out.starts_with("Incorrect IAM authentication information: verify aksk signature fail"),
            "{out}"
        );
        assert!(!out.contains("x-security-token:"), "{out}");
    }

    #[test]
    fn unnamed_canonical_request_with_newlines_is_removed() {
        for sep in ["\n", "\\n", "|"] {
            let text = format!(
                "signature mismatch: POST{sep}/v1/private-certificates/csr/{sep}{sep}host:h{sep}x-security-token:{TOKEN}{sep}{sep}host;x-security-token{sep}{SIGNATURE}"
            );
            let out = scrub(&text);
            assert_clean(&out);
            assert!(out.contains("[canonical request removed]"), "{out}");
        }
    }

    #[test]
    fn credential_headers_and_fields_are_removed() {
        for text in [
            format!("X-Security-Token: {TOKEN}"),
            format!(r#"{{"securitytoken": "{TOKEN}", "access": "{AK}"}}"#),
            format!("Authorization: SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date, Signature={SIGNATURE}"),
            format!("secret_key={SK}&ak={AK}"),
            format!("the access key {AK} is locked; sk {SK}"),
        ] {
            assert_clean(&scrub(&text));
        }
    }

    #[test]
    fn private_keys_are_removed_even_when_cut_off() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
        let out = scrub(&format!("bad key {pem} trailing"));
        assert_eq!(out, "bad key [private key removed] trailing");
        let out = scrub("x -----BEGIN EC PRIVATE KEY----- MIIEvQIBADANBgkq");
        assert_eq!(out, "x [private key removed]");
    }

    #[test]
    fn ordinary_messages_ids_and_codes_survive() {
        let text = "CA 4bd1b320-e162-419f-8add-dfcc046197c7 does not exist (PCA.10010002), request 0a1b2c3d4e5f60718293a4b5c6d7e8f9 at /v1/private-certificate-authorities/4bd1b320-e162-419f-8add-dfcc046197c7";
        assert_eq!(scrub(text), text);
        assert_eq!(
            scrub("The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 minute"),
            "The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 minute"
        );
    }

    #[test]
    fn output_is_bounded_and_free_of_control_characters() {
        let out = scrub(&format!("a\nb\u{7}{}", "x ".repeat(100_000)));
        assert!(out.chars().count() <= MAX_TEXT + 1, "{}", out.len());
        assert!(out.starts_with("a b "), "{out}");
        assert!(out.ends_with('…'));
        assert!(!out.chars().any(char::is_control));
        assert_eq!(scrub_to("abcdef", 3), "abc…");
    }

    #[test]
    fn huge_ids_are_cut_and_measured() {
        let id = "a".repeat(1_000_000);
        let shown = id_for_message(&id);
        assert!(shown.len() < 80 && shown.contains("1000000 characters"), "{shown}");
        assert_eq!(
            id_for_message("4bd1b320-e162-419f-8add-dfcc046197c7"),
            "\"4bd1b320-e162-419f-8add-dfcc046197c7\""
        );
        assert!(!id_for_message(SK).contains(SK));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// A security-token-like secret: long, mixed case, base64 alphabet.
        fn secret() -> impl Strategy<Value = String> {
            "[A-Z][a-z][0-9][A-Za-z0-9+/]{37,80}"
        }

        /// How a secret is embedded in gateway text.
        fn framing() -> impl Strategy<Value = (String, String)> {
            prop::sample::select(vec![
                ("x-security-token:", "\n"),
                ("X-Security-Token: ", ""),
                ("\"securitytoken\": \"", "\""),
                ("Signature=", ", "),
                (" ", " "),
                ("|x-security-token:", "||"),
                ("-----BEGIN PRIVATE KEY-----\n", "\n-----END PRIVATE KEY-----"),
            ])
            .prop_map(|(a, b)| (a.to_owned(), b.to_owned()))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, max_shrink_time: 10_000, ..ProptestConfig::default() })]

            #[test]
            fn embedded_secrets_never_survive(
                before in "[ -~\n]{0,200}",
                after in "[ -~\n]{0,200}",
                secret in secret(),
                (open, close) in framing(),
            ) {
                let text = format!("{before}{open}{secret}{close}{after}");
                let out = scrub(&text);
                prop_assert!(!out.contains(&secret), "{} survived in {}", secret, out);
            }

            #[test]
            fn output_is_bounded_and_clean(text in "\\PC{0,3000}", max in 1usize..600) {
                let out = scrub_to(&text, max);
                prop_assert!(out.chars().count() <= max + 1);
                prop_assert!(!out.chars().any(char::is_control));
            }

            #[test]
            fn plain_words_are_kept(words in prop::collection::vec("[a-z]{1,12}", 1..30)) {
                let text = words.join(" ");
                prop_assert_eq!(scrub(&text), text);
            }
        }
    }
}
