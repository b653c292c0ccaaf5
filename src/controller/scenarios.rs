//! Branch-by-branch tests of both reconcilers against an in-memory API server and an
//! in-process mock PCA.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use base64::Engine as _;
use http::Method;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Config,
    certificate_request::{Outcome, decide, reconcile},
    issuance::{CERTIFICATE_ID_ANNOTATION, INTENT_ANNOTATION, bound},
    issuer,
    testing::{AK, CA_ID, DOMAIN, FakeApi, MockPca, SK, context},
};
use crate::{
    cert_manager::CertificateRequest,
    crd::{CCMClusterIssuer, CCMIssuer},
    pki::{CERT_PEM_TAG, pem::parse_blocks},
};

const NS: &str = "istio-system";
const CR_PATH: &str = "/apis/cert-manager.io/v1/namespaces/istio-system/certificaterequests/req-1";
const ISSUER_PATH: &str = "/apis/ccm-issuer.ccm.com/v1beta1/namespaces/istio-system/ccmissuers/ccmissuer-mesh";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secret(ns: &str, ak: &str, sk: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ccm-secret", "namespace": ns},
           "data": {"ak": b64(ak), "sk": b64(sk)}})
}

fn ready_status(ready: bool) -> Value {
    json!({"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
        "reason": if ready {"Verified"} else {"CANotActive"}, "message": "m",
        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]})
}

fn issuer_json(mock: &MockPca, secret_ns: &str, ready: bool) -> Value {
    json!({"apiVersion": "ccm-issuer.ccm.com/v1beta1", "kind": "CCMIssuer",
        "metadata": {"name": "ccmissuer-mesh", "namespace": NS},
        "spec": {"urn": CA_ID, "region": "cn-north-4", "endpoint": mock.url, "domainId": DOMAIN, "pathLength": 0,
                 "secretRef": {"namespace": secret_ns, "name": "ccm-secret"}},
        "status": ready_status(ready)})
}

struct Csr {
    pem: String,
    spki_sha256: String,
}

fn csr(is_ca: bool, dns: &[&str]) -> Csr {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
    p.distinguished_name
        .push(DnType::CommonName, if is_ca { "mesh-ca" } else { "ingress-server-crt" });
    p.distinguished_name.push(DnType::OrganizationName, "cluster.local");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    if is_ca {
        p.key_usages.push(KeyUsagePurpose::KeyCertSign);
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    }
    let pem = p.serialize_request(&key).expect("csr").pem().expect("pem");
    let spki = parse_blocks(key.public_key_pem().as_bytes(), "PUBLIC KEY")
        .expect("spki")
        .remove(0);
    Csr {
        pem,
        spki_sha256: hex::encode(Sha256::digest(&spki)),
    }
}

fn request_json(csr: &Csr, is_ca: bool, conditions: Value, kind: &str) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "req-1", "namespace": NS},
        "spec": {"request": b64(&csr.pem), "isCA": is_ca, "duration": "2160h0m0s",
                 "usages": if is_ca { json!(["digital signature", "key encipherment", "cert sign"]) } else { json!(["digital signature", "key encipherment", "server auth"]) },
                 "issuerRef": {"group": "ccm-issuer.ccm.com", "kind": kind, "name": "ccmissuer-mesh"}},
        "status": {"conditions": conditions}})
}

fn approved() -> Value {
    json!([{"type": "Approved", "status": "True", "reason": "cert-manager.io", "message": "approved"}])
}

struct World {
    api: FakeApi,
    mock: MockPca,
    ctx: Arc<super::Context>,
}

async fn world(config: Config) -> World {
    let mock = MockPca::start().await;
    let api = FakeApi::default();
    api.put(secret(NS, AK, SK));
    api.put(issuer_json(&mock, NS, true));
    let ctx = context(&api, config);
    World { api, mock, ctx }
}

impl World {
    fn cr(&self) -> Arc<CertificateRequest> {
        Arc::new(serde_json::from_value(self.api.get(CR_PATH).expect("request stored")).expect("decode"))
    }

    async fn reconcile(&self) {
        reconcile(self.cr(), self.ctx.clone()).await.expect("reconcile");
    }

    fn ready(&self) -> (String, String, String) {
        let cr = self.cr();
        let c = cr.condition("Ready").cloned().unwrap_or_default();
        (c.status, c.reason.unwrap_or_default(), c.message.unwrap_or_default())
    }

    async fn issued(&self) -> u64 {
        self.mock.stats().await["issued"]["total"].as_u64().unwrap_or(0)
    }

    async fn calls(&self, op: &str) -> u64 {
        self.mock.stats().await["operations"][op]["total"].as_u64().unwrap_or(0)
    }
}

fn decoded(field: &Option<k8s_openapi::ByteString>) -> String {
    String::from_utf8(field.as_ref().expect("field set").0.clone()).expect("utf8")
}

#[tokio::test]
async fn leaf_request_is_issued_once_with_chain_and_root() {
    let w = world(Config::default()).await;
    let c = csr(false, &["cert-test.com"]);
    w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Issued"), "{message}");
    let cr = w.cr();
    let st = cr.status.clone().expect("status");
    let chain = parse_blocks(decoded(&st.certificate).as_bytes(), CERT_PEM_TAG).expect("chain");
    let ca = parse_blocks(decoded(&st.ca).as_bytes(), CERT_PEM_TAG).expect("ca");
    assert_eq!((chain.len(), ca.len()), (2, 1), "leaf + sub-CA, root separately");
    let uid = cr.metadata.uid.clone().expect("uid");
    assert!(bound(&cr, INTENT_ANNOTATION, &uid).is_some());
    let id = bound(&cr, CERTIFICATE_ID_ANNOTATION, &uid).expect("id annotation");
    assert!(message.contains(id), "{message}");
    let stats = w.mock.stats().await;
    assert_eq!(stats["issued"]["total"], 1);
    assert_eq!(stats["issued"]["by_public_key"][&c.spki_sha256], 1);
    // Final requests are never signed again.
    w.reconcile().await;
    w.reconcile().await;
    assert_eq!(w.issued().await, 1);
    assert_eq!(w.calls("CreateCertificateByCsr").await, 1);
}

#[tokio::test]
async fn ca_request_becomes_intermediate_with_path_length() {
    let w = world(Config::default()).await;
    let c = csr(true, &[]);
    w.api.put(request_json(&c, true, approved(), "CCMIssuer"));
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Issued"), "{message}");
    let st = w.cr().status.clone().expect("status");
    let der = parse_blocks(decoded(&st.certificate).as_bytes(), CERT_PEM_TAG)
        .expect("chain")
        .remove(0);
    let (_, cert) =
        <x509_parser::certificate::X509Certificate as x509_parser::prelude::FromDer<_>>::from_der(&der).expect("x509");
    let bc = cert.basic_constraints().expect("bc").expect("present").value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    assert_eq!(
        w.calls("ExportCertificateAuthorityCertificate").await,
        1,
        "CA certs are exported via the CA endpoint"
    );
}

#[tokio::test]
async fn not_ours_unapproved_and_final_are_left_alone() {
    let w = world(Config::default()).await;
    let c = csr(false, &["x.example"]);
    let mut foreign = request_json(&c, false, approved(), "CCMIssuer");
    foreign["spec"]["issuerRef"]["group"] = json!("cert-manager.io");
    w.api.put(foreign);
    assert_eq!(decide(&w.cr(), &w.ctx).await, Outcome::Ignore("ignored"));
    let mut empty_group = request_json(&c, false, approved(), "CCMIssuer");
    empty_group["spec"]["issuerRef"]
        .as_object_mut()
        .expect("ref")
        .remove("group");
    w.api.put(empty_group);
    assert_eq!(decide(&w.cr(), &w.ctx).await, Outcome::Ignore("ignored"));
    w.api.put(request_json(&c, false, json!([]), "CCMIssuer"));
    assert_eq!(decide(&w.cr(), &w.ctx).await, Outcome::Ignore("unapproved"));
    let failed =
        json!([{"type": "Approved", "status": "True"}, {"type": "Ready", "status": "False", "reason": "Failed"}]);
    w.api.put(request_json(&c, false, failed, "CCMIssuer"));
    assert_eq!(decide(&w.cr(), &w.ctx).await, Outcome::Ignore("final"));
    assert_eq!(
        w.mock.stats().await["operations"].as_object().map(|o| o.len()),
        Some(0),
        "no PCA call at all"
    );
}

#[tokio::test]
async fn denied_request_fails_with_failure_time_and_no_pca_call() {
    let w = world(Config::default()).await;
    let c = csr(false, &["x.example"]);
    let denied = json!([{"type": "Denied", "status": "True", "reason": "policy", "message": "not allowed here"}]);
    w.api.put(request_json(&c, false, denied, "CCMIssuer"));
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Denied"));
    assert!(message.contains("not allowed here"));
    assert!(w.cr().status.as_ref().expect("status").failure_time.is_some());
    assert_eq!(w.mock.stats().await["operations"].as_object().map(|o| o.len()), Some(0));
}

#[tokio::test]
async fn missing_or_unready_issuer_keeps_request_pending() {
    let w = world(Config::default()).await;
    let c = csr(false, &["x.example"]);
    w.api.put(request_json(&c, false, approved(), "CCMClusterIssuer"));
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Pending"));
    assert!(
        message.contains("CCMClusterIssuer ccmissuer-mesh does not exist"),
        "{message}"
    );

    w.api.put(issuer_json(&w.mock, NS, false));
    w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    w.reconcile().await;
    let (_, reason, message) = w.ready();
    assert_eq!(reason, "Pending");
    assert!(
        message.contains("Waiting for CCMIssuer istio-system/ccmissuer-mesh to become ready"),
        "{message}"
    );

    // A Ready condition computed for an older generation does not count.
    let mut stale = issuer_json(&w.mock, NS, true);
    stale["metadata"]["generation"] = json!(2);
    w.api.put(stale);
    w.reconcile().await;
    assert!(w.ready().2.contains("to become ready"));
    assert_eq!(w.issued().await, 0);
}

#[tokio::test]
async fn invalid_csrs_fail_with_invalid_request_before_any_pca_call() {
    let w = world(Config::default()).await;
    let good = csr(false, &["x.example"]);
    let cases: Vec<(Value, &str)> = vec![
        (json!("bm90IGEgY3Ny"), "spec.request"),
        (json!(b64(&good.pem.replace("MII", "MIJ"))), "spec.request"),
    ];
    for (request, needle) in cases {
        let mut cr = request_json(&good, false, approved(), "CCMIssuer");
        cr["spec"]["request"] = request;
        w.api.put(cr);
        w.reconcile().await;
        let (status, reason, message) = w.ready();
        assert_eq!((status.as_str(), reason.as_str()), ("False", "Failed"), "{message}");
        assert!(message.contains(needle), "{message}");
        let cr = w.cr();
        assert!(cr.is_true("InvalidRequest"));
        assert!(cr.status.as_ref().expect("status").failure_time.is_some());
    }
    // Usage asked for but not in the CSR (the PCA takes usages only from the CSR).
    let mut cr = request_json(&good, false, approved(), "CCMIssuer");
    cr["spec"]["usages"] = json!(["client auth"]);
    w.api.put(cr);
    w.reconcile().await;
    assert!(w.ready().2.contains("client auth"), "{}", w.ready().2);
    // isCA without cert sign in the CSR's key usage.
    let mut cr = request_json(&good, true, approved(), "CCMIssuer");
    cr["spec"]["usages"] = json!([]);
    w.api.put(cr);
    w.reconcile().await;
    assert!(w.ready().2.contains("keyCertSign"), "{}", w.ready().2);
    // Unsupported key (RSA 3072, generated with openssl).
    let rsa3072 = crate::pki::csr::tests::openssl_csr(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"])
        .expect("openssl");
    let mut cr = request_json(&good, false, approved(), "CCMIssuer");
    cr["spec"]["request"] = json!(b64(&rsa3072));
    cr["spec"]["usages"] = json!([]);
    w.api.put(cr);
    w.reconcile().await;
    assert!(w.ready().2.contains("RSA 3072-bit"), "{}", w.ready().2);
    assert_eq!(w.calls("CreateCertificateByCsr").await, 0);
}

#[tokio::test]
async fn wrong_credentials_flip_the_issuer_and_the_request_waits() {
    let mut w = world(Config::default()).await;
    let config = Config {
        problem_recheck_delay: Duration::from_millis(50),
        ..Config::default()
    };
    let (ctx, mut triggered) = super::testing::context_with_triggers(&w.api, config);
    w.ctx = ctx;
    w.api.put(secret(NS, AK, "not-the-secret-key"));
    let c = csr(false, &["x.example"]);
    w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "Pending"),
        "credential errors never fail a request"
    );
    assert!(message.contains("APIGW.0301"), "{message}");
    let issuer: CCMIssuer = serde_json::from_value(w.api.get(ISSUER_PATH).expect("issuer")).expect("decode");
    let ready = ready_of(issuer.status);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "PCAAuthenticationFailed")
    );
    assert!(!ready.message.contains("not-the-secret-key"));
    assert_eq!(w.issued().await, 0);
    let recheck = tokio::time::timeout(Duration::from_secs(5), triggered.namespaced.recv())
        .await
        .expect("a delayed re-check of the issuer is scheduled")
        .expect("trigger");
    assert_eq!(recheck.name, "ccmissuer-mesh");
}

#[tokio::test]
async fn transient_errors_retry_then_fail_after_max_retry_duration() {
    let w = world(Config::default()).await;
    let c = csr(false, &["x.example"]);
    w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    w.mock
        .faults(json!({"rate_5xx": 1.0, "operations": ["CreateCertificateByCsr"]}))
        .await;
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Pending"), "{message}");
    assert!(message.contains("Will retry"), "{message}");
    // A 5xx on the issue call is ambiguous: the next attempt searches first, within the grace period.
    w.reconcile().await;
    assert!(w.ready().2.contains("unknown outcome"), "{}", w.ready().2);
    assert_eq!(
        w.calls("CreateCertificateByCsr").await,
        1,
        "no blind retry of the issue call"
    );
    // 429 is not ambiguous, and an old request gives up.
    let mut old = request_json(&c, false, approved(), "CCMIssuer");
    old["metadata"]["name"] = json!("req-1");
    old["metadata"]["creationTimestamp"] = json!("2020-01-01T00:00:00Z");
    w.api.put(old);
    w.mock
        .faults(json!({"rate_429": 1.0, "operations": ["CreateCertificateByCsr"]}))
        .await;
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Failed"), "{message}");
    assert!(
        message.contains("--max-retry-duration") && message.contains("APIGW.0308"),
        "{message}"
    );
}

#[tokio::test]
async fn permanent_pca_error_fails_at_once_with_code_and_request_id() {
    let w = world(Config::default()).await;
    w.mock
        .mock
        .store
        .update_ca(CA_ID, |ca| {
            ca.path_length = 0;
            Ok(())
        })
        .expect("update CA");
    let c = csr(true, &[]);
    w.api.put(request_json(&c, true, approved(), "CCMIssuer"));
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Failed"), "{message}");
    assert!(message.contains("PCA.") && message.contains("request id"), "{message}");
    assert!(!w.cr().is_true("InvalidRequest"));
}

#[tokio::test]
async fn ambiguous_failure_then_recovery_issues_exactly_once() {
    let config = Config {
        pca_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let w = world(config).await;
    let c = csr(false, &["cert-test.com"]);
    w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    w.mock.faults(json!({"drop_after_issue": 1})).await;
    w.reconcile().await;
    assert_eq!(
        w.issued().await,
        1,
        "the certificate was issued although the response was lost"
    );
    assert_eq!(w.ready().1, "Pending");
    // Recovery finds it; no second certificate.
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Issued"), "{message}");
    assert_eq!(w.mock.stats().await["issued"]["by_public_key"][&c.spki_sha256], 1);
    assert_eq!(w.calls("CreateCertificateByCsr").await, 1);
    assert!(
        w.ctx
            .metrics
            .encode()
            .contains(r#"ccm_issuer_duplicates_avoided_total{reason="Recovered"} 1"#)
    );
}

#[tokio::test]
async fn crash_after_issue_before_id_is_recovered_after_restart() {
    let w = world(Config::default()).await;
    let c = csr(false, &["cert-test.com"]);
    w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    w.reconcile().await;
    let first = w.cr();
    let uid = first.metadata.uid.clone().expect("uid");
    let id = bound(&first, CERTIFICATE_ID_ANNOTATION, &uid).expect("id").to_owned();
    // Simulate a crash between the PCA's answer and the id annotation: the request still holds
    // only the intent, no status, and a new process (empty memory) picks it up.
    let mut crashed = w.api.get(CR_PATH).expect("cr");
    crashed["metadata"]["annotations"]
        .as_object_mut()
        .expect("ann")
        .remove(CERTIFICATE_ID_ANNOTATION);
    crashed["status"] = json!({"conditions": approved()});
    w.api.put(crashed);
    let fresh = context(&w.api, Config::default());
    reconcile(w.cr(), fresh.clone()).await.expect("reconcile");
    let (status, reason, _) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Issued"));
    assert_eq!(
        bound(&w.cr(), CERTIFICATE_ID_ANNOTATION, &uid),
        Some(id.as_str()),
        "recovered the same certificate"
    );
    assert_eq!(w.issued().await, 1);
}

#[tokio::test]
async fn recent_intent_without_certificate_waits_then_issues_leaf_but_fails_ca() {
    let config = Config {
        pca_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let w = world(config).await;
    let c = csr(false, &["x.example"]);
    let mut cr = request_json(&c, false, approved(), "CCMIssuer");
    let uid = "0f0f0f0f-0000-4000-8000-000000000001";
    cr["metadata"]["uid"] = json!(uid);
    let now = jiff::Timestamp::now().as_millisecond();
    cr["metadata"]["annotations"] = json!({INTENT_ANNOTATION: format!("{uid}/{now}")});
    w.api.put(cr.clone());
    w.reconcile().await;
    assert!(w.ready().2.contains("unknown outcome"), "{}", w.ready().2);
    assert_eq!(w.issued().await, 0);
    // Old intent, nothing found: a leaf is issued again (safe: the earlier attempt cannot land any more).
    cr["metadata"]["annotations"] = json!({INTENT_ANNOTATION: format!("{uid}/{}", now - 120_000)});
    w.api.put(cr);
    w.reconcile().await;
    assert_eq!(w.ready().1, "Issued");
    assert_eq!(w.issued().await, 1);
    // A CA request in the same situation is failed rather than risk a second CA certificate.
    let ca = csr(true, &[]);
    let mut ca_cr = request_json(&ca, true, approved(), "CCMIssuer");
    ca_cr["metadata"]["uid"] = json!(uid);
    ca_cr["metadata"]["annotations"] = json!({INTENT_ANNOTATION: format!("{uid}/{}", now - 120_000)});
    w.api.put(ca_cr);
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Failed"), "{message}");
    assert!(message.contains("not issuing again"), "{message}");
    assert_eq!(w.issued().await, 1);
}

#[tokio::test]
async fn copied_annotations_of_another_request_are_ignored() {
    let w = world(Config::default()).await;
    let c = csr(false, &["x.example"]);
    let mut cr = request_json(&c, false, approved(), "CCMIssuer");
    // As if copied from the Certificate: an id bound to some other request.
    cr["metadata"]["annotations"] =
        json!({CERTIFICATE_ID_ANNOTATION: "someone-else/6434f74f-2d13-4e6a-89eb-93ee313f1a43"});
    w.api.put(cr);
    w.reconcile().await;
    assert_eq!(w.ready().1, "Issued");
    assert_eq!(w.issued().await, 1);
}

#[tokio::test]
async fn lost_intent_race_does_not_issue() {
    let w = world(Config::default()).await;
    let c = csr(false, &["x.example"]);
    w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    w.api.fail_next(Method::PATCH, "/certificaterequests/req-1", 409);
    w.reconcile().await;
    let (_, reason, message) = w.ready();
    assert_eq!(reason, "Pending");
    assert!(message.contains("Another worker"), "{message}");
    assert_eq!(w.calls("CreateCertificateByCsr").await, 0);
}

#[tokio::test]
async fn request_deleted_mid_flight_is_not_an_error() {
    let w = world(Config::default()).await;
    let c = csr(false, &["x.example"]);
    w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    let cr = w.cr();
    w.api.delete(CR_PATH);
    let action = reconcile(cr.clone(), w.ctx.clone()).await;
    assert!(action.is_ok(), "{action:?}");
    assert_eq!(w.issued().await, 0, "a deleted request is not issued");
    // Replaced by a new object with the same name: the old one's status is not written to it.
    let replaced = w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    assert_ne!(replaced["metadata"]["uid"], json!(cr.metadata.uid));
    reconcile(cr, w.ctx.clone()).await.expect("reconcile");
    assert!(w.cr().condition("Ready").is_none(), "new object untouched");
}

#[tokio::test]
async fn namespaced_issuer_cannot_borrow_another_namespaces_secret() {
    let w = world(Config::default()).await;
    w.api.put(secret("kube-system", AK, SK));
    w.api.put(issuer_json(&w.mock, "kube-system", false));
    let issuer: CCMIssuer = serde_json::from_value(w.api.get(ISSUER_PATH).expect("issuer")).expect("decode");
    issuer::reconcile_namespaced(Arc::new(issuer), w.ctx.clone())
        .await
        .expect("reconcile");
    let issuer: CCMIssuer = serde_json::from_value(w.api.get(ISSUER_PATH).expect("issuer")).expect("decode");
    let ready = ready_of(issuer.status);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SecretNamespaceNotAllowed")
    );
    let secret_reads: Vec<_> = w
        .api
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/secrets/"))
        .collect();
    assert!(
        secret_reads.is_empty(),
        "the other namespace's Secret was never read: {secret_reads:?}"
    );
}

fn ready_of(status: Option<crate::crd::IssuerStatus>) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("ready")
}

async fn check_issuer(w: &World) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let issuer: CCMIssuer = serde_json::from_value(w.api.get(ISSUER_PATH).expect("issuer")).expect("decode");
    issuer::reconcile_namespaced(Arc::new(issuer), w.ctx.clone())
        .await
        .expect("reconcile");
    let issuer: CCMIssuer = serde_json::from_value(w.api.get(ISSUER_PATH).expect("issuer")).expect("decode");
    ready_of(issuer.status)
}

#[tokio::test]
async fn issuer_ready_only_when_the_ca_is_actived() {
    let w = world(Config::default()).await;
    w.api.put(issuer_json(&w.mock, NS, false));
    let ready = check_issuer(&w).await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Verified"),
        "{}",
        ready.message
    );
    let issuer: CCMIssuer = serde_json::from_value(w.api.get(ISSUER_PATH).expect("issuer")).expect("decode");
    let status = issuer.status.expect("status");
    let ca = status.ca.expect("ca summary");
    assert_eq!(ca.status.as_deref(), Some("ACTIVED"));
    assert!(ca.subject.unwrap_or_default().contains("ccm-mock-pca Sub CA"));
    assert!(ca.not_after.is_some());
    let expiring = status
        .conditions
        .iter()
        .find(|c| c.type_ == "CAExpiringSoon")
        .expect("expiry condition");
    assert_eq!(expiring.status, "False");

    w.mock
        .mock
        .store
        .update_ca(CA_ID, |ca| {
            ca.status = ccm_mock_pca::state::CaStatus::Disabled;
            Ok(())
        })
        .expect("disable");
    let ready = check_issuer(&w).await;
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "CANotActive"));
    assert!(ready.message.contains("DISABLED"));
}

#[tokio::test]
async fn issuer_reports_missing_ca_secret_and_bad_keys() {
    let w = world(Config::default()).await;
    let mut spec = issuer_json(&w.mock, NS, false);
    spec["spec"]["urn"] = json!("00000000-0000-4000-8000-000000000000");
    w.api.put(spec);
    assert_eq!(check_issuer(&w).await.reason, "CANotFound");
    w.api.put(issuer_json(&w.mock, NS, false));
    w.api.delete("/api/v1/namespaces/istio-system/secrets/ccm-secret");
    assert_eq!(check_issuer(&w).await.reason, "SecretNotFound");
    w.api.put(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ccm-secret", "namespace": NS}, "data": {"ak": b64(AK)}}));
    let ready = check_issuer(&w).await;
    assert_eq!(ready.reason, "SecretInvalid");
    assert!(ready.message.contains("\"sk\""));
}

#[tokio::test]
async fn issuer_warns_when_ca_expires_within_thirty_days() {
    let w = world(Config::default()).await;
    let soon = jiff::Timestamp::now().as_millisecond() + 20 * 86_400_000;
    w.mock
        .mock
        .store
        .update_ca(CA_ID, |ca| {
            ca.not_after = soon;
            Ok(())
        })
        .expect("update");
    w.api.put(issuer_json(&w.mock, NS, false));
    let ready = check_issuer(&w).await;
    assert_eq!(ready.status, "True");
    let issuer: CCMIssuer = serde_json::from_value(w.api.get(ISSUER_PATH).expect("issuer")).expect("decode");
    let expiring = issuer
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "CAExpiringSoon")
        .expect("condition");
    assert_eq!(expiring.status, "True");
    let warned: BTreeSet<String> = w
        .api
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/events"))
        .filter_map(|r| r.body["reason"].as_str().map(str::to_owned))
        .collect();
    assert!(warned.contains("CAExpiringSoon"), "{warned:?}");
    // Requests are clamped to end before the CA.
    let c = csr(false, &["x.example"]);
    w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    w.reconcile().await;
    assert_eq!(w.ready().1, "Issued", "{}", w.ready().2);
    let events: Vec<String> = w
        .api
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/events") && r.body["reason"] == "DurationClamped")
        .filter_map(|r| r.body["note"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(events.len(), 1, "one DurationClamped event");
}

#[tokio::test]
async fn transient_pca_failure_keeps_a_ready_issuer_ready() {
    let w = world(Config::default()).await;
    w.mock
        .faults(json!({"rate_5xx": 1.0, "operations": ["ShowCertificateAuthority"]}))
        .await;
    let ready = check_issuer(&w).await;
    assert_eq!(ready.status, "True", "a blip does not take the issuer out of service");
    w.api.put(issuer_json(&w.mock, NS, false));
    let ready = check_issuer(&w).await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "PCAServerError")
    );
}

#[tokio::test]
async fn cluster_issuer_uses_the_cluster_resource_namespace() {
    let config = Config {
        cluster_resource_namespace: "ccm-system".into(),
        ..Config::default()
    };
    let w = world(config).await;
    w.api.put(secret("ccm-system", AK, SK));
    let mut cluster = issuer_json(&w.mock, NS, true);
    cluster["kind"] = json!("CCMClusterIssuer");
    cluster["metadata"].as_object_mut().expect("meta").remove("namespace");
    cluster["spec"]["secretRef"]
        .as_object_mut()
        .expect("ref")
        .remove("namespace");
    w.api.put(cluster);
    // The namespaced Secret is wrong on purpose: the cluster issuer must not use it.
    w.api.put(secret(NS, AK, "wrong"));
    let path = "/apis/ccm-issuer.ccm.com/v1beta1/ccmclusterissuers/ccmissuer-mesh";
    let issuer: CCMClusterIssuer = serde_json::from_value(w.api.get(path).expect("issuer")).expect("decode");
    issuer::reconcile_cluster(Arc::new(issuer), w.ctx.clone())
        .await
        .expect("reconcile");
    let issuer: CCMClusterIssuer = serde_json::from_value(w.api.get(path).expect("issuer")).expect("decode");
    let ready = ready_of(issuer.status);
    assert_eq!(ready.status, "True", "{}", ready.message);
    let c = csr(false, &["x.example"]);
    w.api.put(request_json(&c, false, approved(), "CCMClusterIssuer"));
    w.reconcile().await;
    assert_eq!(w.ready().1, "Issued", "{}", w.ready().2);
}

#[tokio::test]
async fn state_of_deleted_issuers_is_forgotten() {
    let w = world(Config::default()).await;
    let ready = check_issuer(&w).await;
    assert_eq!(ready.status, "True");
    assert_eq!(w.ctx.secret_watches.len(), 1, "the issuer's Secret is watched");
    assert!(
        w.ctx
            .metrics
            .encode()
            .contains(r#"ccm_issuer_issuers_ready{kind="CCMIssuer"} 1"#)
    );
    // The test context's issuer cache is empty: as if the issuer had been deleted.
    w.ctx.forget_deleted_issuers();
    assert!(
        w.ctx.secret_watches.is_empty(),
        "the watch of a deleted issuer's Secret stops"
    );
    assert!(
        w.ctx
            .metrics
            .encode()
            .contains(r#"ccm_issuer_issuers_ready{kind="CCMIssuer"} 0"#)
    );
}
