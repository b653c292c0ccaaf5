//! CreateCertificateByCsr, ParseCertificateSigningRequest, Show/Export/Revoke/Delete
//! certificate, through the real router.

use axum::http::StatusCode;
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::test_support::*;

#[tokio::test]
async fn issue_then_export_gives_crlf_chain_issuer_to_root() {
    let h = Harness::new();
    let key = ec_key();
    let pem = csr_with(&key, "svc.example", |p| {
        p.subject_alt_names = vec![rcgen::SanType::DnsName("svc.example".try_into().unwrap())];
    });
    let r = h.issue(&pem, day(30)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let id = r.json["certificate_id"].as_str().unwrap();
    assert!(r.headers.get("x-request-id").is_some());

    let exp = h.export_cert(id).await;
    assert_eq!(exp.status, StatusCode::OK, "{}", exp.json);
    let cert = exp.json["certificate"].as_str().unwrap();
    let chain = exp.json["certificate_chain"].as_str().unwrap();
    for p in [cert, chain] {
        assert!(p.contains("\r\n") && !p.replace("\r\n", "").contains('\n'));
    }
    let leaf_der = &pem_ders(cert)[0];
    let chain_ders = pem_ders(chain);
    assert_eq!(chain_ders.len(), 2);
    let leaf = X509Certificate::from_der(leaf_der).unwrap().1;
    let sub = X509Certificate::from_der(&chain_ders[0]).unwrap().1;
    let root = X509Certificate::from_der(&chain_ders[1]).unwrap().1;
    leaf.verify_signature(Some(sub.public_key())).unwrap();
    sub.verify_signature(Some(root.public_key())).unwrap();
    root.verify_signature(None).unwrap();
    assert_eq!(
        leaf.tbs_certificate.issuer.as_raw(),
        sub.tbs_certificate.subject.as_raw()
    );
    assert_eq!(leaf.validity().time_to_expiration().map(|d| d.whole_days()), Some(29));
    assert_eq!(
        (leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp()),
        30 * 86_400
    );
}

#[tokio::test]
async fn export_accepts_bool_is_compressed_and_refuses_missing_or_bad_fields() {
    let h = Harness::new();
    let id = issue_ok(&h, "svc.example").await;
    let path = format!("/v1/private-certificates/{id}/export");
    let export = |body: Value| h.call("POST", &path, &[], Some(body));
    // Bool is_compressed is accepted too (terraform sends bools).
    let exp2 = export(json!({"is_compressed": false, "type": "NGINX"})).await;
    assert_eq!(exp2.status, StatusCode::OK);
    // Missing/invalid fields.
    assert_err(&export(json!({"type": "OTHER"})).await, 400, "PCA.00020001");
    assert_err(
        &export(json!({"is_compressed": "no", "type": "OTHER"})).await,
        400,
        "PCA.00020001",
    );
}

#[tokio::test]
async fn show_certificate_fields_and_types() {
    let h = Harness::new();
    let r = h.issue(&csr("svc.example", &["svc.example"]), day(30)).await;
    let id = r.json["certificate_id"].as_str().unwrap();
    let exp = h.export_cert(id).await;
    let leaf_der = &pem_ders(exp.json["certificate"].as_str().unwrap())[0];
    let leaf = X509Certificate::from_der(leaf_der).unwrap().1;
    let show = h
        .call("GET", &format!("/v1/private-certificates/{id}"), &[], None)
        .await;
    assert_eq!(show.status, StatusCode::OK);
    let s = &show.json;
    assert_eq!(s["status"], "ISSUED");
    assert_eq!(s["issuer_id"], CA_ID);
    assert_eq!(s["gen_mode"], "CSR");
    assert_eq!(s["key_algorithm"], "EC256");
    assert_eq!(s["signature_algorithm"], "SHA384");
    assert_eq!(s["distinguished_name"]["common_name"], "svc.example");
    for k in ["create_time", "not_before", "not_after", "delete_time", "freeze_flag"] {
        assert!(s[k].is_i64(), "{k}");
    }
    assert_eq!(
        s["not_before"].as_i64().unwrap(),
        leaf.validity().not_before.timestamp() * 1000
    );
    assert_eq!(
        s["serial_number"].as_str().unwrap(),
        leaf.tbs_certificate.serial.to_str_radix(16)
    );
}

#[tokio::test]
async fn refusals_unsupported_keys_and_bad_csrs() {
    let h = Harness::new();
    for name in ["rsa1024", "rsa3072", "p521", "ed25519"] {
        let r = h.issue(&fixture(name), day(30)).await;
        assert_err(&r, 400, "PCA.00020102");
    }
    for name in ["rsa2048", "rsa4096"] {
        let r = h.issue(&fixture(name), day(30)).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.json);
    }
    // Garbage and a broken self-signature.
    assert_err(&h.issue("not a csr", day(1)).await, 400, "PCA.00020001");
    let good = csr("tamper.example", &[]);
    let mut der = pem::parse(&good).unwrap().into_contents();
    let n = der.len();
    der[n - 3] ^= 0x40;
    let bad = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    assert_err(&h.issue(&bad, day(1)).await, 400, "PCA.00020001");
    // No CN.
    assert_err(&h.issue(&csr("", &["nocn.example"]), day(1)).await, 400, "PCA.00020101");
    // Nothing was issued.
    assert_eq!(h.mock.stats.snapshot().issued.total, 2);
}

fn issue_from(issuer: &str) -> Value {
    json!({"issuer_id": issuer, "csr": csr("s.example", &[]), "validity": day(1)})
}

#[tokio::test]
async fn refusals_ca_id_and_ca_state() {
    let h = Harness::new();
    assert_err(&h.issue_body(issue_from("NOT-A-UUID")).await, 400, "PCA.00020201");
    assert_err(
        &h.issue_body(issue_from("00000000-0000-0000-0000-000000000000")).await,
        400,
        "PCA.10010002",
    );
    // Disabled CA cannot issue; re-enabled can.
    let r = h
        .call(
            "POST",
            &format!("/v1/private-certificate-authorities/{CA_ID}/disable"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_err(&h.issue_body(issue_from(CA_ID)).await, 400, "PCA.10010003");
    let r = h
        .call(
            "POST",
            &format!("/v1/private-certificate-authorities/{CA_ID}/enable"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(h.issue_body(issue_from(CA_ID)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn refusals_of_bad_bodies() {
    let h = Harness::new();
    let path = "/v1/private-certificates/csr";
    for raw in [&b""[..], b"{not json", b"[1,2]", &[0xff, 0xfe, 0x00]] {
        assert_err(&h.call_raw("POST", path, raw).await, 400, "PCA.00020001");
    }
    let r = h.issue_body(json!({"issuer_id": CA_ID, "validity": day(1)})).await;
    assert_err(&r, 400, "PCA.00020001");
    let mut b = issue_from(CA_ID);
    b["type"] = json!("SOMETHING");
    assert_err(&h.issue_body(b).await, 400, "PCA.00020001");
    // Body SANs are ignored (reserved field).
    let mut b = issue_from(CA_ID);
    b["subject_alternative_names"] = json!([{"type": "DNS", "value": "ignored.example"}]);
    assert_eq!(h.issue_body(b).await.status, StatusCode::OK);
}

fn intermediate(issuer: &str, path_length: Option<i64>) -> Value {
    let mut b =
        json!({"issuer_id": issuer, "csr": csr("int.example", &[]), "validity": day(10), "type": "INTERMEDIATE_CA"});
    if let Some(pl) = path_length {
        b["path_length"] = json!(pl);
    }
    b
}

#[tokio::test]
async fn intermediate_path_length_must_be_below_the_issuers() {
    let h = Harness::new();
    // Seeded sub-CA has path_length 1: requested must be < 1.
    assert_err(&h.issue_body(intermediate(CA_ID, Some(1))).await, 400, "PCA.00020203");
    // A PCA-hosted sub-CA with path_length 0 cannot issue INTERMEDIATE_CA at all...
    let r = h
        .create_ca(json!({
            "type": "SUBORDINATE", "key_algorithm": "EC256", "issuer_id": CA_ID, "signature_algorithm": "SHA256",
            "validity": {"type": "YEAR", "value": 1}, "path_length": 0,
            "distinguished_name": {"common_name": "leafonly", "country": "CN", "state": "GD", "locality": "SZ", "organization": "o", "organizational_unit": "ou"}
        }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let leaf_only = r.json["ca_id"].as_str().unwrap().to_owned();
    assert_err(&h.issue_body(intermediate(&leaf_only, None)).await, 400, "PCA.00020203");
    // ...but can issue leaves.
    let r = h.issue_body(issue_from(&leaf_only)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn intermediate_is_shown_and_exported_as_a_ca() {
    let h = Harness::new();
    let r = h.issue_body(intermediate(CA_ID, None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let int_id = r.json["certificate_id"].as_str().unwrap().to_owned();
    let show = h
        .call(
            "GET",
            &format!("/v1/private-certificate-authorities/{int_id}"),
            &[],
            None,
        )
        .await;
    assert_eq!(show.status, StatusCode::OK);
    assert_eq!(show.json["ca_id"], int_id.as_str());
    assert_eq!(show.json["gen_mode"], "CSR");
    assert_eq!(show.json["type"], "SUBORDINATE");
    assert_eq!(show.json["path_length"], 0);
    assert_eq!(show.json["issuer_id"], CA_ID);
    let exp = h.export_ca(&int_id).await;
    assert_eq!(exp.status, StatusCode::OK);
    let der = &pem_ders(exp.json["certificate"].as_str().unwrap())[0];
    let cert = X509Certificate::from_der(der).unwrap().1;
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca && bc.path_len_constraint == Some(0));
    assert_eq!(pem_ders(exp.json["certificate_chain"].as_str().unwrap()).len(), 2);
    // Its key is on the user side: it cannot issue.
    assert_err(&h.issue_body(issue_from(&int_id)).await, 400, "PCA.10010003");
}

#[tokio::test]
async fn intermediate_is_not_listed_and_uses_no_quota() {
    let h = Harness::new();
    let quota_before = h
        .call("GET", "/v1/private-certificate-authorities/quotas", &[], None)
        .await
        .json;
    let certs_before = h.mock.store.cert_count();
    let r = h.issue_body(intermediate(CA_ID, None)).await;
    let int_id = r.json["certificate_id"].as_str().unwrap().to_owned();
    let cas = h
        .call("GET", "/v1/private-certificate-authorities", &[("limit", "1000")], None)
        .await
        .json;
    let listed_cas = cas["certificate_authorities"].as_array().unwrap();
    assert!(listed_cas.iter().all(|c| c["ca_id"] != int_id.as_str()));
    let certs = h
        .call("GET", "/v1/private-certificates", &[("limit", "1000")], None)
        .await
        .json;
    let listed_certs = certs["certificates"].as_array().unwrap();
    assert!(listed_certs.iter().all(|c| c["certificate_id"] != int_id.as_str()));
    assert_eq!(h.mock.store.cert_count(), certs_before);
    let quota_after = h
        .call("GET", "/v1/private-certificate-authorities/quotas", &[], None)
        .await
        .json;
    assert_eq!(quota_before, quota_after);
    assert_err(
        &h.call("GET", &format!("/v1/private-certificates/{int_id}"), &[], None)
            .await,
        400,
        "PCA.10010002",
    );
}

#[tokio::test]
async fn revoke_and_delete() {
    let h = Harness::new();
    let id = issue_ok(&h, "rv.example").await;
    let path = format!("/v1/private-certificates/{id}/revoke");
    // Empty body is an error; `{}` is required when there is no reason.
    assert_err(&h.call_raw("POST", &path, b"").await, 400, "PCA.00020001");
    assert_err(
        &h.call("POST", &path, &[], Some(json!({"reason": "BORED"}))).await,
        400,
        "PCA.00020001",
    );
    let r = h.call("POST", &path, &[], Some(json!({"reason": "SUPERSEDED"}))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.json, Value::Null);
    assert_err(&h.call("POST", &path, &[], Some(json!({}))).await, 400, "PCA.10010005");
    let r = h
        .call("DELETE", &format!("/v1/private-certificates/{id}"), &[], None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_err(
        &h.call("DELETE", &format!("/v1/private-certificates/{id}"), &[], None)
            .await,
        400,
        "PCA.10010002",
    );
    assert_err(
        &h.call("GET", &format!("/v1/private-certificates/{id}"), &[], None)
            .await,
        400,
        "PCA.10010002",
    );
    assert_err(
        &h.call("GET", "/v1/private-certificates/abc", &[], None).await,
        400,
        "PCA.00020001",
    );
}

#[tokio::test]
async fn parse_csr_reports_key_signature_and_subject() {
    let h = Harness::new();
    let r = h
        .call(
            "POST",
            "/v1/private-certificates/csr/parse",
            &[],
            Some(json!({"csr": fixture("rsa2048")})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["key_algorithm"], "RSA");
    assert_eq!(r.json["key_algorithm_length"], 2048);
    assert_eq!(r.json["signature_algorithm"], "SHA256withRSA");
    assert!(
        r.json["public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\r\n")
    );
    assert_eq!(r.json["distinguished_name"]["common_name"], "rsa2048.example");
}

#[tokio::test]
async fn lenient_cn_rule_issues_san_only_csrs() {
    let cfg = crate::MockConfig {
        csr_cn_rule: crate::ca::CnRule::Lenient,
        ..default_config()
    };
    let h = Harness::with(cfg, crate::state::Store::in_memory());
    let r = h.issue(&csr("", &["san-only.example"]), day(1)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let show = h.show_cert(r.json["certificate_id"].as_str().unwrap()).await;
    assert!(show["distinguished_name"]["common_name"].is_null());
    let parsed = h
        .call(
            "POST",
            "/v1/private-certificates/csr/parse",
            &[],
            Some(json!({"csr": csr("", &["p.example"])})),
        )
        .await;
    assert_eq!(parsed.status, StatusCode::OK);
}
