//! What one PCA client costs: the controller builds one per issuer, so this is the memory and
//! time 200 issuers add before they issue anything (`src/pca/tls.rs` explains the shared
//! verifier of the system roots).
//!
//! Run: `cargo bench --bench pca_clients` (env `CCM_BENCH_CLIENTS`, default 200).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code

use std::{sync::Arc, time::Instant};

use ccm_issuer::pca::{ClientConfig, Credentials, PcaClient, ratelimit::TokenBucket};
use secrecy::SecretString;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).expect("value").parse().expect("KiB")
}

fn main() {
    let n: usize = std::env::var("CCM_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let sk = SecretString::from("bench-secret-key".to_owned());
    let limiter = Arc::new(TokenBucket::new(5.0, 5));
    let before = rss_kib();
    let started = Instant::now();
    let clients: Vec<PcaClient> = (0..n)
        .map(|_| {
            let config = ClientConfig::new(
                "https://pca.example".parse().expect("url"),
                "https://iam.example".parse().expect("url"),
            );
            PcaClient::new(config, Credentials::new("AK", &sk), limiter.clone(), None).expect("client")
        })
        .collect();
    let took = started.elapsed();
    let grown = rss_kib() - before;
    println!(
        "{n} PCA clients: +{grown} KiB RSS ({:.1} KiB each), built in {:.1} ms ({:.2} ms each)",
        grown as f64 / n as f64,
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3 / n as f64
    );
    drop(clients);
}
