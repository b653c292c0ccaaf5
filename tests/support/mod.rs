//! Shared end-to-end fixture: ONE real control plane (etcd + kube-apiserver + cert-manager,
//! built from Go modules by `e2e-tools/build.sh`) per test binary, the mock PCA over HTTPS
//! inside this process, and the real `ccm-issuer controller` binary. Tests run one after the
//! other (some stop the PCA or kill the controller); each uses its own namespace.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
// Shared with the demo; not every test binary uses each.
use ccm_e2e::{
    CertManagerOptions, ControlPlane, ControlPlaneOptions, ManagedProcess, NodeOptions, Signal, StaticToken,
};
#[allow(unused_imports)]
pub use ccm_e2e::{certificates, condition, eventually};
use ccm_issuer::{
    cert_manager::CertificateRequest,
    crd::{CCMClusterIssuer, CCMIssuer},
};
use ccm_mock_pca::{
    ca::KeyAlgorithm,
    embedded::{Embedded, EmbeddedOptions},
};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::Secret};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams},
};
use libtest_mimic::{Arguments, Failed, Trial};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;

/// The seed's CA id (`spec.urn` in the talk).
pub const SEED_URN: &str = "4bd1b320-e162-419f-8add-dfcc046197c7";
/// Mock credentials.
pub const AK: &str = "E2EACCESSKEY00000001";
/// Mock secret key (must never appear in a log).
pub const SK: &str = "e2e-SECRET-KEY-never-in-logs-0000000001";
/// The account id the mock reports through IAM.
pub const DOMAIN: &str = "0123456789abcdef0123456789abcdef";
/// Where CCMClusterIssuers keep Secrets by default.
pub const CLUSTER_RESOURCE_NAMESPACE: &str = "ccm-issuer";

/// What the fixture starts.
pub struct StackOptions {
    /// cert-manager controllers (None: default set, with the approver).
    pub cert_manager: CertManagerOptions,
    /// Extra static tokens.
    pub tokens: Vec<StaticToken>,
    /// Start the controller with the admin kubeconfig (else the test starts it itself).
    pub start_controller: bool,
    /// Extra controller flags.
    pub controller_args: Vec<String>,
    /// The mock's common-name rule for CSRs (the real service's is unconfirmed).
    pub csr_cn_rule: ccm_mock_pca::ca::CnRule,
    /// The mock's gateway throttle: calls per second and access key (`None`: unthrottled).
    pub mock_max_tps: Option<u64>,
    /// Run a real node too (the mock then also serves the pods, at the node's address).
    pub node: Option<NodeOptions>,
    /// More CRD files to install (e.g. Istio's).
    pub extra_crd_files: Vec<PathBuf>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            cert_manager: CertManagerOptions::default(),
            tokens: Vec::new(),
            start_controller: true,
            controller_args: Vec::new(),
            csr_cn_rule: ccm_mock_pca::ca::CnRule::Strict,
            mock_max_tps: None,
            node: None,
            extra_crd_files: Vec::new(),
        }
    }
}

/// A named scenario.
pub type Scenario = (&'static str, fn(&Stack) -> Result<()>);

/// Everything a test needs.
pub struct Stack {
    pub rt: Runtime,
    pub cp: ControlPlane,
    pub mock: tokio::sync::Mutex<Embedded>,
    pub mock_url: String,
    pub mock_ca_pem: String,
    pub mock_ca_file: PathBuf,
    controller: Mutex<Option<ManagedProcess>>,
    controller_kubeconfig: Mutex<PathBuf>,
    /// Another build to run than the one built with this test (benchmark baselines).
    controller_binary: Mutex<Option<PathBuf>>,
    controller_restarts: Mutex<u32>,
    controller_args: Vec<String>,
    pub health_port: u16,
    replicas: Mutex<std::collections::BTreeMap<String, (ManagedProcess, u16)>>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Our CRD files.
pub fn crd_files() -> Vec<PathBuf> {
    [
        "ccm-issuer.ccm.com_ccmissuers.yaml",
        "ccm-issuer.ccm.com_ccmclusterissuers.yaml",
    ]
    .iter()
    .map(|f| repo_root().join("crds").join(f))
    .collect()
}

/// A file of `examples/`.
pub fn example(path: &str) -> Result<String> {
    std::fs::read_to_string(repo_root().join("examples").join(path)).with_context(|| format!("examples/{path}"))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Stack {
    /// Starts the control plane, the mock PCA and (by default) the controller.
    pub fn start(options: StackOptions) -> Result<Stack> {
        ccm_issuer::install_crypto_provider();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let started = Instant::now();
        let on_node = options.node.is_some();
        let cp = rt.block_on(ControlPlane::start(ControlPlaneOptions {
            tokens: options.tokens,
            cert_manager: Some(options.cert_manager),
            extra_crd_files: crd_files().into_iter().chain(options.extra_crd_files).collect(),
            node: options.node,
            ..ControlPlaneOptions::default()
        }))?;
        let mock = rt.block_on(Embedded::start(EmbeddedOptions {
            credentials: vec![format!("{AK}:{SK}:{DOMAIN}").parse().map_err(|e: String| anyhow!(e))?],
            // The seed's CA id; path length 1 so it can sign the Istio intermediate.
            cas: vec![(SEED_URN.to_owned(), KeyAlgorithm::Ec256, 1)],
            tls: true,
            csr_cn_rule: options.csr_cn_rule,
            max_tps: options.mock_max_tps,
            // Pods reach it at the node's address (inside the private network namespace).
            listen: on_node.then(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            tls_sans: match on_node {
                true => vec![ccm_e2e::node::NODE_IP.to_string()],
                false => Vec::new(),
            },
            ..Default::default()
        }))?;
        let mock_ca_pem = mock.tls_ca_pem.clone().context("mock TLS CA")?;
        let mock_ca_file = cp.workdir().join("mock-pca-ca.pem");
        std::fs::write(&mock_ca_file, &mock_ca_pem)?;
        let stack = Stack {
            mock_url: mock.url.clone(),
            mock: tokio::sync::Mutex::new(mock),
            mock_ca_pem,
            mock_ca_file,
            controller: Mutex::new(None),
            controller_kubeconfig: Mutex::new(cp.kubeconfig_path().to_owned()),
            controller_binary: Mutex::new(None),
            controller_restarts: Mutex::new(0),
            controller_args: options.controller_args,
            health_port: free_port()?,
            replicas: Mutex::new(Default::default()),
            cp,
            rt,
        };
        stack
            .rt
            .block_on(stack.cp.create_namespace(CLUSTER_RESOURCE_NAMESPACE))?;
        if options.start_controller {
            stack.rt.block_on(stack.start_controller())?;
        }
        eprintln!(
            "[e2e] stack up in {:.1}s (mock PCA {})",
            started.elapsed().as_secs_f64(),
            stack.mock_url
        );
        Ok(stack)
    }

    /// Uses another kubeconfig for the next controller start (e.g. a ServiceAccount's token).
    pub fn use_controller_kubeconfig(&self, path: PathBuf) {
        *self.controller_kubeconfig.lock().unwrap_or_else(|e| e.into_inner()) = path;
    }

    /// Runs another `ccm-issuer` binary from the next controller start on (`None`: the one
    /// built with this test), e.g. a benchmark's baseline build.
    pub fn use_controller_binary(&self, path: Option<PathBuf>) {
        *self.controller_binary.lock().unwrap_or_else(|e| e.into_inner()) = path;
    }

    /// Starts `ccm-issuer controller` and waits for `/readyz`.
    pub async fn start_controller(&self) -> Result<()> {
        let restarts = {
            let mut n = self.controller_restarts.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        let cmd = self.controller_command(self.health_port, &[]);
        let process = self.cp.spawn(&format!("ccm-issuer-{restarts}"), cmd)?;
        *self.controller.lock().unwrap_or_else(|e| e.into_inner()) = Some(process);
        self.wait_ready().await
    }

    /// The controller's command line, with its health port and extra flags.
    fn controller_command(&self, health_port: u16, extra: &[String]) -> Command {
        let kubeconfig = self
            .controller_kubeconfig
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let binary = self
            .controller_binary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ccm-issuer")));
        let mut cmd = Command::new(binary);
        cmd.arg("controller")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--cluster-resource-namespace", CLUSTER_RESOURCE_NAMESPACE])
            .args(["--health-bind-address", &format!("127.0.0.1:{health_port}")])
            // The seed's issuers name region cn-north-4 without an endpoint: point that region at
            // the mock the way the Huawei SDK's environment override does.
            .args(["--pca-endpoint", &format!("cn-north-4={}", self.mock_url)])
            .args(["--pca-endpoint", &format!("ap-southeast-3={}", self.mock_url)])
            // IAM is not moved by --pca-endpoint (as in the Huawei SDKs): point it at the mock too.
            .args(["--iam-endpoint", &self.mock_url])
            .arg("--ca-bundle")
            .arg(&self.mock_ca_file)
            // Scenarios with a namespaced issuer naming the mock's endpoint: the administrator
            // allows exactly the mock's host.
            .arg("--namespaced-issuer-endpoint=127.0.0.1")
            .args(["--pca-timeout", "5s", "--issuer-recheck-interval", "1m"])
            .args(&self.controller_args)
            .args(extra)
            .env("RUST_LOG", "info,ccm_issuer=trace")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy");
        cmd
    }

    /// Starts a named replica with leader election (identity = `name`) and extra flags; it is
    /// ready (standing by or leading) when this returns.
    pub async fn start_replica(&self, name: &str, extra: &[String]) -> Result<()> {
        let port = free_port()?;
        let mut args = vec![
            "--leader-elect".to_owned(),
            "--leader-election-namespace".to_owned(),
            CLUSTER_RESOURCE_NAMESPACE.to_owned(),
        ];
        args.extend_from_slice(extra);
        let mut cmd = self.controller_command(port, &args);
        cmd.env("POD_NAME", name);
        let restarts = {
            let mut n = self.controller_restarts.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            *n
        };
        let process = self.cp.spawn(&format!("{name}-{restarts}"), cmd)?;
        let url = format!("http://127.0.0.1:{port}/readyz");
        self.replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), (process, port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
            if Instant::now() > deadline {
                bail!("replica {name} not ready after 60s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Sends `signal` to a replica and waits for it to exit.
    pub async fn stop_replica(&self, name: &str, signal: Signal) -> Result<std::process::ExitStatus> {
        let (process, _) = self
            .replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .with_context(|| format!("no replica {name}"))?;
        process.signal(signal)?;
        process.wait().await
    }

    /// Stops every replica (SIGKILL): a scenario starts from none, also after one that failed.
    pub async fn stop_all_replicas(&self) -> Result<()> {
        let names: Vec<String> = self
            .replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for name in names {
            self.stop_replica(&name, Signal::Kill).await?;
        }
        Ok(())
    }

    /// Starts `name` again if its process ended by itself (a fenced leader exits when it can
    /// no longer prove it holds the lease), as the kubelet restarts a pod's container. Returns
    /// whether it did.
    pub async fn restart_exited_replica(&self, name: &str, extra: &[String]) -> Result<bool> {
        let exited = {
            let mut replicas = self.replicas.lock().unwrap_or_else(|e| e.into_inner());
            let exited = replicas.get(name).is_some_and(|(p, _)| !p.is_running());
            if exited {
                replicas.remove(name);
            }
            exited
        };
        if exited {
            self.start_replica(name, extra).await?;
        }
        Ok(exited)
    }

    /// The health port of a running replica.
    pub fn replica_port(&self, name: &str) -> Option<u16> {
        self.replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map(|(_, port)| *port)
    }

    /// Whether the leader lease was renewed (or taken) after `t`.
    pub async fn lease_renewed_after(&self, t: jiff::Timestamp) -> Result<bool> {
        let leases: Api<Lease> = Api::namespaced(self.client().await?, CLUSTER_RESOURCE_NAMESPACE);
        Ok(leases
            .get_opt("ccm-issuer-leader")
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.renew_time)
            .is_some_and(|r| r.0 > t))
    }

    /// The identity holding the leader lease, if any.
    pub async fn leader(&self) -> Result<Option<String>> {
        let leases: Api<Lease> = Api::namespaced(self.client().await?, CLUSTER_RESOURCE_NAMESPACE);
        Ok(leases
            .get_opt("ccm-issuer-leader")
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity))
    }

    async fn wait_ready(&self) -> Result<()> {
        let url = format!("http://127.0.0.1:{}/readyz", self.health_port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return Ok(());
            }
            if !self.controller_running() {
                bail!("the controller exited during start-up");
            }
            if Instant::now() > deadline {
                bail!("controller not ready after 60s");
            }
            // Short, so start-up times measured around `start_controller` are accurate.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The controller's pid.
    pub fn controller_pid(&self) -> Option<u32> {
        self.controller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(ManagedProcess::pid)
    }

    /// Whether the controller process is alive.
    pub fn controller_running(&self) -> bool {
        self.controller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(ManagedProcess::is_running)
    }

    /// Signals the controller and waits for it to exit.
    pub async fn stop_controller(&self, signal: Signal) -> Result<std::process::ExitStatus> {
        let process = self
            .controller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .context("controller not running")?;
        process.signal(signal)?;
        process.wait().await
    }

    /// `/metrics` of the controller.
    pub async fn metrics(&self) -> Result<String> {
        Ok(reqwest::get(format!("http://127.0.0.1:{}/metrics", self.health_port))
            .await?
            .text()
            .await?)
    }

    /// Admin client.
    pub async fn client(&self) -> Result<Client> {
        self.cp.client().await
    }

    /// Applies YAML, putting namespaced objects without a namespace into `namespace` (as
    /// `kubectl apply -n` does).
    pub async fn apply_in(&self, namespace: &str, yaml: &str) -> Result<Vec<DynamicObject>> {
        let mut out = String::new();
        for mut doc in ccm_e2e::yaml_documents(yaml)? {
            let cluster_scoped = matches!(
                doc["kind"].as_str(),
                Some("Namespace" | "CCMClusterIssuer" | "ClusterIssuer" | "ClusterRole" | "ClusterRoleBinding")
            );
            if !cluster_scoped && doc.pointer("/metadata/namespace").is_none() {
                doc["metadata"]["namespace"] = Value::from(namespace);
            }
            out.push_str("---\n");
            out.push_str(&serde_json::to_string(&doc)?);
            out.push('\n');
        }
        self.cp.apply_yaml(&out).await
    }

    /// A credentials Secret for the mock.
    pub async fn credentials_secret(&self, namespace: &str, name: &str, sk: &str) -> Result<()> {
        self.cp.create_namespace(namespace).await?;
        let yaml = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\nstringData: {{ak: {AK}, sk: {sk}}}\n"
        );
        self.cp.apply_yaml(&yaml).await?;
        Ok(())
    }

    /// Runs the trials one after the other on this stack, prints the component logs when one
    /// fails, then tears everything down.
    pub fn run(self, trials: Vec<Scenario>) -> ExitCode {
        let mut args = Arguments::from_args();
        args.test_threads = Some(1);
        let stack = std::sync::Arc::new(self);
        let trials = trials
            .into_iter()
            .map(|(name, f)| {
                let stack = stack.clone();
                Trial::test(name, move || {
                    let started = Instant::now();
                    let result = f(&stack);
                    eprintln!("[e2e] {name}: {:.1}s", started.elapsed().as_secs_f64());
                    result.map_err(|e| {
                        stack.cp.dump_logs();
                        Failed::from(format!("{e:#}"))
                    })
                })
            })
            .collect();
        let conclusion = libtest_mimic::run(&args, trials);
        if let Err(e) = stack.rt.block_on(stack.cp.shutdown()) {
            eprintln!("[e2e] teardown: {e:#}");
        }
        conclusion.exit_code()
    }
}

/// Runs a whole suite: a failed set-up prints the logs and fails.
pub fn main_with(options: StackOptions, trials: Vec<Scenario>) -> ExitCode {
    if Arguments::from_args().list {
        let listed = trials.iter().map(|(n, _)| Trial::test(*n, || Ok(()))).collect();
        return libtest_mimic::run(&Arguments::from_args(), listed).exit_code();
    }
    match Stack::start(options) {
        Ok(stack) => stack.run(trials),
        Err(e) => {
            eprintln!("[e2e] set-up failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for a CCMIssuer's Ready reason; returns (status, message).
pub async fn issuer_condition(stack: &Stack, namespace: &str, name: &str, reason: &str) -> Result<(String, String)> {
    let api: Api<CCMIssuer> = Api::namespaced(stack.client().await?, namespace);
    eventually(
        &format!("CCMIssuer {namespace}/{name} reason {reason}"),
        Duration::from_secs(60),
        async || {
            let issuer = api.get(name).await?;
            Ok(issuer
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
                .filter(|c| c.reason == reason)
                .map(|c| (c.status, c.message)))
        },
    )
    .await
}

/// A namespace with the mock's credentials and a Ready CCMIssuer `pca`.
pub async fn issuer_in(stack: &Stack, ns: &str) -> Result<()> {
    stack.credentials_secret(ns, "ccm-secret", SK).await?;
    stack
        .apply_in(ns, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n"))
        .await?;
    issuer_condition(stack, ns, "pca", "Verified").await.map(|_| ())
}

/// Waits (60 s) for a CCMClusterIssuer to be Ready=True.
pub async fn cluster_issuer_ready(stack: &Stack, name: &str) -> Result<()> {
    let api: Api<CCMClusterIssuer> = Api::all(stack.client().await?);
    eventually(
        &format!("CCMClusterIssuer {name} Ready"),
        Duration::from_secs(60),
        async || {
            let issuer = api.get(name).await?;
            Ok(issuer
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
                .filter(|c| c.status == "True")
                .map(|_| ()))
        },
    )
    .await
}

/// A second mock PCA whose gateway admits `tps` calls per second and access key (no
/// certificate quota), and a Ready CCMClusterIssuer `name` on it (its own endpoint, IAM
/// endpoint and caBundle). The caller stops the mock.
pub async fn throttled_cluster_issuer(stack: &Stack, name: &str, tps: u64) -> Result<Embedded> {
    let mock = Embedded::start(EmbeddedOptions {
        credentials: vec![format!("{AK}:{SK}:{DOMAIN}").parse().map_err(|e: String| anyhow!(e))?],
        cas: vec![(SEED_URN.to_owned(), KeyAlgorithm::Ec256, 1)],
        tls: true,
        max_tps: Some(tps),
        cert_quota: Some(u64::MAX),
        ..Default::default()
    })
    .await?;
    let ca = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        mock.tls_ca_pem.clone().unwrap_or_default(),
    );
    stack
        .credentials_secret(CLUSTER_RESOURCE_NAMESPACE, &format!("{name}-secret"), SK)
        .await?;
    stack
        .apply_in("", &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMClusterIssuer\nmetadata: {{name: {name}}}\nspec: {{urn: \"{SEED_URN}\", region: ap-southeast-3, endpoint: \"{url}\", iamEndpoint: \"{url}\", caBundle: \"{ca}\", secretRef: {{name: {name}-secret}}}}\n", url = mock.url))
        .await?;
    cluster_issuer_ready(stack, name).await?;
    Ok(mock)
}

/// Waits for a Certificate to be Ready=True (90 s).
pub async fn certificate_ready(client: &Client, namespace: &str, name: &str) -> Result<DynamicObject> {
    ccm_e2e::certificate_ready(client, namespace, name, Duration::from_secs(90)).await
}

/// A Secret's data as text.
pub async fn secret_text(client: &Client, namespace: &str, name: &str, key: &str) -> Result<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace).get(name).await?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .with_context(|| format!("Secret {namespace}/{name} has no {key}"))?;
    Ok(String::from_utf8(bytes.0.clone())?)
}

/// The CertificateRequests of a Certificate.
pub async fn requests_of(client: &Client, namespace: &str, certificate: &str) -> Result<Vec<CertificateRequest>> {
    let api: Api<CertificateRequest> = Api::namespaced(client.clone(), namespace);
    let mut list: Vec<CertificateRequest> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|cr| {
            cr.annotations()
                .get("cert-manager.io/certificate-name")
                .map(String::as_str)
                == Some(certificate)
        })
        .collect();
    list.sort_by_key(|cr| cr.creation_timestamp().map(|t| t.0));
    Ok(list)
}

/// Lower-case hex SHA-256 of a request's CSR public key, as the mock's stats key it.
pub fn request_key_hash(cr: &CertificateRequest) -> Result<String> {
    let csr = ccm_issuer::pki::parse_csr(&cr.spec.request.0)?;
    Ok(hex::encode(Sha256::digest(&csr.spki_der)))
}

/// Certificates the mock issued for a public key.
pub async fn issued_for(stack: &Stack, key_hash: &str) -> u64 {
    stack
        .mock
        .lock()
        .await
        .stats()
        .issued
        .by_public_key
        .get(key_hash)
        .copied()
        .unwrap_or(0)
}

/// Every request of `ns` issued exactly once at a mock (`stats` reads it once every request
/// is final), by public key and in total; returns the number of requests and of documented CA
/// re-issues. All Certificates Ready is not enough to count: cert-manager's trigger controller
/// can see a just-issued Certificate's Secret as missing and make one more request for the
/// same key (seen in CI: b0056-2 created 2 ms after b0056-1 was Issued; and the throughput
/// check's "exactly one certificate per request" failing right after t045-1 was issued),
/// which the controller is still signing when the last Certificate turns Ready. So this waits
/// for every request to be final and counts certificates per key against the requests with
/// that key (a Certificate keeps its requests: no `revisionHistoryLimit`, or a large one). CA
/// requests may have been issued a second time only where the controller said so in an event
/// (their outcome cannot be established at the PCA; README, "How it stays correct").
pub async fn exactly_once(
    stack: &Stack,
    ns: &str,
    stats: impl AsyncFnOnce() -> ccm_mock_pca::stats::StatsSnapshot,
) -> Result<(usize, u64)> {
    let items = all_requests_final(stack, ns).await?;
    let events = events_by_object(stack, ns, "ReissuedAfterUnknownOutcome").await?;
    let stats = stats().await;
    let mut by_key: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for cr in &items {
        anyhow::ensure!(
            cr.ready_reason() == Some("Issued"),
            "{} is {:?}",
            cr.name_any(),
            cr.ready_reason()
        );
        let entry = by_key.entry(request_key_hash(cr)?).or_default();
        entry.0 += 1;
        if cr.spec.is_ca == Some(true) {
            entry.1 += events.get(&cr.name_any()).copied().unwrap_or(0);
        }
    }
    let (mut issued_total, mut ca_reissues) = (0, 0);
    for (key, (requests, allowed_reissues)) in &by_key {
        let n = stats.issued.by_public_key.get(key).copied().unwrap_or(0);
        anyhow::ensure!(
            n >= *requests && n - requests <= *allowed_reissues,
            "{n} certificates for {requests} request(s) with key {key} ({allowed_reissues} documented CA re-issues)"
        );
        ca_reissues += n - requests;
        issued_total += n;
    }
    anyhow::ensure!(
        stats.issued.total == issued_total,
        "the mock issued {} certificates for {} requests ({issued_total} expected)",
        stats.issued.total,
        items.len()
    );
    Ok((items.len(), ca_reissues))
}

/// The requests of `ns` once every one has a final Ready reason (see [`exactly_once`]).
pub async fn all_requests_final(stack: &Stack, ns: &str) -> Result<Vec<CertificateRequest>> {
    let api: Api<CertificateRequest> = Api::namespaced(stack.client().await?, ns);
    eventually(
        &format!("every request in {ns} final"),
        Duration::from_secs(120),
        async || {
            let items = api.list(&ListParams::default()).await?.items;
            let finished = |cr: &CertificateRequest| matches!(cr.ready_reason(), Some("Issued" | "Failed" | "Denied"));
            Ok(items.iter().all(finished).then_some(items))
        },
    )
    .await
}

/// Events of one reason in `ns`, counted per involved object name.
pub async fn events_by_object(
    stack: &Stack,
    ns: &str,
    reason: &str,
) -> Result<std::collections::BTreeMap<String, u64>> {
    use k8s_openapi::api::events::v1::Event;
    let api: Api<Event> = Api::namespaced(stack.client().await?, ns);
    let mut out = std::collections::BTreeMap::new();
    for e in api.list(&ListParams::default()).await?.items {
        if e.reason.as_deref() == Some(reason)
            && let Some(name) = e.regarding.and_then(|r| r.name)
        {
            let count = e.series.map(|s| u64::try_from(s.count).unwrap_or(1)).unwrap_or(1);
            *out.entry(name).or_default() += count;
        }
    }
    Ok(out)
}

/// Calls of one SDK operation the mock has seen.
pub async fn calls(stack: &Stack, operation: &str) -> u64 {
    stack
        .mock
        .lock()
        .await
        .stats()
        .operations
        .get(operation)
        .map(|o| o.total)
        .unwrap_or(0)
}

/// Runs a command, failing with its output if it fails.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {text}", out.status);
    }
    Ok(text)
}

/// Writes files into a fresh directory under the work dir.
pub fn write_files(stack: &Stack, dir: &str, files: &[(&str, &str)]) -> Result<PathBuf> {
    let d = stack.cp.workdir().join(dir);
    std::fs::create_dir_all(&d)?;
    for (name, text) in files {
        std::fs::write(d.join(name), text)?;
    }
    Ok(d)
}

/// Path helper.
pub fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// The kube-apiserver's own metrics (Prometheus text).
async fn apiserver_metrics(stack: &Stack) -> Result<String> {
    let client = stack.client().await?;
    Ok(client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?)
}

/// The samples of metric `name` in Prometheus text: the labels (`k="v",…`) and the value.
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    let prefix = format!("{name}{{");
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(&prefix)?;
        let (labels, value) = rest.rsplit_once(' ')?;
        Some((labels, value.parse::<f64>().unwrap_or(0.0)))
    })
}

/// One label's value from a sample's labels.
fn label(labels: &str, name: &str) -> String {
    labels
        .split(&format!("{name}=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

/// The kube-apiserver's `apiserver_request_total`, summed by `(verb, resource, subresource)`.
pub async fn apiserver_requests(stack: &Stack) -> Result<std::collections::BTreeMap<(String, String, String), u64>> {
    let text = apiserver_metrics(stack).await?;
    let mut out = std::collections::BTreeMap::new();
    for (labels, value) in samples(&text, "apiserver_request_total") {
        let key = (
            label(labels, "verb"),
            label(labels, "resource"),
            label(labels, "subresource"),
        );
        *out.entry(key).or_default() += value as u64;
    }
    Ok(out)
}

/// `after - before` of two [`apiserver_requests`] snapshots, without the zero rows.
pub fn request_delta(
    before: &std::collections::BTreeMap<(String, String, String), u64>,
    after: &std::collections::BTreeMap<(String, String, String), u64>,
) -> std::collections::BTreeMap<(String, String, String), u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Current RSS of a process (KiB, `VmRSS`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

/// Median of five RSS samples (KiB) of a process, a second apart.
pub async fn median_rss(pid: u32) -> Result<u64> {
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(rss_kib(pid)?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    samples.sort_unstable();
    Ok(samples[2])
}

/// Ends a benchmark: on failure the components' logs are printed; the control plane is
/// stopped either way.
pub fn finish_bench(stack: &Stack, result: Result<()>) -> Result<()> {
    if let Err(e) = &result {
        eprintln!("benchmark failed: {e:#}");
        stack.cp.dump_logs();
    }
    let _ = stack.rt.block_on(stack.cp.shutdown());
    result
}

/// Quiet: the control plane's processes and the controller together used under this share of
/// one core over [`SETTLE_WINDOW`].
const SETTLE_CPU_SHARE: f64 = 0.15;
const SETTLE_WINDOW: Duration = Duration::from_secs(2);
const SETTLE_MAX: Duration = Duration::from_secs(180);

/// Waits until the cluster is quiet before a timed part of a benchmark starts, so a part does
/// not pay for work the part before it left behind: after the throughput bench's side-by-side
/// part's 1,040 Certificates, cert-manager went on finishing their Secrets and requests, and the
/// next part's first CertificateRequest came up to 21 s after its Certificates were created
/// (that wait counted against the issuer). Says on stderr how long it waited, and when it gave
/// up after [`SETTLE_MAX`].
pub async fn settle(stack: &Stack, label: &str) {
    let started = Instant::now();
    let pids: Vec<u32> = stack
        .cp
        .child_pids()
        .into_iter()
        .map(|(_, pid)| pid)
        .chain(stack.controller_pid())
        .collect();
    let cpu = || -> f64 {
        pids.iter()
            .filter_map(|&pid| process_usage(pid).ok())
            .map(|(c, _)| c)
            .sum()
    };
    let mut before = cpu();
    loop {
        tokio::time::sleep(SETTLE_WINDOW).await;
        let now = cpu();
        let share = (now - before) / SETTLE_WINDOW.as_secs_f64();
        let waited = started.elapsed().as_secs_f64();
        if share < SETTLE_CPU_SHARE {
            eprintln!(
                "{label}: cluster quiet after {waited:.0} s ({:.0} % of a core)",
                share * 100.0
            );
            return;
        }
        if started.elapsed() >= SETTLE_MAX {
            eprintln!(
                "{label}: cluster still busy after {waited:.0} s ({:.0} % of a core); starting anyway",
                share * 100.0
            );
            return;
        }
        before = now;
    }
}

/// The API server's own time serving `LIST` of `resource` so far (seconds) and the number of
/// such calls, from its `apiserver_request_duration_seconds`: where a listing spends its
/// time, server or client, and how many pages it asked for.
pub async fn apiserver_lists(stack: &Stack, resource: &str) -> Result<(f64, u64)> {
    let text = apiserver_metrics(stack).await?;
    let lists = |labels: &&str| label(labels, "verb") == "LIST" && label(labels, "resource") == resource;
    let sum = |name| -> f64 {
        samples(&text, name)
            .filter(|(labels, _)| lists(labels))
            .map(|(_, v)| v)
            .sum()
    };
    Ok((
        sum("apiserver_request_duration_seconds_sum"),
        sum("apiserver_request_duration_seconds_count") as u64,
    ))
}

/// CPU seconds (user + system) and peak RSS (KiB, `VmHWM`) of a process.
pub fn process_usage(pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at the closing paren.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let clock_ticks = 100.0; // USER_HZ on Linux
    let cpu = (ticks(11) + ticks(12)) as f64 / clock_ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((cpu, hwm))
}

/// Creates `n` CertificateRequests for `issuer_ref` in `ns` (named `prefix` and a five-digit
/// number), 16 at a time.
pub async fn create_requests(stack: &Stack, ns: &str, prefix: &str, n: usize, issuer_ref: &Value) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        stack.client().await?,
        ns,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("cert-manager.io", "v1", "CertificateRequest")),
    );
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let doc: Value = serde_json::from_str(&certificate_request_json(
                    &format!("{prefix}{i:05}"),
                    issuer_ref,
                    false,
                )?)?;
                let obj: DynamicObject = serde_json::from_value(doc)?;
                api.create(&PostParams::default(), &obj).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await
}

/// A CertificateRequest (JSON, one line) with a fresh P-256 CSR for `name`, naming the issuer
/// `issuer_ref` (e.g. `{"group": "ccm-issuer.ccm.com", "kind": "CCMIssuer", "name": "pca"}`).
pub fn certificate_request_json(name: &str, issuer_ref: &Value, is_ca: bool) -> Result<String> {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(if is_ca {
        vec![]
    } else {
        vec![format!("{name}.bench.example")]
    })?;
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    let usages = if is_ca {
        params.key_usages.push(rcgen::KeyUsagePurpose::KeyCertSign);
        serde_json::json!(["digital signature", "key encipherment", "cert sign"])
    } else {
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        serde_json::json!(["digital signature", "key encipherment", "server auth"])
    };
    let pem = params.serialize_request(&key)?.pem()?;
    let request = serde_json::json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(pem),
            "isCA": is_ca,
            "usages": usages,
            "issuerRef": issuer_ref,
        },
    });
    Ok(serde_json::to_string(&request)?)
}

/// Counts of a namespace's CertificateRequests: `(total, approved, ready, failed)`.
pub async fn request_counts(client: &Client, namespace: &str) -> Result<(usize, usize, usize, usize)> {
    let api: Api<CertificateRequest> = Api::namespaced(client.clone(), namespace);
    let list = api.list(&ListParams::default()).await?;
    let (mut approved, mut ready, mut failed) = (0, 0, 0);
    for cr in &list.items {
        let is = |type_: &str, status: &str| cr.condition(type_).is_some_and(|c| c.status == status);
        approved += usize::from(is("Approved", "True"));
        ready += usize::from(is("Ready", "True"));
        failed += usize::from(
            cr.condition("Ready")
                .is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some("Failed")),
        );
    }
    Ok((list.items.len(), approved, ready, failed))
}

/// Every certificate of a PEM bundle, in order.
pub fn certs_of(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    Ok(CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>()?)
}

/// The private key of a PEM file.
pub fn key_of(pem: &str) -> Result<PrivateKeyDer<'static>> {
    Ok(PrivateKeyDer::from_pem_slice(pem.as_bytes())?)
}

/// One TLS exchange over loopback ("ping", "pong") between the two configurations; both sides
/// must succeed within 10 s. `check_server_side` looks at the server's connection after the
/// handshake (e.g. at the client's certificate).
pub async fn tls_ping_pong(
    server: rustls::ServerConfig,
    client: rustls::ClientConfig,
    name: ServerName<'static>,
    check_server_side: impl FnOnce(&rustls::ServerConnection) -> Result<()> + Send + 'static,
) -> Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server));
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        check_server_side(tls.get_ref().1)?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        anyhow::Ok(())
    });
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let client_side = async {
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        anyhow::ensure!(&buf == b"pong", "unexpected reply");
        anyhow::Ok(())
    };
    let client_result = tokio::time::timeout(Duration::from_secs(10), client_side).await;
    let server_result = tokio::time::timeout(Duration::from_secs(10), server_task).await;
    client_result.context("client timed out")??;
    server_result.context("server timed out")???;
    Ok(())
}
