//! Cost of signing one PCA request, excluding the body hash (issue #2 target: ≤ 5 µs).
//!
//! Run: `cargo bench --bench signer`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test and benchmark code

use std::hint::black_box;

use ccm_issuer::pca::signer::{Credentials, RequestParts, authorization, payload_hash};
use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;

fn bench(c: &mut Criterion) {
    let creds = Credentials::new(
        "AKIDEXAMPLE0000000000",
        &SecretString::from("SKEXAMPLE0000000000000000000000000000000".to_owned()),
    );
    let body = br#"{"issuer_id":"6434f74f-2d13-4e6a-89eb-93ee313f1a43","csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n","validity":{"type":"DAY","value":30},"type":"ENTITY_CERT"}"#;
    let hash = payload_hash(body);
    let headers = [
        ("Content-Type", "application/json"),
        ("Host", "ccm.ap-southeast-3.myhuaweicloud.com"),
        ("X-Domain-Id", "0123456789abcdef0123456789abcdef"),
        ("X-Sdk-Date", "20250101T000000Z"),
    ];
    c.bench_function("sign issue-from-csr (body hash precomputed)", |b| {
        b.iter(|| {
            let parts = RequestParts {
                method: "POST",
                path: black_box("/v1/private-certificates/csr"),
                query: &[],
                headers: &headers,
                payload_hash: &hash,
            };
            black_box(authorization(&creds, &parts, "20250101T000000Z"))
        })
    });
    let query = [
        ("limit", "100"),
        ("offset", "0"),
        ("sort_key", "create_time"),
        ("sort_dir", "DESC"),
    ];
    let empty = payload_hash(b"");
    c.bench_function("sign list-certificates with 4 query params", |b| {
        b.iter(|| {
            let parts = RequestParts {
                method: "GET",
                path: black_box("/v1/private-certificates"),
                query: &query,
                headers: &headers,
                payload_hash: &empty,
            };
            black_box(authorization(&creds, &parts, "20250101T000000Z"))
        })
    });
    c.bench_function("payload hash of the 197-byte issue body (for reference)", |b| {
        b.iter(|| black_box(payload_hash(black_box(body))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
