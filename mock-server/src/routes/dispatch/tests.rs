//! What every request goes through: injected faults, the throttle, the body limit,
//! authentication; persistence and the accept loop under load.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::faults::FaultPlan;
use crate::state::Store;
use crate::test_support::*;

#[tokio::test]
async fn faults_inject_429_5xx_and_latency() {
    let h = Harness::new();
    h.fail_with_429("ListCertificate");
    assert_err(
        &h.call("GET", "/v1/private-certificates", &[], None).await,
        429,
        "APIGW.0308",
    );
    assert_eq!(
        h.call("GET", "/v1/private-certificates/quotas", &[], None).await.status,
        StatusCode::OK
    );
    h.set_faults(FaultPlan {
        rate_5xx: 1.0,
        ..Default::default()
    });
    let r = h.issue(&csr("f.example", &[]), day(1)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.json["error_code"].as_str().unwrap().starts_with("PCA."));
    assert_eq!(
        h.mock.stats.snapshot().issued.total,
        0,
        "an injected 5xx happens before the operation"
    );
    h.set_faults(FaultPlan {
        latency_ms: 150,
        ..Default::default()
    });
    let t = Instant::now();
    h.call("GET", "/v1/private-certificates", &[], None).await;
    assert!(t.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn faults_drop_after_issue_and_hang() {
    let h = Harness::new();
    // drop_after_issue: issued, then no response.
    h.set_faults(FaultPlan {
        drop_after_issue: 1,
        ..Default::default()
    });
    let key = ec_key();
    let pem = csr_with(&key, "drop.example", |_| {});
    let r = h.issue(&pem, day(1)).await;
    assert!(r.dropped);
    let stats = h.mock.stats.snapshot();
    assert_eq!(stats.issued.total, 1);
    assert_eq!(stats.operations["CreateCertificateByCsr"].by_status["dropped"], 1);
    let listed = h
        .call("GET", "/v1/private-certificates", &[("name", "drop.example")], None)
        .await;
    assert_eq!(listed.json["total"], 1);
    let r = h.issue(&pem, day(1)).await;
    assert!(!r.dropped && r.status == StatusCode::OK);
    // The same key was issued twice: visible in by_public_key.
    let spki_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        crate::ca::parse_csr(&pem).unwrap().spki_der,
    ));
    assert_eq!(h.mock.stats.snapshot().issued.by_public_key[&spki_hash], 2);

    h.set_faults(FaultPlan {
        hang_after_issue_ms: 200,
        ..Default::default()
    });
    let t = Instant::now();
    let r = h.issue(&csr("hang.example", &[]), day(1)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn stats_separate_injected_faults_from_answers() {
    let h = Harness::new();
    h.fail_with_429("ShowCertificate");
    let id = issue_ok(&h, "counted.example").await;
    assert_eq!(
        h.call("GET", &format!("/v1/private-certificates/{id}"), &[], None)
            .await
            .status
            .as_u16(),
        429
    );
    h.set_faults(FaultPlan {
        rate_5xx: 1.0,
        ..Default::default()
    });
    assert_eq!(h.issue(&csr("x.example", &[]), day(1)).await.status.as_u16(), 500);
    h.set_faults(FaultPlan {
        drop_after_issue_rate: 1.0,
        ..Default::default()
    });
    assert!(h.issue(&csr("y.example", &[]), day(1)).await.dropped);
    let s = h.mock.stats.snapshot();
    let issue = &s.operations["CreateCertificateByCsr"];
    assert_eq!((issue.total, issue.answered), (3, 1));
    assert_eq!(issue.injected.server_error, 1);
    assert_eq!(issue.injected.dropped_after_issue, 1);
    let show = &s.operations["ShowCertificate"];
    assert_eq!((show.total, show.answered, show.injected.too_many_requests), (1, 0, 1));
    // Two certificates were really issued (the dropped one included): 2 answered-or-dropped
    // issue calls per 2 certificates, the injected 5xx excluded.
    assert_eq!(s.issued.total, 2);
}

#[tokio::test]
async fn latency_jitter_delays_each_call_within_the_range() {
    let h = Harness::new();
    let plan = FaultPlan {
        latency_ms: 50,
        latency_jitter_ms: 100,
        ..Default::default()
    };
    h.mock.faults.set(plan).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        h.call("GET", "/v1/private-certificates/quotas", &[], None).await;
        assert!(t.elapsed() >= Duration::from_millis(50));
    }
}

#[tokio::test]
async fn max_tps_throttles_with_apigw_0308() {
    let cfg = crate::MockConfig {
        max_tps: Some(3),
        ..default_config()
    };
    let h = Harness::with(cfg, Store::in_memory());
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(h.call("GET", "/v1/private-certificates/quotas", &[], None).await);
    }
    let throttled: Vec<_> = codes
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(throttled.len() >= 2, "{}", throttled.len());
    assert_err(throttled[0], 429, "APIGW.0308");
    let op = &h.mock.stats.snapshot().operations["ShowCertificateQuota"];
    assert_eq!(
        op.throttled as usize,
        throttled.len(),
        "the throttle's 429s are counted"
    );
    assert_eq!(op.by_status["429"] as usize, throttled.len());
    assert_eq!(op.injected.too_many_requests, 0, "and are not injected faults");
}

/// Sustained load (about 40 requests a second for 2.5 s) against `max_tps` 5: per
/// wall-clock second at most 5 answers, the rest 429 `APIGW.0308`, all counted.
#[tokio::test]
async fn max_tps_under_sustained_load() {
    let cfg = crate::MockConfig {
        max_tps: Some(5),
        ..default_config()
    };
    let h = Harness::with(cfg, Store::in_memory());
    let secs = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let begin = std::time::SystemTime::now();
    let mut statuses = Vec::new();
    while begin.elapsed().unwrap() < Duration::from_millis(2500) {
        statuses.push(
            h.call("GET", "/v1/private-certificates/quotas", &[], None)
                .await
                .status
                .as_u16(),
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let touched = secs(std::time::SystemTime::now()) - secs(begin) + 1;
    let ok = statuses.iter().filter(|s| **s == 200).count() as u64;
    let throttled = statuses.iter().filter(|s| **s == 429).count() as u64;
    assert_eq!(ok + throttled, statuses.len() as u64, "{statuses:?}");
    assert!(
        ok <= 5 * touched && ok >= 5 * (touched - 2),
        "{ok} answers in {touched} seconds"
    );
    let op = &h.mock.stats.snapshot().operations["ShowCertificateQuota"];
    assert_eq!(
        (op.throttled, op.by_status["429"], op.answered),
        (throttled, throttled, ok + throttled)
    );
}

#[tokio::test]
async fn oversized_body_is_gateway_413() {
    let h = Harness::new();
    let big = vec![b' '; crate::routes::MAX_BODY + 1];
    assert_err(
        &h.call_raw("POST", "/v1/private-certificates/csr", &big).await,
        413,
        "APIGW.0201",
    );
}

#[tokio::test]
async fn missing_malformed_or_wrong_authorization_is_401() {
    let h = Harness::new();
    let plain = axum::http::Request::builder()
        .uri("/v1/private-certificates")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_err(&h.send(plain).await, 401, "APIGW.0301");
    let junk = axum::http::Request::builder()
        .uri("/v1/private-certificates")
        .header("authorization", "Basic Zm9vOmJhcg==")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_err(&h.send(junk).await, 401, "APIGW.0301");
    let no_domain = signed(AK, SK, None, "GET", "/v1/private-certificates", &[], b"").into_request();
    assert_err(&h.send(no_domain).await, 401, "APIGW.0301");
    let wrong = signed(AK, "bad", Some(DOMAIN), "GET", "/v1/private-certificates", &[], b"").into_request();
    let r = h.send(wrong).await;
    assert_err(&r, 401, "APIGW.0301");
    assert!(r.json["request_id"].is_string());
}

#[tokio::test]
async fn signature_covers_body_and_query() {
    let h = Harness::new();
    // A signature over one body does not cover another.
    let mut s = signed(AK, SK, Some(DOMAIN), "POST", "/v1/private-certificates/csr", &[], b"{}");
    s.body = b"{} ".to_vec();
    assert_err(&h.send(s.into_request()).await, 401, "APIGW.0301");
    // Query parameters are covered by the signature.
    let q = [("limit", "1")];
    let mut s = signed(AK, SK, Some(DOMAIN), "GET", "/v1/private-certificates", &q, b"");
    s.uri = "/v1/private-certificates?limit=2".into();
    assert_err(&h.send(s.into_request()).await, 401, "APIGW.0301");
}

#[tokio::test]
async fn garbage_bodies_get_pca_400() {
    let h = Harness::new();
    // Random bytes in every position never panic.
    for body in [
        &b"\x00\x01\x02"[..],
        b"{\"csr\": 5}",
        b"null",
        b"\"str\"",
        b"{\"issuer_id\": []}",
    ] {
        for path in [
            "/v1/private-certificates/csr",
            "/v1/private-certificate-authorities",
            "/v1/private-certificates/csr/parse",
        ] {
            let r = h.call_raw("POST", path, body).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path} {body:?}");
            assert!(r.json["error_code"].as_str().unwrap().starts_with("PCA."));
        }
    }
}

#[tokio::test]
async fn unmodelled_operations_answer_in_the_pca_shape() {
    let h = Harness::new();
    assert_err(
        &h.call("POST", "/v1/private-certificates", &[], Some(json!({}))).await,
        400,
        "PCA.10010006",
    );
}

#[tokio::test]
async fn state_persists_cas_keys_and_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let (cert_id, ca_der) = {
        let h = Harness::with(default_config(), Store::open(&path).unwrap());
        let id = issue_ok(&h, "persist.example").await;
        let revoke = format!("/v1/private-certificates/{id}/revoke");
        let r = h
            .call("POST", &revoke, &[], Some(json!({"reason": "SUPERSEDED"})))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let ca = h.export_ca(CA_ID).await.json;
        h.mock.store.flush().unwrap();
        (id, ca["certificate"].as_str().unwrap().to_owned())
    };
    assert!(!dir.path().join("state.json.tmp").exists());
    // Reopen: seed_ca sees the existing CA and reuses it (same certificate, same key).
    let h = Harness::with(default_config(), Store::open(&path).unwrap());
    let ca = h.export_ca(CA_ID).await.json;
    assert_eq!(ca["certificate"].as_str().unwrap(), ca_der);
    assert_eq!(h.show_cert(&cert_id).await["status"], "REVOKED");
    // The reloaded key still signs, and the leaf chains to the persisted CA cert.
    let id = issue_ok(&h, "after-restart.example").await;
    let exp = h.export_cert(&id).await.json;
    let leaf_der = &pem_ders(exp["certificate"].as_str().unwrap())[0];
    let ca_der_bytes = &pem_ders(&ca_der)[0];
    let leaf = X509Certificate::from_der(leaf_der).unwrap().1;
    let ca_cert = X509Certificate::from_der(ca_der_bytes).unwrap().1;
    leaf.verify_signature(Some(ca_cert.public_key())).unwrap();
    assert_eq!(h.mock.store.all_cas().len(), 2);
    // A corrupt state file is an error, not a silent reset.
    std::fs::write(&path, b"{not json").unwrap();
    assert!(Store::open(&path).is_err());
}

/// 200 simultaneous TCP connections against the real accept loop, each doing a signed
/// request; every one gets a valid answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_200_concurrent_connections() {
    let h = Harness::new();
    let (addr, tx, server) = h.listen().await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(200));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            barrier.wait().await;
            let req = if i % 2 == 0 {
                let body = serde_json::to_vec(&json!({"issuer_id": CA_ID, "csr": csr(&format!("c{i}.example"), &[]), "validity": {"type": "DAY", "value": 1}})).unwrap();
                signed(AK, SK, Some(DOMAIN), "POST", "/v1/private-certificates/csr", &[], &body)
            } else {
                signed(AK, SK, Some(DOMAIN), "GET", &format!("/v1/private-certificate-authorities/{CA_ID}"), &[], b"")
            };
            s.write_all(&req.to_http1()).await.unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.unwrap();
            parse_http1(&buf).unwrap()
        }));
    }
    for t in tasks {
        let (status, json) = tokio::time::timeout(Duration::from_secs(60), t).await.unwrap().unwrap();
        assert_eq!(status, 200, "{json}");
    }
    assert_eq!(h.mock.stats.snapshot().issued.total, 100);
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// Over a real socket, `drop_after_issue` closes the connection with no response bytes.
#[tokio::test]
async fn drop_after_issue_closes_the_socket_without_response() {
    let h = Harness::new();
    let (addr, tx, server) = h.listen().await;
    h.set_faults(FaultPlan {
        drop_after_issue: 1,
        ..Default::default()
    });
    let body =
        serde_json::to_vec(&json!({"issuer_id": CA_ID, "csr": csr("sock.example", &[]), "validity": day(1)})).unwrap();
    let req = signed(AK, SK, Some(DOMAIN), "POST", "/v1/private-certificates/csr", &[], &body).to_http1();
    assert!(http1_exchange(addr, &req).await.is_none());
    assert_eq!(h.mock.stats.snapshot().issued.total, 1);
    let again = http1_exchange(addr, &req).await.unwrap();
    assert_eq!(again.0, 200);
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
