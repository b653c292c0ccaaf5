//! Fairness between issuers on the real control plane: a healthy issuer's time to Ready,
//! unloaded, then while a "tarpit" issuer (a PCA that accepts issue calls and never answers)
//! has 100 requests pending.
//!
//! Run: `cargo bench --bench fairness` (needs `export CCM_E2E_TOOLS=$(e2e-tools/build.sh)`).
//! `CCM_BENCH_PER_ISSUER=8` runs it without the per-issuer limit (every worker may serve the
//! tarpit), for comparison.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::Result;
use ccm_mock_pca::{
    ca::KeyAlgorithm,
    embedded::{Embedded, EmbeddedOptions},
};
use kube::api::ListParams;
use support::*;

const HEALTHY: usize = 20;
const TARPIT: usize = 100;

fn certificate(name: &str, issuer: &str, kind: &str) -> String {
    format!(
        "---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}}}\nspec: {{secretName: {name}, commonName: {name}.bench.example, dnsNames: [{name}.bench.example], issuerRef: {{group: ccm-issuer.ccm.com, kind: {kind}, name: {issuer}}}}}\n"
    )
}

/// Creates `n` healthy Certificates at once and returns each one's time to Ready, sorted.
async fn healthy_round(stack: &Stack, ns: &str, prefix: &str) -> Result<Vec<Duration>> {
    let yaml: String = (0..HEALTHY)
        .map(|i| certificate(&format!("{prefix}{i:02}"), "pca", "CCMIssuer"))
        .collect();
    let started = Instant::now();
    stack.apply_in(ns, &yaml).await?;
    let client = stack.client().await?;
    let api = certificates(&client, ns);
    let mut ready = std::collections::BTreeMap::new();
    while ready.len() < HEALTHY {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "healthy certificates not Ready in 5 minutes"
        );
        for c in api.list(&ListParams::default()).await?.items {
            let name = c.metadata.name.clone().unwrap_or_default();
            if name.starts_with(prefix) && condition(&c, "Ready").is_some_and(|r| r.0 == "True") {
                ready.entry(name).or_insert_with(|| started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut times: Vec<Duration> = ready.into_values().collect();
    times.sort();
    Ok(times)
}

fn summary(label: &str, times: &[Duration]) -> (f64, f64) {
    let p50 = times[times.len() / 2].as_secs_f64();
    let max = times[times.len() - 1].as_secs_f64();
    println!("{label:<52} p50 {p50:>6.2}s   max {max:>6.2}s");
    (p50, max)
}

fn main() -> Result<()> {
    let per_issuer = std::env::var("CCM_BENCH_PER_ISSUER").unwrap_or_else(|_| "4".into());
    let stack = Stack::start(StackOptions {
        controller_args: vec![
            "--pca-qps=0".into(),
            format!("--max-concurrent-per-issuer={per_issuer}"),
        ],
        ..StackOptions::default()
    })?;
    let result = stack.rt.block_on(async {
        // The tarpit: a second PCA whose issue calls never get an answer.
        let tarpit = Embedded::start(EmbeddedOptions {
            credentials: vec![format!("{AK}:{SK}:{DOMAIN}").parse().map_err(|e: String| anyhow::anyhow!(e))?],
            cas: vec![(SEED_URN.to_owned(), KeyAlgorithm::Ec256, 1)],
            tls: true,
            ..Default::default()
        })
        .await?;
        tarpit
            .set_faults(serde_json::from_value(serde_json::json!({
                "latency_ms": 3_600_000, "operations": ["CreateCertificateByCsr"]
            }))?)
            .map_err(anyhow::Error::msg)?;
        let ca = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            tarpit.tls_ca_pem.clone().unwrap_or_default(),
        );
        stack.credentials_secret(CLUSTER_RESOURCE_NAMESPACE, "tarpit-secret", SK).await?;
        stack
            .apply_in("", &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMClusterIssuer\nmetadata: {{name: tarpit}}\nspec: {{urn: \"{SEED_URN}\", region: ap-southeast-3, endpoint: \"{}\", caBundle: \"{ca}\", secretRef: {{name: tarpit-secret}}}}\n", tarpit.url))
            .await?;
        let ns = "fair";
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        stack
            .apply_in(ns, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n"))
            .await?;
        issuer_condition(&stack, ns, "pca", "Verified").await?;

        println!("--max-concurrent-per-issuer={per_issuer}, 8 workers, {HEALTHY} healthy Certificates per round");
        let unloaded = healthy_round(&stack, ns, "u").await?;
        let (base, _) = summary("healthy issuer, unloaded", &unloaded);

        let slow = "tarpit-load";
        stack.cp.create_namespace(slow).await?;
        let yaml: String = (0..TARPIT)
            .map(|i| certificate(&format!("t{i:03}"), "tarpit", "CCMClusterIssuer"))
            .collect();
        stack.apply_in(slow, &yaml).await?;
        // Let the tarpit's requests reach the controller and its calls hang.
        tokio::time::sleep(Duration::from_secs(15)).await;
        let loaded = healthy_round(&stack, ns, "l").await?;
        let (with_tarpit, _) = summary(&format!("healthy issuer, tarpit with {TARPIT} pending"), &loaded);
        println!("ratio (p50 loaded / unloaded): {:.2}", with_tarpit / base);
        tarpit.stop().await;
        anyhow::Ok(())
    });
    if let Err(e) = stack.rt.block_on(stack.cp.shutdown()) {
        eprintln!("teardown: {e:#}");
    }
    result
}
