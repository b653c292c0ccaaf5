//! ListCertificate and ListCertificateAuthority: filters, sorting, paging, bad parameters.

use axum::http::StatusCode;
use serde_json::json;

use crate::test_support::*;

#[tokio::test]
async fn certificates_sort_and_page() {
    let h = Harness::new();
    for cn in ["b-list.example", "a-list.example", "c-list.example"] {
        issue_ok(&h, cn).await;
    }
    let q = [
        ("name", "list.example"),
        ("sort_key", "common_name"),
        ("sort_dir", "ASC"),
    ];
    let r = h.call("GET", "/v1/private-certificates", &q, None).await;
    assert_eq!(r.json["total"], 3);
    let names: Vec<&str> = r.json["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["distinguished_name"]["common_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-list.example", "b-list.example", "c-list.example"]);
    let q = [
        ("limit", "1"),
        ("offset", "1"),
        ("sort_key", "common_name"),
        ("sort_dir", "DESC"),
    ];
    let r = h.call("GET", "/v1/private-certificates", &q, None).await;
    assert_eq!(r.json["total"], 3);
    assert_eq!(
        r.json["certificates"][0]["distinguished_name"]["common_name"],
        "b-list.example"
    );
    let r = h
        .call("GET", "/v1/private-certificates", &[("offset", "10")], None)
        .await;
    assert_eq!(r.json["certificates"].as_array().unwrap().len(), 0);
    assert_eq!(r.json["total"], 3);
    // Default limit is 10.
    for i in 0..9 {
        issue_ok(&h, &format!("bulk{i}.example")).await;
    }
    assert_eq!(
        h.call("GET", "/v1/private-certificates", &[], None).await.json["certificates"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
}

#[tokio::test]
async fn certificates_by_status_and_bad_parameters() {
    let h = Harness::new();
    let revoked = issue_ok(&h, "b-list.example").await;
    issue_ok(&h, "a-list.example").await;
    let r = h
        .call(
            "POST",
            &format!("/v1/private-certificates/{revoked}/revoke"),
            &[],
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .call("GET", "/v1/private-certificates", &[("status", "REVOKED")], None)
        .await;
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["certificates"][0]["certificate_id"], revoked.as_str());
    for q in [
        ("limit", "1001"),
        ("limit", "x"),
        ("offset", "-1"),
        ("status", "NOPE"),
        ("sort_key", "serial"),
        ("sort_dir", "UP"),
    ] {
        assert_err(
            &h.call("GET", "/v1/private-certificates", &[q], None).await,
            400,
            "PCA.00020001",
        );
    }
}

#[tokio::test]
async fn certificate_authorities_by_type_name_and_status() {
    let h = Harness::new();
    let r = h
        .call("GET", "/v1/private-certificate-authorities", &[("type", "ROOT")], None)
        .await;
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["certificate_authorities"][0]["path_length"], 7);
    assert!(r.json["certificate_authorities"][0]["issuer_id"].is_null());
    let q = [("name", "Sub CA"), ("status", "ACTIVED")];
    let r = h.call("GET", "/v1/private-certificate-authorities", &q, None).await;
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["certificate_authorities"][0]["ca_id"], CA_ID);
    assert_err(
        &h.call("GET", "/v1/private-certificate-authorities", &[("type", "LEAF")], None)
            .await,
        400,
        "PCA.00020202",
    );
}
