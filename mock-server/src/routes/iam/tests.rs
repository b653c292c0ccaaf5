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
