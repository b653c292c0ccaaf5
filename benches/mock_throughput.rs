//! Leaf certificates per second the mock PCA signs (issue #2 target: ≥ 1,000/s with an EC256
//! CA on 2 cores), driven over loopback HTTP by the real client with concurrent requests.
//!
//! Run: `cargo bench --bench mock_throughput` (env: `CCM_BENCH_SECONDS`, default 10;
//! `CCM_BENCH_CONCURRENCY`, default 32). The mock runs on its own 2-thread runtime, the load
//! generator on another; both share the machine's cores, so the figure is a lower bound.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test and benchmark code

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use ccm_issuer::pca::{
    ClientConfig, Credentials, PcaClient,
    endpoint::parse_endpoint,
    ratelimit::TokenBucket,
    types::{CertificateType, IssueFromCsr, Validity, ValidityUnit},
};
use ccm_mock_pca::{
    ca::KeyAlgorithm,
    embedded::{Embedded, EmbeddedOptions},
};
use secrecy::SecretString;

const AK: &str = "BENCHAK0000000000001";
const SK: &str = "bench-secret-key-00000000000000000000001";
const DOMAIN: &str = "0123456789abcdef0123456789abcdef";
const CA: &str = "6434f74f-2d13-4e6a-89eb-93ee313f1a43";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn csrs(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut p = rcgen::CertificateParams::new(vec![format!("bench-{i}.example")]).expect("params");
            p.distinguished_name
                .push(rcgen::DnType::CommonName, format!("bench-{i}"));
            p.serialize_request(&key).expect("csr").pem().expect("pem")
        })
        .collect()
}

fn run(alg: KeyAlgorithm, seconds: u64, concurrency: usize, pool: &Arc<Vec<String>>) -> (f64, u64) {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let mock = server_rt
        .block_on(Embedded::start(EmbeddedOptions {
            credentials: vec![format!("{AK}:{SK}:{DOMAIN}").parse().expect("credential")],
            cas: vec![(CA.to_owned(), alg, 1)],
            cert_quota: Some(u64::MAX),
            ..Default::default()
        }))
        .expect("mock");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    let url = parse_endpoint(&mock.url).expect("url");
    let mut config = ClientConfig::new(url.clone(), url);
    config.domain_id = Some(DOMAIN.into());
    let client = Arc::new(
        PcaClient::new(
            config,
            Credentials::new(AK, &SecretString::from(SK.to_owned())),
            Arc::new(TokenBucket::new(0.0, 1)),
            None,
        )
        .expect("client"),
    );
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    client_rt.block_on(async {
        let workers: Vec<_> = (0..concurrency)
            .map(|w| {
                let (client, done, pool) = (client.clone(), done.clone(), pool.clone());
                tokio::spawn(async move {
                    let mut i = w;
                    while Instant::now() < deadline {
                        let body = IssueFromCsr {
                            issuer_id: CA.into(),
                            csr: pool[i % pool.len()].clone(),
                            validity: Validity {
                                unit: ValidityUnit::Day,
                                value: 30,
                                start_from: None,
                            },
                            cert_type: CertificateType::EntityCert,
                            path_length: None,
                            enterprise_project_id: None,
                        };
                        client.issue_from_csr(&body).await.expect("issue");
                        done.fetch_add(1, Ordering::Relaxed);
                        i += concurrency;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.expect("worker");
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let issued = done.load(Ordering::Relaxed);
    assert_eq!(
        mock.stats().issued.total,
        issued,
        "every successful call issued exactly one certificate"
    );
    drop(mock);
    (issued as f64 / elapsed, issued)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run briefly then.
    let benching = std::env::args().any(|a| a == "--bench");
    let seconds = if benching { env_u64("CCM_BENCH_SECONDS", 10) } else { 1 };
    let concurrency = usize::try_from(env_u64("CCM_BENCH_CONCURRENCY", 32)).unwrap_or(32);
    ccm_issuer::install_crypto_provider();
    let pool = Arc::new(csrs(256));
    println!(
        "mock PCA issue-from-CSR throughput, {seconds}s per CA type, {concurrency} concurrent requests, {} CPUs",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    for alg in [KeyAlgorithm::Ec256, KeyAlgorithm::Rsa2048] {
        let (rate, n) = run(alg, seconds, concurrency, &pool);
        println!("{:<8} CA: {rate:>8.0} leaf certificates/s ({n} issued)", alg.as_str());
    }
}
