//! IAM domain discovery and the console flags.

use axum::http::StatusCode;

use crate::test_support::*;

#[tokio::test]
async fn iam_domains_need_no_domain_header() {
    let h = Harness::new();
    let r = h
        .send(signed(AK, SK, None, "GET", "/v3/auth/domains", &[], b"").into_request())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["domains"][0]["id"], DOMAIN);
    assert!(r.json["domains"][0]["name"].is_string());
}

#[tokio::test]
async fn console_config_says_no_sm2() {
    let h = Harness::new();
    let r = h.call("GET", "/v1/pca/config/console", &[], None).await;
    assert_eq!(r.json["is_support_sm2"], false);
}

fn config_no_domain() -> crate::MockConfig {
    crate::MockConfig {
        iam_lists_no_domain: true,
        ..default_config()
    }
}

#[tokio::test]
async fn iam_can_list_no_domain() {
    let h = Harness::with(config_no_domain(), crate::state::Store::in_memory());
    let r = h
        .send(signed(AK, SK, None, "GET", "/v3/auth/domains", &[], b"").into_request())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["domains"], serde_json::json!([]));
}

#[tokio::test]
async fn sts_caller_identity_gives_the_account_as_strings() {
    let h = Harness::with(config_no_domain(), crate::state::Store::in_memory());
    let r = h
        .send(signed(AK, SK, None, "GET", "/v5/caller-identity", &[], b"").into_request())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["account_id"], DOMAIN);
    assert!(r.json.as_object().unwrap().values().all(serde_json::Value::is_string));
    let unsigned = axum::http::Request::builder()
        .uri("/v5/caller-identity")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_err(&h.send(unsigned).await, 401, "APIGW.0301");
}
