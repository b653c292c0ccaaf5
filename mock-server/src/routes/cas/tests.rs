//! CA creation, activation, the CA state machine, exports and quotas.

use axum::http::StatusCode;
use serde_json::json;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::state::Store;
use crate::test_support::*;

fn root_body(extra: serde_json::Value) -> serde_json::Value {
    let mut b = ca_body(
        "ROOT",
        json!({"signature_algorithm": "SHA256", "validity": {"type": "YEAR", "value": 1}}),
    );
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[tokio::test]
async fn root_needs_signature_algorithm_and_validity_within_30_years() {
    let h = Harness::new();
    assert_err(&h.create_ca(ca_body("ROOT", json!({}))).await, 400, "PCA.00020103");
    let r = h
        .create_ca(root_body(json!({"validity": {"type": "YEAR", "value": 31}})))
        .await;
    assert_err(&r, 400, "PCA.00020109");
    let r = h
        .create_ca(root_body(json!({"validity": {"type": "YEAR", "value": 30}})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let show = h.show_ca(r.json["ca_id"].as_str().unwrap()).await;
    assert_eq!(
        (
            show["status"].as_str(),
            show["type"].as_str(),
            show["path_length"].as_i64()
        ),
        (Some("ACTIVED"), Some("ROOT"), Some(7))
    );
}

#[tokio::test]
async fn create_ca_refuses_bad_dn_key_algorithm_and_type() {
    let h = Harness::new();
    let mut bad_dn = root_body(json!({}));
    bad_dn["distinguished_name"]["country"] = json!("CHN");
    assert_err(&h.create_ca(bad_dn).await, 400, "PCA.00020101");
    let r = h.create_ca(ca_body("ROOT", json!({"key_algorithm": "SM2"}))).await;
    assert_err(&r, 400, "PCA.00020102");
    assert_err(&h.create_ca(ca_body("MIDDLE", json!({}))).await, 400, "PCA.00020202");
}

/// A ROOT and, under it, a PENDING SUBORDINATE (path_length 2), activated; their ids.
async fn root_and_activated_sub(h: &Harness) -> (String, String) {
    let root_validity = json!({"validity": {"type": "YEAR", "value": 30}});
    let root = h.create_ca(root_body(root_validity)).await.json["ca_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = h.create_ca(ca_body("SUBORDINATE", json!({"path_length": 2}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let pending = r.json["ca_id"].as_str().unwrap().to_owned();
    assert_eq!(h.show_ca(&pending).await["status"], "PENDING");
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
    assert_err(&h.export_ca(&pending).await, 400, "PCA.10010003");
    let r = h
        .call(
            "POST",
            &format!("/v1/private-certificate-authorities/{pending}/activate"),
            &[],
            Some(json!({"issuer_id": root, "signature_algorithm": "SHA384", "validity": {"type": "YEAR", "value": 5}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    (root, pending)
}

#[tokio::test]
async fn pending_subordinate_exports_csr_activates_and_issues() {
    let h = Harness::new();
    let (root, sub) = root_and_activated_sub(&h).await;
    let show = h.show_ca(&sub).await;
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
        .issue_body(json!({"issuer_id": sub, "csr": csr("issued-by-activated.example", &[]), "validity": day(1)}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn delete_needs_disable_and_restore_brings_back_disabled() {
    let h = Harness::new();
    let (_, sub) = root_and_activated_sub(&h).await;
    // Delete rules: ACTIVED cannot be deleted; disable first; pending_days 7..30.
    let del = format!("/v1/private-certificate-authorities/{sub}");
    assert_err(
        &h.call("DELETE", &del, &[("pending_days", "7")], None).await,
        400,
        "PCA.10010003",
    );
    let disable = h.call("POST", &format!("{del}/disable"), &[], None).await;
    assert_eq!(disable.status, StatusCode::NO_CONTENT);
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
    let r = h.call("DELETE", &del, &[("pending_days", "7")], None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let show = h.call("GET", &del, &[], None).await.json;
    assert_eq!(show["status"], "DELETED");
    assert!(show["delete_time"].as_i64().unwrap() > crate::timeutil::now_ms());
    let r = h.call("POST", &format!("{del}/restore"), &[], None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(h.call("GET", &del, &[], None).await.json["status"], "DISABLED");
    let r = h.call("POST", &format!("{del}/enable"), &[], None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(h.call("GET", &del, &[], None).await.json["status"], "ACTIVED");
}

#[tokio::test]
async fn pending_ca_is_deleted_immediately() {
    let h = Harness::new();
    let r = h.create_ca(ca_body("SUBORDINATE", json!({}))).await;
    let p2 = r.json["ca_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/private-certificate-authorities/{p2}");
    assert_eq!(h.call("DELETE", &path, &[], None).await.status, StatusCode::NO_CONTENT);
    assert_err(&h.call("GET", &path, &[], None).await, 400, "PCA.10010002");
}

#[tokio::test]
async fn quotas_report_usage() {
    let h = Harness::new();
    let (_, sub) = root_and_activated_sub(&h).await;
    let r = h
        .issue_body(json!({"issuer_id": sub, "csr": csr("issued-by-activated.example", &[]), "validity": day(1)}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
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
    assert_err(&h.create_ca(root_body(json!({}))).await, 400, "PCA.10010004");
}

#[tokio::test]
async fn rsa_ca_via_api_signs_with_sha384_rsa() {
    let h = Harness::new();
    let r = h.create_ca(root_body(json!({"key_algorithm": "RSA2048"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let root = r.json["ca_id"].as_str().unwrap().to_owned();
    let r = h
        .create_ca(ca_body("SUBORDINATE", json!({"key_algorithm": "RSA2048", "issuer_id": root, "signature_algorithm": "SHA256", "validity": {"type": "MONTH", "value": 6}, "path_length": 1})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let sub = r.json["ca_id"].as_str().unwrap().to_owned();
    let r = h
        .issue_body(json!({"issuer_id": sub, "csr": csr("rsa-leaf.example", &[]), "validity": day(1)}))
        .await;
    let exp = h.export_cert(r.json["certificate_id"].as_str().unwrap()).await;
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
    let show = h.show_ca(CA_ID).await;
    let root = show["issuer_id"].as_str().unwrap();
    let exp = h.export_ca(root).await;
    assert_eq!(exp.status, StatusCode::OK);
    assert_eq!(exp.json["certificate_chain"], "");
    let sub = h.export_ca(CA_ID).await;
    assert_eq!(
        pem_ders(sub.json["certificate_chain"].as_str().unwrap()),
        pem_ders(exp.json["certificate"].as_str().unwrap())
    );
}

/// Every key × signature algorithm through CreateCertificateAuthority: the root and a
/// subordinate under it are signed with the requested hash, and the subordinate issues.
#[tokio::test]
async fn create_ca_honours_key_and_signature_algorithms() {
    let h = Harness::new();
    let oids = |key: &str, hash: &str| match (key.starts_with("RSA"), hash) {
        (true, "SHA256") => "1.2.840.113549.1.1.11",
        (true, "SHA384") => "1.2.840.113549.1.1.12",
        (true, _) => "1.2.840.113549.1.1.13",
        (false, "SHA256") => "1.2.840.10045.4.3.2",
        (false, "SHA384") => "1.2.840.10045.4.3.3",
        (false, _) => "1.2.840.10045.4.3.4",
    };
    for key in ["EC256", "EC384", "RSA2048"] {
        for hash in ["SHA256", "SHA384", "SHA512"] {
            let extra =
                json!({"key_algorithm": key, "signature_algorithm": hash, "validity": {"type": "YEAR", "value": 2}});
            let root = h.create_ca(root_body(extra)).await.json["ca_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let sub_body = json!({"key_algorithm": key, "issuer_id": root, "signature_algorithm": hash, "validity": {"type": "YEAR", "value": 1}, "path_length": 0});
            let r = h.create_ca(ca_body("SUBORDINATE", sub_body)).await;
            assert_eq!(r.status, StatusCode::OK, "{key} {hash}: {}", r.json);
            let sub = r.json["ca_id"].as_str().unwrap().to_owned();
            for id in [&root, &sub] {
                let show = h.show_ca(id).await;
                assert_eq!(
                    (show["key_algorithm"].as_str(), show["signature_algorithm"].as_str()),
                    (Some(key), Some(hash))
                );
                let der = pem_ders(h.export_ca(id).await.json["certificate"].as_str().unwrap()).remove(0);
                let cert = X509Certificate::from_der(&der).unwrap().1;
                assert_eq!(
                    cert.signature_algorithm.algorithm.to_id_string(),
                    oids(key, hash),
                    "{key} {hash}"
                );
            }
            let leaf = h
                .issue_body(json!({"issuer_id": sub, "csr": csr("alg.example", &[]), "validity": day(1)}))
                .await;
            assert_eq!(leaf.status, StatusCode::OK, "{key} {hash}: {}", leaf.json);
        }
    }
}

#[tokio::test]
async fn rsa4096_ca_and_sm2_refused() {
    let h = Harness::new();
    let r = h
        .create_ca(root_body(
            json!({"key_algorithm": "RSA4096", "signature_algorithm": "SHA512"}),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = h
        .create_ca(root_body(json!({"key_algorithm": "SM2", "signature_algorithm": "SM3"})))
        .await;
    assert_err(&r, 400, "PCA.00020102");
}

fn seeded(kind: crate::seed::SeedKind) -> (Harness, &'static str) {
    const ID: &str = "22222222-3333-4444-8555-666666666666";
    let h = Harness::new();
    h.mock
        .seed(&crate::seed::SeedCa {
            kind,
            ..crate::seed::SeedCa::new(ID, crate::ca::KeyAlgorithm::Ec256, 1)
        })
        .unwrap();
    (h, ID)
}

/// Every field of the SDK's ShowCertificateAuthorityResponse.
const SHOW_CA_FIELDS: [&str; 22] = [
    "ca_id",
    "type",
    "status",
    "path_length",
    "issuer_id",
    "issuer_name",
    "key_algorithm",
    "signature_algorithm",
    "freeze_flag",
    "gen_mode",
    "serial_number",
    "create_time",
    "delete_time",
    "not_before",
    "not_after",
    "distinguished_name",
    "crl_configuration",
    "enterprise_project_id",
    "free_quota",
    "charging_mode",
    "cluster_id",
    "domain_id",
];

#[tokio::test]
async fn csr_mode_ca_is_actived_listed_and_cannot_issue() {
    let (h, id) = seeded(crate::seed::SeedKind::CsrSubordinate);
    let show = h.show_ca(id).await;
    for f in SHOW_CA_FIELDS {
        assert!(show.as_object().unwrap().contains_key(f), "{f} missing");
    }
    assert_eq!(
        (show["status"].as_str(), show["gen_mode"].as_str()),
        (Some("ACTIVED"), Some("CSR"))
    );
    let listed = h
        .call("GET", "/v1/private-certificate-authorities", &[("limit", "100")], None)
        .await
        .json;
    let item = listed["certificate_authorities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ca_id"] == id)
        .cloned();
    assert_eq!(item.map(|c| c["gen_mode"].clone()), Some(json!("CSR")));
    let r = h
        .issue_body(json!({"issuer_id": id, "csr": csr("x.example", &[]), "validity": day(1)}))
        .await;
    assert_err(&r, 400, "PCA.10010003");
    assert_eq!(
        h.export_ca(id).await.status,
        StatusCode::OK,
        "its certificate is exportable"
    );
}

#[tokio::test]
async fn frozen_ca_is_actived_shows_its_flag_and_cannot_issue() {
    let (h, id) = seeded(crate::seed::SeedKind::Frozen);
    let show = h.show_ca(id).await;
    assert_eq!(
        (show["status"].as_str(), show["freeze_flag"].as_i64()),
        (Some("ACTIVED"), Some(1))
    );
    let r = h
        .issue_body(json!({"issuer_id": id, "csr": csr("x.example", &[]), "validity": day(1)}))
        .await;
    assert_err(&r, 400, "PCA.10010003");
    assert!(r.json["error_msg"].as_str().unwrap().contains("frozen"));
    let sub = json!({"issuer_id": id, "signature_algorithm": "SHA256", "validity": {"type": "MONTH", "value": 1}});
    assert_err(&h.create_ca(ca_body("SUBORDINATE", sub)).await, 400, "PCA.10010003");
}
