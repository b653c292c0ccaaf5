//! `validity` parsing, through CreateCertificateByCsr.

use axum::http::StatusCode;
use serde_json::json;

use crate::test_support::*;

#[tokio::test]
async fn refusals_validity() {
    let h = Harness::new();
    let c = csr("v.example", &[]);
    // The seeded sub-CA lives 10 years: 11 years is beyond it → rejected, not truncated.
    for bad in [
        json!({"type": "YEAR", "value": 11}),
        json!({"type": "YEAR", "value": 21}),
        json!({"type": "DAY", "value": 0}),
        json!({"type": "WEEK", "value": 1}),
        json!({"type": "DAY", "value": "3"}),
        json!({"type": "DAY"}),
    ] {
        assert_err(&h.issue(&c, bad).await, 400, "PCA.00020109");
    }
    let past = crate::timeutil::now_ms() - 10 * 60 * 1000;
    assert_err(
        &h.issue(&c, json!({"type": "DAY", "value": 1, "start_from": past}))
            .await,
        400,
        "PCA.00020109",
    );
}

#[tokio::test]
async fn start_from_as_number_and_as_numeric_string() {
    let h = Harness::new();
    let c = csr("v.example", &[]);
    let start = crate::timeutil::now_ms() + 3_600_000;
    for sf in [json!(start), json!(start.to_string())] {
        let r = h.issue(&c, json!({"type": "HOUR", "value": 2, "start_from": sf})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        let s = h.show_cert(r.json["certificate_id"].as_str().unwrap()).await;
        assert_eq!(s["not_before"], start / 1000 * 1000);
        assert_eq!(
            s["not_after"].as_i64().unwrap() - s["not_before"].as_i64().unwrap(),
            2 * 3_600_000
        );
    }
}

#[tokio::test]
async fn year_is_12_calendar_months_and_month_is_31_days() {
    let h = Harness::new();
    let c = csr("v.example", &[]);
    let r = h.issue(&c, json!({"type": "MONTH", "value": 2})).await;
    let s = h.show_cert(r.json["certificate_id"].as_str().unwrap()).await;
    assert_eq!(
        s["not_after"].as_i64().unwrap() - s["not_before"].as_i64().unwrap(),
        62 * 86_400_000
    );
    let r = h.issue(&c, json!({"type": "YEAR", "value": 1})).await;
    let s = h.show_cert(r.json["certificate_id"].as_str().unwrap()).await;
    let days = (s["not_after"].as_i64().unwrap() - s["not_before"].as_i64().unwrap()) / 86_400_000;
    assert!(days == 365 || days == 366, "{days}");
}

#[tokio::test]
async fn far_future_start_from_is_a_validity_error_not_a_panic() {
    let h = Harness::new();
    let c = csr("future.example", &[]);
    // 9999-12-31T23:59:59Z, the last instant `time` can represent by default, and beyond.
    for start in [253_402_300_799_000_i64, 253_402_300_800_000, i64::MAX] {
        for ty in ["YEAR", "MONTH", "DAY", "HOUR"] {
            let r = h.issue(&c, json!({"type": ty, "value": 1, "start_from": start})).await;
            assert_err(&r, 400, "PCA.00020109");
        }
    }
}
