//! Test-only helpers: a deliberately small client-side signer (kept apart from the
//! verifier in `auth`, and checked against the official vectors in `auth::tests`), signed
//! request builders, and a tiny HTTP/1.1 client over raw TCP.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use crate::auth::Credential;
use crate::ca::KeyAlgorithm;
use crate::state::Store;
use crate::{Mock, MockConfig};

pub const AK: &str = "TESTAK0000000000000001";
pub const SK: &str = "test-secret-key-000000000000000000000001";
pub const DOMAIN: &str = "0123456789abcdef0123456789abcdef";
pub const CA_ID: &str = "6434f74f-2d13-4e6a-89eb-93ee313f1a43";

/// HMAC-SHA256 signature over pre-canonicalised pieces (the client-side algorithm).
pub fn sign(
    sk: &str,
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    sorted_headers: &[(&str, &str)],
    body: &[u8],
    date: &str,
) -> String {
    let mut ch = String::new();
    for (k, v) in sorted_headers {
        ch += &format!("{k}:{v}\n");
    }
    let names: Vec<&str> = sorted_headers.iter().map(|(k, _)| *k).collect();
    let cr = format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{ch}\n{}\n{}",
        names.join(";"),
        hex::encode(Sha256::digest(body))
    );
    let sts = format!(
        "SDK-HMAC-SHA256\n{date}\n{}",
        hex::encode(Sha256::digest(cr.as_bytes()))
    );
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(sk.as_bytes()).unwrap();
    mac.update(sts.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A signed request as the Python SDK would send it (all headers signed, query encoded
/// canonically on the wire). Returns (path+query, headers).
pub struct Signed {
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub method: String,
}

pub fn signed(
    ak: &str,
    sk: &str,
    domain: Option<&str>,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: &[u8],
) -> Signed {
    let mut q: Vec<(String, String)> = query.iter().map(|(k, v)| (enc(k), enc(v))).collect();
    q.sort();
    let cq: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let cq = cq.join("&");
    let date = crate::timeutil::format_sdk_date(SystemTime::now());
    let host = "mock.test";
    let mut hs: Vec<(&str, &str)> = vec![
        ("content-type", "application/json"),
        ("host", host),
        ("x-sdk-date", &date),
    ];
    if let Some(d) = domain {
        hs.push(("x-domain-id", d));
    }
    hs.sort();
    let cu = if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    let sig = sign(sk, method, &cu, &cq, &hs, body, &date);
    let names: Vec<&str> = hs.iter().map(|(k, _)| *k).collect();
    let mut headers: Vec<(String, String)> = hs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    headers.push((
        "authorization".into(),
        format!(
            "SDK-HMAC-SHA256 Access={ak}, SignedHeaders={}, Signature={sig}",
            names.join(";")
        ),
    ));
    let uri = if cq.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{cq}")
    };
    Signed {
        uri,
        headers,
        body: body.to_vec(),
        method: method.to_owned(),
    }
}

impl Signed {
    pub fn into_request(self) -> Request<Body> {
        let mut b = Request::builder().method(self.method.as_str()).uri(&self.uri);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        b.body(Body::from(self.body)).unwrap()
    }

    /// Serialise as an HTTP/1.1 request with `Connection: close`.
    pub fn to_http1(&self) -> Vec<u8> {
        let mut s = format!("{} {} HTTP/1.1\r\n", self.method, self.uri);
        for (k, v) in &self.headers {
            s += &format!("{k}: {v}\r\n");
        }
        s += &format!("content-length: {}\r\nconnection: close\r\n\r\n", self.body.len());
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// A mock with one credential and the seeded CA pair (EC256, sub path_length 1).
pub fn mock_with(config: MockConfig, store: Store) -> Arc<Mock> {
    let m = Mock::new(config, store);
    m.seed_ca(CA_ID, KeyAlgorithm::Ec256, 1).unwrap();
    m
}

pub fn default_config() -> MockConfig {
    MockConfig {
        credentials: vec![Credential::parse_permanent(&format!("{AK}:{SK}:{DOMAIN}")).unwrap()],
        ..Default::default()
    }
}

pub struct Harness {
    pub mock: Arc<Mock>,
    pub router: Router,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub dropped: bool,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(default_config(), Store::in_memory())
    }

    pub fn with(config: MockConfig, store: Store) -> Self {
        let mock = mock_with(config, store);
        let router = crate::app(mock.clone());
        Self { mock, router }
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let dropped = resp.extensions().get::<crate::routes::DropConnection>().is_some();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Resp {
            status,
            headers,
            json,
            dropped,
        }
    }

    pub async fn call(&self, method: &str, path: &str, query: &[(&str, &str)], body: Option<Value>) -> Resp {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        self.send(signed(AK, SK, Some(DOMAIN), method, path, query, &body).into_request())
            .await
    }

    pub async fn call_raw(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        self.send(signed(AK, SK, Some(DOMAIN), method, path, &[], body).into_request())
            .await
    }

    /// Issue an ENTITY_CERT for `csr` with the given validity; returns the response.
    pub async fn issue(&self, csr: &str, validity: Value) -> Resp {
        self.call(
            "POST",
            "/v1/private-certificates/csr",
            &[],
            Some(serde_json::json!({"issuer_id": CA_ID, "csr": csr, "validity": validity, "type": "ENTITY_CERT"})),
        )
        .await
    }
}

/// Minimal HTTP/1.1 exchange over TCP: write the request, read to EOF.
/// Returns `None` if the server closed the connection without sending anything.
pub async fn http1_exchange(addr: std::net::SocketAddr, req: &[u8]) -> Option<(u16, Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    parse_http1(&buf)
}

pub fn parse_http1(buf: &[u8]) -> Option<(u16, Value)> {
    if buf.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or(Value::String(body.into()))
    };
    Some((status, json))
}
