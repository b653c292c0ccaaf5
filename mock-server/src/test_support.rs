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

    /// Status, raw body and headers (for answers that are not JSON).
    pub async fn send_raw(&self, req: Request<Body>) -> (StatusCode, Vec<u8>, HeaderMap) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, bytes.to_vec(), headers)
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

// ---------------------------------------------------------------------------------------
// Helpers shared by the route tests.

pub use crate::ca::test_support::{csr, csr_with, ec_key};

/// A `validity` of `n` days.
pub fn day(n: i64) -> Value {
    serde_json::json!({"type": "DAY", "value": n})
}

/// An OpenSSL-made CSR from `testdata/`.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/testdata/{name}.csr", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The answer is an error of the API's shape with this status and code.
pub fn assert_err(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.json);
    assert_eq!(r.json["error_code"], code, "{}", r.json);
    assert!(r.json["error_msg"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(r.headers.get("x-request-id").is_some());
}

/// DER of every block of a PEM bundle.
pub fn pem_ders(pem: &str) -> Vec<Vec<u8>> {
    pem::parse_many(pem)
        .unwrap()
        .into_iter()
        .map(|p| p.into_contents())
        .collect()
}

/// Issue a 30-day leaf for `cn` (also its DNS SAN) from the seeded CA; its id.
pub async fn issue_ok(h: &Harness, cn: &str) -> String {
    let r = h.issue(&csr(cn, &[cn]), day(30)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json["certificate_id"].as_str().unwrap().to_owned()
}

/// A CreateCertificateAuthority body (EC256, a valid DN) with `extra` fields merged in.
pub fn ca_body(ty: &str, extra: Value) -> Value {
    let mut b = serde_json::json!({
        "type": ty,
        "key_algorithm": "EC256",
        "distinguished_name": {"common_name": format!("{ty} test"), "country": "CN", "state": "GD", "locality": "SZ", "organization": "org", "organizational_unit": "ou"},
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

/// An unauthenticated request to a `/_mock/` path.
pub fn control(method: &str, path: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

impl Harness {
    /// Replace the fault plan (valid plans only).
    pub fn set_faults(&self, plan: crate::faults::FaultPlan) {
        self.mock.faults.set(plan).unwrap();
    }

    /// Answer `operation` with injected 429s only.
    pub fn fail_with_429(&self, operation: &str) {
        self.set_faults(crate::faults::FaultPlan {
            rate_429: 1.0,
            operations: Some(vec![operation.to_owned()]),
            ..Default::default()
        });
    }

    /// Export a certificate in JSON mode (`{"is_compressed": "false", "type": "OTHER"}`).
    pub async fn export_cert(&self, id: &str) -> Resp {
        self.call(
            "POST",
            &format!("/v1/private-certificates/{id}/export"),
            &[],
            Some(serde_json::json!({"is_compressed": "false", "type": "OTHER"})),
        )
        .await
    }

    /// Export a CA's certificate and chain.
    pub async fn export_ca(&self, id: &str) -> Resp {
        self.call(
            "POST",
            &format!("/v1/private-certificate-authorities/{id}/export"),
            &[],
            None,
        )
        .await
    }

    /// ShowCertificate's document.
    pub async fn show_cert(&self, id: &str) -> Value {
        self.call("GET", &format!("/v1/private-certificates/{id}"), &[], None)
            .await
            .json
    }

    /// ShowCertificateAuthority's document.
    pub async fn show_ca(&self, id: &str) -> Value {
        self.call("GET", &format!("/v1/private-certificate-authorities/{id}"), &[], None)
            .await
            .json
    }

    /// CreateCertificateAuthority with this body.
    pub async fn create_ca(&self, body: Value) -> Resp {
        self.call("POST", "/v1/private-certificate-authorities", &[], Some(body))
            .await
    }

    /// CreateCertificateByCsr with this body.
    pub async fn issue_body(&self, body: Value) -> Resp {
        self.call("POST", "/v1/private-certificates/csr", &[], Some(body)).await
    }

    /// Serve this harness's router on 127.0.0.1:0; stopped by the returned sender.
    pub async fn listen(
        &self,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::serve(listener, self.router.clone(), None, async {
            let _ = rx.await;
        }));
        (addr, tx, server)
    }
}
