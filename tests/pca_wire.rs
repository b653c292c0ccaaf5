//! The PCA client against scripted answers the mock does not give: every error-body shape the
//! official SDKs read, 403 classified by code, answers with `null` in every optional field or a
//! decision field missing, hostile texts that must be scrubbed, and account-id discovery through
//! IAM on its own listener and the STS fallback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use ccm_issuer::pca::{
    ClientConfig, Credentials, ErrorClass, Operation, PcaClient, PcaError, RetryPolicy,
    endpoint::{parse_endpoint, resolve_iam},
    error::reason,
    ratelimit::TokenBucket,
    types::{CertificateType, IssueFromCsr, ListCertificates, Validity, ValidityUnit},
};
use ccm_mock_pca::{
    ca::KeyAlgorithm,
    embedded::{Embedded, EmbeddedOptions},
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const AK: &str = "WIRETESTAK0000000001";
const SK: &str = "wire-test-secret-key-0000000000000000001";
const DOMAIN: &str = "00112233445566778899aabbccddeeff";
const CA: &str = "6434f74f-2d13-4e6a-89eb-93ee313f1a43";
const CERT: &str = "4bd1b320-e162-419f-8add-dfcc046197c7";
const TOKEN: &str = "gQpjbi1ub3J0aC00jHt9b4Bc9xQ2EVSGcW+7q/fZSEUuNdfKH8Yw1b0dsyO0Hg==";

/// One request as the scripted server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP server on 127.0.0.1 answering by path prefix with fixed status and body.
struct Scripted {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    async fn start(routes: Vec<(&'static str, u16, String)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let routes = Arc::new(routes);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (log, routes) = (log.clone(), routes.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut tcp).await else {
                        return;
                    };
                    let (status, body) = routes
                        .iter()
                        .find(|(prefix, _, _)| request.path.starts_with(prefix))
                        .map(|(_, s, b)| (*s, b.clone()))
                        .unwrap_or((404, r#"{"error_code":"TEST.404","error_msg":"no route"}"#.into()));
                    log.lock().unwrap().push(request);
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nx-request-id: scripted-1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tcp.write_all(reply.as_bytes()).await;
                });
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn read_request(tcp: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let target = lines.next()?.split_whitespace().nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + 4 + length {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let path = target.split('?').next().unwrap_or_default().to_owned();
    Some(Seen { path, headers })
}

fn client(config: ClientConfig) -> PcaClient {
    ccm_issuer::install_crypto_provider();
    let creds = Credentials::new(AK, &SecretString::from(SK.to_owned()));
    PcaClient::new(config, creds, Arc::new(TokenBucket::new(0.0, 1)), None).unwrap()
}

/// A client for `url` with a known account id and `retries` retries.
fn scripted_client(url: &str, retries: usize) -> PcaClient {
    let url = parse_endpoint(url).unwrap();
    let mut c = ClientConfig::new(url.clone(), url);
    c.domain_id = Some(DOMAIN.into());
    c.retry = RetryPolicy {
        max_retries: retries,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
    };
    client(c)
}

fn issue_body() -> IssueFromCsr {
    IssueFromCsr {
        issuer_id: CA.into(),
        csr: "PEM".into(),
        validity: Validity {
            unit: ValidityUnit::Day,
            value: 1,
            start_from: None,
        },
        cert_type: CertificateType::EntityCert,
        path_length: None,
        enterprise_project_id: None,
    }
}

#[tokio::test]
async fn every_error_shape_is_read_and_403_is_classified_by_code() {
    let cases: Vec<(u16, String, &str, ErrorClass, &str)> = vec![
        (400, json!({"error_code": "PCA.10010002", "error_msg": "not found"}).to_string(), "PCA.10010002", ErrorClass::Permanent, reason::NOT_FOUND),
        (400, json!({"errorCode": "PCA.00020001", "errorMsg": "bad"}).to_string(), "PCA.00020001", ErrorClass::Permanent, reason::REJECTED),
        (400, json!({"code": "PCA.00020201", "message": "bad id"}).to_string(), "PCA.00020201", ErrorClass::Permanent, reason::REJECTED),
        (401, json!({"error": {"code": 401, "message": "requires authentication", "title": "Unauthorized"}}).to_string(), "401", ErrorClass::Credentials, reason::AUTHENTICATION_FAILED),
        (401, json!({"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication information", "request_id": "gw-1"}).to_string(), "APIGW.0301", ErrorClass::Credentials, reason::AUTHENTICATION_FAILED),
        (403, json!({"error_code": "PCA.10010071", "error_msg": "OCSP already enabled"}).to_string(), "PCA.10010071", ErrorClass::Permanent, reason::STATE_CONFLICT),
        (403, json!({"error_code": "APIGW.0302", "error_msg": "The IAM user is not authorized to access the API"}).to_string(), "APIGW.0302", ErrorClass::Credentials, reason::PERMISSION_DENIED),
        (403, json!({"error_code": "PCA.10010001", "error_msg": "Policy doesn't allow pca:ca:get", "encoded_authorization_message": "ZW5jb2RlZA=="}).to_string(), "PCA.10010001", ErrorClass::Credentials, reason::PERMISSION_DENIED),
        (403, json!({"outer": {"error": {"error_code": "IAM.0003", "error_msg": "forbidden"}}}).to_string(), "IAM.0003", ErrorClass::Credentials, reason::PERMISSION_DENIED),
        (400, json!({"error_code": "PCA.00020001", "error_msg": "Incorrect parameter", "details": [{"error_code": "PCA.00020110", "error_msg": "bad domain"}]}).to_string(), "PCA.00020001", ErrorClass::Permanent, reason::REJECTED),
        (502, "<html>bad gateway</html>".into(), "HTTP502", ErrorClass::Retryable, reason::SERVER_ERROR),
        (429, json!({"error_code": "APIGW.0308", "error_msg": "throttled"}).to_string(), "APIGW.0308", ErrorClass::Retryable, reason::THROTTLED),
    ];
    for (status, body, code, class, why) in cases {
        let server = Scripted::start(vec![("/v1/", status, body.clone())]).await;
        let err = scripted_client(&server.url, 0).show_ca(CA).await.expect_err(&body);
        assert_eq!(
            (err.code(), err.class(), err.reason()),
            (Some(code), class, why),
            "{status} {body}: {err}"
        );
        assert!(err.to_string().contains("scripted-1"), "names the request id: {err}");
    }
    let server = Scripted::start(vec![("/v1/", 400, json!({"error_code": "PCA.00020001", "error_msg": "Incorrect parameter", "details": [{"error_code": "PCA.00020110", "error_msg": "bad domain"}]}).to_string())]).await;
    let err = scripted_client(&server.url, 0).show_ca(CA).await.unwrap_err();
    assert!(
        err.to_string().contains("PCA.00020110: bad domain"),
        "details are shown: {err}"
    );
}

#[tokio::test]
async fn a_state_conflict_is_not_retried_and_does_not_look_like_credentials() {
    let body = json!({"error_code": "PCA.10010071", "error_msg": "conflict"}).to_string();
    let server = Scripted::start(vec![("/v1/", 403, body)]).await;
    let err = scripted_client(&server.url, 3)
        .issue_from_csr(&issue_body())
        .await
        .unwrap_err();
    assert!(
        !err.is_credentials() && !err.is_retryable() && !err.is_ambiguous(),
        "{err}"
    );
    assert_eq!(server.seen().len(), 1);
}

fn ca_answer() -> Value {
    json!({"ca_id": CA, "type": "SUBORDINATE", "status": "ACTIVED", "path_length": 0, "issuer_id": CA,
        "issuer_name": "root", "key_algorithm": "EC256", "signature_algorithm": "SHA256", "freeze_flag": 0,
        "gen_mode": "GENERATE", "serial_number": "01", "create_time": 1, "delete_time": 0, "not_before": 1,
        "not_after": 4_102_444_800_000_i64, "enterprise_project_id": "0",
        "distinguished_name": {"common_name": "sub", "country": "CN", "state": "s", "locality": "l",
            "organization": "o", "organizational_unit": "u"},
        "crl_configuration": {"enabled": false}, "free_quota": 0, "charging_mode": 1, "cluster_id": "c", "domain_id": DOMAIN})
}

fn list_answer() -> Value {
    json!({"total": 1, "certificates": [{"certificate_id": CERT, "status": "ISSUED", "issuer_id": CA,
        "create_time": 5, "issuer_name": "sub", "key_algorithm": "EC256", "signature_algorithm": "SHA256",
        "gen_mode": "CSR", "serial_number": "02", "not_before": 5, "not_after": 6, "freeze_flag": 0,
        "distinguished_name": {"common_name": "leaf"}, "enc_cert_info": null}]})
}

/// `value` with every field (at `pointer`) except `keep` set to `null`.
fn nulled(mut value: Value, pointer: &str, keep: &[&str]) -> Value {
    for (k, v) in value.pointer_mut(pointer).unwrap().as_object_mut().unwrap().iter_mut() {
        if !keep.contains(&k.as_str()) {
            *v = Value::Null;
        }
    }
    value
}

#[tokio::test]
async fn null_in_every_optional_field_is_read_as_absent() {
    let ca = nulled(ca_answer(), "", &["type", "status", "distinguished_name"]);
    let ca = nulled(ca, "/distinguished_name", &[]);
    let list = nulled(
        list_answer(),
        "/certificates/0",
        &["certificate_id", "status", "issuer_id", "create_time"],
    );
    let server = Scripted::start(vec![
        ("/v1/private-certificate-authorities/", 200, ca.to_string()),
        ("/v1/private-certificates", 200, list.to_string()),
    ])
    .await;
    let client = scripted_client(&server.url, 0);
    let shown = client.show_ca(CA).await.unwrap();
    assert!(shown.is_active());
    assert_eq!((shown.not_after, shown.gen_mode, shown.freeze_flag), (None, None, None));
    let listed = client.list_certificates(&ListCertificates::default()).await.unwrap();
    assert_eq!((listed.total, listed.certificates[0].create_time), (1, 5));
}

/// The answer of `op` with `field` (at `pointer`) removed, then set to `null`: each time a
/// retryable, ambiguous decode error that names the field.
async fn assert_incomplete(op: Operation, answer: Value, pointer: &str, field: &str) {
    for null in [false, true] {
        let mut body = answer.clone();
        let object = body.pointer_mut(pointer).unwrap().as_object_mut().unwrap();
        if null {
            object.insert(field.into(), Value::Null);
        } else {
            object.remove(field);
        }
        let server = Scripted::start(vec![("/v1/", 200, body.to_string())]).await;
        let client = scripted_client(&server.url, 1);
        let err = match op {
            Operation::ShowCertificateAuthority => client.show_ca(CA).await.map(|_| ()),
            Operation::ListCertificate => client.list_certificates(&ListCertificates::default()).await.map(|_| ()),
            Operation::ExportCertificate => client.export_certificate(CERT).await.map(|_| ()),
            Operation::CreateCertificateByCsr => client.issue_from_csr(&issue_body()).await.map(|_| ()),
            other => panic!("not scripted: {other}"),
        }
        .expect_err(&format!("{op} without {field} (null: {null}) accepted"));
        assert!(matches!(err, PcaError::Decode { .. }), "{err:?}");
        assert!(err.is_retryable() && err.is_ambiguous(), "{err}");
        assert!(err.to_string().contains(field), "{op}: names {field}: {err}");
        // Reads are repeated (the answer may be complete next time); the issue call never is.
        let expected = if op.is_idempotent() { 2 } else { 1 };
        assert_eq!(server.seen().len(), expected, "{op} {field}");
    }
}

#[tokio::test]
async fn a_missing_or_null_decision_field_is_an_incomplete_answer_naming_it() {
    for field in ["type", "status", "distinguished_name"] {
        assert_incomplete(Operation::ShowCertificateAuthority, ca_answer(), "", field).await;
    }
    for field in ["total", "certificates"] {
        assert_incomplete(Operation::ListCertificate, list_answer(), "", field).await;
    }
    for field in ["certificate_id", "status", "issuer_id", "create_time"] {
        assert_incomplete(Operation::ListCertificate, list_answer(), "/certificates/0", field).await;
    }
    for field in ["certificate", "certificate_chain"] {
        let export = json!({"certificate": "PEM", "certificate_chain": "PEM", "private_key": null});
        assert_incomplete(Operation::ExportCertificate, export, "", field).await;
    }
    assert_incomplete(
        Operation::CreateCertificateByCsr,
        json!({"certificate_id": CERT}),
        "",
        "certificate_id",
    )
    .await;
}

#[tokio::test]
async fn hostile_texts_and_ids_are_scrubbed_and_bounded() {
    let canonical = format!(
        "Incorrect IAM authentication information: verify aksk signature fail, canonicalRequest:GET|/v1/x||host:h|x-security-token:{TOKEN}||host;x-security-token|{}",
        "0f".repeat(32)
    );
    let huge_id = "a".repeat(1 << 20);
    let cases = [
        (
            401,
            json!({"error_code": "APIGW.0301", "error_msg": canonical}).to_string(),
        ),
        (401, canonical.clone()),
        (
            400,
            json!({"error_code": "PCA.00020001", "error_msg": "x".repeat(1 << 20)}).to_string(),
        ),
        (200, json!({"certificate_id": huge_id}).to_string()),
        (
            400,
            json!({"error_code": format!("PCA.{}", "9".repeat(10_000)), "error_msg": TOKEN}).to_string(),
        ),
    ];
    for (status, body) in cases {
        let server = Scripted::start(vec![("/v1/", status, body)]).await;
        let err = scripted_client(&server.url, 0)
            .issue_from_csr(&issue_body())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.chars().count() < 1200, "{} characters", text.len());
        assert!(
            !text.contains("jHt9b4Bc9xQ2EVSGcW") && !text.contains("x-security-token:"),
            "{text}"
        );
    }
}

async fn mock() -> Embedded {
    ccm_issuer::install_crypto_provider();
    Embedded::start(EmbeddedOptions {
        credentials: vec![format!("{AK}:{SK}:{DOMAIN}").parse().unwrap()],
        cas: vec![(CA.to_owned(), KeyAlgorithm::Ec256, 1)],
        tls: false,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn calls(m: &Embedded, op: &str) -> u64 {
    m.stats().operations.get(op).map(|o| o.total).unwrap_or(0)
}

/// A client for PCA at `pca` whose IAM is resolved as for an issuer with `spec.endpoint = pca`
/// and the controller's `--iam-endpoint iam` (never from the PCA endpoint).
fn discovering_client(pca: &str, iam: &str, sts: Option<&str>) -> PcaClient {
    let configured = parse_endpoint(iam).unwrap();
    let iam = resolve_iam(None, Some(&configured), "cn-north-4").unwrap();
    let mut c = ClientConfig::new(parse_endpoint(pca).unwrap(), iam);
    c.sts_endpoint = sts.map(|s| parse_endpoint(s).unwrap());
    c.retry.max_retries = 0;
    client(c)
}

#[tokio::test]
async fn iam_is_asked_on_its_own_listener_never_on_the_pca_endpoint() {
    // Two mocks sharing the credentials: one serves PCA, the other IAM.
    let pca = mock().await;
    let iam = mock().await;
    let client = discovering_client(&pca.url, &iam.url, None);
    assert_eq!(client.show_ca(CA).await.unwrap().ca_id.as_deref(), Some(CA));
    assert_eq!(client.domain_id().await.unwrap(), DOMAIN);
    assert_eq!(calls(&iam, "KeystoneListAuthDomains"), 1);
    assert_eq!(calls(&pca, "KeystoneListAuthDomains"), 0, "the PCA host has no IAM API");
    assert_eq!(calls(&pca, "ShowCertificateAuthority"), 1);
}

#[tokio::test]
async fn sts_tells_the_account_when_iam_lists_no_domain() {
    let pca = mock().await;
    let identity = Scripted::start(vec![
        ("/v3/auth/domains", 200, json!({"domains": [], "links": {}}).to_string()),
        (
            "/v5/caller-identity",
            200,
            json!({"account_id": DOMAIN, "principal_urn": "iam::x:user:u"}).to_string(),
        ),
    ])
    .await;
    let client = discovering_client(&pca.url, &identity.url, Some(&identity.url));
    // The mock refuses a wrong X-Domain-Id: success shows the STS answer was used.
    client.show_ca(CA).await.unwrap();
    let seen = identity.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/v3/auth/domains", "/v5/caller-identity"]);
    let sts = &seen[1];
    assert!(
        sts.header("authorization")
            .is_some_and(|a| a.starts_with("SDK-HMAC-SHA256 Access=")),
        "{sts:?}"
    );
    assert!(
        sts.header("x-sdk-date").is_some() && sts.header("x-domain-id").is_none(),
        "{sts:?}"
    );
}

#[tokio::test]
async fn without_sts_or_with_an_unhelpful_one_the_error_says_to_set_domain_id() {
    let none = json!({"domains": null}).to_string();
    let iam = Scripted::start(vec![("/v3/auth/domains", 200, none.clone())]).await;
    let err = discovering_client(&iam.url, &iam.url, None)
        .domain_id()
        .await
        .unwrap_err();
    assert!(matches!(err, PcaError::DomainUnknown(_)), "{err:?}");
    assert_eq!(
        (err.class(), err.reason()),
        (ErrorClass::Credentials, reason::DOMAIN_UNKNOWN)
    );
    assert!(err.to_string().contains("set domainId"), "{err}");
    for (status, body) in [(404, "{}".to_owned()), (200, json!({"account_id": null}).to_string())] {
        let both = Scripted::start(vec![
            ("/v3/auth/domains", 200, none.clone()),
            ("/v5/caller-identity", status, body),
        ])
        .await;
        let err = discovering_client(&both.url, &both.url, Some(&both.url))
            .domain_id()
            .await
            .unwrap_err();
        assert!(
            matches!(err, PcaError::DomainUnknown(_)) && err.to_string().contains("set domainId"),
            "{err}"
        );
    }
}
