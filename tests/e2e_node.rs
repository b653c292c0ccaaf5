//! The install path for real (issue #13): the controller image built locally
//! (`scripts/image.sh`) and run with podman, then the Helm chart installed on a real node —
//! kubelet, containerd + runc, CNI bridge, kube-scheduler and kube-controller-manager (see
//! `ccm_e2e::node`) — as users install it: probes, in-cluster configuration and the
//! service-account token, the talk's practices, the restricted security context as the
//! kernel enforces it, leader failover and `helm upgrade` during bursts (exactly one PCA
//! certificate per request), and `helm uninstall`.
//!
//! Everything runs in private PID, mount and network namespaces (`ccm_e2e::sandbox`): the
//! pods, the apiserver and the mock PCA talk over addresses that exist only there.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    process::{Command, ExitCode},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use ccm_e2e::{NodeOptions, node::NODE_IP};
use ccm_issuer::{
    cert_manager::CertificateRequest,
    controller::issuance::intent::{CERTIFICATE_ID_ANNOTATION, INTENT_ANNOTATION},
};
use futures::StreamExt;
use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    coordination::v1::Lease,
    core::v1::{ConfigMap, Pod},
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, DynamicObject, ListParams, PostParams},
    discovery::{Discovery, verbs},
    runtime::{WatchStreamExt, watcher},
};
use libtest_mimic::Arguments;
use serde_json::{Value, json};
use support::*;

const RELEASE: &str = "ccm-issuer";
const NAMESPACE: &str = CLUSTER_RESOURCE_NAMESPACE;
const IMAGE_REPOSITORY: &str = "localhost/ccm-issuer";
/// The chart's selector label for the release's pods.
const INSTANCE_SELECTOR: &str = "app.kubernetes.io/instance=ccm-issuer";
/// The Lease of leader election (the chart's default id for release `ccm-issuer`).
const LEASE: &str = "ccm-issuer-leader";
/// The CCMClusterIssuer of the bursts and its Secret (in the cluster resource namespace).
const BURST_ISSUER: &str = "node-pca";

fn main() -> ExitCode {
    if !Arguments::from_args().list {
        match ccm_e2e::sandbox::enter() {
            Ok(Some(code)) => return code,
            Ok(None) => {}
            Err(e) => {
                eprintln!("[node] cannot enter the sandbox: {e:#}");
                return ExitCode::FAILURE;
            }
        }
        if !image_archive().is_file() {
            eprintln!(
                "[node] {} is missing: build the image first with scripts/image.sh",
                image_archive().display()
            );
            return ExitCode::FAILURE;
        }
    }
    main_with(
        StackOptions {
            start_controller: false,
            node: Some(NodeOptions {
                image_archives: vec![image_archive()],
            }),
            ..StackOptions::default()
        },
        vec![
            ("image_runs_read_only_as_65532", image_version),
            ("image_controller_issues_under_podman", podman_controller),
            ("helm_install_ready_through_probes_with_in_cluster_config", install),
            ("talk_practices_issue_through_the_chart", practices),
            ("restricted_security_context_enforced_by_the_runtime", security_context),
            ("leader_pod_deleted_during_a_burst_of_100", failover),
            ("helm_upgrade_during_a_burst", upgrade),
            ("helm_uninstall_leaves_only_the_crds", uninstall),
        ],
    )
}

// --- helpers ---------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The image archive `scripts/image.sh` writes (or `$CCM_IMAGE_ARCHIVE`).
fn image_archive() -> PathBuf {
    std::env::var_os("CCM_IMAGE_ARCHIVE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/image/ccm-issuer.tar"))
}

/// The chart's directory, as a helm argument.
fn chart() -> String {
    repo().join("charts/ccm-issuer").display().to_string()
}

fn image() -> String {
    format!("{IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// The mock PCA as pods reach it: the node's address, the mock's port.
fn mock_url_for_pods(stack: &Stack) -> Result<String> {
    let port = stack.mock_url.rsplit(':').next().context("mock URL without port")?;
    Ok(format!("https://{NODE_IP}:{port}"))
}

/// Runs a command; returns stdout, or fails with its output.
fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// helm against the control plane, its homes inside the work directory.
fn helm(stack: &Stack) -> Command {
    let home = stack.cp.workdir().join("helm-home");
    let mut cmd = Command::new(stack.cp.tools().helm());
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .arg("--kubeconfig")
        .arg(stack.cp.kubeconfig_path())
        .args(["--namespace", NAMESPACE]);
    cmd
}

/// `helm ARGS` in a blocking task, so the runtime keeps polling meanwhile.
async fn run_helm(stack: &Stack, args: &[&str]) -> Result<String> {
    let mut cmd = helm(stack);
    cmd.args(args);
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || output(&mut cmd)).await??;
    eprintln!("[node] helm {} ({:.1}s)", args.join(" "), t.elapsed().as_secs_f64());
    Ok(out)
}

/// The release's pods.
async fn pods(client: &Client) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    Ok(api.list(&ListParams::default().labels(INSTANCE_SELECTOR)).await?.items)
}

fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until exactly `n` pods of the release exist, all Ready; returns them.
async fn ready_pods(client: &Client, n: usize) -> Result<Vec<Pod>> {
    eventually(
        &format!("{n} Ready pods of the release"),
        Duration::from_secs(120),
        async || {
            let pods = pods(client).await?;
            Ok((pods.len() == n && pods.iter().all(pod_ready)).then_some(pods))
        },
    )
    .await
}

async fn lease_holder(client: &Client) -> Result<Option<String>> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    Ok(api
        .get_opt(LEASE)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

/// The main process of the pod's controller container, as the kernel runs it.
fn controller_pid(stack: &Stack, pod: &Pod) -> Result<u32> {
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == "controller"))
        .and_then(|c| c.container_id.clone())
        .context("the pod has no controller container id")?;
    stack.cp.container_pid(&id)
}

/// The tail of the kubelet's log of every container of the release (for failures).
fn pod_logs(stack: &Stack) -> String {
    let mut out = String::new();
    let Ok(dir) = stack.cp.pod_logs_dir() else { return out };
    let Ok(pods) = std::fs::read_dir(&dir) else { return out };
    for pod in pods
        .flatten()
        .filter(|p| p.file_name().to_string_lossy().starts_with(&format!("{NAMESPACE}_")))
    {
        for file in walk(&pod.path()) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("----- {} (last 40 lines)\n", file.display()));
            for l in &lines[lines.len().saturating_sub(40)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files.sort();
    files
}

/// Runs a scenario body; on failure prints the pods' logs too.
fn scenario(stack: &Stack, body: impl AsyncFnOnce() -> Result<()>) -> Result<()> {
    let result = stack.rt.block_on(body());
    if result.is_err() {
        eprintln!(
            "[node] ===== pod logs =====\n{}[node] ===== end of pod logs =====",
            pod_logs(stack)
        );
    }
    result
}

/// Every CertificateRequest seen in a namespace while it runs (UID → key hash), including
/// those cert-manager deletes: a request it deletes and makes again (same name, same key from
/// its next-private-key Secret) is a second request, so the PCA may rightly hold two
/// certificates for a key that only one remaining request carries.
struct SeenRequests {
    seen: Arc<Mutex<HashMap<String, String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SeenRequests {
    fn start(client: Client, namespace: &str) -> SeenRequests {
        let api: Api<CertificateRequest> = Api::namespaced(client, namespace);
        let seen: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = events.next().await {
                // By UID: a request deleted and made again under the same name counts twice.
                if let Ok(cr) = event
                    && let (Some(uid), Ok(key)) = (cr.metadata.uid.clone(), request_key_hash(&cr))
                {
                    record.lock().unwrap_or_else(|e| e.into_inner()).insert(uid, key);
                }
            }
        });
        SeenRequests { seen, task }
    }

    /// How many requests were seen with each key.
    fn per_key(&self) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        for key in self.seen.lock().unwrap_or_else(|e| e.into_inner()).values() {
            *out.entry(key.clone()).or_default() += 1;
        }
        out
    }
}

impl Drop for SeenRequests {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A burst of `n` Certificates in `namespace` (ECDSA keys, the bursts' cluster issuer), and
/// the recorder of its requests.
async fn create_burst(stack: &Stack, namespace: &str, n: usize) -> Result<SeenRequests> {
    stack.cp.create_namespace(namespace).await?;
    let seen = SeenRequests::start(stack.client().await?, namespace);
    let mut yaml = String::new();
    for i in 0..n {
        yaml.push_str(&format!(
            "---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: c{i}}}\nspec: {{secretName: c{i}-tls, commonName: c{i}.{namespace}.example, dnsNames: [c{i}.{namespace}.example], privateKey: {{algorithm: ECDSA, size: 256}}, revisionHistoryLimit: 10, issuerRef: {{group: ccm-issuer.ccm.com, kind: CCMClusterIssuer, name: {BURST_ISSUER}}}}}\n"
        ));
    }
    stack.apply_in(namespace, &yaml).await?;
    Ok(seen)
}

/// Counts (Ready, total) Certificates in `namespace`; fails at once on a Failed request.
async fn burst_progress(client: &Client, namespace: &str) -> Result<(usize, usize)> {
    let certs = certificates(client, namespace)
        .list(&ListParams::default())
        .await?
        .items;
    let ready = certs
        .iter()
        .filter(|c| condition(c, "Ready").is_some_and(|r| r.0 == "True"))
        .count();
    let requests: Api<CertificateRequest> = Api::namespaced(client.clone(), namespace);
    if let Some(failed) = requests
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .find(|cr| cr.ready_reason() == Some("Failed"))
    {
        bail!(
            "CertificateRequest {namespace}/{} Failed: {:?}",
            failed.name_any(),
            failed.condition("Ready").map(|c| c.message.clone())
        );
    }
    Ok((ready, certs.len()))
}

async fn wait_burst(client: &Client, namespace: &str, n: usize) -> Result<()> {
    eventually(
        &format!("{n} Certificates Ready in {namespace}"),
        Duration::from_secs(300),
        async || {
            let (ready, total) = burst_progress(client, namespace).await?;
            Ok((ready == n && total == n).then_some(()))
        },
    )
    .await
}

/// Certificates issued so far, by public key (the mock's stats).
async fn issued_by_key(stack: &Stack) -> HashMap<String, u64> {
    stack.mock.lock().await.stats().issued.by_public_key
}

/// Waits for the burst, then checks every request was issued exactly once, and that every
/// certificate the PCA issued since `before` belongs to a request: one of the burst's, or one
/// elsewhere that cert-manager made meanwhile (e.g. a second revision of a practice's
/// Certificate when its cache lags; reported, not a duplicate). The burst's Certificates keep
/// 10 revisions, so no request of theirs is garbage-collected before it is counted. Returns
/// (requests, certificates issued since `before`).
async fn burst_done(
    stack: &Stack,
    namespace: &str,
    n: usize,
    before: &HashMap<String, u64>,
    seen: &SeenRequests,
) -> Result<(usize, u64)> {
    let client = stack.client().await?;
    wait_burst(&client, namespace, n).await?;
    let requests = exactly_one_certificate_each(stack, namespace, seen).await?;
    let mut new: HashMap<String, u64> = issued_by_key(stack).await;
    new.retain(|key, count| {
        *count -= before.get(key).copied().unwrap_or(0);
        *count > 0
    });
    let mut owners: HashMap<String, String> = HashMap::new();
    for cr in Api::<CertificateRequest>::all(client)
        .list(&ListParams::default())
        .await?
        .items
    {
        owners.insert(
            request_key_hash(&cr)?,
            format!("{}/{}", cr.namespace().unwrap_or_default(), cr.name_any()),
        );
    }
    let mut elsewhere = Vec::new();
    let mut issued = 0;
    for (key, count) in &new {
        match owners.get(key) {
            Some(owner) if owner.starts_with(&format!("{namespace}/")) => issued += count,
            Some(owner) => elsewhere.push(owner.clone()),
            None => bail!("{count} certificate(s) for public key {key}, which belongs to no CertificateRequest"),
        }
    }
    if !elsewhere.is_empty() {
        eprintln!("[node] also issued meanwhile, outside the burst: {elsewhere:?}");
    }
    let made = seen.per_key().values().sum::<u64>();
    if made as usize > requests {
        eprintln!(
            "[node] cert-manager made {made} requests in {namespace} and deleted {} of them",
            made as usize - requests
        );
    }
    ensure!(
        issued == made,
        "{issued} certificates issued for the {made} requests cert-manager made in {namespace} ({requests} left)"
    );
    Ok((requests, issued))
}

/// Every request of the burst: issued (never Failed), and exactly one certificate at the
/// mock for its public key. Returns the number of requests.
async fn exactly_one_certificate_each(stack: &Stack, namespace: &str, seen: &SeenRequests) -> Result<usize> {
    let client = stack.client().await?;
    let requests: Vec<CertificateRequest> = Api::namespaced(client, namespace)
        .list(&ListParams::default())
        .await?
        .items;
    let stats = stack.mock.lock().await.stats();
    let made_per_key = seen.per_key();
    let mut wrong = Vec::new();
    for cr in &requests {
        let issued = stats
            .issued
            .by_public_key
            .get(&request_key_hash(cr)?)
            .copied()
            .unwrap_or(0);
        // One certificate per request made with this key (see `SeenRequests`).
        let made = made_per_key.get(&request_key_hash(cr)?).copied().unwrap_or(1).max(1);
        if cr.ready_reason() != Some("Issued") || issued == 0 || issued > made {
            wrong.push(format!(
                "{}: ready reason {:?}, {issued} certificates at the PCA for {made} request(s) made with its key",
                cr.name_any(),
                cr.ready_reason()
            ));
        }
    }
    ensure!(
        wrong.is_empty(),
        "requests not issued exactly once:\n{}",
        wrong.join("\n")
    );
    Ok(requests.len())
}

// --- the image under podman ----------------------------------------------------------------

fn podman() -> Command {
    Command::new("podman")
}

fn image_version(stack: &Stack) -> Result<()> {
    let _ = stack;
    let version = output(
        podman()
            .args(["run", "--rm", "--network", "none", "--read-only", "--user", "65532"])
            .arg(image())
            .arg("--version"),
    )?;
    ensure!(
        version.trim() == format!("ccm-issuer {}", env!("CARGO_PKG_VERSION")),
        "--version printed {version:?}"
    );
    let inspect: Value = serde_json::from_str(&output(podman().args(["image", "inspect"]).arg(image()))?)?;
    let config = &inspect[0]["Config"];
    ensure!(config["User"] == "65532:65532", "image user {}", config["User"]);
    ensure!(
        config["Entrypoint"] == json!(["/ccm-issuer"]) && config["Cmd"] == json!(["controller"]),
        "{config}"
    );
    let size = inspect[0]["Size"].as_u64().unwrap_or(0);
    eprintln!(
        "[node] {}: `--version` → {}; {size} bytes ({:.1} MiB), user {}",
        image(),
        version.trim(),
        size as f64 / 1_048_576.0,
        config["User"]
    );
    Ok(())
}

/// The image as a plain container: host network (the sandbox's), read-only root, user
/// 65532, a kubeconfig and the mock's CA mounted; it issues a certificate.
fn podman_controller(stack: &Stack) -> Result<()> {
    scenario(stack, async || {
        let dir = stack.cp.workdir().join("podman");
        std::fs::create_dir_all(&dir)?;
        // Readable by 65532: the work directory itself is private to root.
        let kubeconfig = dir.join("kubeconfig");
        std::fs::copy(stack.cp.kubeconfig_path(), &kubeconfig)?;
        let ca = dir.join("mock-ca.pem");
        std::fs::write(&ca, &stack.mock_ca_pem)?;
        for f in [&kubeconfig, &ca] {
            std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let name = format!("ccm-issuer-e2e-{}", std::process::id());
        let _ = podman().args(["rm", "--force", &name]).output();
        output(
            podman()
                .args([
                    "run",
                    "--detach",
                    "--name",
                    &name,
                    "--network",
                    "host",
                    "--read-only",
                    "--user",
                    "65532",
                ])
                .arg("--volume")
                .arg(format!("{}:/etc/ccm/kubeconfig:ro", kubeconfig.display()))
                .arg("--volume")
                .arg(format!("{}:/etc/ccm/mock-ca.pem:ro", ca.display()))
                .args(["--env", "RUST_LOG=info"])
                .arg(image())
                .args([
                    "controller",
                    "--kubeconfig",
                    "/etc/ccm/kubeconfig",
                    "--ca-bundle",
                    "/etc/ccm/mock-ca.pem",
                ])
                .args(["--cluster-resource-namespace", NAMESPACE])
                .args(["--health-bind-address", &format!("127.0.0.1:{port}")])
                .args(["--pca-endpoint", &format!("cn-north-4={}", stack.mock_url)])
                // IAM is not moved by --pca-endpoint (as in the Huawei SDKs): the mock's too.
                .args(["--iam-endpoint", &stack.mock_url]),
        )?;
        let result = async {
            eventually("the podman controller's /readyz", Duration::from_secs(60), async || {
                let r = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await;
                Ok(r.ok().filter(|r| r.status().is_success()).map(|_| ()))
            })
            .await?;
            let ns = "podman";
            stack.credentials_secret(ns, "ccm-secret", SK).await?;
            stack
                .apply_in(ns, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: web}}\nspec: {{secretName: web-tls, commonName: web.podman.example, dnsNames: [web.podman.example], issuerRef: {{group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}}}}\n"))
                .await?;
            certificate_ready(&stack.client().await?, ns, "web").await?;
            anyhow::Ok(())
        }
        .await;
        let logs = output(podman().args(["logs", &name])).unwrap_or_default();
        let stopped = output(podman().args(["stop", "--time", "10", &name]));
        let exit = output(podman().args(["inspect", "--format", "{{.State.ExitCode}}", &name]));
        let _ = podman().args(["rm", "--force", &name]).output();
        if result.is_err() {
            eprintln!("[node] podman controller logs:\n{logs}");
        }
        result?;
        stopped?;
        ensure!(exit?.trim() == "0", "SIGTERM (podman stop) is a clean exit");
        eprintln!(
            "[node] podman run --read-only --user 65532 {}: Ready, issued podman/web, stopped cleanly",
            image()
        );
        Ok(())
    })
}

// --- the chart on the node -------------------------------------------------------------------

/// The values of the node scenarios: the local image (never pulled), the mock as the talk's
/// region and as IAM (which the PCA endpoint does not move), its CA through the chart's
/// caBundle, a PCA rate limit that lets bursts finish.
fn values_file(stack: &Stack) -> Result<PathBuf> {
    let values = json!({
        "image": {"repository": IMAGE_REPOSITORY, "pullPolicy": "Never"},
        "rbac": {"secretNamespaces": ["istio-system"]},
        "caBundle": {"configMapName": "mock-pca-ca"},
        "controller": {
            "pcaEndpoints": {"cn-north-4": mock_url_for_pods(stack)?},
            "iamEndpoint": mock_url_for_pods(stack)?,
            "pcaQPS": 50,
            "pcaBurst": 50,
            "pcaTimeout": "5s",
            "logLevel": "info,ccm_issuer=debug",
        },
    });
    let path = stack.cp.workdir().join("node-values.json");
    std::fs::write(&path, serde_json::to_string_pretty(&values)?)?;
    Ok(path)
}

fn install(stack: &Stack) -> Result<()> {
    scenario(stack, async || {
        let client = stack.client().await?;
        stack.cp.create_namespace("istio-system").await?;
        let ca = serde_json::from_value::<ConfigMap>(json!({
            "metadata": {"name": "mock-pca-ca", "namespace": NAMESPACE},
            "data": {"ca.crt": stack.mock_ca_pem},
        }))?;
        Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
            .create(&PostParams::default(), &ca)
            .await?;
        let values = values_file(stack)?;
        let t = Instant::now();
        let chart = chart();
        run_helm(
            stack,
            &[
                "install",
                RELEASE,
                &chart,
                "--values",
                &values.display().to_string(),
                "--wait",
                "--timeout",
                "3m",
            ],
        )
        .await?;
        let pod = ready_pods(&client, 1).await?.remove(0);
        eprintln!(
            "[node] helm install → pod {} Ready in {:.1}s",
            pod.name_any(),
            t.elapsed().as_secs_f64()
        );

        // Ready came from the readiness probe on the real port; the port answers from here.
        let spec = pod.spec.as_ref().context("pod spec")?;
        let container = &spec.containers[0];
        let probe = container
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .context("readiness probe")?;
        ensure!(probe.path.as_deref() == Some("/readyz"), "probe {probe:?}");
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).context("pod IP")?;
        ensure!(ip.starts_with("198.18.0."), "pod IP {ip} from the CNI bridge");
        let readyz = reqwest::get(format!("http://{ip}:9402/readyz")).await?;
        ensure!(
            readyz.status().is_success(),
            "/readyz on the pod's IP: {}",
            readyz.status()
        );
        let metrics = reqwest::get(format!("http://{ip}:9402/metrics")).await?.text().await?;
        ensure!(metrics.contains("ccm_issuer_"), "metrics on the pod's IP");

        // In-cluster configuration: no kubeconfig or credentials in the pod spec; the
        // kubelet injected the Service environment and mounted a projected token.
        ensure!(
            !container.args.iter().flatten().any(|a| a.contains("kubeconfig")),
            "no --kubeconfig: {:?}",
            container.args
        );
        let pid = controller_pid(stack, &pod)?;
        let environ = std::fs::read(format!("/proc/{pid}/environ"))?;
        let env: BTreeMap<String, String> = environ
            .split(|b| *b == 0)
            .filter_map(|kv| {
                String::from_utf8_lossy(kv)
                    .split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect();
        ensure!(
            env.get("KUBERNETES_SERVICE_HOST").map(String::as_str)
                == Some(&ccm_e2e::node::KUBERNETES_SERVICE_IP.to_string())
                && env.get("KUBERNETES_SERVICE_PORT").map(String::as_str) == Some("443"),
            "the kubelet's Service environment: {:?}",
            env.iter()
                .filter(|(k, _)| k.starts_with("KUBERNETES"))
                .collect::<Vec<_>>()
        );
        ensure!(!env.keys().any(|k| k == "KUBECONFIG"), "no KUBECONFIG");
        // What `kubectl logs` shows: plain text lines, no terminal colour codes.
        let logs = pod_logs(stack);
        ensure!(
            logs.contains("starting ccm-issuer controller"),
            "the container's log:\n{logs}"
        );
        ensure!(
            !logs.contains('\u{1b}'),
            "terminal escape codes in the container's log:\n{logs}"
        );
        let sa_dir = format!("/proc/{pid}/root/var/run/secrets/kubernetes.io/serviceaccount");
        let token = std::fs::read_to_string(format!("{sa_dir}/token")).context("the pod's token")?;
        let namespace = std::fs::read_to_string(format!("{sa_dir}/namespace"))?;
        ensure!(namespace == NAMESPACE, "namespace file {namespace:?}");
        let review = Api::<TokenReview>::all(client.clone())
            .create(
                &PostParams::default(),
                &TokenReview {
                    spec: TokenReviewSpec {
                        token: Some(token),
                        audiences: None,
                    },
                    ..TokenReview::default()
                },
            )
            .await?;
        let user = review.status.and_then(|s| s.user).context("token review")?;
        let username = user.username.unwrap_or_default();
        ensure!(
            username == format!("system:serviceaccount:{NAMESPACE}:{RELEASE}"),
            "token identity {username}"
        );
        let bound_pod = user
            .extra
            .and_then(|e| e.get("authentication.kubernetes.io/pod-name").cloned())
            .unwrap_or_default();
        ensure!(bound_pod == [pod.name_any()], "token bound to the pod: {bound_pod:?}");
        eprintln!(
            "[node] pod {ip}: /readyz and /metrics answer; env KUBERNETES_SERVICE_HOST={}; token of {username}, bound to the pod",
            ccm_e2e::node::KUBERNETES_SERVICE_IP
        );

        // The bursts' cluster issuer, used with the chart's RBAC (Secret in the release namespace).
        stack.credentials_secret(NAMESPACE, "node-pca-credentials", SK).await?;
        stack
            .apply_in("", &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMClusterIssuer\nmetadata: {{name: {BURST_ISSUER}}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: node-pca-credentials}}}}\n"))
            .await?;
        let issuers: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
                "ccm-issuer.ccm.com",
                "v1beta1",
                "CCMClusterIssuer",
            )),
        );
        let issuer = eventually("the bursts' issuer Ready", Duration::from_secs(60), async || {
            let i = issuers.get(BURST_ISSUER).await?;
            Ok(condition(&i, "Ready").filter(|c| c.0 == "True").map(|c| c.1))
        })
        .await?;
        eprintln!("[node] CCMClusterIssuer {BURST_ISSUER}: Ready ({issuer}) through the pod");
        Ok(())
    })
}

/// The talk's two practices, verbatim from examples/, through the chart's pod.
fn practices(stack: &Stack) -> Result<()> {
    scenario(stack, async || {
        let client = stack.client().await?;
        let ns = "istio-system";
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        for file in [
            "mesh-ca/02-ccmissuer.yaml",
            "mesh-ca/03-certificate-mesh-ca.yaml",
            "ingress-gateway/01-ccmissuer-ingress.yaml",
            "ingress-gateway/02-certificate-ingress-server-crt.yaml",
        ] {
            stack.apply_in(ns, &example(file)?).await?;
        }
        for (certificate, secret) in [("mesh-ca", "cacerts"), ("ingress-server-crt", "ingress-server-crt")] {
            certificate_ready(&client, ns, certificate).await?;
            for key in ["tls.crt", "tls.key", "ca.crt"] {
                ensure!(
                    !secret_text(&client, ns, secret, key).await?.is_empty(),
                    "{secret} {key}"
                );
            }
            // cert-manager may start a second revision right after the first when its Secret
            // cache lags ("Secret does not exist"): wait until every request is issued.
            let requests = eventually(
                &format!("every request of {certificate} Issued"),
                Duration::from_secs(60),
                async || {
                    let requests = requests_of(&client, ns, certificate).await?;
                    Ok(requests
                        .iter()
                        .all(|cr| cr.ready_reason() == Some("Issued"))
                        .then_some(requests))
                },
            )
            .await?;
            for cr in requests {
                // A CA certificate's id is recorded on the request (it cannot be listed at the
                // PCA); a leaf is tied to its certificate by its intent and its Ready message.
                let recorded = if cr.spec.is_ca == Some(true) {
                    cr.annotations().contains_key(CERTIFICATE_ID_ANNOTATION)
                } else {
                    cr.annotations().contains_key(INTENT_ANNOTATION)
                        && cr
                            .condition("Ready")
                            .and_then(|c| c.message.as_deref())
                            .is_some_and(|m| m.contains("certificate id "))
                };
                ensure!(recorded, "certificate id of {}", cr.name_any());
                ensure!(
                    issued_for(stack, &request_key_hash(&cr)?).await == 1,
                    "one PCA certificate for {}",
                    cr.name_any()
                );
            }
        }
        eprintln!(
            "[node] istio-system/mesh-ca → Secret cacerts and istio-system/ingress-server-crt issued by the chart's pod"
        );
        Ok(())
    })
}

/// What the kernel enforces on the running container, read from /proc: user and group
/// 65532, no capabilities, no privilege escalation, a seccomp filter, and a read-only root
/// file system (a write through the container's own root fails with EROFS).
fn security_context(stack: &Stack) -> Result<()> {
    scenario(stack, async || {
        let client = stack.client().await?;
        let pod = ready_pods(&client, 1).await?.remove(0);
        let pid = controller_pid(stack, &pod)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        ensure!(field("Uid") == "65532 65532 65532 65532", "Uid {}", field("Uid"));
        ensure!(field("Gid") == "65532 65532 65532 65532", "Gid {}", field("Gid"));
        for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            ensure!(field(caps) == "0000000000000000", "{caps} {}", field(caps));
        }
        ensure!(field("NoNewPrivs") == "1", "NoNewPrivs {}", field("NoNewPrivs"));
        ensure!(
            field("Seccomp") == "2",
            "Seccomp mode {} (2 = filter)",
            field("Seccomp")
        );
        let probe = format!("/proc/{pid}/root/ccm-e2e-write-probe");
        match std::fs::File::create(&probe) {
            Err(e) if e.raw_os_error() == Some(30) => {}
            Err(e) => bail!("writing the container's root failed, but not read-only: {e}"),
            Ok(_) => bail!("{probe} was created: the root file system is writable"),
        }
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
        let root = mounts
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("/"))
            .context("no root mount")?;
        ensure!(
            root.split_whitespace()
                .nth(5)
                .is_some_and(|o| o.split(',').any(|o| o == "ro")),
            "root mount {root}"
        );
        // And it needs nothing more: still Ready, never restarted.
        let restarts = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).sum::<i32>())
            .unwrap_or(-1);
        ensure!(restarts == 0 && pod_ready(&pod), "restarts {restarts}");
        eprintln!(
            "[node] pid {pid}: uid/gid 65532, no capabilities, NoNewPrivs, seccomp filter; write to / → EROFS; Ready, 0 restarts"
        );
        Ok(())
    })
}

/// Two replicas with leader election; the leader pod is deleted while a burst of 100
/// Certificates is being issued.
fn failover(stack: &Stack) -> Result<()> {
    scenario(stack, async || {
        let client = stack.client().await?;
        run_helm(
            stack,
            &[
                "upgrade",
                RELEASE,
                &chart(),
                "--reuse-values",
                "--set",
                "replicaCount=2",
                "--wait",
                "--timeout",
                "3m",
            ],
        )
        .await?;
        let pods = ready_pods(&client, 2).await?;
        let names: Vec<String> = pods.iter().map(ResourceExt::name_any).collect();
        let leader = eventually("a leader among the two pods", Duration::from_secs(60), async || {
            Ok(lease_holder(&client).await?.filter(|h| names.contains(h)))
        })
        .await?;
        eprintln!("[node] 2 replicas {names:?}, leader {leader}");

        let ns = "burst-failover";
        let issued_before = issued_by_key(stack).await;
        let t = Instant::now();
        let seen = create_burst(stack, ns, 100).await?;
        // Delete the leader mid-burst: once the first certificates are out.
        eventually("the burst under way", Duration::from_secs(120), async || {
            let (ready, _) = burst_progress(&client, ns).await?;
            Ok((ready >= 5).then_some(()))
        })
        .await?;
        let (ready_at_delete, _) = burst_progress(&client, ns).await?;
        let deleted_at = Instant::now();
        Api::<Pod>::namespaced(client.clone(), NAMESPACE)
            .delete(&leader, &DeleteParams::default())
            .await?;
        let new_leader = eventually("a new leader", Duration::from_secs(90), async || {
            Ok(lease_holder(&client).await?.filter(|h| *h != leader))
        })
        .await?;
        let failover = deleted_at.elapsed();
        let (requests, issued) = burst_done(stack, ns, 100, &issued_before, &seen).await?;
        ready_pods(&client, 2).await?;
        eprintln!(
            "[node] failover: leader {leader} deleted with {ready_at_delete}/100 Ready; {new_leader} held the Lease {:.1}s later; all 100 Ready {:.1}s after the burst began; {requests} requests, {issued} certificates at the PCA, none Failed",
            failover.as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
        Ok(())
    })
}

/// `helm upgrade` that rolls the pods while a burst is being issued.
fn upgrade(stack: &Stack) -> Result<()> {
    scenario(stack, async || {
        let client = stack.client().await?;
        let before: Vec<String> = ready_pods(&client, 2)
            .await?
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        let ns = "burst-upgrade";
        let issued_before = issued_by_key(stack).await;
        let t = Instant::now();
        let seen = create_burst(stack, ns, 50).await?;
        let (ready_before_upgrade, _) = burst_progress(&client, ns).await?;
        ensure!(
            ready_before_upgrade < 50,
            "the upgrade must start while the burst is being issued"
        );
        run_helm(
            stack,
            &[
                "upgrade",
                RELEASE,
                &chart(),
                "--reuse-values",
                "--set",
                "podAnnotations.rollout=upgrade-during-burst",
                "--wait",
                "--timeout",
                "3m",
            ],
        )
        .await?;
        let (ready_after_upgrade, _) = burst_progress(&client, ns).await?;
        let (requests, issued) = burst_done(stack, ns, 50, &issued_before, &seen).await?;
        let after = ready_pods(&client, 2).await?;
        ensure!(
            after.iter().all(|p| !before.contains(&p.name_any())),
            "the upgrade replaced the pods: {before:?}"
        );
        ensure!(
            after
                .iter()
                .all(|p| p.annotations().get("rollout").map(String::as_str) == Some("upgrade-during-burst")),
            "new pods carry the upgraded values"
        );
        eprintln!(
            "[node] helm upgrade rolled both pods while 50 Certificates were issued ({ready_before_upgrade} Ready when it began, {ready_after_upgrade} when it finished); all Ready {:.1}s after the burst began; {requests} requests, {issued} certificates, none Failed",
            t.elapsed().as_secs_f64()
        );
        Ok(())
    })
}

/// After `helm uninstall` nothing carries the release's label, no pod of it runs, the
/// leader Lease is gone, and the CRDs (with every issuer) are still there.
fn uninstall(stack: &Stack) -> Result<()> {
    scenario(stack, async || {
        let client = stack.client().await?;
        run_helm(stack, &["uninstall", RELEASE, "--wait", "--timeout", "3m"]).await?;
        eventually("the release's pods gone", Duration::from_secs(90), async || {
            Ok(pods(&client).await?.is_empty().then_some(()))
        })
        .await?;
        let discovery = Discovery::new(client.clone()).run().await?;
        let mut left = Vec::new();
        let mut kinds = 0;
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                // Events are records about objects, expiring with the apiserver's event TTL.
                if !caps.supports_operation(verbs::LIST) || ar.kind == "Event" {
                    continue;
                }
                kinds += 1;
                let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
                for obj in api.list(&ListParams::default().labels(INSTANCE_SELECTOR)).await?.items {
                    left.push(format!(
                        "{} {}/{}",
                        ar.kind,
                        obj.namespace().unwrap_or_default(),
                        obj.name_any()
                    ));
                }
            }
        }
        if Api::<Lease>::namespaced(client.clone(), NAMESPACE)
            .get_opt(LEASE)
            .await?
            .is_some()
        {
            left.push(format!("Lease {NAMESPACE}/{LEASE}"));
        }
        ensure!(left.is_empty(), "left behind by helm uninstall:\n{}", left.join("\n"));
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(client.clone());
        for crd in ["ccmissuers.ccm-issuer.ccm.com", "ccmclusterissuers.ccm-issuer.ccm.com"] {
            ensure!(crds.get_opt(crd).await?.is_some(), "CRD {crd} kept");
        }
        eprintln!(
            "[node] helm uninstall: no object of {kinds} listable kinds carries {INSTANCE_SELECTOR}, Lease gone, CRDs kept"
        );
        Ok(())
    })
}
