//! The `/_mock/` API.

use axum::http::StatusCode;
use serde_json::json;

use crate::test_support::*;

fn default_plan() -> serde_json::Value {
    json!({"latency_ms":0,"rate_429":0.0,"rate_5xx":0.0,"drop_after_issue":0,"hang_after_issue_ms":0,"operations":null})
}

#[tokio::test]
async fn health_and_fault_plan_round_trip() {
    let h = Harness::new();
    let r = h.send(control("GET", "/_mock/health", "")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["status"], "ok");
    assert_eq!(h.send(control("GET", "/_mock/faults", "")).await.json, default_plan());
    let r = h
        .send(control(
            "POST",
            "/_mock/faults",
            r#"{"drop_after_issue":3,"operations":["ListCertificate"]}"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["drop_after_issue"], 3);
    for bad in [r#"{"rate_429":2}"#, "garbage"] {
        let r = h.send(control("POST", "/_mock/faults", bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        h.send(control("DELETE", "/_mock/faults", "")).await.json,
        default_plan()
    );
}

#[tokio::test]
async fn stats_count_operations_and_issuance_and_reset() {
    let h = Harness::new();
    issue_ok(&h, "stats.example").await;
    h.call("GET", "/v1/nope", &[], None).await;
    let s = h.send(control("GET", "/_mock/stats", "")).await.json;
    assert_eq!(s["operations"]["CreateCertificateByCsr"]["total"], 1);
    assert_eq!(s["operations"]["CreateCertificateByCsr"]["by_status"]["200"], 1);
    assert_eq!(s["operations"]["Unknown"]["by_status"]["404"], 1);
    assert_eq!(s["issued"]["total"], 1);
    assert_eq!(s["issued"]["by_public_key"].as_object().unwrap().len(), 1);
    let r = h.send(control("POST", "/_mock/stats/reset", "")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let s = h.send(control("GET", "/_mock/stats", "")).await.json;
    assert_eq!(
        s,
        json!({"operations": {}, "issued": {"total": 0, "by_public_key": {}}})
    );
}

#[tokio::test]
async fn mock_controls_refuse_non_loopback_peers() {
    let h = Harness::new();
    let mut req = control("GET", "/_mock/stats", "");
    req.extensions_mut()
        .insert(crate::PeerAddr("192.0.2.10:5555".parse().unwrap()));
    let r = h.send(req).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.json["error"].is_string());
    for peer in ["127.0.0.1:5555", "[::1]:5555", "[::ffff:127.0.0.1]:5555"] {
        let mut req = control("GET", "/_mock/health", "");
        req.extensions_mut().insert(crate::PeerAddr(peer.parse().unwrap()));
        assert_eq!(h.send(req).await.status, StatusCode::OK, "{peer}");
    }
}
