//! CertificateRequest scenarios: contract, validation, credentials, errors, recovery.

use std::time::Duration;

use http::Method;
use serde_json::json;

use super::*;
use crate::controller::{
    certificate_request::outcome::Ignored,
    issuance::intent::{CERTIFICATE_ID_ANNOTATION, INTENT_ANNOTATION, RETRYING_SINCE_ANNOTATION, bound},
};

/// The id of the one certificate the mock issued.
fn only_certificate_id(w: &World) -> String {
    let certs = w.mock.mock.store.all_certs();
    assert_eq!(certs.len(), 1, "exactly one certificate at the PCA");
    certs[0].certificate_id.clone()
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
    // A leaf's id is found again by listing, so it costs no annotation write; the Ready message
    // names the one certificate the PCA issued.
    assert!(bound(&cr, CERTIFICATE_ID_ANNOTATION, &uid).is_none());
    let id = only_certificate_id(&w);
    assert!(message.contains(&format!("certificate id {id}")), "{message}");
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
    assert_eq!(w.act().await, Outcome::Ignore(Ignored::NotOurs));
    let mut empty_group = request_json(&c, false, approved(), "CCMIssuer");
    empty_group["spec"]["issuerRef"]
        .as_object_mut()
        .expect("ref")
        .remove("group");
    w.api.put(empty_group);
    assert_eq!(w.act().await, Outcome::Ignore(Ignored::NotOurs));
    w.api.put(request_json(&c, false, json!([]), "CCMIssuer"));
    assert_eq!(w.act().await, Outcome::Ignore(Ignored::Unapproved));
    let failed =
        json!([{"type": "Approved", "status": "True"}, {"type": "Ready", "status": "False", "reason": "Failed"}]);
    w.api.put(request_json(&c, false, failed, "CCMIssuer"));
    assert_eq!(w.act().await, Outcome::Ignore(Ignored::Final));
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
    let (ctx, mut triggered) = super::mock_pca::context_with_triggers(&w.api, config);
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
    assert!(message.contains("Retrying with back-off"), "{message}");
    // A 5xx on the issue call is ambiguous: the next attempt searches first, within the grace period.
    w.reconcile().await;
    assert!(w.ready().2.contains("unknown outcome"), "{}", w.ready().2);
    assert_eq!(
        w.calls("CreateCertificateByCsr").await,
        1,
        "no blind retry of the issue call"
    );
    // 429 is not ambiguous, and a request whose retry episode is older than the budget gives up.
    let mut old = request_json(&c, false, approved(), "CCMIssuer");
    let uid = "0f0f0f0f-0000-4000-8000-000000000002";
    let since = jiff::Timestamp::now().as_millisecond() - 6 * 60_000;
    old["metadata"]["uid"] = json!(uid);
    old["metadata"]["annotations"] = json!({RETRYING_SINCE_ANNOTATION: format!("{uid}/{since}/issue")});
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
    let id = only_certificate_id(&w);
    // Simulate a crash between the PCA's answer and the status write: the request holds only
    // the intent, no status, and a new process (empty memory) picks it up.
    let mut crashed = w.api.get(CR_PATH).expect("cr");
    crashed["status"] = json!({"conditions": approved()});
    w.api.put(crashed);
    let fresh = context(&w.api, Config::default());
    reconcile(w.cr(), fresh.clone()).await.expect("reconcile");
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Issued"));
    assert!(
        message.contains(&format!("certificate id {id}")),
        "recovered the same certificate: {message}"
    );
    assert_eq!(w.issued().await, 1);
}

#[tokio::test]
async fn recent_intent_without_certificate_waits_then_issues_leaf_and_reissues_ca() {
    let config = Config {
        pca_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let w = world(config).await;
    let c = csr(false, &["x.example"]);
    let uid = "0f0f0f0f-0000-4000-8000-000000000001";
    let now = jiff::Timestamp::now().as_millisecond();
    let mut cr = request_of_attempt(&c, false, uid, INTENT_ANNOTATION, format!("{uid}/{now}"));
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
    // A CA request in the same situation cannot be searched for (the PCA does not list CA
    // certificates): it waits while the attempt may land, then is issued again with its CSR.
    let ca = csr(true, &[]);
    let mut ca_cr = request_of_attempt(&ca, true, uid, INTENT_ANNOTATION, format!("{uid}/{now}"));
    w.api.put(ca_cr.clone());
    w.reconcile().await;
    assert!(w.ready().2.contains("unknown outcome"), "{}", w.ready().2);
    assert_eq!(w.issued().await, 1, "not while it may land");
    ca_cr["metadata"]["annotations"] = json!({INTENT_ANNOTATION: format!("{uid}/{}", now - 120_000)});
    w.api.put(ca_cr);
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Issued"), "{message}");
    assert_eq!(w.issued().await, 2);
    assert_eq!(w.mock.stats().await["issued"]["by_public_key"][&ca.spki_sha256], 1);
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
    // This worker acts on an older view; meanwhile another recorded its intent.
    let stale = w.cr();
    let mut raced = w.api.get(CR_PATH).expect("cr");
    let uid = raced["metadata"]["uid"].as_str().expect("uid").to_owned();
    let now = jiff::Timestamp::now().as_millisecond();
    raced["metadata"]["annotations"] = json!({INTENT_ANNOTATION: format!("{uid}/{now}/{}", now + 35_000)});
    w.api.put(raced);
    reconcile(stale, w.ctx.clone()).await.expect("reconcile");
    let (_, reason, message) = w.ready();
    assert_eq!(reason, "Pending");
    assert!(message.contains("earlier issue attempt"), "{message}");
    assert_eq!(w.calls("CreateCertificateByCsr").await, 0);
    let conflicts = w
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::PATCH && r.body["metadata"]["annotations"][INTENT_ANNOTATION].is_string())
        .count();
    assert_eq!(conflicts, 1, "its own intent write was refused by the precondition");
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
    crate::controller::issuer::reconcile_namespaced(Arc::new(issuer), w.ctx.clone())
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

/// Every CA key × signature algorithm the PCA offers (RSA and EC with SHA-256/384/512): the
/// reconciler issues and links the chain (the chain check runs before `Issued`), and the
/// returned sub-CA certificate really carries the algorithm, so the mock honoured it.
#[tokio::test]
async fn issues_under_every_ca_key_and_signature_algorithm() {
    use ccm_mock_pca::{
        ca::{HashAlg, KeyAlgorithm},
        seed::SeedCa,
    };
    use x509_parser::prelude::{FromDer, X509Certificate};
    let cases = [
        (KeyAlgorithm::Ec256, HashAlg::Sha256, "1.2.840.10045.4.3.2"),
        (KeyAlgorithm::Ec256, HashAlg::Sha384, "1.2.840.10045.4.3.3"),
        (KeyAlgorithm::Ec256, HashAlg::Sha512, "1.2.840.10045.4.3.4"),
        (KeyAlgorithm::Ec384, HashAlg::Sha256, "1.2.840.10045.4.3.2"),
        (KeyAlgorithm::Ec384, HashAlg::Sha384, "1.2.840.10045.4.3.3"),
        (KeyAlgorithm::Ec384, HashAlg::Sha512, "1.2.840.10045.4.3.4"),
        (KeyAlgorithm::Rsa2048, HashAlg::Sha256, "1.2.840.113549.1.1.11"),
        (KeyAlgorithm::Rsa2048, HashAlg::Sha384, "1.2.840.113549.1.1.12"),
        (KeyAlgorithm::Rsa2048, HashAlg::Sha512, "1.2.840.113549.1.1.13"),
    ];
    for (key, hash, oid) in cases {
        let seed = SeedCa {
            signature_algorithm: hash,
            ..SeedCa::new(CA_ID, key, 1)
        };
        let w = world_with(MockPca::start_with_seed(seed).await, Config::default());
        w.api.put(request_json(
            &csr(false, &["alg.example"]),
            false,
            approved(),
            "CCMIssuer",
        ));
        w.reconcile().await;
        let (_, reason, message) = w.ready();
        assert_eq!(reason, "Issued", "{key:?} CA, {hash:?}: {message}");
        let st = w.cr().status.clone().expect("status");
        let chain = parse_blocks(decoded(&st.certificate).as_bytes(), CERT_PEM_TAG).expect("chain");
        assert_eq!(chain.len(), 2, "{key:?}/{hash:?}: leaf + sub-CA");
        let (_, sub) = X509Certificate::from_der(&chain[1]).expect("sub-CA");
        assert_eq!(
            sub.signature_algorithm.algorithm.to_id_string(),
            oid,
            "{key:?}/{hash:?}: the sub-CA is signed with the requested algorithm"
        );
        assert_eq!(w.issued().await, 1, "{key:?}/{hash:?}");
    }
}

/// A CA ending within the hour cannot sign a certificate worth having: a fresh request waits
/// (`Pending`, `CAEndsTooSoon`, saying why) for the issuer to use another CA — it is neither
/// `InvalidRequest` nor issued.
#[tokio::test]
async fn a_ca_ending_within_the_hour_keeps_a_fresh_request_pending() {
    let w = world(Config::default()).await;
    let mut issuer = w.api.get(ISSUER_PATH).expect("issuer");
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(20);
    issuer["status"]["ca"] = json!({"notAfter": soon.to_string()});
    w.api.put(issuer);
    w.api.put(request_json(
        &csr(false, &["soon.example"]),
        false,
        approved(),
        "CCMIssuer",
    ));
    w.reconcile().await;
    let (status, reason, message) = w.ready();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Pending"), "{message}");
    assert!(
        message.contains("waiting for the issuer to use a CA that can sign it"),
        "{message}"
    );
    let cr = w.cr();
    let conditions = &cr.status.as_ref().expect("status").conditions;
    assert!(
        !conditions.iter().any(|c| c.reason.as_deref() == Some("InvalidRequest")),
        "{conditions:?}"
    );
    assert_eq!(w.issued().await, 0, "nothing issued");
}
