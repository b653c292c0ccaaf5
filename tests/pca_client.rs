//! The PCA client against the mock PCA over HTTPS: every operation, TLS trust via a CA bundle,
//! domain-id discovery, error classes, which calls are retried, time-outs and rate limiting.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test and benchmark code

use std::{sync::Arc, time::Duration};

use ccm_issuer::pca::{
    CallOutcome, ClientConfig, Credentials, ErrorClass, Operation, PcaClient, PcaError, PcaObserver, RetryPolicy,
    endpoint::parse_endpoint,
    ratelimit::TokenBucket,
    types::{CaType, CertificateStatus, CertificateType, IssueFromCsr, ListCertificates, Validity, ValidityUnit},
};
use ccm_issuer::pki::{normalize_chain, parse_csr};
use ccm_mock_pca::{
    ca::KeyAlgorithm,
    embedded::{Embedded, EmbeddedOptions},
    faults::FaultPlan,
};
use rcgen::{CertificateParams, DnType, KeyPair};
use secrecy::SecretString;
use tokio::time::Instant;

const AK: &str = "CLIENTTESTAK00000001";
const SK: &str = "client-test-secret-key-00000000000000001";
const DOMAIN: &str = "fedcba9876543210fedcba9876543210";
const CA: &str = "6434f74f-2d13-4e6a-89eb-93ee313f1a43";

async fn mock(max_tps: Option<u64>) -> Embedded {
    ccm_issuer::install_crypto_provider();
    Embedded::start(EmbeddedOptions {
        credentials: vec![format!("{AK}:{SK}:{DOMAIN}").parse().expect("credential")],
        cas: vec![(CA.to_owned(), KeyAlgorithm::Ec256, 1)],
        tls: true,
        max_tps,
        ..Default::default()
    })
    .await
    .expect("mock")
}

fn config(m: &Embedded) -> ClientConfig {
    let url = parse_endpoint(&m.url).expect("url");
    let mut c = ClientConfig::new(url.clone(), url);
    c.ca_bundle_pem = m.tls_ca_pem.clone().map(String::into_bytes);
    c.request_timeout = Duration::from_secs(5);
    c.retry = RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(500),
    };
    c
}

fn client_with(c: ClientConfig, sk: &str) -> PcaClient {
    let creds = Credentials::new(AK, &SecretString::from(sk.to_owned()));
    PcaClient::new(c, creds, Arc::new(TokenBucket::new(0.0, 1)), None).expect("client")
}

fn csr_pem(cn: &str) -> String {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(vec![format!("{cn}.example")]).expect("params");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serialize_request(&key).expect("csr").pem().expect("pem")
}

fn issue_body(csr: String, cert_type: CertificateType) -> IssueFromCsr {
    IssueFromCsr {
        issuer_id: CA.into(),
        csr,
        validity: Validity {
            unit: ValidityUnit::Day,
            value: 30,
            start_from: None,
        },
        cert_type,
        path_length: (cert_type == CertificateType::IntermediateCa).then_some(0),
        enterprise_project_id: None,
    }
}

fn issue_calls(m: &Embedded) -> u64 {
    m.stats()
        .operations
        .get("CreateCertificateByCsr")
        .map(|o| o.total)
        .unwrap_or(0)
}

#[tokio::test]
async fn every_operation_round_trips_over_https() {
    let m = mock(None).await;
    let client = client_with(config(&m), SK);
    assert_eq!(client.domain_id().await.expect("domain discovered through IAM"), DOMAIN);

    let ca = client.show_ca(CA).await.expect("show CA");
    assert!(ca.is_active());
    assert_eq!(ca.ca_type, CaType::Subordinate);
    assert!(ca.not_after.unwrap_or(0) > jiff::Timestamp::now().as_millisecond());
    let ca_pem = client.export_ca(CA).await.expect("export CA");
    let ca_chain = normalize_chain([ca_pem.certificate.as_bytes(), ca_pem.certificate_chain.as_bytes()])
        .expect("CA chain verifies");
    assert!(ca_chain.has_root());
    assert!(ca_pem.certificate.contains("\r\n"), "the PCA exports CRLF PEM");

    let csr = csr_pem("client-test");
    let issued = client
        .issue_from_csr(&issue_body(csr.clone(), CertificateType::EntityCert))
        .await
        .expect("issue");
    let exported = client.export_certificate(&issued.certificate_id).await.expect("export");
    let chain = normalize_chain([exported.certificate.as_bytes(), exported.certificate_chain.as_bytes()])
        .expect("leaf chain verifies");
    assert_eq!(chain.ders().len(), 3, "leaf, sub-CA, root");
    let info = parse_csr(csr.as_bytes()).expect("csr");
    let leaf = x509_parser::parse_x509_certificate(chain.leaf_der()).expect("leaf").1;
    assert_eq!(leaf.public_key().raw, info.spki_der.as_slice());

    let list = client
        .list_certificates(&ListCertificates {
            name: Some("client-test".into()),
            sort_key: Some("create_time".into()),
            sort_dir: Some("DESC".into()),
            limit: Some(10),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(list.total, 1);
    let listed = &list.certificates[0];
    assert_eq!(listed.certificate_id, issued.certificate_id);
    assert_eq!(listed.status, CertificateStatus::Issued);
    assert_eq!(listed.issuer_id, CA);
    assert!(listed.create_time > 0);
    let none = client
        .list_certificates(&ListCertificates {
            name: Some("no such name".into()),
            ..Default::default()
        })
        .await
        .expect("list with a space in the filter");
    assert_eq!(none.total, 0);

    let quotas = client.certificate_quota().await.expect("quota");
    let (used, quota) = quotas.of("CERTIFICATE").expect("certificate quota reported");
    assert!(used >= 1 && quota > used, "{used} of {quota}");

    let sub = client
        .issue_from_csr(&issue_body(csr_pem("sub-ca"), CertificateType::IntermediateCa))
        .await
        .expect("intermediate");
    let sub_ca = client
        .show_ca(&sub.certificate_id)
        .await
        .expect("intermediate readable as a CA");
    assert_eq!(sub_ca.path_length, Some(0));
}

#[tokio::test]
async fn untrusted_tls_is_a_connect_error_and_nothing_is_sent() {
    let m = mock(None).await;
    let mut c = config(&m);
    c.ca_bundle_pem = None;
    c.domain_id = Some(DOMAIN.into());
    let err = client_with(c, SK)
        .show_ca(CA)
        .await
        .expect_err("self-signed endpoint must not be trusted");
    assert!(matches!(err, PcaError::Connect { .. }), "{err:?}");
    assert!(!err.is_ambiguous());
    assert!(m.stats().operations.is_empty(), "no request reached the server");
}

#[tokio::test]
async fn wrong_secret_key_is_a_credentials_error_naming_code_and_request_id() {
    let m = mock(None).await;
    let mut c = config(&m);
    c.domain_id = Some(DOMAIN.into());
    let err = client_with(c, "wrong-secret").show_ca(CA).await.expect_err("bad SK");
    assert_eq!(err.class(), ErrorClass::Credentials);
    let msg = err.to_string();
    assert!(msg.contains("APIGW.0301") && msg.contains("request id"), "{msg}");
    assert!(
        !msg.contains("request id unknown"),
        "the gateway's request id is reported: {msg}"
    );
    assert!(!msg.contains("wrong-secret"), "{msg}");
}

#[tokio::test]
async fn not_found_is_permanent_and_recognised() {
    let m = mock(None).await;
    let err = client_with(config(&m), SK)
        .show_ca("00000000-0000-4000-8000-000000000000")
        .await
        .expect_err("no such CA");
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    let err = client_with(config(&m), SK)
        .show_ca("../quotas")
        .await
        .expect_err("not an id");
    assert!(
        matches!(err, PcaError::Invalid(_)),
        "ids are checked before they reach a URL path: {err}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_but_never_for_issuance() {
    let m = mock(None).await;
    let client = client_with(config(&m), SK);
    client.domain_id().await.expect("domain");
    m.set_faults(FaultPlan {
        rate_5xx: 1.0,
        ..Default::default()
    })
    .expect("faults");
    let err = client.show_ca(CA).await.expect_err("5xx");
    assert_eq!(err.reason(), "PCAServerError");
    let show_calls = m
        .stats()
        .operations
        .get("ShowCertificateAuthority")
        .map(|o| o.total)
        .unwrap_or(0);
    assert_eq!(show_calls, 4, "one attempt + 3 retries");
    let err = client
        .issue_from_csr(&issue_body(csr_pem("x"), CertificateType::EntityCert))
        .await
        .expect_err("5xx");
    assert!(err.is_ambiguous());
    assert_eq!(
        issue_calls(&m),
        1,
        "an ambiguous failure of the issue call is not retried"
    );
}

#[tokio::test]
async fn throttling_is_retried_even_for_issuance() {
    let m = mock(Some(2)).await;
    // The throttle admits 2 calls per wall-clock second: give the retries more than a second in
    // total, so each call gets through whatever the phase of the window.
    let mut c = config(&m);
    c.retry = RetryPolicy {
        max_retries: 5,
        min_delay: Duration::from_millis(300),
        max_delay: Duration::from_secs(1),
    };
    let client = client_with(c, SK);
    client.domain_id().await.expect("domain");
    let mut ids = Vec::new();
    for i in 0..4 {
        let issued = client
            .issue_from_csr(&issue_body(csr_pem(&format!("t{i}")), CertificateType::EntityCert))
            .await
            .expect("429 is not ambiguous: retried until it passes");
        ids.push(issued.certificate_id);
    }
    let stats = m.stats();
    let by_status = &stats.operations["CreateCertificateByCsr"].by_status;
    assert!(
        by_status.get("429").copied().unwrap_or(0) >= 1,
        "the throttle was hit: {by_status:?}"
    );
    assert_eq!(stats.issued.total, 4, "exactly one certificate per call");
}

/// Counts HTTP attempts per operation, as the metrics do.
#[derive(Default)]
struct Attempts(std::sync::Mutex<Vec<(Operation, CallOutcome)>>);

impl PcaObserver for Attempts {
    fn attempt(&self, operation: Operation, outcome: CallOutcome, _: Duration) {
        self.0.lock().expect("lock").push((operation, outcome));
    }
    fn retry(&self, _: Operation) {}
}

impl Attempts {
    fn of(&self, op: Operation) -> Vec<CallOutcome> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|(o, _)| *o == op)
            .map(|(_, c)| *c)
            .collect()
    }
}

#[tokio::test]
async fn timeouts_are_ambiguous_and_reads_retry() {
    let m = mock(None).await;
    let mut c = config(&m);
    c.request_timeout = Duration::from_millis(400);
    c.domain_id = Some(DOMAIN.into());
    c.retry.max_retries = 1;
    let attempts = Arc::new(Attempts::default());
    let creds = Credentials::new(AK, &SecretString::from(SK.to_owned()));
    let observer: Arc<dyn PcaObserver> = attempts.clone();
    let client = PcaClient::new(c, creds, Arc::new(TokenBucket::new(0.0, 1)), Some(observer)).expect("client");
    m.set_faults(FaultPlan {
        latency_ms: 5000,
        ..Default::default()
    })
    .expect("faults");
    let started = Instant::now();
    let err = client.show_ca(CA).await.expect_err("slow");
    assert!(matches!(err, PcaError::Timeout { .. }), "{err:?}");
    assert!(err.is_ambiguous() && err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "timeouts are enforced (without them: 10s)"
    );
    let err = client
        .issue_from_csr(&issue_body(csr_pem("slow"), CertificateType::EntityCert))
        .await
        .expect_err("slow");
    assert!(matches!(
        err,
        PcaError::Timeout {
            operation: Operation::CreateCertificateByCsr,
            ..
        }
    ));
    assert_eq!(
        attempts.of(Operation::ShowCertificateAuthority),
        vec![CallOutcome::Timeout; 2],
        "read retried"
    );
    assert_eq!(
        attempts.of(Operation::CreateCertificateByCsr),
        vec![CallOutcome::Timeout],
        "the issue call was sent once"
    );
}

#[tokio::test]
async fn token_bucket_paces_calls() {
    let m = mock(None).await;
    let mut c = config(&m);
    c.domain_id = Some(DOMAIN.into());
    let creds = Credentials::new(AK, &SecretString::from(SK.to_owned()));
    let client = PcaClient::new(c, creds, Arc::new(TokenBucket::new(10.0, 2)), None).expect("client");
    let started = Instant::now();
    for _ in 0..12 {
        client.certificate_quota().await.expect("quota");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950),
        "12 calls at 10/s with burst 2 take ≥1s, took {took:?}"
    );
}

#[tokio::test]
async fn garbage_ca_bundle_is_a_config_error() {
    let m = mock(None).await;
    let mut c = config(&m);
    c.ca_bundle_pem = Some(b"not a pem".to_vec());
    let creds = Credentials::new(AK, &SecretString::from(SK.to_owned()));
    let err = PcaClient::new(c, creds, Arc::new(TokenBucket::new(0.0, 1)), None).expect_err("bad bundle");
    assert!(err.to_string().contains("caBundle"), "{err}");
}

/// A server answering every request with HTTP 200 and a body that is not JSON.
async fn garbage_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let body = "<html>not json</html>";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nx-request-id: garbage-1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(reply.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn undecodable_success_is_an_ambiguous_error_naming_the_request_id() {
    ccm_issuer::install_crypto_provider();
    let url = parse_endpoint(&garbage_server().await).expect("url");
    let mut c = ClientConfig::new(url.clone(), url);
    c.domain_id = Some(DOMAIN.into());
    c.retry.max_retries = 0;
    let client = client_with(c, SK);
    let err = client.show_ca(CA).await.expect_err("garbage");
    assert!(matches!(err, PcaError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage-1"), "{err}");
    let err = client
        .issue_from_csr(&issue_body(csr_pem("g"), CertificateType::EntityCert))
        .await
        .expect_err("garbage");
    assert!(
        err.is_ambiguous(),
        "a 200 we cannot read may have issued a certificate: {err}"
    );
}
