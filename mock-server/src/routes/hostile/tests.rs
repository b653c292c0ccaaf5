//! Each hostile mode, through the router: the answer is wrong in the promised way, and
//! nothing else changes.

use axum::http::StatusCode;
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::faults::{FaultPlan, HostileMode, HostilePlan};
use crate::test_support::*;

fn hostile(h: &Harness, mode: HostileMode, operations: Option<&[&str]>) {
    let plan = HostilePlan {
        mode,
        operations: operations.map(|o| o.iter().map(|s| (*s).to_owned()).collect()),
        count: None,
        bytes: None,
    };
    h.mock
        .faults
        .set(FaultPlan {
            hostile: Some(plan),
            ..Default::default()
        })
        .unwrap();
}

fn certs(pem: &Value) -> Vec<Vec<u8>> {
    pem_ders(pem.as_str().unwrap())
}

#[tokio::test]
async fn wrong_key_export_is_signed_by_the_ca_for_another_key() {
    let h = Harness::new();
    let key = ec_key();
    let id = {
        let r = h.issue(&csr_with(&key, "wk.example", |_| {}), day(1)).await;
        r.json["certificate_id"].as_str().unwrap().to_owned()
    };
    hostile(&h, HostileMode::WrongKey, None);
    let exp = h.export_cert(&id).await;
    assert_eq!(exp.status, StatusCode::OK);
    let leaf_der = &certs(&exp.json["certificate"])[0];
    let chain = certs(&exp.json["certificate_chain"]);
    let (leaf, sub) = (
        X509Certificate::from_der(leaf_der).unwrap().1,
        X509Certificate::from_der(&chain[0]).unwrap().1,
    );
    leaf.verify_signature(Some(sub.public_key())).unwrap();
    assert_ne!(
        leaf.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );
    let s = h.mock.stats.snapshot();
    assert_eq!(s.operations["ExportCertificate"].injected.hostile, 1);
    assert_eq!(s.operations["ExportCertificate"].answered, 0);
}

#[tokio::test]
async fn unlinked_chain_names_link_but_signatures_do_not() {
    let h = Harness::new();
    let id = issue_ok(&h, "ul.example").await;
    hostile(&h, HostileMode::UnlinkedChain, None);
    let exp = h.export_cert(&id).await;
    let leaf_der = &certs(&exp.json["certificate"])[0];
    let chain = certs(&exp.json["certificate_chain"]);
    assert_eq!(chain.len(), 2);
    let leaf = X509Certificate::from_der(leaf_der).unwrap().1;
    let sub = X509Certificate::from_der(&chain[0]).unwrap().1;
    assert_eq!(leaf.issuer().as_raw(), sub.subject().as_raw());
    assert!(leaf.verify_signature(Some(sub.public_key())).is_err());
}

#[tokio::test]
async fn chain_loop_on_the_ca_export() {
    let h = Harness::new();
    hostile(&h, HostileMode::ChainLoop, None);
    let exp = h.export_ca(CA_ID).await;
    assert_eq!(exp.status, StatusCode::OK, "{}", exp.json);
    let chain = certs(&exp.json["certificate_chain"]);
    let (a, b) = (
        X509Certificate::from_der(&chain[0]).unwrap().1,
        X509Certificate::from_der(&chain[1]).unwrap().1,
    );
    a.verify_signature(Some(b.public_key())).unwrap();
    b.verify_signature(Some(a.public_key())).unwrap();
    let sub_der = certs(&exp.json["certificate"]).remove(0);
    let sub = X509Certificate::from_der(&sub_der).unwrap().1;
    sub.verify_signature(Some(a.public_key())).unwrap();
}

#[tokio::test]
async fn huge_chain_has_10000_certificates() {
    let h = Harness::new();
    let id = issue_ok(&h, "hc.example").await;
    hostile(&h, HostileMode::HugeChain, Some(&["ExportCertificate"]));
    let exp = h.export_cert(&id).await;
    assert_eq!(certs(&exp.json["certificate_chain"]).len(), 10_000);
    // The CA export is not selected: honest.
    assert_eq!(certs(&h.export_ca(CA_ID).await.json["certificate_chain"]).len(), 1);
}

#[tokio::test]
async fn non_utf8_bytes_inside_a_string() {
    let h = Harness::new();
    issue_ok(&h, "nu.example").await;
    hostile(&h, HostileMode::NonUtf8, None);
    let r = h
        .send_raw(signed(AK, SK, Some(DOMAIN), "GET", "/v1/private-certificates", &[], b"").into_request())
        .await;
    assert_eq!(r.0, StatusCode::OK);
    assert!(std::str::from_utf8(&r.1).is_err(), "the body is not UTF-8");
    // Only the bytes are wrong: decoded leniently, it is the honest list.
    let lossy: Value = serde_json::from_str(&String::from_utf8_lossy(&r.1)).unwrap();
    assert!(
        lossy["certificates"][0]["certificate_id"]
            .as_str()
            .unwrap()
            .ends_with('\u{FFFD}')
    );
    assert_eq!(lossy["total"], 1);
}

#[tokio::test]
async fn nulls_in_every_field() {
    let h = Harness::new();
    issue_ok(&h, "nl.example").await;
    hostile(&h, HostileMode::Nulls, None);
    let r = h.call("GET", "/v1/private-certificates", &[], None).await;
    assert_eq!(r.json["total"], Value::Null);
    let item = &r.json["certificates"][0];
    assert!(
        item["distinguished_name"]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_null)
    );
    assert!(item["certificate_id"].is_null() && item["not_after"].is_null());
    let exp = h.export_ca(CA_ID).await;
    assert_eq!(exp.json, json!({"certificate": null, "certificate_chain": null}));
}

#[tokio::test]
async fn wrong_json_types() {
    let h = Harness::new();
    issue_ok(&h, "wt.example").await;
    hostile(&h, HostileMode::WrongTypes, Some(&["ListCertificate"]));
    let r = h.call("GET", "/v1/private-certificates", &[], None).await;
    assert_eq!(r.json["total"], "1");
    let first = &r.json["certificates"]["0"];
    assert!(first.is_array(), "{first}");
    assert!(
        first.as_array().unwrap().iter().any(Value::is_number),
        "strings became numbers"
    );
}

#[tokio::test]
async fn huge_body_is_4_mib() {
    let h = Harness::new();
    hostile(&h, HostileMode::HugeBody, None);
    let r = h.export_ca(CA_ID).await;
    let body_len = r.json.to_string().len();
    assert!(
        (4 * 1024 * 1024 - 64..=4 * 1024 * 1024 + 64).contains(&body_len),
        "{body_len}"
    );
    assert!(
        r.json["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
}

#[tokio::test]
async fn redirect_points_at_a_counted_loopback_url() {
    let h = Harness::new();
    hostile(&h, HostileMode::Redirect, None);
    let r = h
        .send_raw(signed(AK, SK, Some(DOMAIN), "GET", "/v1/private-certificates", &[], b"").into_request())
        .await;
    assert_eq!(r.0, StatusCode::FOUND);
    let location = r.2.get("location").unwrap().to_str().unwrap().to_owned();
    assert_eq!(location, "http://mock.test/_mock/redirected/v1/private-certificates");
    let follow = h
        .send(control("GET", "/_mock/redirected/v1/private-certificates", ""))
        .await;
    assert_eq!(follow.status, StatusCode::CONFLICT);
    assert_eq!(h.mock.stats.snapshot().redirects_followed, 1);
}

#[tokio::test]
async fn huge_certificate_id_on_issue_after_a_real_issuance() {
    let h = Harness::new();
    hostile(&h, HostileMode::HugeCertificateId, None);
    let r = h.issue(&csr("hid.example", &[]), day(1)).await;
    assert_eq!(r.status, StatusCode::OK);
    let id = r.json["certificate_id"].as_str().unwrap();
    assert_eq!(id.len(), 100_000);
    assert_eq!(
        h.mock.stats.snapshot().issued.total,
        1,
        "the certificate was really issued"
    );
}

#[tokio::test]
async fn hostile_plan_is_validated_and_visible() {
    let h = Harness::new();
    let body = r#"{"hostile":{"mode":"huge_chain","count":0}}"#;
    assert_eq!(
        h.send(control("POST", "/_mock/faults", body)).await.status,
        StatusCode::BAD_REQUEST
    );
    let body = r#"{"hostile":{"mode":"teapot"}}"#;
    assert_eq!(
        h.send(control("POST", "/_mock/faults", body)).await.status,
        StatusCode::BAD_REQUEST
    );
    let body = r#"{"hostile":{"mode":"chain_loop","operations":["ExportCertificate"]}}"#;
    let r = h.send(control("POST", "/_mock/faults", body)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["hostile"]["mode"], "chain_loop");
}

#[tokio::test]
async fn null_fields_by_name_and_operation() {
    let h = Harness::new();
    let id = issue_ok(&h, "nf.example").await;
    let body = r#"{"null_fields":{"fields":["distinguished_name","total","issuer_name"],"operations":["ShowCertificate","ListCertificate"]}}"#;
    assert_eq!(
        h.send(control("POST", "/_mock/faults", body)).await.status,
        StatusCode::OK
    );
    let show = h.show_cert(&id).await;
    assert!(show["distinguished_name"].is_null() && show["issuer_name"].is_null());
    assert_eq!(show["certificate_id"], id.as_str(), "other fields stay");
    let list = h.call("GET", "/v1/private-certificates", &[], None).await.json;
    assert!(list["total"].is_null() && list["certificates"][0]["distinguished_name"].is_null());
    // Other operations are untouched, and the answers count as the service's.
    assert!(h.show_ca(CA_ID).await["distinguished_name"].is_object());
    assert_eq!(h.mock.stats.snapshot().operations["ShowCertificate"].answered, 1);
}

#[tokio::test]
async fn null_fields_star_nulls_every_field() {
    let h = Harness::new();
    let body = r#"{"null_fields":{"fields":["*"]}}"#;
    assert_eq!(
        h.send(control("POST", "/_mock/faults", body)).await.status,
        StatusCode::OK
    );
    let show = h.show_ca(CA_ID).await;
    assert!(
        show["crl_configuration"]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_null)
    );
    assert!(show["ca_id"].is_null() && show["not_after"].is_null());
    assert!(show.as_object().unwrap().contains_key("cluster_id"));
}
