//! Memory soak on the real control plane: 20,000 CertificateRequests created, issued and
//! deleted across 200 issuers, 200 at a time. Per-request and per-issuer state must be dropped
//! with the objects: the controller's RSS at the end must stay within 2 MiB of where it was
//! after the warm-up (every issuer's client, Secret watch and rate-limit bucket exist, and its
//! PCA connection has served enough calls to reach its working size: 10 rounds,
//! `CCM_SOAK_WARMUP_ROUNDS`).
//!
//! Run: `cargo bench --bench soak` (env `CCM_SOAK_REQUESTS`, default 20000; needs
//! `export CCM_E2E_TOOLS=$(e2e-tools/build.sh)`). Takes about 20 minutes: after the last round
//! it waits past the controller's cache lifetimes (event series 6 min, per-request memory
//! 1 min) before the final measurement.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use base64::Engine as _;
use ccm_issuer::cert_manager::CertificateRequest;
use kube::api::{Api, DeleteParams, ListParams};
use rcgen::{CertificateParams, DnType, KeyPair, KeyUsagePurpose};
use support::*;

const ISSUERS: usize = 200;
const NAMESPACES: usize = 20;
const BATCH: usize = 200;

async fn settled_rss(stack: &Stack) -> Result<u64> {
    median_rss(stack.controller_pid().expect("controller running")).await
}

fn csr(cn: &str) -> String {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(vec![format!("{cn}.soak.example")]).expect("params");
    p.distinguished_name.push(DnType::CommonName, cn);
    // The usages the requests ask for: the controller refuses a CSR that does not carry them.
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.serialize_request(&key).expect("csr").pem().expect("pem")
}

/// Creates `BATCH` requests spread over the issuers, waits until all are Issued, deletes them.
async fn round(stack: &Stack, n: usize) -> Result<()> {
    let mut yaml = String::new();
    for i in 0..BATCH {
        let k = n * BATCH + i;
        let issuer = k % ISSUERS;
        let ns = format!("soak-{}", issuer % NAMESPACES);
        let request = base64::engine::general_purpose::STANDARD.encode(csr(&format!("r{k}")));
        yaml.push_str(&format!(
            "---\napiVersion: cert-manager.io/v1\nkind: CertificateRequest\nmetadata: {{name: r{k}, namespace: {ns}, labels: {{soak: \"{n}\"}}}}\nspec: {{request: {request}, usages: [digital signature, key encipherment], issuerRef: {{group: ccm-issuer.ccm.com, kind: CCMIssuer, name: i{issuer}}}}}\n"
        ));
    }
    stack.apply_in("default", &yaml).await?;
    let client = stack.client().await?;
    let all: Api<CertificateRequest> = Api::all(client.clone());
    let lp = ListParams::default().labels(&format!("soak={n}"));
    let started = Instant::now();
    loop {
        let items = all.list(&lp).await?.items;
        let issued = items.iter().filter(|cr| cr.ready_reason() == Some("Issued")).count();
        let failed: Vec<&CertificateRequest> = items.iter().filter(|cr| cr.ready_reason() == Some("Failed")).collect();
        ensure!(
            failed.is_empty(),
            "{} requests failed in round {n}, e.g. {}",
            failed.len(),
            failed[0]
                .condition("Ready")
                .and_then(|c| c.message.clone())
                .unwrap_or_default()
        );
        if issued == BATCH {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(300),
            "round {n}: {issued}/{BATCH} issued"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for ns in 0..NAMESPACES {
        let api: Api<CertificateRequest> = Api::namespaced(client.clone(), &format!("soak-{ns}"));
        api.delete_collection(&DeleteParams::default(), &lp).await?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let requests: usize = std::env::var("CCM_SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let warmup_rounds: usize = std::env::var("CCM_SOAK_WARMUP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    let stack = Stack::start(StackOptions {
        controller_args: vec!["--pca-qps=0".into(), "--max-concurrent-reconciles=16".into()],
        ..StackOptions::default()
    })?;
    let result = stack.rt.block_on(async {
        for ns in 0..NAMESPACES {
            stack.credentials_secret(&format!("soak-{ns}"), "ccm-secret", SK).await?;
        }
        let issuers: String = (0..ISSUERS)
            .map(|i| format!("---\napiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: i{i}, namespace: soak-{}}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n", i % NAMESPACES))
            .collect();
        stack.apply_in("default", &issuers).await?;
        for i in 0..ISSUERS {
            issuer_condition(&stack, &format!("soak-{}", i % NAMESPACES), &format!("i{i}"), "Verified").await?;
        }
        // Warm-up: every issuer has served a request (client, bucket, slots, watch exist)...
        round(&stack, 0).await?;
        tokio::time::sleep(Duration::from_secs(70)).await;
        let first = settled_rss(&stack).await?;
        println!("after one warm-up round ({BATCH} requests, {ISSUERS} issuers): RSS {:.1} MiB", first as f64 / 1024.0);
        // ... and then enough requests for each PCA connection to reach its working size: the
        // heap profile showed hyper's per-connection request channel growing by a block after
        // its first 32 calls (about 10 KB for each of the 200 connections), which one round
        // of 200 requests does not reach. That is per connection, not per request; the
        // growth measured below starts from here, and the growth since the first round is
        // printed as well.
        for n in 1..warmup_rounds {
            round(&stack, n).await?;
        }
        tokio::time::sleep(Duration::from_secs(70)).await;
        let before = settled_rss(&stack).await?;
        println!(
            "after warm-up ({} requests, {ISSUERS} issuers): RSS {:.1} MiB",
            warmup_rounds * BATCH,
            before as f64 / 1024.0
        );
        let rounds = requests / BATCH;
        let started = Instant::now();
        let mut peak = before;
        for n in 1..=rounds {
            round(&stack, warmup_rounds + n).await?;
            peak = peak.max(rss_kib(stack.controller_pid().expect("running"))?);
            if n % 10 == 0 {
                println!("{:>6} requests created, issued and deleted in {:.0}s, RSS {:.1} MiB", n * BATCH, started.elapsed().as_secs_f64(), rss_kib(stack.controller_pid().expect("running"))? as f64 / 1024.0);
            }
        }
        // Past every cache lifetime, then one more round so lazily pruned caches prune.
        tokio::time::sleep(Duration::from_secs(7 * 60)).await;
        round(&stack, warmup_rounds + rounds + 1).await?;
        tokio::time::sleep(Duration::from_secs(70)).await;
        let after = settled_rss(&stack).await?;
        let delta = after as f64 / 1024.0 - before as f64 / 1024.0;
        println!(
            "after {} requests across {ISSUERS} issuers: RSS {:.1} MiB ({delta:+.1} MiB; {:+.1} MiB since the first warm-up round), peak {:.1} MiB",
            rounds * BATCH,
            after as f64 / 1024.0,
            (after as f64 - first as f64) / 1024.0,
            peak as f64 / 1024.0
        );
        ensure!(delta <= 2.0, "RSS grew by {delta:.1} MiB");
        anyhow::Ok(())
    });
    if let Err(e) = stack.rt.block_on(stack.cp.shutdown()) {
        eprintln!("teardown: {e:#}");
    }
    result
}
