//! Throughput checks on the real control plane (the figures themselves come from
//! `cargo bench --bench throughput`, see docs/benchmarks.md):
//!
//! * what the controller asks of the apiserver per leaf and per CA request, counted by the
//!   apiserver itself (`apiserver_request_total`): one intent patch, one status apply and one
//!   event per request, the CA id patch for CA requests, and no reads;
//! * the adaptive PCA rate against a PCA that throttles at 10 calls/s, with default flags:
//!   every Certificate Ready, every request issued exactly once and none Failed, few calls
//!   refused.

#[path = "support/mod.rs"]
mod support;

use std::{collections::BTreeMap, process::ExitCode, time::Duration};

use anyhow::{Result, ensure};
use ccm_e2e::Signal;
use k8s_openapi::api::events::v1::Event;
use kube::{Api, api::ListParams};
use support::*;

fn main() -> ExitCode {
    main_with(
        StackOptions::default(),
        vec![
            ("apiserver requests per leaf and CA request", requests_per_request),
            ("adaptive rate against a PCA throttling at 10/s", adaptive_rate),
        ],
    )
}

type Row = (String, String, String);

fn row(verb: &str, resource: &str, subresource: &str) -> Row {
    (verb.to_owned(), resource.to_owned(), subresource.to_owned())
}

fn print_delta(delta: &BTreeMap<Row, u64>) {
    for ((verb, resource, sub), n) in delta {
        eprintln!(
            "[throughput]   {n:>5}  {verb:<8} {resource}{}{sub}",
            if sub.is_empty() { "" } else { "/" }
        );
    }
}

/// The controller is stopped while approved requests pile up, then started: everything the
/// apiserver counts from then on, apart from the controller's start-up and this test's own
/// polling, is the controller's work on those requests.
fn requests_per_request(stack: &Stack) -> Result<()> {
    const LEAVES: usize = 40;
    const CAS: usize = 5;
    stack.rt.block_on(async {
        let ns = "count";
        issuer_in(stack, ns).await?;
        stack.stop_controller(Signal::Term).await?;
        let issuer_ref = serde_json::json!({"group": "ccm-issuer.ccm.com", "kind": "CCMIssuer", "name": "pca"});
        let mut yaml = String::new();
        for i in 0..LEAVES + CAS {
            yaml.push_str("---\n");
            yaml.push_str(&certificate_request_json(&format!("r{i:03}"), &issuer_ref, i >= LEAVES)?);
            yaml.push('\n');
        }
        stack.apply_in(ns, &yaml).await?;
        let client = stack.client().await?;
        eventually("requests approved", Duration::from_secs(60), async || {
            let (_, approved, _, _) = request_counts(&client, ns).await?;
            Ok((approved == LEAVES + CAS).then_some(()))
        })
        .await?;
        let before = apiserver_requests(stack).await?;
        stack.start_controller().await?;
        eventually("requests issued", Duration::from_secs(120), async || {
            let (_, _, ready, failed) = request_counts(&client, ns).await?;
            ensure!(failed == 0, "{failed} requests Failed");
            Ok((ready == LEAVES + CAS).then_some(()))
        })
        .await?;
        // The Issued event follows the status write.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = apiserver_requests(stack).await?;
        let delta = request_delta(&before, &after);
        eprintln!("[throughput] apiserver requests while the controller issued {LEAVES} leaf and {CAS} CA requests (start-up included):");
        print_delta(&delta);
        let n = |r: Row| delta.get(&r).copied().unwrap_or(0);
        let (leaves, cas) = (LEAVES as u64, CAS as u64);
        ensure!(
            n(row("PATCH", "certificaterequests", "")) == leaves + 2 * cas,
            "annotation patches: one intent per request and one id per CA request"
        );
        ensure!(
            n(row("APPLY", "certificaterequests", "status")) == leaves + cas,
            "one status apply per request"
        );
        ensure!(n(row("POST", "events", "")) == leaves + cas, "one event per request");
        ensure!(
            n(row("GET", "certificaterequests", "")) == 0,
            "no request is read back from the apiserver"
        );
        ensure!(
            n(row("GET", "ccmissuers", "")) == 0,
            "issuers come from the cache, also at start-up"
        );
        // The issuer check reads the Secret; requests read it only until the Secret's watch has
        // listed it (at most one per issuer slot at start-up), never per request.
        ensure!(
            n(row("GET", "secrets", "")) <= 1 + 4,
            "the Secret is read at start-up only, not per request"
        );
        Ok(())
    })
}

/// Default flags against a PCA whose gateway admits 10 calls per second and access key.
fn adaptive_rate(stack: &Stack) -> Result<()> {
    const CERTIFICATES: usize = 60;
    const LIMIT: u64 = 10;
    stack.rt.block_on(async {
        let throttled = throttled_cluster_issuer(stack, "throttled", LIMIT).await?;
        let ns = "throttled";
        stack.cp.create_namespace(ns).await?;
        let started = std::time::Instant::now();
        let mut yaml = String::new();
        // Requests are kept (cert-manager's default keeps one) so every one is counted.
        for i in 0..CERTIFICATES {
            yaml.push_str(&format!("---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: t{i:03}}}\nspec: {{secretName: t{i:03}, revisionHistoryLimit: 10, commonName: t{i:03}.throttled.example, dnsNames: [t{i:03}.throttled.example], privateKey: {{algorithm: ECDSA, size: 256}}, issuerRef: {{group: ccm-issuer.ccm.com, kind: CCMClusterIssuer, name: throttled}}}}\n"));
        }
        stack.apply_in(ns, &yaml).await?;
        let client = stack.client().await?;
        eventually("certificates Ready", Duration::from_secs(300), async || {
            let list = certificates(&client, ns).list(&ListParams::default()).await?;
            let ready = list
                .items
                .iter()
                .filter(|c| condition(c, "Ready").is_some_and(|r| r.0 == "True"))
                .count();
            let (_, _, _, failed) = request_counts(&client, ns).await?;
            ensure!(failed == 0, "{failed} requests Failed");
            Ok((ready == CERTIFICATES).then_some(()))
        })
        .await?;
        let took = started.elapsed().as_secs_f64();
        // Every request final (cert-manager may have made one more), each issued exactly once.
        let (requests, _) = exactly_once(stack, ns, async || throttled.stats()).await?;
        let stats = throttled.stats();
        let answered: u64 = stats.operations.values().map(|o| o.answered).sum();
        let refused: u64 = stats.operations.values().map(|o| o.throttled).sum();
        let share = refused as f64 / answered.max(1) as f64;
        eprintln!(
            "[throughput] {CERTIFICATES} Certificates in {took:.0}s ({:.1}/s) against {LIMIT} calls/s: {requests} requests, 0 Failed, exactly one certificate each, {refused} of {answered} calls answered 429 ({:.1}%)",
            CERTIFICATES as f64 / took,
            share * 100.0,
        );
        ensure!(share < 0.10, "{:.1}% of calls refused", share * 100.0);
        let metrics = stack.metrics().await?;
        let host = throttled.url.trim_start_matches("https://");
        ensure!(
            metrics.contains(&format!("ccm_issuer_pca_rate{{endpoint=\"{host}\"")),
            "the rate is a metric"
        );
        if refused > 0 {
            let events: Api<Event> = Api::all(client.clone());
            let lowered = events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("PCARateLowered"))
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("throttled"))
                .count();
            ensure!(lowered >= 1, "a throttled issuer gets a PCARateLowered event");
        }
        throttled.stop().await;
        Ok(())
    })
}
