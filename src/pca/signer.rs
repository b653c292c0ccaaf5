//! Huawei Cloud API-gateway request signing, `SDK-HMAC-SHA256` (pca-api.md §4).
//!
//! This module is pure: it turns the parts of an HTTP request into the headers that authenticate
//! it. It holds the only copy of the algorithm on the client side; the mock server verifies with
//! its own, independent implementation, and both are pinned to the official test vectors.

use std::fmt::{self, Write as _};

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Algorithm label used in `Authorization` and in the string to sign.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// `X-Sdk-Date` layout (Go `20060102T150405Z`).
pub const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// SHA-256 of the empty body.
pub const EMPTY_BODY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Everything except RFC 3986 unreserved characters (`A-Z a-z 0-9 - _ . ~`) is escaped,
/// as the SDKs' `escape` does (space → `%20`, `*` → `%2A`, `/` → `%2F`).
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// An access key / secret key pair, optionally temporary (with a security token).
///
/// The SK and the token never leave this type except into the HMAC; `Debug` redacts them.
#[derive(Clone)]
pub struct Credentials {
    access_key: String,
    keyed_mac: Hmac<Sha256>,
    security_token: Option<SecretString>,
}

impl Credentials {
    /// Long-term AK/SK.
    pub fn new(access_key: impl Into<String>, secret_key: &SecretString) -> Self {
        Self::with_token(access_key, secret_key, None)
    }

    /// AK/SK with an optional `X-Security-Token` (temporary credentials, pca-api.md §4.7).
    pub fn with_token(
        access_key: impl Into<String>,
        secret_key: &SecretString,
        security_token: Option<SecretString>,
    ) -> Self {
        // HMAC accepts keys of any length, so this cannot fail; the fallback keeps us panic-free.
        let keyed_mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret_key.expose_secret().as_bytes())
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
        Self {
            access_key: access_key.into(),
            keyed_mac,
            security_token,
        }
    }

    /// The access key id (not secret; safe to log).
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The security token of temporary credentials.
    pub fn security_token(&self) -> Option<&SecretString> {
        self.security_token.as_ref()
    }

    fn hmac_hex(&self, message: &[u8]) -> String {
        let mut mac = self.keyed_mac.clone();
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"[redacted]")
            .field("security_token", &self.security_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The parts of a request that take part in the signature.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Decoded request path, without query (e.g. `/v1/private-certificates/csr`).
    pub path: &'a str,
    /// Decoded query parameters; order does not matter.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers to sign, as `(name, value)`; name case does not matter.
    pub headers: &'a [(&'a str, &'a str)],
    /// Lower-case hex SHA-256 of the exact body bytes (see [`payload_hash`]).
    pub payload_hash: &'a str,
}

/// Lower-case hex SHA-256 of the body bytes that will be sent.
pub fn payload_hash(body: &[u8]) -> String {
    if body.is_empty() {
        return EMPTY_BODY_SHA256.to_owned();
    }
    hex::encode(Sha256::digest(body))
}

/// The canonical URI: each segment escaped, always ending in `/`.
pub fn canonical_uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.extend(utf8_percent_encode(segment, ESCAPE));
    }
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The canonical query string: names and values escaped, sorted by name then value.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = query.to_vec();
    pairs.sort_unstable();
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.extend(utf8_percent_encode(name, ESCAPE));
        out.push('=');
        out.extend(utf8_percent_encode(value, ESCAPE));
    }
    out
}

/// Lower-cased, sorted, de-duplicated header names joined with `;`, and the canonical header
/// block (`name:trimmed value\n` per header).
fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut lowered: Vec<(String, &str)> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim()))
        .collect();
    lowered.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    lowered.dedup_by(|a, b| a.0 == b.0);
    let mut block = String::with_capacity(128);
    let mut names = String::with_capacity(64);
    for (i, (name, value)) in lowered.iter().enumerate() {
        if i > 0 {
            names.push(';');
        }
        names.push_str(name);
        block.push_str(name);
        block.push(':');
        block.push_str(value);
        block.push('\n');
    }
    (names, block)
}

/// The canonical request (pca-api.md §4.1 step 7) and the signed-header list.
pub fn canonical_request(parts: &RequestParts<'_>) -> (String, String) {
    let (signed_headers, header_block) = canonical_headers(parts.headers);
    let uri = canonical_uri(parts.path);
    let query = canonical_query(parts.query);
    let mut out = String::with_capacity(
        parts.method.len() + uri.len() + query.len() + header_block.len() + signed_headers.len() + 72,
    );
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{}\n{}\n{}\n{}\n{}\n{}",
        parts.method, uri, query, header_block, signed_headers, parts.payload_hash
    );
    (out, signed_headers)
}

/// The string to sign for a canonical request and an `X-Sdk-Date` value.
pub fn string_to_sign(canonical_request: &str, sdk_date: &str) -> String {
    let hash = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{sdk_date}\n{hash}")
}

/// Signs the request parts. `parts.headers` must already contain `X-Sdk-Date` with `sdk_date`
/// (it has to be signed) and every other header that should be signed.
///
/// Returns the value of the `Authorization` header.
pub fn authorization(credentials: &Credentials, parts: &RequestParts<'_>, sdk_date: &str) -> String {
    let (canonical, signed_headers) = canonical_request(parts);
    let signature = credentials.hmac_hex(string_to_sign(&canonical, sdk_date).as_bytes());
    format!(
        "{ALGORITHM} Access={}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key
    )
}

/// Formats a timestamp as `X-Sdk-Date`.
pub fn sdk_date(at: jiff::Timestamp) -> String {
    at.strftime(DATE_FORMAT).to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn creds(ak: &str, sk: &str) -> Credentials {
        Credentials::new(ak, &SecretString::from(sk.to_owned()))
    }

    fn signature_of(auth: &str) -> &str {
        auth.rsplit("Signature=").next().unwrap_or_default()
    }

    // pca-api.md §4.3, official Go SDK vectors.
    #[test]
    fn official_vector_get() {
        let c = creds("AccessKey", "SecretKey");
        let parts = RequestParts {
            method: "GET",
            path: "/path",
            query: &[("limit", "1")],
            headers: &[("X-Sdk-Date", "20060102T150405Z")],
            payload_hash: &payload_hash(b""),
        };
        let (canonical, _) = canonical_request(&parts);
        assert_eq!(
            canonical,
            format!("GET\n/path/\nlimit=1\nx-sdk-date:20060102T150405Z\n\nx-sdk-date\n{EMPTY_BODY_SHA256}")
        );
        let sts = string_to_sign(&canonical, "20060102T150405Z");
        assert!(sts.ends_with("85c3b7730f308aee452b16138a42a914397e43a8f0d732dfa521c0ef2afa98a4"));
        assert_eq!(
            authorization(&c, &parts, "20060102T150405Z"),
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, \
             Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
        );
    }

    #[test]
    fn official_vector_post_and_negative() {
        let c = creds("AccessKey", "SecretKey");
        let body = b"{\"Name\":\"test\",\"Id\":1}\n";
        let hash = payload_hash(body);
        assert_eq!(hash, "a29d7b4c5efd1a22011d69fd7b7aee76fe51e4083c609244228de258afd61289");
        let mut parts = RequestParts {
            method: "POST",
            path: "/path",
            query: &[("key", "value")],
            headers: &[("X-Sdk-Date", "20060102T150405Z")],
            payload_hash: &hash,
        };
        assert_eq!(
            signature_of(&authorization(&c, &parts, "20060102T150405Z")),
            "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59"
        );
        // The same body without its trailing LF must give the documented other signature.
        let hash = payload_hash(&body[..body.len() - 1]);
        parts.payload_hash = &hash;
        let sig = authorization(&c, &parts, "20060102T150405Z");
        assert!(signature_of(&sig).starts_with("83599e52"), "{sig}");
        assert!(signature_of(&sig).ends_with("7a35"), "{sig}");
    }

    #[test]
    fn official_vector_query_canonicalisation() {
        let q = [
            ("limit", "1"),
            ("enable", "true"),
            ("test", "一 (&=?!#%.*)"),
            ("path", "/tmp/123"),
            ("multi", "3"),
            ("multi", "1"),
            ("multi", "2"),
        ];
        assert_eq!(
            canonical_query(&q),
            "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
        );
    }

    const AK: &str = "AKIDEXAMPLE0000000000";
    const SK: &str = "SKEXAMPLE0000000000000000000000000000000";
    const DATE: &str = "20250101T000000Z";
    const DOMAIN: &str = "0123456789abcdef0123456789abcdef";
    const HOST: &str = "ccm.ap-southeast-3.myhuaweicloud.com";

    // pca-api.md §4.4, CCM-shaped vectors.
    #[test]
    fn ccm_vector_a_show_ca() {
        let parts = RequestParts {
            method: "GET",
            path: "/v1/private-certificate-authorities/6434f74f-2d13-4e6a-89eb-93ee313f1a43",
            query: &[],
            headers: &[("Host", HOST), ("X-Domain-Id", DOMAIN), ("X-Sdk-Date", DATE)],
            payload_hash: EMPTY_BODY_SHA256,
        };
        let (canonical, signed) = canonical_request(&parts);
        assert_eq!(signed, "host;x-domain-id;x-sdk-date");
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            "ecb0d828d0cb3f336731a91d4d35af4d578a731c62c776ca4faa04dda2356a85"
        );
        assert_eq!(
            signature_of(&authorization(&creds(AK, SK), &parts, DATE)),
            "9e8b8de6659f2173c5fe06620c055480338c88b8eebc023abd137b5b9b5a9762"
        );
    }

    #[test]
    fn ccm_vector_b_issue_from_csr() {
        let body = concat!(
            r#"{"issuer_id":"6434f74f-2d13-4e6a-89eb-93ee313f1a43","csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n","#,
            r#""validity":{"type":"DAY","value":30},"type":"ENTITY_CERT"}"#
        );
        assert_eq!(body.len(), 197);
        let hash = payload_hash(body.as_bytes());
        assert_eq!(hash, "59558548be3224aaa498d7d11134ef7c4cf5528bdb6c7369c78719a4bc8c97ac");
        let parts = RequestParts {
            method: "POST",
            path: "/v1/private-certificates/csr",
            query: &[],
            headers: &[
                ("Content-Type", "application/json"),
                ("Host", HOST),
                ("X-Domain-Id", DOMAIN),
                ("X-Sdk-Date", DATE),
            ],
            payload_hash: &hash,
        };
        let auth = authorization(&creds(AK, SK), &parts, DATE);
        assert_eq!(
            auth,
            format!(
                "SDK-HMAC-SHA256 Access={AK}, SignedHeaders=content-type;host;x-domain-id;x-sdk-date, \
                 Signature=b48b4af3729d8f5c0f79e2adabd2056952e75d3df2c64b732bf191a3c6c2331f"
            )
        );
    }

    #[test]
    fn ccm_vector_c_list_with_query() {
        let query = [("limit", "10"), ("status", "ACTIVED"), ("name", "my ca*")];
        assert_eq!(canonical_query(&query), "limit=10&name=my%20ca%2A&status=ACTIVED");
        let parts = RequestParts {
            method: "GET",
            path: "/v1/private-certificate-authorities",
            query: &query,
            headers: &[("X-Domain-Id", DOMAIN), ("X-Sdk-Date", DATE)],
            payload_hash: EMPTY_BODY_SHA256,
        };
        assert_eq!(
            signature_of(&authorization(&creds(AK, SK), &parts, DATE)),
            "1ab1df250c9fbf2c34fd9e41a7cf75a77777f6cdeb8a9f7fe11f4c93dedac241"
        );
    }

    #[test]
    fn canonical_uri_escapes_segments_and_appends_slash() {
        assert_eq!(
            canonical_uri("/v1/private-certificates/csr"),
            "/v1/private-certificates/csr/"
        );
        assert_eq!(canonical_uri("/a b/c*d/"), "/a%20b/c%2Ad/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
    }

    #[test]
    fn debug_never_shows_secret() {
        let c = Credentials::with_token(
            "AK1",
            &SecretString::from("very-secret-sk".to_owned()),
            Some(SecretString::from("tok-secret".to_owned())),
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("very-secret-sk") && !dbg.contains("tok-secret"), "{dbg}");
        assert!(dbg.contains("AK1"));
    }

    #[test]
    fn sdk_date_format() {
        let ts: jiff::Timestamp = "2006-01-02T15:04:05Z".parse().unwrap();
        assert_eq!(sdk_date(ts), "20060102T150405Z");
    }

    fn sign_with(
        sk: &str,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> String {
        let hash = payload_hash(body);
        let parts = RequestParts {
            method,
            path,
            query,
            headers,
            payload_hash: &hash,
        };
        authorization(&creds("AK", sk), &parts, DATE)
    }

    proptest! {
        #[test]
        fn any_signed_part_changes_the_signature(
            path in "/[a-z0-9/-]{0,24}",
            qv in "[ -~]{0,12}",
            hv in "[!-~]{1,12}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
            which in 0usize..6,
        ) {
            let headers = [("X-Sdk-Date", DATE), ("X-Domain-Id", hv.as_str())];
            let base = sign_with(SK, "POST", &path, &[("q", qv.as_str())], &headers, &body);
            let changed = match which {
                0 => sign_with(SK, "PUT", &path, &[("q", qv.as_str())], &headers, &body),
                1 => sign_with(SK, "POST", &format!("{path}x"), &[("q", qv.as_str())], &headers, &body),
                2 => sign_with(SK, "POST", &path, &[("q", &format!("{qv}x"))], &headers, &body),
                3 => {
                    let h2 = format!("{hv}x");
                    sign_with(SK, "POST", &path, &[("q", qv.as_str())], &[("X-Sdk-Date", DATE), ("X-Domain-Id", h2.as_str())], &body)
                }
                4 => {
                    let mut b = body.clone();
                    b.push(b'x');
                    sign_with(SK, "POST", &path, &[("q", qv.as_str())], &headers, &b)
                }
                _ => sign_with(&format!("{SK}x"), "POST", &path, &[("q", qv.as_str())], &headers, &body),
            };
            prop_assert_ne!(signature_of(&base), signature_of(&changed));
        }

        #[test]
        fn header_case_and_query_order_do_not_matter(
            qs in proptest::collection::vec(("[a-z]{1,6}", "[ -~]{0,8}"), 0..6),
            seed in any::<u64>(),
        ) {
            let forward: Vec<(&str, &str)> = qs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut shuffled = forward.clone();
            // Deterministic permutation from the seed.
            let n = shuffled.len();
            if n > 1 {
                for i in 0..n {
                    let j = (seed as usize).wrapping_add(i * 7) % n;
                    shuffled.swap(i, j);
                }
            }
            let a = sign_with(SK, "GET", "/v1/x", &forward, &[("X-Sdk-Date", DATE), ("Host", HOST)], b"");
            let b = sign_with(SK, "GET", "/v1/x", &shuffled, &[("x-sdk-date", DATE), ("HOST", HOST)], b"");
            prop_assert_eq!(a, b);
        }
    }

    /// Percent-decodes canonical text (only `%XX` escapes occur in it).
    fn unescape(s: &str) -> String {
        percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
    }

    fn is_canonical_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '%')
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, max_shrink_time: 10_000, ..ProptestConfig::default() })]

        #[test]
        fn canonical_query_is_escaped_sorted_and_lossless(
            pairs in proptest::collection::vec(("\\PC{0,8}", "\\PC{0,8}"), 0..8),
        ) {
            let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let q = canonical_query(&refs);
            let mut reversed = refs.clone();
            reversed.reverse();
            prop_assert_eq!(&q, &canonical_query(&reversed), "order of the input does not matter");
            if refs.is_empty() {
                prop_assert_eq!(q.as_str(), "");
                return Ok(());
            }
            let parts: Vec<(String, String)> = q
                .split('&')
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            prop_assert_eq!(parts.len(), refs.len());
            for (k, v) in &parts {
                prop_assert!(k.chars().chain(v.chars()).all(is_canonical_char), "{}={}", k, v);
            }
            let decoded: Vec<(String, String)> = parts.iter().map(|(k, v)| (unescape(k), unescape(v))).collect();
            let mut expected: Vec<(String, String)> = pairs.clone();
            expected.sort();
            prop_assert_eq!(&decoded, &expected, "sorted by name then value, and decodes back");
        }

        #[test]
        fn canonical_uri_escapes_each_segment_and_ends_in_a_slash(
            segments in proptest::collection::vec("\\PC{0,10}", 1..6),
        ) {
            let path = format!("/{}", segments.iter().map(|s| s.replace('/', "")).collect::<Vec<_>>().join("/"));
            let uri = canonical_uri(&path);
            prop_assert!(uri.ends_with('/') && uri.starts_with('/'));
            prop_assert!(uri.chars().all(|c| c == '/' || is_canonical_char(c)), "{}", uri);
            let back = unescape(&uri);
            prop_assert_eq!(back.trim_end_matches('/'), path.trim_end_matches('/'));
        }

        #[test]
        fn canonical_headers_are_lowercase_sorted_and_trimmed(
            headers in proptest::collection::btree_map("[a-z][a-z0-9-]{0,12}", "[ -~]{0,16}", 1..8),
            upper in proptest::collection::vec(any::<bool>(), 8),
        ) {
            // Distinct names, some sent in upper case.
            let given: Vec<(String, String)> = headers
                .iter()
                .zip(upper.iter().cycle())
                .map(|((k, v), up)| (if *up { k.to_ascii_uppercase() } else { k.clone() }, v.clone()))
                .collect();
            let refs: Vec<(&str, &str)> = given.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (names, block) = canonical_headers(&refs);
            let listed: Vec<&str> = names.split(';').collect();
            let expected: Vec<&str> = headers.keys().map(String::as_str).collect();
            prop_assert_eq!(&listed, &expected, "lower case, sorted");
            let lines: Vec<&str> = block.strip_suffix('\n').unwrap_or(&block).split('\n').collect();
            prop_assert_eq!(lines.len(), listed.len());
            for (line, (name, value)) in lines.iter().zip(&headers) {
                prop_assert_eq!(*line, format!("{name}:{}", value.trim()));
            }
        }
    }
}
