//! A real etcd + kube-apiserver (+ cert-manager) on loopback.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::node::{Node, NodeOptions, NodePki, NodePlan};
use crate::process::{ManagedProcess, ProcessInner, Spawner};
use crate::tools::Tools;
use crate::yaml;

/// Field manager used for every server-side apply done by the harness.
pub const FIELD_MANAGER: &str = "ccm-e2e";

/// The cert-manager controllers the runner starts by default: the Certificate →
/// CertificateRequest → Secret flow, the approver, and the in-tree Issuer/ClusterIssuer +
/// CA/selfsigned issuers (so tests can compare with cert-manager's own CA issuer).
pub const DEFAULT_CERT_MANAGER_CONTROLLERS: &[&str] = &[
    "certificates-trigger",
    "certificates-issuing",
    "certificates-key-manager",
    "certificates-request-manager",
    "certificates-readiness",
    "certificates-revision-manager",
    "certificaterequests-approver",
    "issuers",
    "clusterissuers",
    "certificaterequests-issuer-ca",
    "certificaterequests-issuer-selfsigned",
];

/// The approver controller; leave it out to test an issuer that must wait for approval.
pub const CERT_MANAGER_APPROVER: &str = "certificaterequests-approver";

/// A static bearer token known to the apiserver (`--token-auth-file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticToken {
    /// The bearer token (no commas, quotes or newlines).
    pub token: String,
    /// User name, e.g. `system:serviceaccount:ccm:ccm-issuer` or `ccm-issuer`.
    pub user: String,
    /// User UID.
    pub uid: String,
    /// Groups; RBAC sees them as the user's groups.
    pub groups: Vec<String>,
}

impl StaticToken {
    /// A token with a random value for `user` (uid = user) in `groups`.
    pub fn random(user: &str, groups: &[&str]) -> StaticToken {
        StaticToken {
            token: random_hex(16),
            user: user.to_owned(),
            uid: user.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }
}

/// How to run the cert-manager controller runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertManagerOptions {
    /// Controllers to start (see [`DEFAULT_CERT_MANAGER_CONTROLLERS`]).
    pub controllers: Vec<String>,
    /// `--cluster-resource-namespace` (namespace for ClusterIssuer secrets).
    pub cluster_resource_namespace: String,
}

impl Default for CertManagerOptions {
    fn default() -> Self {
        CertManagerOptions {
            controllers: DEFAULT_CERT_MANAGER_CONTROLLERS
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            cluster_resource_namespace: "kube-system".to_owned(),
        }
    }
}

impl CertManagerOptions {
    /// The default controllers minus `certificaterequests-approver`.
    pub fn without_approver() -> Self {
        let mut o = Self::default();
        o.controllers.retain(|c| c != CERT_MANAGER_APPROVER);
        o
    }
}

/// What [`ControlPlane::start`] brings up.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// Extra static tokens (an admin token in `system:masters` always exists).
    pub tokens: Vec<StaticToken>,
    /// Run cert-manager's controllers (`None`: only the CRDs are installed).
    pub cert_manager: Option<CertManagerOptions>,
    /// More CRD YAML files (multi-document allowed) to install and wait for.
    pub extra_crd_files: Vec<PathBuf>,
    /// Binaries to use; `None` means [`Tools::discover`].
    pub tools: Option<Tools>,
    /// Also run a real node (see [`crate::node`]): kube-controller-manager, kube-scheduler,
    /// containerd and a kubelet. Needs [`crate::sandbox::enter`] at the start of `main`.
    pub node: Option<NodeOptions>,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        ControlPlaneOptions {
            tokens: Vec::new(),
            cert_manager: Some(CertManagerOptions::default()),
            extra_crd_files: Vec::new(),
            tools: None,
            node: None,
        }
    }
}

const ETCD_TIMEOUT: Duration = Duration::from_secs(30);
const APISERVER_TIMEOUT: Duration = Duration::from_secs(90);
const CRD_TIMEOUT: Duration = Duration::from_secs(60);
const CERT_MANAGER_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);
const LOG_TAIL_LINES: usize = 60;

/// Role of a child, which decides the teardown order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Etcd,
    ApiServer,
    /// cert-manager and everything started with [`ControlPlane::spawn`]: stopped first.
    Client,
}

struct State {
    spawner: Spawner,
    procs: Vec<(Role, Arc<ProcessInner>)>,
    workdir: Option<tempfile::TempDir>,
    shut_down: bool,
}

/// A running control plane. Dropping it (also while unwinding from a panic) tears it down;
/// [`ControlPlane::shutdown`] does the same explicitly.
///
/// Children are started with `PR_SET_PDEATHSIG=SIGKILL` from a dedicated spawner thread
/// (see [`crate::process`]), so they also die when the test process is killed. That thread
/// lives as long as the control plane, so `start` may be called from any thread; keep the
/// `ControlPlane` itself alive for as long as the tests need it (e.g. in the test binary's
/// `main`, around `libtest_mimic::run`).
pub struct ControlPlane {
    state: Mutex<State>,
    workdir: PathBuf,
    tools: Tools,
    api_port: u16,
    etcd_port: u16,
    ca_pem: String,
    ca_der: Vec<u8>,
    admin_token: String,
    kubeconfig: PathBuf,
    cert_manager: Option<ManagedProcess>,
    node: Option<Node>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("workdir", &self.workdir)
            .field("api_url", &self.api_url())
            .field("etcd_port", &self.etcd_port)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn random_hex(bytes: usize) -> String {
    use rand::RngCore as _;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().fold(String::with_capacity(bytes * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Picks `n` distinct free TCP ports on 127.0.0.1 (all listeners are held until all are chosen).
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("binding a free loopback port")?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

pub(crate) fn log(msg: impl std::fmt::Display) {
    eprintln!("[ccm-e2e] {msg}");
}

fn validate_token_field(what: &str, v: &str) -> Result<()> {
    if v.is_empty() || v.contains([',', '"', '\n', '\r']) {
        bail!("static token {what} {v:?} must be non-empty without commas, quotes or newlines");
    }
    Ok(())
}

impl ControlPlane {
    /// Brings up etcd, kube-apiserver, the CRDs and (optionally) cert-manager on loopback.
    ///
    /// Prints one timing line per component to stderr. On failure everything started so far
    /// is stopped, the component logs are printed, and the error is returned.
    pub async fn start(opts: ControlPlaneOptions) -> Result<ControlPlane> {
        let total = Instant::now();
        let tools = match opts.tools.clone() {
            Some(t) => t,
            None => Tools::discover()?,
        };
        for t in &opts.tokens {
            validate_token_field("token", &t.token)?;
            validate_token_field("user", &t.user)?;
            validate_token_field("uid", &t.uid)?;
            for g in &t.groups {
                validate_token_field("group", g)?;
            }
        }

        let workdir = tempfile::Builder::new()
            .prefix("ccm-e2e-")
            .tempdir()
            .context("creating the control plane work directory")?;
        let wd = workdir.path().to_path_buf();
        std::fs::create_dir_all(wd.join("logs"))?;
        let node_plan = opts.node.as_ref().map(|_| NodePlan::prepare()).transpose()?;
        let extra_ips = if node_plan.is_some() {
            NodePlan::serving_ips()
        } else {
            Vec::new()
        };
        let pki = crate::pki::generate(&wd.join("pki"), &extra_ips)?;
        let ports = free_ports(3)?;
        let (etcd_port, etcd_peer_port) = (ports[0], ports[1]);
        // With a node, the port the `kubernetes` Service announces (see crate::node).
        let api_port = if node_plan.is_some() {
            crate::node::APISERVER_PORT
        } else {
            ports[2]
        };
        let admin_token = random_hex(24);

        let mut cp = ControlPlane {
            state: Mutex::new(State {
                spawner: Spawner::new()?,
                procs: Vec::new(),
                workdir: Some(workdir),
                shut_down: false,
            }),
            workdir: wd.clone(),
            tools,
            api_port,
            etcd_port,
            ca_pem: pki.ca_pem.clone(),
            ca_der: pki.ca_der.clone(),
            admin_token,
            kubeconfig: wd.join("kubeconfig"),
            cert_manager: None,
            node: None,
        };
        log(format!("work dir {} (set CCM_E2E_KEEP=1 to keep it)", wd.display()));
        match cp.bring_up(&opts, &pki, etcd_peer_port, node_plan.as_ref()).await {
            Ok(()) => {
                log(format!(
                    "control plane up in {:.1}s: {}",
                    total.elapsed().as_secs_f64(),
                    cp.api_url()
                ));
                Ok(cp)
            }
            Err(e) => {
                log(format!("control plane start failed: {e:#}"));
                cp.dump_logs();
                cp.teardown();
                Err(e)
            }
        }
    }

    /// Starts each component in order, each waiting until the previous one answers.
    async fn bring_up(
        &mut self,
        opts: &ControlPlaneOptions,
        pki: &crate::pki::Pki,
        etcd_peer_port: u16,
        node_plan: Option<&NodePlan>,
    ) -> Result<()> {
        let http = self.http_client()?;
        self.start_etcd(&http, etcd_peer_port).await?;
        let client = self.start_apiserver(&http, opts, pki, node_plan).await?;
        self.install_crd_set(&client, opts).await?;
        if let Some(cm) = &opts.cert_manager {
            self.start_cert_manager(cm).await?;
        }
        if let (Some(plan), Some(node)) = (node_plan, &opts.node) {
            let node_pki = NodePki {
                ca_cert: &pki.ca_cert,
                sa_key: &pki.sa_key,
            };
            self.node = Some(Node::start(self, plan, &node_pki, node).await?);
        }
        Ok(())
    }

    fn etcd_client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_port)
    }

    async fn start_etcd(&mut self, http: &reqwest::Client, peer_port: u16) -> Result<()> {
        let t = Instant::now();
        let client_url = self.etcd_client_url();
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new(self.tools.etcd());
        cmd.arg("--name=e2e")
            .arg(format!("--data-dir={}", self.workdir.join("etcd").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=e2e={peer_url}"))
            .arg("--unsafe-no-fsync=true")
            .arg("--log-level=warn");
        let etcd = self.start_process(Role::Etcd, "etcd", cmd)?;
        let health = format!("{client_url}/health");
        wait_until(ETCD_TIMEOUT, "etcd /health", &etcd, || async {
            let r = http.get(&health).send().await.ok()?;
            let body = r.text().await.ok()?;
            body.contains("\"health\":\"true\"").then_some(())
        })
        .await?;
        log(format!(
            "etcd ready in {:.1}s (pid {}, {client_url})",
            t.elapsed().as_secs_f64(),
            etcd.pid()
        ));
        Ok(())
    }

    /// The static token file: the admin, the test's own identities and the node's.
    fn write_token_file(&self, opts: &ControlPlaneOptions, node_plan: Option<&NodePlan>) -> Result<PathBuf> {
        let mut tokens = format!("{},admin,admin,\"system:masters\"\n", self.admin_token);
        for tok in &opts.tokens {
            let _ = writeln!(
                tokens,
                "{},{},{},\"{}\"",
                tok.token,
                tok.user,
                tok.uid,
                tok.groups.join(",")
            );
        }
        if let Some(plan) = node_plan {
            tokens.push_str(&plan.token_line());
        }
        let token_file = self.workdir.join("tokens.csv");
        std::fs::write(&token_file, tokens).context("writing tokens.csv")?;
        Ok(token_file)
    }

    /// Starts kube-apiserver and returns an admin client once it serves the default namespace.
    async fn start_apiserver(
        &mut self,
        http: &reqwest::Client,
        opts: &ControlPlaneOptions,
        pki: &crate::pki::Pki,
        node_plan: Option<&NodePlan>,
    ) -> Result<Client> {
        let t = Instant::now();
        let token_file = self.write_token_file(opts, node_plan)?;
        let mut cmd = Command::new(self.tools.kube_apiserver());
        cmd.arg(format!("--etcd-servers={}", self.etcd_client_url()));
        match node_plan {
            Some(_) => cmd.args(NodePlan::apiserver_args()),
            None => cmd
                .arg("--bind-address=127.0.0.1")
                .arg("--authorization-mode=RBAC")
                .arg("--disable-admission-plugins=ServiceAccount")
                .arg("--service-cluster-ip-range=10.0.0.0/24"),
        };
        cmd.arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={}", self.api_port))
            .arg(format!("--cert-dir={}", self.workdir.join("apiserver-certs").display()))
            .arg(format!("--tls-cert-file={}", pki.serving_cert.display()))
            .arg(format!("--tls-private-key-file={}", pki.serving_key.display()))
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!("--service-account-key-file={}", pki.sa_pub.display()))
            .arg(format!("--service-account-signing-key-file={}", pki.sa_key.display()))
            .arg(format!("--token-auth-file={}", token_file.display()))
            .arg("--allow-privileged=true")
            .arg("--endpoint-reconciler-type=none")
            .arg("--profiling=false");
        let apiserver = self.start_process(Role::ApiServer, "kube-apiserver", cmd)?;
        let readyz = format!("{}/readyz", self.api_url());
        wait_until(APISERVER_TIMEOUT, "kube-apiserver /readyz", &apiserver, || async {
            let r = http.get(&readyz).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await?;
        self.write_kubeconfig(&self.kubeconfig, "admin", &self.admin_token)?;
        let client = self.client().await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        wait_until(APISERVER_TIMEOUT, "namespace default", &apiserver, || async {
            namespaces.get_opt("default").await.ok().flatten().map(|_| ())
        })
        .await?;
        log(format!(
            "kube-apiserver ready in {:.1}s (pid {}, {})",
            t.elapsed().as_secs_f64(),
            apiserver.pid(),
            self.api_url()
        ));
        Ok(client)
    }

    /// cert-manager's CRDs plus the test's own.
    async fn install_crd_set(&self, client: &Client, opts: &ControlPlaneOptions) -> Result<()> {
        let t = Instant::now();
        let mut files = self.tools.cert_manager_crd_files()?;
        files.extend(opts.extra_crd_files.iter().cloned());
        let n = install_crds(client, &files).await?;
        log(format!(
            "{n} CRDs established and served in {:.1}s",
            t.elapsed().as_secs_f64()
        ));
        Ok(())
    }

    async fn start_cert_manager(&mut self, cm: &CertManagerOptions) -> Result<()> {
        let t = Instant::now();
        let mut cmd = Command::new(self.tools.cert_manager_runner());
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!(
                "--cluster-resource-namespace={}",
                cm.cluster_resource_namespace
            ))
            .arg(format!("--controllers={}", cm.controllers.join(",")));
        let proc = self.start_process(Role::Client, "cert-manager", cmd)?;
        proc.wait_for_stdout_line(|l| l.trim() == "ready", CERT_MANAGER_TIMEOUT)
            .await?;
        log(format!(
            "cert-manager ready in {:.1}s (pid {}, controllers: {})",
            t.elapsed().as_secs_f64(),
            proc.pid(),
            cm.controllers.join(",")
        ));
        self.cert_manager = Some(proc);
        Ok(())
    }

    fn start_process(&self, role: Role, name: &str, cmd: Command) -> Result<ManagedProcess> {
        let mut state = lock(&self.state);
        if state.shut_down {
            bail!("the control plane was shut down");
        }
        if state.procs.iter().any(|(_, p)| p.name() == name) {
            bail!("a process named {name:?} already exists");
        }
        let inner = ProcessInner::start(&state.spawner, &self.workdir.join("logs"), name, cmd)?;
        state.procs.push((role, Arc::clone(&inner)));
        Ok(ManagedProcess { inner })
    }

    /// Starts any extra process (our controller, the mock PCA, …).
    ///
    /// stdin is null; stdout is captured into `<workdir>/logs/<name>.stdout.log` and available
    /// through [`ManagedProcess::first_stdout_line`]; stderr goes to
    /// `<workdir>/logs/<name>.stderr.log`. The process is stopped at teardown (before the
    /// apiserver) and its logs are part of [`ControlPlane::dump_logs`]. `name` must be unique
    /// and usable as a file name.
    ///
    /// The process runs in its own process group, which teardown and
    /// [`ManagedProcess::signal`] address. `PR_SET_PDEATHSIG` only covers the direct child,
    /// so prefer `exec` in shell wrappers.
    pub fn spawn(&self, name: &str, cmd: Command) -> Result<ManagedProcess> {
        if name.is_empty() || name.contains(['/', '\0']) {
            bail!("invalid process name {name:?}");
        }
        self.start_process(Role::Client, name, cmd)
    }

    /// An admin (`system:masters`) client.
    pub async fn client(&self) -> Result<Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// A client authenticating with `token` (e.g. one of [`ControlPlaneOptions::tokens`]).
    pub async fn client_for_token(&self, name: &str, token: &str) -> Result<Client> {
        let path = self.kubeconfig_for_token(name, token)?;
        client_from_kubeconfig(&path).await
    }

    /// Path of the admin kubeconfig file.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Writes `<workdir>/kubeconfig-<name>` for `token` and returns its path.
    pub fn kubeconfig_for_token(&self, name: &str, token: &str) -> Result<PathBuf> {
        if name.is_empty() || name.contains(['/', '\0']) {
            bail!("invalid kubeconfig name {name:?}");
        }
        let path = self.workdir.join(format!("kubeconfig-{name}"));
        self.write_kubeconfig(&path, name, token)?;
        Ok(path)
    }

    fn write_kubeconfig(&self, path: &Path, user: &str, token: &str) -> Result<()> {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "ccm-e2e", "cluster": {
                "server": self.api_url(),
                "certificate-authority-data": ca,
            }}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "ccm-e2e", "context": {
                "cluster": "ccm-e2e", "user": user, "namespace": "default",
            }}],
            "current-context": "ccm-e2e",
        });
        // JSON is valid YAML; every kubeconfig reader accepts it.
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// `https://127.0.0.1:<port>`.
    pub fn api_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    /// The apiserver's loopback address.
    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.api_port))
    }

    /// etcd's client URL.
    pub fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_port)
    }

    /// PEM of the CA that signed the apiserver's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// DER of the same CA.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The admin bearer token (`system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The control plane's work directory (logs, PKI, kubeconfigs, etcd data).
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// The tools (binaries, CRDs) in use.
    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// The node, if one runs.
    pub(crate) fn node(&self) -> Result<&Node> {
        self.node
            .as_ref()
            .context("this control plane runs no node (ControlPlaneOptions::node)")
    }

    /// The cert-manager runner, if configured.
    pub fn cert_manager(&self) -> Option<&ManagedProcess> {
        self.cert_manager.as_ref()
    }

    /// `(name, pid)` of every child ever started (etcd, kube-apiserver, cert-manager, spawned).
    pub fn child_pids(&self) -> Vec<(String, u32)> {
        lock(&self.state)
            .procs
            .iter()
            .map(|(_, p)| (p.name().to_owned(), p.pid()))
            .collect()
    }

    /// Creates (server-side applies) a namespace.
    pub async fn create_namespace(&self, name: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client().await?);
        let ns = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
        });
        api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&ns))
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(())
    }

    /// Server-side applies every document of a (multi-document) YAML string, resolving kinds
    /// through discovery. Namespaced objects without `metadata.namespace` go to `default`.
    /// Returns the applied objects as the server returned them.
    pub async fn apply_yaml(&self, yaml: &str) -> Result<Vec<DynamicObject>> {
        yaml::apply_yaml(&self.client().await?, yaml).await
    }

    /// [`ControlPlane::apply_yaml`] for a file.
    pub async fn apply_yaml_file(&self, path: &Path) -> Result<Vec<DynamicObject>> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        self.apply_yaml(&text)
            .await
            .with_context(|| format!("applying {}", path.display()))
    }

    /// Logs of every component (last lines of stderr, and stdout if any) as one string.
    pub fn logs(&self, lines: usize) -> String {
        let procs: Vec<_> = lock(&self.state).procs.iter().map(|(_, p)| Arc::clone(p)).collect();
        procs.iter().map(|p| p.log_tail(lines)).collect()
    }

    /// Prints the tail of every component's log to stderr (call it when a test fails).
    pub fn dump_logs(&self) {
        eprintln!(
            "[ccm-e2e] ===== component logs (work dir {}) =====",
            self.workdir.display()
        );
        eprint!("{}", self.logs(LOG_TAIL_LINES));
        eprintln!("[ccm-e2e] ===== end of component logs =====");
    }

    /// Stops every child (SIGTERM, then SIGKILL after a grace period; spawned processes and
    /// cert-manager first, then kube-apiserver, then etcd), waits for them and removes the
    /// work directory unless `CCM_E2E_KEEP=1`. Idempotent; `Drop` does the same.
    pub async fn shutdown(&self) -> Result<()> {
        let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
        if matches!(flavor, Ok(tokio::runtime::RuntimeFlavor::MultiThread)) {
            tokio::task::block_in_place(|| self.teardown());
        } else {
            self.teardown();
        }
        Ok(())
    }

    fn teardown(&self) {
        let mut state = lock(&self.state);
        if state.shut_down {
            return;
        }
        state.shut_down = true;
        let t = Instant::now();
        // The node's containers and shims first: they are not children of this process.
        if let Some(node) = &self.node {
            drop(state);
            node.stop();
            state = lock(&self.state);
        }
        for role in [Role::Client, Role::ApiServer, Role::Etcd] {
            let group: Vec<_> = state
                .procs
                .iter()
                .filter(|(r, _)| *r == role)
                .map(|(_, p)| Arc::clone(p))
                .collect();
            stop_group(&group, STOP_GRACE);
        }
        // All children are reaped; ending the spawner thread cannot hit a live child now.
        state.spawner.stop();
        if let Some(dir) = state.workdir.take() {
            if std::env::var("CCM_E2E_KEEP").is_ok_and(|v| v == "1") {
                let path = dir.keep();
                log(format!("kept work dir {}", path.display()));
            } else if let Err(e) = dir.close() {
                log(format!("could not remove work dir: {e}"));
            }
        }
        log(format!("control plane stopped in {:.1}s", t.elapsed().as_secs_f64()));
    }

    fn http_client(&self) -> Result<reqwest::Client> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(self.ca_der.clone()))
            .context("adding the control plane CA")?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("rustls protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .timeout(Duration::from_secs(3))
            .build()
            .context("building the HTTP client")
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// SIGTERM all, wait up to `grace` for all, SIGKILL the rest, reap.
fn stop_group(group: &[Arc<ProcessInner>], grace: Duration) {
    let t = Instant::now();
    for p in group {
        if matches!(p.try_wait(), Ok(None)) {
            let _ = p.signal(crate::Signal::Term);
        }
    }
    let deadline = Instant::now() + grace;
    for p in group {
        let left = deadline.saturating_duration_since(Instant::now());
        let status = p.terminate_blocking(left);
        log(format!(
            "stopped {} (pid {}) after {:.1}s: {}",
            p.name(),
            p.pid(),
            t.elapsed().as_secs_f64(),
            status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string())
        ));
    }
}

/// Polls `probe` every 100 ms until it yields `Some`, the process exits, or `timeout`.
async fn wait_until<F, Fut, T>(timeout: Duration, what: &str, proc: &ManagedProcess, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if let Some(status) = proc.try_wait()? {
            bail!("{} exited ({status}) while waiting for {what}", proc.name());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", path.display()))?;
    Client::try_from(config).context("building the kube client")
}

/// Applies the CRDs in `files` and waits until each is Established and its served versions
/// answer list requests. Returns the number of CRDs.
async fn install_crds(client: &Client, files: &[PathBuf]) -> Result<usize> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for doc in yaml::documents(&text).with_context(|| format!("parsing {}", file.display()))? {
            let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
            if kind != "CustomResourceDefinition" {
                bail!("{}: unexpected kind {kind:?} in a CRD file", file.display());
            }
            let name = doc
                .pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .ok_or_else(|| anyhow!("{}: CRD without metadata.name", file.display()))?
                .to_owned();
            api.patch(&name, &pp, &Patch::Apply(&doc))
                .await
                .with_context(|| format!("applying CRD {name} from {}", file.display()))?;
            names.push(name);
        }
    }

    let deadline = Instant::now() + CRD_TIMEOUT;
    for name in &names {
        let crd = loop {
            let crd = api.get(name).await.with_context(|| format!("reading CRD {name}"))?;
            let established = crd
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                break crd;
            }
            if Instant::now() >= deadline {
                bail!("CRD {name} not Established after {CRD_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let spec = &crd.spec;
        for v in spec.versions.iter().filter(|v| v.served) {
            let ar = ApiResource {
                group: spec.group.clone(),
                version: v.name.clone(),
                api_version: format!("{}/{}", spec.group, v.name),
                kind: spec.names.kind.clone(),
                plural: spec.names.plural.clone(),
            };
            let list: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            loop {
                match list.list(&ListParams::default().limit(1)).await {
                    Ok(_) => break,
                    Err(e) if Instant::now() >= deadline => {
                        return Err(anyhow!(e).context(format!(
                            "{}/{} {} not served after {CRD_TIMEOUT:?}",
                            spec.group, v.name, spec.names.plural
                        )));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
    }
    Ok(names.len())
}
