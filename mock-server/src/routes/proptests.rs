//! Property: no request — any method, path, query or body, correctly signed so that it
//! reaches the handlers — makes the mock panic or answer anything but a well-formed
//! success or a well-formed API error. `PROPTEST_CASES` sets the number of cases
//! (default 128, a few seconds).

use axum::http::StatusCode;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::test_support::*;

const METHODS: [&str; 5] = ["GET", "POST", "DELETE", "PUT", "PATCH"];

/// Every route of the table, `{id}` standing for a CA or certificate id.
const PATHS: [&str; 24] = [
    "/v1/private-certificate-authorities",
    "/v1/private-certificate-authorities/quotas",
    "/v1/private-certificate-authorities/order",
    "/v1/private-certificate-authorities/{id}",
    "/v1/private-certificate-authorities/{id}/csr",
    "/v1/private-certificate-authorities/{id}/activate",
    "/v1/private-certificate-authorities/{id}/import",
    "/v1/private-certificate-authorities/{id}/export",
    "/v1/private-certificate-authorities/{id}/enable",
    "/v1/private-certificate-authorities/{id}/disable",
    "/v1/private-certificate-authorities/{id}/restore",
    "/v1/private-certificate-authorities/{id}/revoke",
    "/v1/private-certificate-authorities/{id}/crl/enable",
    "/v1/private-certificate-authorities/{id}/crl/disable",
    "/v1/private-certificate-authorities/{id}/ocsp/switch",
    "/v1/private-certificates",
    "/v1/private-certificates/csr",
    "/v1/private-certificates/csr/parse",
    "/v1/private-certificates/quotas",
    "/v1/private-certificates/{id}",
    "/v1/private-certificates/{id}/export",
    "/v1/private-certificates/{id}/revoke",
    "/v1/pca/config/console",
    "/v3/auth/domains",
];

const QUERY_KEYS: [&str; 9] = [
    "limit",
    "offset",
    "name",
    "status",
    "type",
    "sort_key",
    "sort_dir",
    "pending_days",
    "enterprise_project_id",
];

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        // Epoch ms near the end of what dates can hold, and other edges.
        (253_399_000_000_000_i64..=253_402_300_799_999).prop_map(|n| json!(n)),
        prop::sample::select(&[0_i64, -1, 1, i64::MIN, i64::MAX, 1_000, 7, 31][..]).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
        Just(json!(CA_ID)),
        Just(json!("SUBORDINATE")),
        Just(json!({"type": "DAY", "value": 1})),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A plausible body for any operation with one field set to anything.
fn mutated_body(csr: String) -> impl Strategy<Value = Vec<u8>> {
    let base = json!({
        "issuer_id": CA_ID, "csr": csr, "type": "ENTITY_CERT", "validity": {"type": "DAY", "value": 1},
        "key_algorithm": "EC256", "signature_algorithm": "SHA256", "path_length": 0,
        "distinguished_name": {"common_name": "p", "country": "CN", "state": "s", "locality": "l", "organization": "o", "organizational_unit": "u"},
        "is_compressed": "false", "reason": "SUPERSEDED", "crl_configuration": {"enabled": false},
    });
    const FIELDS: [&str; 14] = [
        "issuer_id",
        "csr",
        "type",
        "validity",
        "key_algorithm",
        "signature_algorithm",
        "path_length",
        "distinguished_name",
        "is_compressed",
        "reason",
        "crl_configuration",
        "start_from",
        "key_usages",
        "enterprise_project_id",
    ];
    (prop::sample::select(&FIELDS[..]), any_json(), any_json()).prop_map(move |(field, v, start)| {
        let mut b = base.clone();
        b[field] = v;
        if let Some(validity) = b["validity"].as_object_mut() {
            validity.insert("start_from".to_owned(), start);
        }
        serde_json::to_vec(&b).unwrap_or_default()
    })
}

fn body(csr: String) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        any_json().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        mutated_body(csr),
    ]
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(CA_ID.to_owned()),
        Just("00000000-0000-0000-0000-000000000000".to_owned()),
        "[0-9a-zA-Z._~%-]{0,40}",
    ]
}

fn query() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (prop::sample::select(&QUERY_KEYS[..]).prop_map(str::to_owned), ".{0,12}"),
        0..4,
    )
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

/// A well-formed answer: a success with a JSON (or empty) body, or an API error with
/// `error_code` and `error_msg`, and never a 500 (no fault is injected here).
fn assert_well_formed(status: StatusCode, body: &[u8]) -> Result<(), TestCaseError> {
    prop_assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        String::from_utf8_lossy(body)
    );
    if body.is_empty() {
        prop_assert!(status.is_success(), "{status} without a body");
        return Ok(());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
    if !status.is_success() {
        prop_assert!(v["error_code"].as_str().is_some_and(|c| !c.is_empty()), "{v}");
        prop_assert!(v["error_msg"].is_string(), "{v}");
    }
    Ok(())
}

#[test]
fn no_request_makes_the_mock_panic_or_answer_malformed() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = Harness::new();
    let csr_pem = csr("prop.example", &["prop.example"]);
    let strategy = (
        prop::sample::select(&METHODS[..]),
        prop::sample::select(&PATHS[..]),
        id(),
        query(),
        body(csr_pem),
    );
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |((method, path, id, query, body) in strategy)| {
        let path = path.replace("{id}", &id);
        let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let req = signed(AK, SK, Some(DOMAIN), method, &path, &q, &body);
        let Ok(req) = std::panic::catch_unwind(|| req.into_request()) else {
            // Not a valid HTTP request (e.g. an id the URI grammar refuses): nothing to send.
            return Ok(());
        };
        let (status, bytes, _) = rt.block_on(h.send_raw(req));
        assert_well_formed(status, &bytes)?;
    });
}

fn validity() -> impl Strategy<Value = Value> {
    // Mostly valid units and values, so that the date arithmetic is reached.
    let ty = prop::sample::select(&["YEAR", "MONTH", "DAY", "HOUR"][..]);
    let value = prop_oneof![3 => 1_i64..=400, 1 => any::<i64>()];
    let start = prop_oneof![
        3 => (253_399_000_000_000_i64..=253_402_300_799_999).prop_map(|n| json!(n)),
        1 => Just(Value::Null),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<i64>().prop_map(|n| json!(n.to_string())),
        1 => any_json(),
    ];
    (ty, value, start).prop_map(|(ty, value, start)| json!({"type": ty, "value": value, "start_from": start}))
}

/// The same property focused on `validity`, where date arithmetic can overflow.
#[test]
fn no_validity_makes_issuance_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let h = Harness::new();
    let csr_pem = csr("validity.example", &[]);
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(validity in validity())| {
        let (status, bytes, _) = rt.block_on(async {
            let body = serde_json::to_vec(&json!({"issuer_id": CA_ID, "csr": csr_pem, "validity": validity})).unwrap();
            h.send_raw(signed(AK, SK, Some(DOMAIN), "POST", "/v1/private-certificates/csr", &[], &body).into_request()).await
        });
        assert_well_formed(status, &bytes)?;
    });
}
