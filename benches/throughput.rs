//! Throughput on one real control plane (etcd + kube-apiserver + cert-manager), in one run:
//!
//! * `side-by-side`: the same Certificates issued through cert-manager's in-tree CA issuer and
//!   through ccm-issuer with an unthrottled mock PCA: certificates/s, their ratio, p50/p99 time
//!   to Ready, PCA calls and apiserver requests per certificate (the apiserver's own
//!   `apiserver_request_total`), CPU seconds and peak RSS of the controllers;
//! * `throttled`: the same through a mock whose gateway admits N calls/s (default flags);
//! * `adaptive`: CertificateRequests created directly (no Certificate machinery in the way)
//!   against mocks admitting N = 5, 20, 100 calls/s: ramp, steady certificates/s, 429 share.
//!
//! Each timed run starts once the cluster is quiet (see `settle`), so no run pays for the work
//! the run before it left behind.
//!
//! Run: `cargo bench --bench throughput` (the control-plane tools come from `CCM_E2E_TOOLS`,
//! else `e2e-tools/build.sh` is run, which returns at once when they are cached).
//! Environment: `CCM_BENCH_PARTS` (comma-separated, default all three),
//! `CCM_BENCH_CERTIFICATES` (default 500), `CCM_BENCH_THROTTLED_TPS` (default `5,10`),
//! `CCM_BENCH_ADAPTIVE_TPS` (default `5,20,100`), `CCM_BENCH_ADAPTIVE_SECONDS` (default 120),
//! `CCM_BENCH_CONTROLLER_ARGS` (extra controller flags, space-separated).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code

#[path = "../tests/support/mod.rs"]
mod support;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use ccm_issuer::cert_manager::CertificateRequest;
use ccm_mock_pca::embedded::Embedded;
use futures::{StreamExt, TryStreamExt};
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};
use support::*;

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// When each object was created and when it was first seen Ready (or Failed).
#[derive(Default)]
struct Times {
    created: HashMap<String, Instant>,
    ready: HashMap<String, Instant>,
    failed: HashMap<String, Instant>,
}

type Shared = Arc<Mutex<Times>>;

/// Watches a namespace's objects and records when each turns Ready=True (or Failed).
fn track<K>(api: Api<K>, times: Shared, status: fn(&K) -> Option<bool>) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(obj)) = events.next().await {
            let now = Instant::now();
            let mut t = times.lock().unwrap();
            match status(&obj) {
                Some(true) => {
                    t.ready.entry(obj.name_any()).or_insert(now);
                }
                Some(false) => {
                    t.failed.entry(obj.name_any()).or_insert(now);
                }
                None => {}
            }
        }
    })
}

/// Records when each CertificateRequest of a namespace is first seen: when cert-manager has made
/// the request, i.e. when the issuer could start on it.
fn track_requests(
    api: Api<CertificateRequest>,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(Ok(cr)) = events.next().await {
            seen.lock().unwrap().entry(cr.name_any()).or_insert_with(Instant::now);
        }
    })
}

/// Counts of `instants` in each [`TIMELINE_STEP`] after `start`.
fn timeline<'a>(start: Instant, instants: impl Iterator<Item = &'a Instant>) -> Vec<usize> {
    let mut steps = Vec::new();
    for at in instants {
        let step = (at.saturating_duration_since(start).as_secs_f64() / TIMELINE_STEP.as_secs_f64()) as usize;
        if steps.len() <= step {
            steps.resize(step + 1, 0);
        }
        steps[step] += 1;
    }
    steps
}

fn certificate_status(c: &DynamicObject) -> Option<bool> {
    condition(c, "Ready").and_then(|r| (r.0 == "True").then_some(true))
}

fn request_status(cr: &CertificateRequest) -> Option<bool> {
    let ready = cr.condition("Ready")?;
    match (ready.status.as_str(), ready.reason.as_deref()) {
        ("True", _) => Some(true),
        ("False", Some("Failed")) => Some(false),
        _ => None,
    }
}

/// Creates objects, up to 16 at a time, recording each one's creation time.
async fn create_all(api: &Api<DynamicObject>, docs: Vec<Value>, times: &Shared) -> Result<()> {
    futures::stream::iter(docs)
        .map(|doc| async move {
            let obj: DynamicObject = serde_json::from_value(doc)?;
            let created = api.create(&PostParams::default(), &obj).await?;
            anyhow::Ok((created.name_any(), Instant::now()))
        })
        .buffer_unordered(16)
        .try_for_each(|(name, at)| {
            times.lock().unwrap().created.insert(name, at);
            futures::future::ready(Ok(()))
        })
        .await
}

fn certificate_doc(name: &str, issuer_ref: &Value) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name},
        "spec": {
            "secretName": name,
            "commonName": format!("{name}.bench.example"),
            "dnsNames": [format!("{name}.bench.example")],
            "privateKey": {"algorithm": "ECDSA", "size": 256},
            "issuerRef": issuer_ref,
        },
    })
}

/// What a run measured.
struct RunResult {
    label: String,
    certificates: usize,
    seconds: f64,
    p50: f64,
    p99: f64,
    failed: usize,
    pca_calls: u64,
    throttled: u64,
    apiserver: BTreeMap<(String, String, String), u64>,
    controller_cpu: f64,
    cert_manager_cpu: f64,
    controller_hwm_kib: u64,
    /// Certificates turning Ready in each [`TIMELINE_STEP`] from the start (ramp, steady, tail).
    timeline: Vec<usize>,
    /// CertificateRequests first seen in each [`TIMELINE_STEP`] from the start.
    requests_timeline: Vec<usize>,
    /// Seconds from the start to the first CertificateRequest (cert-manager's own lead time).
    first_request: f64,
}

/// The width of one step of a run's timeline.
const TIMELINE_STEP: Duration = Duration::from_secs(20);

impl RunResult {
    fn rate(&self) -> f64 {
        self.certificates as f64 / self.seconds
    }

    /// Certificates per second from cert-manager's first request on: the issuer's own rate.
    fn issuer_rate(&self) -> f64 {
        self.certificates as f64 / (self.seconds - self.first_request)
    }

    fn apiserver_total(&self) -> u64 {
        self.apiserver.values().sum()
    }

    fn print(&self) {
        let n = self.certificates as f64;
        println!(
            "| {} | {:.2} | {:.1} / {:.1} | {:.2} | {:.2} | {:.1}% | {:.2} | {:.1} ms | {:.1} ms | {:.1} MiB | {} |",
            self.label,
            self.rate(),
            self.p50,
            self.p99,
            self.pca_calls as f64 / n,
            self.apiserver_total() as f64 / n,
            self.throttled as f64 * 100.0 / self.pca_calls.max(1) as f64,
            self.controller_cpu,
            self.controller_cpu * 1000.0 / n,
            self.cert_manager_cpu * 1000.0 / n,
            self.controller_hwm_kib as f64 / 1024.0,
            self.failed,
        );
    }

    fn print_apiserver(&self) {
        println!("apiserver requests per certificate, {} (rows ≥ 0.05):", self.label);
        let n = self.certificates as f64;
        for ((verb, resource, sub), count) in &self.apiserver {
            let per = *count as f64 / n;
            if per >= 0.05 {
                let sub = if sub.is_empty() {
                    String::new()
                } else {
                    format!("/{sub}")
                };
                println!("    {per:>6.2}  {verb:<7} {resource}{sub}");
            }
        }
    }
}

const TABLE_HEADER: &str = "| run | certificates/s | time to Ready p50 / p99 (s) | PCA calls per certificate | apiserver requests per certificate | PCA calls answered 429 | controller CPU (s) | controller CPU per certificate | cert-manager CPU per certificate | controller peak RSS | Failed |\n|---|---|---|---|---|---|---|---|---|---|---|";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn mock_calls(mock: &Embedded) -> (u64, u64) {
    let stats = mock.stats();
    let answered = stats.operations.values().map(|o| o.answered).sum();
    let throttled = stats.operations.values().map(|o| o.throttled).sum();
    (answered, throttled)
}

/// Issues `n` Certificates through `issuer_ref` in a fresh namespace and measures it.
async fn run_certificates(
    stack: &Stack,
    mock: &Embedded,
    label: &str,
    ns: &str,
    issuer_ref: &Value,
    n: usize,
) -> Result<RunResult> {
    let client = stack.client().await?;
    stack.cp.create_namespace(ns).await?;
    let api = certificates(&client, ns);
    let times: Shared = Arc::default();
    let tracker = track(api.clone(), times.clone(), certificate_status);
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let request_tracker = track_requests(Api::namespaced(client.clone(), ns), seen.clone());
    let pid = stack.controller_pid().expect("controller running");
    let cm_pid = stack.cp.cert_manager().expect("cert-manager").pid();
    settle(stack, label).await;
    let before = apiserver_requests(stack).await?;
    let (calls_before, throttled_before) = mock_calls(mock);
    let (cpu_before, _) = process_usage(pid)?;
    let (cm_cpu_before, _) = process_usage(cm_pid)?;
    let started = Instant::now();
    let docs = (0..n)
        .map(|i| certificate_doc(&format!("c{i:04}"), issuer_ref))
        .collect();
    create_all(&api, docs, &times).await?;
    let deadline = started + Duration::from_secs(1800);
    loop {
        let ready = times.lock().unwrap().ready.len();
        if ready >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("{label}: only {ready} of {n} Certificates Ready after 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = times.lock().unwrap().ready.values().max().copied().unwrap_or(started);
    // Let trailing writes (events, Secret updates) land before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = apiserver_requests(stack).await?;
    let (calls_after, throttled_after) = mock_calls(mock);
    let (cpu_after, hwm) = process_usage(pid)?;
    let (cm_cpu_after, _) = process_usage(cm_pid)?;
    tracker.abort();
    request_tracker.abort();
    let (_, _, _, failed) = request_counts(&client, ns).await?;
    let mut to_ready: Vec<f64> = {
        let t = times.lock().unwrap();
        t.ready
            .iter()
            .filter_map(|(name, r)| {
                t.created
                    .get(name)
                    .map(|c| r.saturating_duration_since(*c).as_secs_f64())
            })
            .collect()
    };
    to_ready.sort_by(f64::total_cmp);
    let seen = seen.lock().unwrap();
    let first_request = seen
        .values()
        .min()
        .map_or(f64::NAN, |at| at.saturating_duration_since(started).as_secs_f64());
    Ok(RunResult {
        timeline: timeline(started, times.lock().unwrap().ready.values()),
        requests_timeline: timeline(started, seen.values()),
        first_request,
        label: label.to_owned(),
        certificates: n,
        seconds: last.duration_since(started).as_secs_f64(),
        p50: percentile(&to_ready, 0.5),
        p99: percentile(&to_ready, 0.99),
        failed,
        pca_calls: calls_after - calls_before,
        throttled: throttled_after - throttled_before,
        apiserver: request_delta(&before, &after),
        controller_cpu: cpu_after - cpu_before,
        cert_manager_cpu: cm_cpu_after - cm_cpu_before,
        controller_hwm_kib: hwm,
    })
}

async fn side_by_side(stack: &Stack, n: usize) -> Result<()> {
    side_by_side_setup(stack).await?;
    let ca_ref = json!({"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "bench-ca"});
    let ccm_ref = json!({"group": "ccm-issuer.ccm.com", "kind": "CCMClusterIssuer", "name": "bench-ccm"});
    let mock = stack.mock.lock().await;
    // Warm-up: both paths once, so neither pays for first-use costs.
    run_certificates(stack, &mock, "warm-up CA", "warm-ca", &ca_ref, 20).await?;
    run_certificates(stack, &mock, "warm-up ccm", "warm-ccm", &ccm_ref, 20).await?;
    let ca = run_certificates(stack, &mock, "cert-manager CA issuer", "side-ca", &ca_ref, n).await?;
    let ccm = run_certificates(stack, &mock, "ccm-issuer, unthrottled mock", "side-ccm", &ccm_ref, n).await?;
    println!("\n## side by side: {n} Certificates each, same control plane, same run (CA issuer first)\n");
    println!("{TABLE_HEADER}");
    ca.print();
    ccm.print();
    println!(
        "\nratio (ccm-issuer / CA issuer certificates per second): {:.2}\n",
        ccm.rate() / ca.rate()
    );
    ca.print_apiserver();
    ccm.print_apiserver();
    Ok(())
}

async fn throttled(stack: &Stack, n: usize, limits: &[u64]) -> Result<()> {
    let mut results = Vec::new();
    for &tps in limits {
        let name = format!("tps{tps}");
        let mock = throttled_cluster_issuer(stack, &name, tps).await?;
        let issuer_ref = json!({"group": "ccm-issuer.ccm.com", "kind": "CCMClusterIssuer", "name": name});
        let r = run_certificates(
            stack,
            &mock,
            &format!("ccm-issuer, mock --max-tps {tps}"),
            &format!("throttled-{tps}"),
            &issuer_ref,
            n,
        )
        .await?;
        results.push((tps, r));
        mock.stop().await;
    }
    println!("\n## ccm-issuer against a throttling PCA, default flags, {n} Certificates per run\n");
    println!("{TABLE_HEADER}");
    for (_, r) in &results {
        r.print();
    }
    for (tps, r) in &results {
        println!(
            "--max-tps {tps}: {:.2} certificates/s = {:.2} × N/2; from the first CertificateRequest ({:.1} s after the Certificates were created) to the last Ready: {:.2}/s = {:.2} × N/2",
            r.rate(),
            r.rate() / (*tps as f64 / 2.0),
            r.first_request,
            r.issuer_rate(),
            r.issuer_rate() / (*tps as f64 / 2.0),
        );
        println!(
            "    per {} s: requests made by cert-manager {:?}; Certificates Ready {:?}",
            TIMELINE_STEP.as_secs(),
            r.requests_timeline,
            r.timeline,
        );
    }
    Ok(())
}

/// CertificateRequests created directly, keeping a backlog, for `seconds`.
async fn adaptive_one(stack: &Stack, client: &Client, tps: u64, seconds: u64) -> Result<()> {
    let name = format!("adaptive{tps}");
    let mock = throttled_cluster_issuer(stack, &name, tps).await?;
    let ns = format!("adaptive-{tps}");
    stack.cp.create_namespace(&ns).await?;
    let api: Api<CertificateRequest> = Api::namespaced(client.clone(), &ns);
    let times: Shared = Arc::default();
    let tracker = track(api.clone(), times.clone(), request_status);
    let issuer_ref = json!({"group": "ccm-issuer.ccm.com", "kind": "CCMClusterIssuer", "name": name});
    let backlog = (tps as usize).max(64);
    let dynamic: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "cert-manager.io",
            "v1",
            "CertificateRequest",
        )),
    );
    settle(stack, &format!("adaptive {tps}")).await;
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut next = 0usize;
    while Instant::now() < end {
        let (created, done) = {
            let t = times.lock().unwrap();
            (t.created.len(), t.ready.len() + t.failed.len())
        };
        let want = (done + backlog).saturating_sub(created).min(64);
        if want == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let docs = (next..next + want)
            .map(|i| {
                Ok(serde_json::from_str(&certificate_request_json(
                    &format!("r{i:05}"),
                    &issuer_ref,
                    false,
                )?)?)
            })
            .collect::<Result<Vec<Value>>>()?;
        next += want;
        create_all(&dynamic, docs, &times).await?;
    }
    let (answered, refused) = mock_calls(&mock);
    let (mut per_second, failed, created) = {
        let t = times.lock().unwrap();
        let mut per_second = vec![0u32; seconds as usize];
        for at in t.ready.values() {
            let s = at.duration_since(started).as_secs() as usize;
            if s < per_second.len() {
                per_second[s] += 1;
            }
        }
        (per_second, t.failed.len(), t.created.len())
    };
    let target = tps as f64 / 2.0;
    let ramp = per_second
        .windows(10)
        .position(|w| f64::from(w.iter().sum::<u32>()) / 10.0 >= 0.9 * target)
        .map(|i| i + 10);
    let from = 60.min(per_second.len());
    let steady_secs = per_second.len() - from;
    let steady = f64::from(per_second.drain(from..).sum::<u32>()) / steady_secs.max(1) as f64;
    println!(
        "| {tps} | {target:.1} | {} | {steady:.2} | {:.2} | {:.2}% ({refused} of {answered}) | {failed} | {created} |",
        ramp.map_or("not reached".to_owned(), |r| format!("{r} s")),
        steady / target,
        refused as f64 * 100.0 / answered.max(1) as f64,
    );
    // Drain the backlog before the mock goes away.
    let deadline = Instant::now() + Duration::from_secs(600);
    while {
        let t = times.lock().unwrap();
        t.ready.len() + t.failed.len() < t.created.len()
    } && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracker.abort();
    mock.stop().await;
    Ok(())
}

async fn adaptive(stack: &Stack, limits: &[u64], seconds: u64) -> Result<()> {
    let client = stack.client().await?;
    println!(
        "\n## adaptive rate: CertificateRequests created directly (backlog kept), {seconds} s per limit, steady = seconds 60..{seconds}\n"
    );
    println!(
        "| mock --max-tps N | N/2 | ramp to 90% of N/2 (10 s mean) | steady certificates/s | steady / (N/2) | calls answered 429 | Failed | requests created |\n|---|---|---|---|---|---|---|---|"
    );
    for &tps in limits {
        adaptive_one(stack, &client, tps, seconds).await?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let parts = std::env::var("CCM_BENCH_PARTS").unwrap_or_else(|_| "side-by-side,throttled,adaptive".into());
    let n = env_u64("CCM_BENCH_CERTIFICATES", 500) as usize;
    let controller_args: Vec<String> = std::env::var("CCM_BENCH_CONTROLLER_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    println!(
        "controller flags: {}",
        if controller_args.is_empty() {
            "defaults".to_owned()
        } else {
            controller_args.join(" ")
        }
    );
    let stack = Stack::start(StackOptions {
        controller_args,
        ..StackOptions::default()
    })?;
    let result = stack.rt.block_on(async {
        if parts.contains("side-by-side") {
            side_by_side(&stack, n).await?;
        }
        if parts.contains("throttled") {
            throttled(&stack, n, &env_list("CCM_BENCH_THROTTLED_TPS", "5,10")).await?;
        }
        if parts.contains("adaptive") {
            adaptive(
                &stack,
                &env_list("CCM_BENCH_ADAPTIVE_TPS", "5,20,100"),
                env_u64("CCM_BENCH_ADAPTIVE_SECONDS", 120),
            )
            .await?;
        }
        anyhow::Ok(())
    });
    finish_bench(&stack, result)
}

/// The cluster-scoped issuers the side-by-side runs use (so every run has a fresh namespace):
/// a CA ClusterIssuer whose self-signed root lives in cert-manager's cluster resource
/// namespace, and a CCMClusterIssuer on the stack's unthrottled mock.
async fn side_by_side_setup(stack: &Stack) -> Result<()> {
    let crns = "kube-system";
    stack
        .apply_in(crns, "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: selfsigned}\nspec: {selfSigned: {}}\n---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: root}\nspec: {secretName: root, isCA: true, commonName: bench-root, privateKey: {algorithm: ECDSA, size: 256}, issuerRef: {name: selfsigned, kind: Issuer}}\n")
        .await?;
    let client = stack.client().await?;
    certificate_ready(&client, crns, "root").await?;
    stack
        .apply_in("", "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: bench-ca}\nspec: {ca: {secretName: root}}\n")
        .await?;
    let cluster_issuers: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "cert-manager.io",
            "v1",
            "ClusterIssuer",
        )),
    );
    eventually("ClusterIssuer bench-ca Ready", Duration::from_secs(60), async || {
        Ok(condition(&cluster_issuers.get("bench-ca").await?, "Ready")
            .filter(|c| c.0 == "True")
            .map(|_| ()))
    })
    .await?;
    stack
        .credentials_secret(CLUSTER_RESOURCE_NAMESPACE, "bench-ccm-secret", SK)
        .await?;
    stack
        .apply_in("", &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMClusterIssuer\nmetadata: {{name: bench-ccm}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: bench-ccm-secret}}}}\n"))
        .await?;
    cluster_issuer_ready(stack, "bench-ccm").await
}
