//! Scale on the real control plane: N CertificateRequests in the cluster (default 10,000),
//! half of them ccm-issuer's and half of cert-manager's own CA issuer, all issued; then the
//! controller's RSS, and its start-to-ready time (process start to `/readyz`, i.e. every
//! cache listed) and RSS after a restart, with the controller's CPU seconds and the API
//! server's own time in the listing up to ready. Each restart waits for a quiet cluster first
//! (`settle`), so it is not timed against what cert-manager still finishes from the issuing.
//!
//! Run: `cargo bench --bench scale` (needs `export CCM_E2E_TOOLS=$(e2e-tools/build.sh)`).
//! Environment: `CCM_BENCH_REQUESTS` (default 10000), `CCM_BENCH_RESTARTS` (default 3),
//! `CCM_BENCH_BASELINE_BIN` (another `ccm-issuer` build, e.g. the last release's: each restart
//! then runs it first, then this build, on the same cluster).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::Result;
use ccm_e2e::Signal;
use serde_json::json;
use support::*;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Median of five RSS samples a second apart, after `settle`.
async fn settled_rss(pid: u32, settle: Duration) -> Result<u64> {
    tokio::time::sleep(settle).await;
    median_rss(pid).await
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn wait_all_ready(stack: &Stack, ns: &str, n: usize) -> Result<()> {
    let client = stack.client().await?;
    eventually(
        &format!("{n} requests Ready in {ns}"),
        Duration::from_secs(3600),
        async || {
            let (_, _, ready, failed) = request_counts(&client, ns).await?;
            anyhow::ensure!(failed == 0, "{failed} requests Failed in {ns}");
            Ok((ready >= n).then_some(()))
        },
    )
    .await
}

/// Restarts the controller once the cluster is quiet and prints the restart's table row.
async fn restart(stack: &Stack, label: &str) -> Result<()> {
    stack.stop_controller(Signal::Term).await?;
    settle(stack, &format!("restart {label}")).await;
    let lists_before = apiserver_lists(stack, "certificaterequests").await?;
    let started = Instant::now();
    stack.start_controller().await?;
    let ready = started.elapsed();
    let pid = stack.controller_pid().expect("controller running");
    let (cpu, _) = process_usage(pid)?;
    let lists = apiserver_lists(stack, "certificaterequests").await?;
    let rss = settled_rss(pid, Duration::from_secs(10)).await?;
    let (_, hwm) = process_usage(pid)?;
    println!(
        "| {label} | {:.2} s | {cpu:.2} s | {:.2} s ({}) | {:.1} MiB | {:.1} MiB |",
        ready.as_secs_f64(),
        lists.0 - lists_before.0,
        lists.1 - lists_before.1,
        mib(rss),
        mib(hwm)
    );
    Ok(())
}

fn main() -> Result<()> {
    let total = env_u64("CCM_BENCH_REQUESTS", 10_000) as usize;
    let restarts = env_u64("CCM_BENCH_RESTARTS", 3);
    let half = total / 2;
    let stack = Stack::start(StackOptions::default())?;
    let result = stack.rt.block_on(async {
        let pid = stack.controller_pid().expect("controller running");
        let idle = settled_rss(pid, Duration::from_secs(5)).await?;
        println!("idle (caches synced, no requests): RSS {:.1} MiB", mib(idle));

        // ccm-issuer's half.
        let ours = "scale-ccm";
        issuer_in(&stack, ours).await?;
        // cert-manager's CA issuer's half.
        let other = "scale-other";
        stack.cp.create_namespace(other).await?;
        stack
            .apply_in(other, "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: selfsigned}\nspec: {selfSigned: {}}\n---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: root}\nspec: {secretName: root, isCA: true, commonName: scale-root, privateKey: {algorithm: ECDSA, size: 256}, issuerRef: {name: selfsigned, kind: Issuer}}\n---\napiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: ca}\nspec: {ca: {secretName: root}}\n")
            .await?;
        certificate_ready(&stack.client().await?, other, "root").await?;

        let started = Instant::now();
        let ccm_ref = json!({"group": "ccm-issuer.ccm.com", "kind": "CCMIssuer", "name": "pca"});
        let ca_ref = json!({"group": "cert-manager.io", "kind": "Issuer", "name": "ca"});
        let (a, b) = tokio::join!(
            create_requests(&stack, ours, "r", half, &ccm_ref),
            create_requests(&stack, other, "o", total - half, &ca_ref),
        );
        a?;
        b?;
        println!("{total} CertificateRequests created in {:.0}s", started.elapsed().as_secs_f64());
        wait_all_ready(&stack, ours, half).await?;
        wait_all_ready(&stack, other, total - half).await?;
        println!("all {total} Ready after {:.0}s", started.elapsed().as_secs_f64());
        let loaded = settled_rss(pid, Duration::from_secs(10)).await?;
        let (_, hwm) = process_usage(pid)?;
        println!(
            "after issuing {half} (with {} of the CA issuer's in the cluster): RSS {:.1} MiB, peak {:.1} MiB",
            total - half,
            mib(loaded),
            mib(hwm)
        );

        println!(
            "\n| restart | start to ready | controller CPU to ready | API server time in LIST certificaterequests (calls) | RSS after 10 s | peak RSS (VmHWM) |\n|---|---|---|---|---|---|"
        );
        // With a baseline build, each restart runs it and then this build, alternately, on
        // the same cluster.
        let baseline = std::env::var_os("CCM_BENCH_BASELINE_BIN").map(std::path::PathBuf::from);
        for i in 1..=restarts {
            if let Some(path) = &baseline {
                stack.use_controller_binary(Some(path.clone()));
                restart(&stack, &format!("{i} (baseline)")).await?;
                stack.use_controller_binary(None);
            }
            restart(&stack, &i.to_string()).await?;
        }
        anyhow::Ok(())
    });
    finish_bench(&stack, result)
}
