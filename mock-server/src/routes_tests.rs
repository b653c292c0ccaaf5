//! Handler-level tests through the real router (no sockets unless stated).

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::test_support::{csr, csr_with, ec_key};
use crate::state::Store;
use crate::test_support::*;

fn day(n: i64) -> Value {
    json!({"type": "DAY", "value": n})
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/testdata/{name}.csr", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn assert_err(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.json);
    assert_eq!(r.json["error_code"], code, "{}", r.json);
    assert!(r.json["error_msg"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(r.headers.get("x-request-id").is_some());
}

fn pem_ders(pem: &str) -> Vec<Vec<u8>> {
    pem::parse_many(pem)
        .unwrap()
        .into_iter()
        .map(|p| p.into_contents())
        .collect()
}

async fn issue_ok(h: &Harness, cn: &str) -> String {
    let r = h.issue(&csr(cn, &[cn]), day(30)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json["certificate_id"].as_str().unwrap().to_owned()
}

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

    let exp = h
        .call(
            "POST",
            &format!("/v1/private-certificates/{id}/export"),
            &[],
            Some(json!({"is_compressed": "false", "type": "OTHER"})),
        )
        .await;
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

    // Bool is_compressed is accepted too (terraform sends bools).
    let exp2 = h
        .call(
            "POST",
            &format!("/v1/private-certificates/{id}/export"),
            &[],
            Some(json!({"is_compressed": false, "type": "NGINX"})),
        )
        .await;
    assert_eq!(exp2.status, StatusCode::OK);
    // Missing/invalid fields.
    let bad = h
        .call(
            "POST",
            &format!("/v1/private-certificates/{id}/export"),
            &[],
            Some(json!({"type": "OTHER"})),
        )
        .await;
    assert_err(&bad, 400, "PCA.00020001");
    let bad = h
        .call(
            "POST",
            &format!("/v1/private-certificates/{id}/export"),
            &[],
            Some(json!({"is_compressed": "no", "type": "OTHER"})),
        )
        .await;
    assert_err(&bad, 400, "PCA.00020001");

    // Show: fields and types.
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

#[tokio::test]
async fn refusals_validity() {
    let h = Harness::new();
    let c = csr("v.example", &[]);
    // The seeded sub-CA lives 10 years: 11 years is beyond it → rejected, not truncated.
    assert_err(
        &h.issue(&c, json!({"type": "YEAR", "value": 11})).await,
        400,
        "PCA.00020109",
    );
    assert_err(
        &h.issue(&c, json!({"type": "YEAR", "value": 21})).await,
        400,
        "PCA.00020109",
    );
    assert_err(
        &h.issue(&c, json!({"type": "DAY", "value": 0})).await,
        400,
        "PCA.00020109",
    );
    assert_err(
        &h.issue(&c, json!({"type": "WEEK", "value": 1})).await,
        400,
        "PCA.00020109",
    );
    assert_err(
        &h.issue(&c, json!({"type": "DAY", "value": "3"})).await,
        400,
        "PCA.00020109",
    );
    assert_err(&h.issue(&c, json!({"type": "DAY"})).await, 400, "PCA.00020109");
    let past = crate::timeutil::now_ms() - 10 * 60 * 1000;
    assert_err(
        &h.issue(&c, json!({"type": "DAY", "value": 1, "start_from": past}))
            .await,
        400,
        "PCA.00020109",
    );
    // start_from as number and as numeric string.
    let start = crate::timeutil::now_ms() + 3_600_000;
    for sf in [json!(start), json!(start.to_string())] {
        let r = h.issue(&c, json!({"type": "HOUR", "value": 2, "start_from": sf})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        let id = r.json["certificate_id"].as_str().unwrap();
        let s = h
            .call("GET", &format!("/v1/private-certificates/{id}"), &[], None)
            .await
            .json;
        assert_eq!(s["not_before"], start / 1000 * 1000);
        assert_eq!(
            s["not_after"].as_i64().unwrap() - s["not_before"].as_i64().unwrap(),
            2 * 3_600_000
        );
    }
    // YEAR = 12 calendar months; MONTH = 31 days.
    let r = h.issue(&c, json!({"type": "MONTH", "value": 2})).await;
    let id = r.json["certificate_id"].as_str().unwrap();
    let s = h
        .call("GET", &format!("/v1/private-certificates/{id}"), &[], None)
        .await
        .json;
    assert_eq!(
        s["not_after"].as_i64().unwrap() - s["not_before"].as_i64().unwrap(),
        62 * 86_400_000
    );
    let r = h.issue(&c, json!({"type": "YEAR", "value": 1})).await;
    let id = r.json["certificate_id"].as_str().unwrap();
    let s = h
        .call("GET", &format!("/v1/private-certificates/{id}"), &[], None)
        .await
        .json;
    let days = (s["not_after"].as_i64().unwrap() - s["not_before"].as_i64().unwrap()) / 86_400_000;
    assert!(days == 365 || days == 366, "{days}");
}

#[tokio::test]
async fn refusals_ca_id_state_and_body() {
    let h = Harness::new();
    let c = csr("s.example", &[]);
    let body = |issuer: &str| json!({"issuer_id": issuer, "csr": c, "validity": day(1)});
    let r = h
        .call("POST", "/v1/private-certificates/csr", &[], Some(body("NOT-A-UUID")))
        .await;
    assert_err(&r, 400, "PCA.00020201");
    let r = h
        .call(
            "POST",
            "/v1/private-certificates/csr",
            &[],
            Some(body("00000000-0000-0000-0000-000000000000")),
        )
        .await;
    assert_err(&r, 400, "PCA.10010002");
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
    assert_err(
        &h.call("POST", "/v1/private-certificates/csr", &[], Some(body(CA_ID)))
            .await,
        400,
        "PCA.10010003",
    );
    let r = h
        .call(
            "POST",
            &format!("/v1/private-certificate-authorities/{CA_ID}/enable"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.call("POST", "/v1/private-certificates/csr", &[], Some(body(CA_ID)))
            .await
            .status,
        StatusCode::OK
    );
    // Body problems.
    assert_err(
        &h.call_raw("POST", "/v1/private-certificates/csr", b"").await,
        400,
        "PCA.00020001",
    );
    assert_err(
        &h.call_raw("POST", "/v1/private-certificates/csr", b"{not json").await,
        400,
        "PCA.00020001",
    );
    assert_err(
        &h.call_raw("POST", "/v1/private-certificates/csr", b"[1,2]").await,
        400,
        "PCA.00020001",
    );
    assert_err(
        &h.call_raw("POST", "/v1/private-certificates/csr", &[0xff, 0xfe, 0x00])
            .await,
        400,
        "PCA.00020001",
    );
    let r = h
        .call(
            "POST",
            "/v1/private-certificates/csr",
            &[],
            Some(json!({"issuer_id": CA_ID, "validity": day(1)})),
        )
        .await;
    assert_err(&r, 400, "PCA.00020001");
    let mut b = body(CA_ID);
    b["type"] = json!("SOMETHING");
    assert_err(
        &h.call("POST", "/v1/private-certificates/csr", &[], Some(b)).await,
        400,
        "PCA.00020001",
    );
    // Body SANs are ignored (reserved field).
    let mut b = body(CA_ID);
    b["subject_alternative_names"] = json!([{"type": "DNS", "value": "ignored.example"}]);
    let r = h.call("POST", "/v1/private-certificates/csr", &[], Some(b)).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn path_length_rules_and_intermediate_visibility() {
    let h = Harness::new();
    let c = csr("int.example", &[]);
    let issue_int = |pl: Option<i64>, issuer: String| {
        let mut b = json!({"issuer_id": issuer, "csr": c, "validity": day(10), "type": "INTERMEDIATE_CA"});
        if let Some(pl) = pl {
            b["path_length"] = json!(pl);
        }
        b
    };
    // Seeded sub-CA has path_length 1: requested must be < 1.
    let r = h
        .call(
            "POST",
            "/v1/private-certificates/csr",
            &[],
            Some(issue_int(Some(1), CA_ID.into())),
        )
        .await;
    assert_err(&r, 400, "PCA.00020203");
    let quota_before = h
        .call("GET", "/v1/private-certificate-authorities/quotas", &[], None)
        .await
        .json;
    let certs_before = h.mock.store.cert_count();
    let r = h
        .call(
            "POST",
            "/v1/private-certificates/csr",
            &[],
            Some(issue_int(None, CA_ID.into())),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let int_id = r.json["certificate_id"].as_str().unwrap().to_owned();

    // Readable via show-CA, exportable via CA export, not listed anywhere, no quota.
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
    let exp = h
        .call(
            "POST",
            &format!("/v1/private-certificate-authorities/{int_id}/export"),
            &[],
            None,
        )
        .await;
    assert_eq!(exp.status, StatusCode::OK);
    let der = &pem_ders(exp.json["certificate"].as_str().unwrap())[0];
    let cert = X509Certificate::from_der(der).unwrap().1;
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca && bc.path_len_constraint == Some(0));
    assert_eq!(pem_ders(exp.json["certificate_chain"].as_str().unwrap()).len(), 2);
    let cas = h
        .call("GET", "/v1/private-certificate-authorities", &[("limit", "1000")], None)
        .await
        .json;
    assert!(
        cas["certificate_authorities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ca_id"] != int_id.as_str())
    );
    let certs = h
        .call("GET", "/v1/private-certificates", &[("limit", "1000")], None)
        .await
        .json;
    assert!(
        certs["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["certificate_id"] != int_id.as_str())
    );
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
    // Its key is on the user side: it cannot issue.
    let r = h
        .call(
            "POST",
            "/v1/private-certificates/csr",
            &[],
            Some(json!({"issuer_id": int_id, "csr": c, "validity": day(1)})),
        )
        .await;
    assert_err(&r, 400, "PCA.10010003");

    // A PCA-hosted sub-CA with path_length 0 cannot issue INTERMEDIATE_CA at all.
    let r = h
        .call(
            "POST",
            "/v1/private-certificate-authorities",
            &[],
            Some(json!({
                "type": "SUBORDINATE", "key_algorithm": "EC256", "issuer_id": CA_ID, "signature_algorithm": "SHA256",
                "validity": {"type": "YEAR", "value": 1}, "path_length": 0,
                "distinguished_name": {"common_name": "leafonly", "country": "CN", "state": "GD", "locality": "SZ", "organization": "o", "organizational_unit": "ou"}
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let leaf_only = r.json["ca_id"].as_str().unwrap().to_owned();
    let r = h
        .call(
            "POST",
            "/v1/private-certificates/csr",
            &[],
            Some(issue_int(None, leaf_only.clone())),
        )
        .await;
    assert_err(&r, 400, "PCA.00020203");
    // ...but can issue leaves.
    let r = h
        .call(
            "POST",
            "/v1/private-certificates/csr",
            &[],
            Some(json!({"issuer_id": leaf_only, "csr": c, "validity": day(1)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn listing_filters_paging_sorting() {
    let h = Harness::new();
    let mut ids = Vec::new();
    for cn in ["b-list.example", "a-list.example", "c-list.example"] {
        ids.push(issue_ok(&h, cn).await);
    }
    let r = h
        .call(
            "GET",
            "/v1/private-certificates",
            &[
                ("name", "list.example"),
                ("sort_key", "common_name"),
                ("sort_dir", "ASC"),
            ],
            None,
        )
        .await;
    assert_eq!(r.json["total"], 3);
    let names: Vec<&str> = r.json["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["distinguished_name"]["common_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a-list.example", "b-list.example", "c-list.example"]);
    let r = h
        .call(
            "GET",
            "/v1/private-certificates",
            &[
                ("limit", "1"),
                ("offset", "1"),
                ("sort_key", "common_name"),
                ("sort_dir", "DESC"),
            ],
            None,
        )
        .await;
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
    // Revoked ones by status.
    let r = h
        .call(
            "POST",
            &format!("/v1/private-certificates/{}/revoke", ids[0]),
            &[],
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h
        .call("GET", "/v1/private-certificates", &[("status", "REVOKED")], None)
        .await;
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["certificates"][0]["certificate_id"], ids[0].as_str());
    // Bad parameters.
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
    // CA list.
    let r = h
        .call("GET", "/v1/private-certificate-authorities", &[("type", "ROOT")], None)
        .await;
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["certificate_authorities"][0]["path_length"], 7);
    assert!(r.json["certificate_authorities"][0]["issuer_id"].is_null());
    let r = h
        .call(
            "GET",
            "/v1/private-certificate-authorities",
            &[("name", "Sub CA"), ("status", "ACTIVED")],
            None,
        )
        .await;
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["certificate_authorities"][0]["ca_id"], CA_ID);
    assert_err(
        &h.call("GET", "/v1/private-certificate-authorities", &[("type", "LEAF")], None)
            .await,
        400,
        "PCA.00020202",
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

fn ca_body(ty: &str, extra: Value) -> Value {
    let mut b = json!({
        "type": ty,
        "key_algorithm": "EC256",
        "distinguished_name": {"common_name": format!("{ty} test"), "country": "CN", "state": "GD", "locality": "SZ", "organization": "org", "organizational_unit": "ou"},
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[tokio::test]
async fn ca_lifecycle_state_machine_and_quota() {
    let h = Harness::new();
    // ROOT needs signature_algorithm and validity.
    let r = h
        .call(
            "POST",
            "/v1/private-certificate-authorities",
            &[],
            Some(ca_body("ROOT", json!({}))),
        )
        .await;
    assert_err(&r, 400, "PCA.00020103");
    let r = h
        .call(
            "POST",
            "/v1/private-certificate-authorities",
            &[],
            Some(ca_body(
                "ROOT",
                json!({"signature_algorithm": "SHA256", "validity": {"type": "YEAR", "value": 31}}),
            )),
        )
        .await;
    assert_err(&r, 400, "PCA.00020109");
    let r = h
        .call(
            "POST",
            "/v1/private-certificate-authorities",
            &[],
            Some(ca_body(
                "ROOT",
                json!({"signature_algorithm": "SHA256", "validity": {"type": "YEAR", "value": 30}}),
            )),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let root = r.json["ca_id"].as_str().unwrap().to_owned();
    let show = h
        .call("GET", &format!("/v1/private-certificate-authorities/{root}"), &[], None)
        .await
        .json;
    assert_eq!(
        (
            show["status"].as_str(),
            show["type"].as_str(),
            show["path_length"].as_i64()
        ),
        (Some("ACTIVED"), Some("ROOT"), Some(7))
    );
    // Bad inputs.
    let mut bad_dn = ca_body(
        "ROOT",
        json!({"signature_algorithm": "SHA256", "validity": {"type": "YEAR", "value": 1}}),
    );
    bad_dn["distinguished_name"]["country"] = json!("CHN");
    assert_err(
        &h.call("POST", "/v1/private-certificate-authorities", &[], Some(bad_dn))
            .await,
        400,
        "PCA.00020101",
    );
    let r = h
        .call(
            "POST",
            "/v1/private-certificate-authorities",
            &[],
            Some(ca_body("ROOT", json!({"key_algorithm": "SM2"}))),
        )
        .await;
    assert_err(&r, 400, "PCA.00020102");
    assert_err(
        &h.call(
            "POST",
            "/v1/private-certificate-authorities",
            &[],
            Some(ca_body("MIDDLE", json!({}))),
        )
        .await,
        400,
        "PCA.00020202",
    );

    // SUBORDINATE without issuer → PENDING; export CSR; activate.
    let r = h
        .call(
            "POST",
            "/v1/private-certificate-authorities",
            &[],
            Some(ca_body("SUBORDINATE", json!({"path_length": 2}))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let pending = r.json["ca_id"].as_str().unwrap().to_owned();
    let show = h
        .call(
            "GET",
            &format!("/v1/private-certificate-authorities/{pending}"),
            &[],
            None,
        )
        .await
        .json;
    assert_eq!(show["status"], "PENDING");
    let csr = h
        .call(
            "GET",
            &format!("/v1/private-certificate-authorities/{pending}/csr"),
            &[],
            None,
        )
        .await;
    assert!(
        csr.json["csr"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE REQUEST-----\r\n")
    );
    assert_err(
        &h.call(
            "POST",
            &format!("/v1/private-certificate-authorities/{pending}/export"),
            &[],
            None,
        )
        .await,
        400,
        "PCA.10010003",
    );
    let r = h
        .call(
            "POST",
            &format!("/v1/private-certificate-authorities/{pending}/activate"),
            &[],
            Some(json!({"issuer_id": root, "signature_algorithm": "SHA384", "validity": {"type": "YEAR", "value": 5}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    let show = h
        .call(
            "GET",
            &format!("/v1/private-certificate-authorities/{pending}"),
            &[],
            None,
        )
        .await
        .json;
    assert_eq!(
        (
            show["status"].as_str(),
            show["issuer_id"].as_str(),
            show["path_length"].as_i64()
        ),
        (Some("ACTIVED"), Some(root.as_str()), Some(2))
    );
    // The activated CA issues, with a chain of two above the leaf.
    let r = h
        .call(
            "POST",
            "/v1/private-certificates/csr",
            &[],
            Some(json!({"issuer_id": pending, "csr": csr_pem(), "validity": day(1)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);

    // Delete rules: ACTIVED cannot be deleted; disable first; pending_days 7..30.
    let del = format!("/v1/private-certificate-authorities/{pending}");
    assert_err(
        &h.call("DELETE", &del, &[("pending_days", "7")], None).await,
        400,
        "PCA.10010003",
    );
    assert_eq!(
        h.call("POST", &format!("{del}/disable"), &[], None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_err(
        &h.call("POST", &format!("{del}/disable"), &[], None).await,
        400,
        "PCA.10010003",
    );
    assert_err(
        &h.call("DELETE", &del, &[("pending_days", "3")], None).await,
        400,
        "PCA.00020001",
    );
    assert_eq!(
        h.call("DELETE", &del, &[("pending_days", "7")], None).await.status,
        StatusCode::NO_CONTENT
    );
    let show = h.call("GET", &del, &[], None).await.json;
    assert_eq!(show["status"], "DELETED");
    assert!(show["delete_time"].as_i64().unwrap() > crate::timeutil::now_ms());
    assert_eq!(
        h.call("POST", &format!("{del}/restore"), &[], None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.call("GET", &del, &[], None).await.json["status"], "DISABLED");
    assert_eq!(
        h.call("POST", &format!("{del}/enable"), &[], None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.call("GET", &del, &[], None).await.json["status"], "ACTIVED");

    // A PENDING CA is deleted immediately.
    let r = h
        .call(
            "POST",
            "/v1/private-certificate-authorities",
            &[],
            Some(ca_body("SUBORDINATE", json!({}))),
        )
        .await;
    let p2 = r.json["ca_id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.call(
            "DELETE",
            &format!("/v1/private-certificate-authorities/{p2}"),
            &[],
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_err(
        &h.call("GET", &format!("/v1/private-certificate-authorities/{p2}"), &[], None)
            .await,
        400,
        "PCA.10010002",
    );

    // Quotas: 2 seeded + root + activated sub.
    let q = h
        .call("GET", "/v1/private-certificate-authorities/quotas", &[], None)
        .await
        .json;
    assert_eq!(
        q,
        json!({"quotas": {"resources": [{"type": "CERTIFICATE_AUTHORITY", "used": 4, "quota": 100}]}})
    );
    let q = h.call("GET", "/v1/private-certificates/quotas", &[], None).await.json;
    assert_eq!(
        q,
        json!({"quotas": {"resources": [{"type": "CERTIFICATE", "used": 1, "quota": 100000}]}})
    );
}

fn csr_pem() -> String {
    csr("issued-by-activated.example", &[])
}

#[tokio::test]
async fn quotas_are_enforced() {
    let cfg = crate::MockConfig {
        cert_quota: 2,
        ca_quota: 2,
        ..default_config()
    };
    let h = Harness::with(cfg, Store::in_memory());
    issue_ok(&h, "q1.example").await;
    issue_ok(&h, "q2.example").await;
    assert_err(&h.issue(&csr("q3.example", &[]), day(1)).await, 400, "PCA.10010004");
    let r = h
        .call(
            "POST",
            "/v1/private-certificate-authorities",
            &[],
            Some(ca_body(
                "ROOT",
                json!({"signature_algorithm": "SHA256", "validity": {"type": "YEAR", "value": 1}}),
            )),
        )
        .await;
    assert_err(&r, 400, "PCA.10010004");
}

#[tokio::test]
async fn rsa_ca_via_api_signs_with_sha384_rsa() {
    let h = Harness::new();
    let r = h
        .call("POST", "/v1/private-certificate-authorities", &[], Some(ca_body("ROOT", json!({"key_algorithm": "RSA2048", "signature_algorithm": "SHA256", "validity": {"type": "YEAR", "value": 1}}))))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let root = r.json["ca_id"].as_str().unwrap().to_owned();
    let r = h
        .call("POST", "/v1/private-certificate-authorities", &[], Some(ca_body("SUBORDINATE", json!({"key_algorithm": "RSA2048", "issuer_id": root, "signature_algorithm": "SHA256", "validity": {"type": "MONTH", "value": 6}, "path_length": 1}))))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let sub = r.json["ca_id"].as_str().unwrap().to_owned();
    let r = h
        .call(
            "POST",
            "/v1/private-certificates/csr",
            &[],
            Some(json!({"issuer_id": sub, "csr": csr("rsa-leaf.example", &[]), "validity": day(1)})),
        )
        .await;
    let id = r.json["certificate_id"].as_str().unwrap();
    let exp = h
        .call(
            "POST",
            &format!("/v1/private-certificates/{id}/export"),
            &[],
            Some(json!({"is_compressed": "false", "type": "OTHER"})),
        )
        .await;
    let der = &pem_ders(exp.json["certificate"].as_str().unwrap())[0];
    let leaf = X509Certificate::from_der(der).unwrap().1;
    assert_eq!(
        leaf.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.113549.1.1.12"
    );
    let chain = pem_ders(exp.json["certificate_chain"].as_str().unwrap());
    let sub_cert = X509Certificate::from_der(&chain[0]).unwrap().1;
    leaf.verify_signature(Some(sub_cert.public_key())).unwrap();
    assert_eq!(
        sub_cert.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.113549.1.1.11"
    );
}

#[tokio::test]
async fn export_root_has_empty_chain() {
    let h = Harness::new();
    let show = h
        .call(
            "GET",
            &format!("/v1/private-certificate-authorities/{CA_ID}"),
            &[],
            None,
        )
        .await
        .json;
    let root = show["issuer_id"].as_str().unwrap();
    let exp = h
        .call(
            "POST",
            &format!("/v1/private-certificate-authorities/{root}/export"),
            &[],
            None,
        )
        .await;
    assert_eq!(exp.status, StatusCode::OK);
    assert_eq!(exp.json["certificate_chain"], "");
    let sub = h
        .call(
            "POST",
            &format!("/v1/private-certificate-authorities/{CA_ID}/export"),
            &[],
            None,
        )
        .await;
    assert_eq!(
        pem_ders(sub.json["certificate_chain"].as_str().unwrap()),
        pem_ders(exp.json["certificate"].as_str().unwrap())
    );
}

#[tokio::test]
async fn faults_inject_429_5xx_latency_drop_and_hang() {
    let h = Harness::new();
    h.mock
        .faults
        .set(crate::faults::FaultPlan {
            rate_429: 1.0,
            operations: Some(vec!["ListCertificate".into()]),
            ..Default::default()
        })
        .unwrap();
    assert_err(
        &h.call("GET", "/v1/private-certificates", &[], None).await,
        429,
        "APIGW.0308",
    );
    assert_eq!(
        h.call("GET", "/v1/private-certificates/quotas", &[], None).await.status,
        StatusCode::OK
    );
    h.mock
        .faults
        .set(crate::faults::FaultPlan {
            rate_5xx: 1.0,
            ..Default::default()
        })
        .unwrap();
    let r = h.issue(&csr("f.example", &[]), day(1)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.json["error_code"].as_str().unwrap().starts_with("PCA."));
    assert_eq!(
        h.mock.stats.snapshot().issued.total,
        0,
        "an injected 5xx happens before the operation"
    );
    h.mock
        .faults
        .set(crate::faults::FaultPlan {
            latency_ms: 150,
            ..Default::default()
        })
        .unwrap();
    let t = Instant::now();
    h.call("GET", "/v1/private-certificates", &[], None).await;
    assert!(t.elapsed() >= Duration::from_millis(150));

    // drop_after_issue: issued, then no response.
    h.mock
        .faults
        .set(crate::faults::FaultPlan {
            drop_after_issue: 1,
            ..Default::default()
        })
        .unwrap();
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

    h.mock
        .faults
        .set(crate::faults::FaultPlan {
            hang_after_issue_ms: 200,
            ..Default::default()
        })
        .unwrap();
    let t = Instant::now();
    let r = h.issue(&csr("hang.example", &[]), day(1)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn mock_controls_api() {
    let h = Harness::new();
    let get = |p: &str| {
        axum::http::Request::builder()
            .uri(p)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let r = h.send(get("/_mock/health")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["status"], "ok");
    let plan = json!({"latency_ms":0,"rate_429":0.0,"rate_5xx":0.0,"drop_after_issue":0,"hang_after_issue_ms":0,"operations":null});
    assert_eq!(h.send(get("/_mock/faults")).await.json, plan);
    let post = |p: &str, b: &str| {
        axum::http::Request::builder()
            .method("POST")
            .uri(p)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(b.to_owned()))
            .unwrap()
    };
    let r = h
        .send(post(
            "/_mock/faults",
            r#"{"drop_after_issue":3,"operations":["ListCertificate"]}"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["drop_after_issue"], 3);
    assert_eq!(
        h.send(post("/_mock/faults", r#"{"rate_429":2}"#)).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.send(post("/_mock/faults", "garbage")).await.status,
        StatusCode::BAD_REQUEST
    );
    let del = axum::http::Request::builder()
        .method("DELETE")
        .uri("/_mock/faults")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(h.send(del).await.json, plan);

    issue_ok(&h, "stats.example").await;
    h.call("GET", "/v1/nope", &[], None).await;
    let s = h.send(get("/_mock/stats")).await.json;
    assert_eq!(s["operations"]["CreateCertificateByCsr"]["total"], 1);
    assert_eq!(s["operations"]["CreateCertificateByCsr"]["by_status"]["200"], 1);
    assert_eq!(s["operations"]["Unknown"]["by_status"]["404"], 1);
    assert_eq!(s["issued"]["total"], 1);
    assert_eq!(s["issued"]["by_public_key"].as_object().unwrap().len(), 1);
    assert_eq!(
        h.send(post("/_mock/stats/reset", "")).await.status,
        StatusCode::NO_CONTENT
    );
    let s = h.send(get("/_mock/stats")).await.json;
    assert_eq!(
        s,
        json!({"operations": {}, "issued": {"total": 0, "by_public_key": {}}})
    );
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
}

#[tokio::test]
async fn garbage_and_auth_failures_get_json_errors() {
    let h = Harness::new();
    // Unknown path and wrong method: gateway 404.
    assert_err(&h.call("GET", "/v1/unknown", &[], None).await, 404, "APIGW.0101");
    assert_err(
        &h.call("PUT", "/v1/private-certificates", &[], None).await,
        404,
        "APIGW.0101",
    );
    assert_err(
        &h.call("GET", "/v1/private-certificates/csr", &[], None).await,
        404,
        "APIGW.0101",
    );
    assert_err(
        &h.call(
            "PATCH",
            &format!("/v1/private-certificate-authorities/{CA_ID}"),
            &[],
            None,
        )
        .await,
        404,
        "APIGW.0101",
    );
    let r = h.call("GET", "/", &[], None).await;
    assert_eq!(r.json["request_id"], r.headers["x-request-id"].to_str().unwrap());
    // Oversized body.
    let big = vec![b' '; crate::routes::MAX_BODY + 1];
    assert_err(
        &h.call_raw("POST", "/v1/private-certificates/csr", &big).await,
        413,
        "APIGW.0201",
    );
    // Missing / malformed Authorization, missing X-Domain-Id, wrong key.
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
    // A signature over one body does not cover another.
    let mut s = signed(AK, SK, Some(DOMAIN), "POST", "/v1/private-certificates/csr", &[], b"{}");
    s.body = b"{} ".to_vec();
    assert_err(&h.send(s.into_request()).await, 401, "APIGW.0301");
    // Query parameters are covered by the signature.
    let mut s = signed(
        AK,
        SK,
        Some(DOMAIN),
        "GET",
        "/v1/private-certificates",
        &[("limit", "1")],
        b"",
    );
    s.uri = "/v1/private-certificates?limit=2".into();
    assert_err(&h.send(s.into_request()).await, 401, "APIGW.0301");
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
async fn iam_domains_and_parse_csr_and_console() {
    let h = Harness::new();
    // IAM does not need X-Domain-Id.
    let r = h
        .send(signed(AK, SK, None, "GET", "/v3/auth/domains", &[], b"").into_request())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["domains"][0]["id"], DOMAIN);
    assert!(r.json["domains"][0]["name"].is_string());
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
    let r = h.call("GET", "/v1/pca/config/console", &[], None).await;
    assert_eq!(r.json["is_support_sm2"], false);
    // Operations that exist but are not modelled answer in the PCA shape.
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
        let r = h
            .call(
                "POST",
                &format!("/v1/private-certificates/{id}/revoke"),
                &[],
                Some(json!({"reason": "SUPERSEDED"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let ca = h
            .call(
                "POST",
                &format!("/v1/private-certificate-authorities/{CA_ID}/export"),
                &[],
                None,
            )
            .await
            .json;
        h.mock.store.flush().unwrap();
        (id, ca["certificate"].as_str().unwrap().to_owned())
    };
    assert!(!dir.path().join("state.json.tmp").exists());
    // Reopen: seed_ca sees the existing CA and reuses it (same certificate, same key).
    let h = Harness::with(default_config(), Store::open(&path).unwrap());
    let ca = h
        .call(
            "POST",
            &format!("/v1/private-certificate-authorities/{CA_ID}/export"),
            &[],
            None,
        )
        .await
        .json;
    assert_eq!(ca["certificate"].as_str().unwrap(), ca_der);
    let show = h
        .call("GET", &format!("/v1/private-certificates/{cert_id}"), &[], None)
        .await
        .json;
    assert_eq!(show["status"], "REVOKED");
    // The reloaded key still signs, and the leaf chains to the persisted CA cert.
    let id = issue_ok(&h, "after-restart.example").await;
    let exp = h
        .call(
            "POST",
            &format!("/v1/private-certificates/{id}/export"),
            &[],
            Some(json!({"is_compressed": "false", "type": "OTHER"})),
        )
        .await
        .json;
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve(listener, h.router.clone(), None, async {
        let _ = rx.await;
    }));
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve(listener, h.router.clone(), None, async {
        let _ = rx.await;
    }));
    h.mock
        .faults
        .set(crate::faults::FaultPlan {
            drop_after_issue: 1,
            ..Default::default()
        })
        .unwrap();
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

#[tokio::test]
async fn mock_controls_refuse_non_loopback_peers() {
    let h = Harness::new();
    let mut req = axum::http::Request::builder()
        .uri("/_mock/stats")
        .body(axum::body::Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(crate::PeerAddr("192.0.2.10:5555".parse().unwrap()));
    let r = h.send(req).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.json["error"].is_string());
    for peer in ["127.0.0.1:5555", "[::1]:5555", "[::ffff:127.0.0.1]:5555"] {
        let mut req = axum::http::Request::builder()
            .uri("/_mock/health")
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut().insert(crate::PeerAddr(peer.parse().unwrap()));
        assert_eq!(h.send(req).await.status, StatusCode::OK, "{peer}");
    }
}
