//! The chaos suite: exactly one certificate per request and no Failed request, under fault
//! mixes, a PCA outage, SIGKILLed leaders and a backlog, on the real control plane.
//!
//! `cargo test --test chaos` runs the scaled-down version CI runs. The full version:
//!
//! ```sh
//! CCM_CHAOS=full cargo test --release --test chaos -- --nocapture
//! ```
//!
//! Each scenario ends with a one-line summary (`[chaos] ...`) with its figures.

mod support;

use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};
use ccm_e2e::Signal;
use ccm_issuer::cert_manager::CertificateRequest;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, ObjectList},
};
use rand::Rng;
use support::*;

/// How big a run is.
#[derive(Debug, Clone, Copy)]
struct Scale {
    certificates: usize,
    ca_certificates: usize,
    kill_after: (u64, u64),
    outage: Duration,
    backlog: usize,
    backlog_retry_budget: &'static str,
    timeout: Duration,
}

impl Scale {
    fn from_env() -> Scale {
        if std::env::var("CCM_CHAOS").as_deref() == Ok("full") {
            Scale {
                certificates: 500,
                ca_certificates: 10,
                kill_after: (5, 15),
                outage: Duration::from_secs(60),
                backlog: 2000,
                backlog_retry_budget: "5m",
                // At the default adaptive rate, 10% injected 429s hold the rate near its floor
                // (about 1 call/s): the 2,000 backlog alone takes over an hour.
                timeout: Duration::from_secs(7200),
            }
        } else {
            Scale {
                certificates: 60,
                ca_certificates: 2,
                // Long enough for a debug build on 2 shared cores to finish recovery passes
                // between kills (the full run keeps the issue's 5–15 s).
                kill_after: (15, 25),
                outage: Duration::from_secs(20),
                backlog: 100,
                backlog_retry_budget: "20s",
                timeout: Duration::from_secs(1200),
            }
        }
    }
}

fn main() -> ExitCode {
    main_with(
        StackOptions {
            start_controller: false,
            // SAN-only Certificates (istio-csr shapes) need the lenient reading of the
            // common-name rule (the real service's is unconfirmed: docs/pca-behaviour.md).
            csr_cn_rule: ccm_mock_pca::ca::CnRule::Lenient,
            ..StackOptions::default()
        },
        vec![
            ("a standby prepares its clients before it leads", standby_prepares),
            ("back-off holds under throttling", backoff_holds),
            ("chaos: faults, outage and killed leaders", chaos),
            ("backlog at the default PCA rate", backlog),
        ],
    )
}

const LEASE: &str = "--leader-election-lease-duration=4s";
/// The two controller replicas of the chaos scenario.
const REPLICAS: [&str; 2] = ["replica-a", "replica-b"];

/// The kinds of Certificates the suite mixes.
fn certificate_yaml(i: usize, ca: bool) -> String {
    let name = format!("c{i:04}");
    let issuer = "issuerRef: {group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}";
    if ca {
        return format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}}}\nspec: {{secretName: {name}, revisionHistoryLimit: 10, isCA: true, commonName: {name}-ca, duration: 720h, {issuer}}}\n"
        );
    }
    match i % 3 {
        // ECDSA with a common name.
        0 => format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}}}\nspec: {{secretName: {name}, revisionHistoryLimit: 10, commonName: {name}.chaos.example, dnsNames: [{name}.chaos.example], privateKey: {{algorithm: ECDSA, size: 256}}, {issuer}}}\n"
        ),
        // RSA, SAN only (no common name).
        1 => format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}}}\nspec: {{secretName: {name}, revisionHistoryLimit: 10, dnsNames: [{name}.chaos.example], privateKey: {{algorithm: RSA, size: 2048}}, {issuer}}}\n"
        ),
        // ECDSA P-384, SAN only.
        _ => format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}}}\nspec: {{secretName: {name}, revisionHistoryLimit: 10, dnsNames: [{name}.chaos.example], privateKey: {{algorithm: ECDSA, size: 384}}, {issuer}}}\n"
        ),
    }
}

async fn create_certificates(stack: &Stack, ns: &str, n: usize, cas: usize) -> Result<()> {
    let mut batch = String::new();
    for i in 0..n {
        batch.push_str("---\n");
        batch.push_str(&certificate_yaml(i, i < cas));
        if (i + 1) % 50 == 0 || i + 1 == n {
            stack.apply_in(ns, &batch).await?;
            batch.clear();
        }
    }
    Ok(())
}

async fn requests(stack: &Stack, ns: &str) -> Result<ObjectList<CertificateRequest>> {
    let api: Api<CertificateRequest> = Api::namespaced(stack.client().await?, ns);
    Ok(api.list(&ListParams::default()).await?)
}

/// Waits until `n` Certificates are Ready, failing early on any Failed request.
async fn all_ready(stack: &Stack, ns: &str, n: usize, timeout: Duration) -> Result<()> {
    let client = stack.client().await?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let failed: Vec<String> = requests(stack, ns)
            .await?
            .items
            .iter()
            .filter(|cr| cr.ready_reason() == Some("Failed"))
            .map(|cr| format!("{}: {}", cr.name_any(), cr.ready_message().unwrap_or_default()))
            .collect();
        ensure!(failed.is_empty(), "Failed requests: {failed:#?}");
        let ready = certificates(&client, ns)
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|c| condition(c, "Ready").is_some_and(|r| r.0 == "True"))
            .count();
        if ready >= n {
            return Ok(());
        }
        ensure!(
            started.elapsed() < timeout,
            "only {ready} of {n} Certificates Ready after {timeout:?}"
        );
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "[chaos] {ready}/{n} Ready after {:.0}s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Deletes the Certificates and CertificateRequests of `ns` (no controller is running).
async fn forget_requests(stack: &Stack, ns: &str) -> Result<()> {
    let client = stack.client().await?;
    let lp = ListParams::default();
    certificates(&client, ns)
        .delete_collection(&DeleteParams::default(), &lp)
        .await?;
    Api::<CertificateRequest>::namespaced(client, ns)
        .delete_collection(&DeleteParams::default(), &lp)
        .await?;
    Ok(())
}

/// PCA calls the service answered (injected faults excluded), and injected ones.
async fn pca_calls(stack: &Stack) -> (u64, u64) {
    let stats = stack.mock.lock().await.stats();
    let ops = [
        "CreateCertificateByCsr",
        "ExportCertificate",
        "ExportCertificateAuthorityCertificate",
        "ListCertificate",
        "ShowCertificateAuthority",
    ];
    let answered = ops
        .iter()
        .filter_map(|o| stats.operations.get(*o))
        .map(|o| o.answered)
        .sum();
    let total: u64 = ops
        .iter()
        .filter_map(|o| stats.operations.get(*o))
        .map(|o| o.total)
        .sum();
    (answered, total - answered)
}

/// A standby discovers its issuers' account id while it waits for the lease, so the leader it
/// becomes after a failover goes to the PCA without an IAM round trip first.
fn standby_prepares(stack: &Stack) -> Result<()> {
    const IAM: &str = "KeystoneListAuthDomains";
    stack.rt.block_on(async {
        let ns = "standby";
        stack.stop_all_replicas().await?;
        let extra = vec![LEASE.to_owned()];
        stack.start_replica("replica-a", &extra).await?;
        issuer_in(stack, ns).await?;
        ensure!(stack.leader().await?.as_deref() == Some("replica-a"), "replica-a leads");
        stack.mock.lock().await.mock.stats.reset();
        stack.start_replica("replica-b", &extra).await?;
        eventually(
            "the standby discovers the account id",
            Duration::from_secs(30),
            async || Ok((calls(stack, IAM).await >= 1).then_some(())),
        )
        .await?;
        stack.stop_replica("replica-a", Signal::Kill).await?;
        eventually("replica-b leads", Duration::from_secs(30), async || {
            Ok((stack.leader().await?.as_deref() == Some("replica-b")).then_some(()))
        })
        .await?;
        stack.apply_in(ns, &certificate_yaml(0, false)).await?;
        certificate_ready(&stack.client().await?, ns, "c0000").await?;
        let (iam, issued) = (calls(stack, IAM).await, calls(stack, "CreateCertificateByCsr").await);
        stack.stop_replica("replica-b", Signal::Term).await?;
        ensure!(
            iam == 1 && issued == 1,
            "{iam} IAM calls (1 expected: the standby's) and {issued} issue calls for one Certificate"
        );
        eprintln!(
            "[chaos] standby: account id discovered before the failover; the new leader issued without an IAM call"
        );
        Ok(())
    })
}

/// Issue attempts under 100% throttling follow the request's back-off (the reconciler is not
/// re-triggered by its own status writes).
fn backoff_holds(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "backoff";
        stack.stop_all_replicas().await?;
        stack.start_replica("solo", &[]).await?;
        issuer_in(stack, ns).await?;
        stack.mock.lock().await.mock.stats.reset();
        stack
            .mock
            .lock()
            .await
            .set_faults(serde_json::from_value(
                serde_json::json!({"rate_429": 1.0, "operations": ["CreateCertificateByCsr"]}),
            )?)
            .map_err(anyhow::Error::msg)?;
        stack.apply_in(ns, &certificate_yaml(0, false)).await?;
        let window = Duration::from_secs(62);
        tokio::time::sleep(window).await;
        let attempts = calls(stack, "CreateCertificateByCsr").await;
        stack
            .mock
            .lock()
            .await
            .set_faults(Default::default())
            .map_err(anyhow::Error::msg)?;
        // Back-off as long as the episode so far: attempts at about 0, 2, 4, 8, 16, 32 s.
        ensure!(
            (4..=9).contains(&attempts),
            "{attempts} issue attempts in {window:?} of 100% 429"
        );
        certificate_ready(&stack.client().await?, ns, "c0000").await?;
        stack.stop_replica("solo", Signal::Term).await?;
        eprintln!(
            "[chaos] back-off: {attempts} issue attempts in {}s of 100% throttling",
            window.as_secs()
        );
        Ok(())
    })
}

/// Kills the leader after it has led for a random `scale.kill_after` seconds, waits for the
/// other replica to take the lease over, then restarts the killed one as a standby, until
/// `stop` is set. (Restarted at once, a replica keeps its identity and takes its own lease back
/// without a failover, as a restarted container of the same pod does.) A replica that exited
/// by itself (a fenced leader that could not renew in time) is started again, as the kubelet
/// would. Returns the number of kills, the failover times and the self-exits.
async fn killer(
    stack: &Stack,
    scale: Scale,
    stop: Arc<AtomicBool>,
    extra: Vec<String>,
) -> Result<(u32, Vec<Duration>, u32)> {
    let mut kills = 0;
    let mut failovers = Vec::new();
    let mut exits = 0;
    while !stop.load(Ordering::SeqCst) {
        for name in REPLICAS {
            if stack.restart_exited_replica(name, &extra).await? {
                exits += 1;
            }
        }
        let Some(leader) = stack.leader().await? else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let lead_for = rand::rng().random_range(scale.kill_after.0..=scale.kill_after.1);
        tokio::time::sleep(Duration::from_secs(lead_for)).await;
        if stop.load(Ordering::SeqCst) || stack.replica_port(&leader).is_none() {
            continue;
        }
        stack.stop_replica(&leader, Signal::Kill).await?;
        kills += 1;
        let killed_at = Instant::now();
        // Failover: until the other (live) replica renews the lease after the kill.
        let killed_wall = jiff::Timestamp::now();
        while !stop.load(Ordering::SeqCst) && killed_at.elapsed() < Duration::from_secs(60) {
            if stack.lease_renewed_after(killed_wall).await? {
                failovers.push(killed_at.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stack.start_replica(&leader, &extra).await?;
    }
    Ok((kills, failovers, exits))
}

fn chaos(stack: &Stack) -> Result<()> {
    let scale = Scale::from_env();
    stack.rt.block_on(async {
        let ns = "chaos";
        stack.stop_all_replicas().await?;
        let extra = vec![LEASE.to_owned()];
        for name in REPLICAS {
            stack.start_replica(name, &extra).await?;
        }
        issuer_in(stack, ns).await?;
        {
            let mock = stack.mock.lock().await;
            mock.mock.stats.reset();
            mock.set_faults(serde_json::from_value(serde_json::json!({
                "rate_429": 0.1, "rate_5xx": 0.1, "latency_ms": 1000, "latency_jitter_ms": 2000,
                "drop_after_issue_rate": 0.05,
            }))?)
            .map_err(anyhow::Error::msg)?;
        }
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let (kills, outage) = tokio::join!(
            killer(stack, scale, stop.clone(), extra.clone()),
            async {
                create_certificates(stack, ns, scale.certificates, scale.ca_certificates).await?;
                // One outage once the run is under way.
                tokio::time::sleep(Duration::from_secs(20)).await;
                stack.mock.lock().await.start_outage(scale.outage);
                let result = all_ready(stack, ns, scale.certificates, scale.timeout).await;
                stop.store(true, Ordering::SeqCst);
                result
            },
        );
        outage?;
        let (kills, failovers, exits) = kills?;
        let took = started.elapsed();
        stack.mock.lock().await.set_faults(Default::default()).map_err(anyhow::Error::msg)?;
        let (requests, ca_reissues) = exactly_once(stack, ns, async || stack.mock.lock().await.stats()).await?;
        let (answered, injected) = pca_calls(stack).await;
        for name in REPLICAS {
            if stack.replica_port(name).is_some() {
                stack.stop_replica(name, Signal::Term).await?;
            }
        }
        let worst = failovers.iter().max().copied().unwrap_or_default();
        eprintln!(
            "[chaos] {} Certificates Ready in {:.0}s: {requests} requests, 0 Failed, exactly one certificate each ({ca_reissues} documented CA re-issues); {kills} leaders SIGKILLed (failover ≤ {:.1}s), {exits} fenced replicas exited and were restarted; {:.2} PCA calls per certificate ({answered} answered, {injected} injected faults excluded)",
            scale.certificates,
            took.as_secs_f64(),
            worst.as_secs_f64(),
            answered as f64 / scale.certificates as f64,
        );
        Ok(())
    })
}

/// A backlog at the default (adaptive) PCA rate: requests wait far longer than the retry budget
/// before their first call, then meet throttling; none may fail.
fn backlog(stack: &Stack) -> Result<()> {
    let scale = Scale::from_env();
    stack.rt.block_on(async {
        let ns = "backlog";
        stack.stop_all_replicas().await?;
        // The other scenarios' requests are out of the count: had one of them failed, its
        // unfinished requests would be issued during this one.
        for other in ["standby", "backoff", "chaos"] {
            forget_requests(stack, other).await?;
        }
        let extra = vec![format!("--max-retry-duration={}", scale.backlog_retry_budget)];
        stack.start_replica("backlog", &extra).await?;
        issuer_in(stack, ns).await?;
        {
            let mock = stack.mock.lock().await;
            mock.mock.stats.reset();
            mock.set_faults(serde_json::from_value(serde_json::json!({"rate_429": 0.1}))?)
                .map_err(anyhow::Error::msg)?;
        }
        let started = Instant::now();
        let mut batch = String::new();
        for i in 0..scale.backlog {
            batch.push_str(&format!("---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: b{i:04}}}\nspec: {{secretName: b{i:04}, revisionHistoryLimit: 10, commonName: b{i:04}.backlog.example, dnsNames: [b{i:04}.backlog.example], issuerRef: {{group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}}}}\n"));
            if (i + 1) % 100 == 0 || i + 1 == scale.backlog {
                stack.apply_in(ns, &batch).await?;
                batch.clear();
            }
        }
        all_ready(stack, ns, scale.backlog, scale.timeout).await?;
        let took = started.elapsed();
        stack.mock.lock().await.set_faults(Default::default()).map_err(anyhow::Error::msg)?;
        let (requests, _) = exactly_once(stack, ns, async || stack.mock.lock().await.stats()).await?;
        stack.stop_replica("backlog", Signal::Term).await?;
        eprintln!(
            "[chaos] backlog: {} Certificates Ready in {:.0}s at the default adaptive PCA rate with 10% throttling and --max-retry-duration {}: {requests} requests, 0 Failed, exactly one certificate each",
            scale.backlog,
            took.as_secs_f64(),
            scale.backlog_retry_budget
        );
        Ok(())
    })
}

trait ReadyExt {
    fn ready_message(&self) -> Option<String>;
}

impl ReadyExt for CertificateRequest {
    fn ready_message(&self) -> Option<String> {
        self.condition("Ready").and_then(|c| c.message.clone())
    }
}
