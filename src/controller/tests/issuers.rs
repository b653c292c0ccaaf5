//! Issuer scenarios: CA checks, Secrets, cluster issuers, forgetting deleted issuers.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;
use crate::{
    controller::issuer,
    crd::{CCMClusterIssuer, CCMIssuer},
};

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
    let c = csr(false, &["x.example"]);
    w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    w.reconcile().await;
    assert_eq!(w.ctx.pca.sizes(), (1, 1), "a client and its rate-limit bucket");
    assert_eq!(w.ctx.slots.len(), 1, "the issuer's slots");
    // The test context's issuer cache is empty: as if the issuer had been deleted.
    w.ctx.forget_deleted_issuers();
    assert!(
        w.ctx.secret_watches.is_empty(),
        "the watch of a deleted issuer's Secret stops"
    );
    assert_eq!(w.ctx.pca.sizes(), (0, 0), "client and bucket dropped");
    assert!(w.ctx.slots.is_empty(), "slots dropped");
    assert!(
        w.ctx
            .metrics
            .encode()
            .contains(r#"ccm_issuer_issuers_ready{kind="CCMIssuer"} 0"#)
    );
}

/// A Secret the controller may not list (403: outside the chart's Secret namespaces) is
/// re-tried with a growing delay, not every second for ever (each try logs a warning and costs
/// the apiserver a request).
#[tokio::test(start_paused = true)]
async fn a_forbidden_secret_watch_backs_off() {
    let api = FakeApi::default();
    for _ in 0..200 {
        api.fail_next(http::Method::GET, "/namespaces/podman/secrets", 403);
    }
    let (namespaced, _n) = tokio::sync::mpsc::unbounded_channel();
    let (cluster, _c) = tokio::sync::mpsc::unbounded_channel();
    let watches = crate::controller::secret_watch::SecretWatches::new(
        api.client(),
        crate::controller::IssuerTriggers { namespaced, cluster },
    );
    let issuer = crate::controller::IssuerKey::Namespaced {
        namespace: "podman".into(),
        name: "pca".into(),
    };
    watches.ensure(("podman".into(), "ccm-secret".into()), issuer);
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    let lists = api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/namespaces/podman/secrets"))
        .count();
    // 1 s doubling to 5 minutes: 1+2+4+…+256 s covers the first 511 s, then one more.
    assert!(
        (2..=12).contains(&lists),
        "{lists} lists of a forbidden Secret in 10 minutes"
    );
}
