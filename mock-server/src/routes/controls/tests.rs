//! The `/_mock/` API.

use axum::http::StatusCode;
use serde_json::json;

use crate::test_support::*;

fn default_plan() -> serde_json::Value {
    json!({"latency_ms":0,"latency_jitter_ms":0,"rate_429":0.0,"rate_5xx":0.0,"drop_after_issue":0,"drop_after_issue_rate":0.0,"hang_after_issue_ms":0,"operations":null,"pass_first":0,"hostile":null,"null_fields":null})
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
        json!({"operations": {}, "issued": {"total": 0, "by_public_key": {}}, "redirects_followed": 0})
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

#[tokio::test]
async fn outage_closes_huawei_requests_until_it_ends_and_controls_stay_up() {
    let h = Harness::new();
    let r = h
        .send(control("POST", "/_mock/outage", r#"{"duration_ms":60000}"#))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["active"], true);
    assert!(r.json["remaining_ms"].as_u64().unwrap() > 59_000);
    let during = h.call("GET", "/v1/private-certificates", &[], None).await;
    assert!(during.dropped, "{:?}", during.status);
    let during = h.issue(&csr("outage.example", &[]), day(1)).await;
    assert!(during.dropped);
    assert_eq!(
        h.mock.stats.snapshot().issued.total,
        0,
        "nothing is issued during an outage"
    );
    assert_eq!(h.send(control("GET", "/_mock/outage", "")).await.json["active"], true);
    let r = h.send(control("DELETE", "/_mock/outage", "")).await;
    assert_eq!(r.json, json!({"active": false, "remaining_ms": 0}));
    let after = h.call("GET", "/v1/private-certificates", &[], None).await;
    assert_eq!(after.status, StatusCode::OK);
    let s = h.send(control("GET", "/_mock/stats", "")).await.json;
    assert_eq!(s["operations"]["ListCertificate"]["injected"]["outage"], 1);
    assert_eq!(s["operations"]["ListCertificate"]["answered"], 1);
    assert_eq!(s["operations"]["CreateCertificateByCsr"]["by_status"]["dropped"], 1);
    for bad in ["", "{}", r#"{"duration_ms":-1}"#, r#"{"duration_ms":1,"x":1}"#] {
        let r = h.send(control("POST", "/_mock/outage", bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn outage_ends_by_itself() {
    let h = Harness::new();
    let r = h.send(control("POST", "/_mock/outage", r#"{"duration_ms":100}"#)).await;
    assert_eq!(r.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(
        h.call("GET", "/v1/private-certificates", &[], None).await.status,
        StatusCode::OK
    );
}
