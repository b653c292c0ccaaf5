//! Controller memory (RSS) on the real control plane: idle, with N of its own issued
//! CertificateRequests, then with 1,000 unrelated Secrets (4 KiB each) added, then with N
//! unrelated CertificateRequests of cert-manager's own CA issuer added.
//!
//! Run: `cargo bench --bench controller_memory` (env `CCM_BENCH_CERTIFICATES`, default 1000).
//! Needs the e2e tools (`export CCM_E2E_TOOLS=$(e2e-tools/build.sh)`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::Result;
use support::*;

async fn settle_and_measure(stack: &Stack, label: &str) -> Result<u64> {
    // Let caches fill and allocations settle; report the median of a few samples.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let median = median_rss(stack.controller_pid().expect("controller running")).await?;
    println!("{label:<58} RSS {:>7.1} MiB", median as f64 / 1024.0);
    Ok(median)
}

fn main() -> Result<()> {
    let n: usize = std::env::var("CCM_BENCH_CERTIFICATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let stack = Stack::start(StackOptions {
        controller_args: vec!["--pca-qps=200".into(), "--pca-burst=200".into()],
        ..StackOptions::default()
    })?;
    let result = stack.rt.block_on(async {
        let client = stack.client().await?;
        let idle = settle_and_measure(&stack, "idle").await?;

        let ns = "mem";
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        stack
            .apply_in(ns, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n"))
            .await?;
        let started = Instant::now();
        let mut yaml = String::new();
        for i in 0..n {
            yaml.push_str(&format!("---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: c{i}}}\nspec: {{secretName: c{i}-tls, commonName: c{i}.mem.example, dnsNames: [c{i}.mem.example], privateKey: {{algorithm: ECDSA, size: 256}}, issuerRef: {{group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}}}}\n"));
        }
        stack.apply_in(ns, &yaml).await?;
        eventually(&format!("{n} certificates issued"), Duration::from_secs(900), async || {
            let issued = stack.mock.lock().await.stats().issued.total as usize;
            Ok((issued >= n).then_some(()))
        })
        .await?;
        let took = started.elapsed().as_secs_f64();
        println!("{n} Certificates issued end to end in {took:.1}s ({:.1}/s, cert-manager + apiserver + controller + mock on one 2-core machine)", n as f64 / took);
        let own = settle_and_measure(&stack, &format!("with {n} own CertificateRequests (Issued)")).await?;

        let noise = "unrelated";
        stack.cp.create_namespace(noise).await?;
        let blob = "x".repeat(4096);
        for chunk in 0..10 {
            let mut yaml = String::new();
            for i in 0..100 {
                yaml.push_str(&format!("---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s{chunk}-{i}, namespace: {noise}}}\nstringData: {{data: {blob}}}\n"));
            }
            stack.cp.apply_yaml(&yaml).await?;
        }
        let secrets = settle_and_measure(&stack, "plus 1000 unrelated Secrets (4 KiB each)").await?;

        let foreign = "foreign";
        stack.cp.create_namespace(foreign).await?;
        stack
            .apply_in(foreign, "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: selfsigned}\nspec: {selfSigned: {}}\n")
            .await?;
        let mut yaml = String::new();
        for i in 0..n {
            yaml.push_str(&format!("---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: f{i}}}\nspec: {{secretName: f{i}-tls, commonName: f{i}.example, privateKey: {{algorithm: ECDSA, size: 256}}, issuerRef: {{name: selfsigned, kind: Issuer, group: cert-manager.io}}}}\n"));
        }
        stack.apply_in(foreign, &yaml).await?;
        eventually("foreign certificates issued", Duration::from_secs(900), async || {
            let list = certificates(&client, foreign).list(&Default::default()).await?;
            let ready = list.items.iter().filter(|c| condition(c, "Ready").is_some_and(|r| r.0 == "True")).count();
            Ok((ready >= n).then_some(()))
        })
        .await?;
        let foreign_rss = settle_and_measure(&stack, &format!("plus {n} CertificateRequests of another issuer")).await?;
        println!(
            "delta for 1000 unrelated Secrets: {:+.1} MiB; for {n} foreign requests: {:+.1} MiB; own requests over idle: {:+.1} MiB",
            (secrets as f64 - own as f64) / 1024.0,
            (foreign_rss as f64 - secrets as f64) / 1024.0,
            (own as f64 - idle as f64) / 1024.0
        );
        anyhow::Ok(())
    });
    let _ = stack.rt.block_on(stack.cp.shutdown());
    result
}
