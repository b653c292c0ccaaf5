//! istiod (`pilot-discovery`) out of cluster against the test control plane, and workload
//! certificates requested from it the way a sidecar does.
//!
//! istiod runs as a child of the [`ControlPlane`] with the admin kubeconfig, every listener on
//! a free loopback port, and its plug-in CA directory (`ROOT_CA_DIR`, `/etc/cacerts` in a pod)
//! pointed at a directory the caller fills, normally a
//! [`SecretVolume`](crate::SecretVolume) of the `cacerts` Secret. Its logs (stdout) are kept
//! in memory for [`Istiod::wait_for_log`].
//!
//! A workload certificate is requested by `istio-workload-cert` (built with istiod, see
//! `e2e-tools/istio/workloadcert`): the sidecar agent's own key/CSR code and CA client call
//! `IstioCertificateService/CreateCertificate` on istiod's secure gRPC port over TLS trusting
//! the given root, with a service-account token (audience `istio-ca`, from the TokenRequest
//! API) that istiod checks with a TokenReview.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::ControlPlane;
use crate::control_plane::{FIELD_MANAGER, free_ports};
use crate::process::ManagedProcess;
use crate::tools::IstioTools;

/// The audience istiod's CA accepts in service-account tokens (its `TOKEN_AUDIENCES` default).
pub const ISTIO_CA_AUDIENCE: &str = "istio-ca";
/// The ConfigMap istiod writes into every namespace with the mesh's root certificate.
pub const ROOT_CERT_CONFIGMAP: &str = "istio-ca-root-cert";
/// The key of the root certificate in [`ROOT_CERT_CONFIGMAP`].
pub const ROOT_CERT_KEY: &str = "root-cert.pem";
/// The trust domain istiod uses without a mesh config (`cluster.local`).
pub const TRUST_DOMAIN: &str = "cluster.local";

const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_GRACE: Duration = Duration::from_secs(15);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How to run one istiod.
#[derive(Debug, Clone)]
pub struct IstiodOptions {
    /// Process name, unique within the control plane (also the log file prefix).
    pub name: String,
    /// istiod's namespace (`POD_NAMESPACE`): where it expects `cacerts`, keeps its
    /// self-signed CA Secret and its leader-election locks.
    pub namespace: String,
    /// The plug-in CA directory (`ROOT_CA_DIR`): `tls.crt`, `tls.key`, `ca.crt` of a
    /// `kubernetes.io/tls` `cacerts` Secret, or empty for istiod's self-signed CA.
    pub ca_dir: PathBuf,
}

/// A running istiod. Stopped by [`Istiod::stop`] or, at the latest, by the control plane's
/// teardown.
#[derive(Debug)]
pub struct Istiod {
    process: ManagedProcess,
    namespace: String,
    http_addr: SocketAddr,
    secure_grpc_addr: SocketAddr,
    workdir: PathBuf,
    client_bin: PathBuf,
}

/// A workload certificate as istiod returned it.
#[derive(Debug, Clone)]
pub struct WorkloadCertificate {
    /// PEM of the private key the client generated (never sent anywhere).
    pub key_pem: String,
    /// `IstioCertificateResponse.cert_chain` as returned: the leaf first, the root last.
    pub chain: Vec<String>,
}

impl Istiod {
    /// Starts istiod and waits until its `/ready` endpoint answers 200.
    pub async fn start(cp: &ControlPlane, tools: &IstioTools, opts: IstiodOptions) -> Result<Istiod> {
        let started = Instant::now();
        let workdir = cp.workdir().join(&opts.name);
        std::fs::create_dir_all(&workdir).with_context(|| format!("creating {}", workdir.display()))?;
        let ports = free_ports(6)?;
        let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i]));
        let (http_addr, secure_grpc_addr) = (addr(0), addr(1));
        let mut cmd = Command::new(tools.pilot_discovery());
        cmd.current_dir(&workdir)
            .arg("discovery")
            .arg(format!("--kubeconfig={}", cp.kubeconfig_path().display()))
            .arg(format!("--httpAddr={http_addr}"))
            .arg(format!("--secureGRPCAddr={secure_grpc_addr}"))
            .arg(format!("--grpcAddr={}", addr(2)))
            .arg(format!("--httpsAddr={}", addr(3)))
            .arg(format!("--monitoringAddr={}", addr(4)))
            .arg("--ctrlz_address=127.0.0.1")
            .arg(format!("--ctrlz_port={}", ports[5]))
            .arg("--log_output_level=default:info")
            // Stop within a second (default 10s of connection draining; nothing to drain here).
            .arg("--shutdownDuration=1s")
            .env("POD_NAMESPACE", &opts.namespace)
            .env("POD_NAME", format!("{}-0", opts.name))
            .env("ROOT_CA_DIR", &opts.ca_dir)
            .env("PILOT_CERT_PROVIDER", "istiod")
            // No webhook configurations exist to patch, and no Gateway API CRDs to serve.
            .env("INJECTION_WEBHOOK_CONFIG_NAME", "")
            .env("VALIDATION_WEBHOOK_CONFIG_NAME", "")
            .env("PILOT_ENABLE_GATEWAY_API", "false")
            .env("PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER", "false")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy");
        let process = cp.spawn(&opts.name, cmd)?;
        let istiod = Istiod {
            process,
            namespace: opts.namespace,
            http_addr,
            secure_grpc_addr,
            workdir,
            client_bin: tools.workload_cert_client(),
        };
        istiod.wait_ready().await?;
        eprintln!(
            "[ccm-e2e] istiod {} ready in {:.1}s (pid {}, namespace {}, CA {})",
            istiod.process.name(),
            started.elapsed().as_secs_f64(),
            istiod.process.pid(),
            istiod.namespace,
            istiod.secure_grpc_addr
        );
        Ok(istiod)
    }

    async fn wait_ready(&self) -> Result<()> {
        let url = format!("http://{}/ready", self.http_addr);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(3))
            .build()
            .context("building the HTTP client")?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.process.try_wait()? {
                bail!(
                    "istiod exited ({status}) during start-up:\n{}",
                    self.process.log_tail(40)
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "istiod not ready after {READY_TIMEOUT:?}:\n{}",
                    self.process.log_tail(40)
                );
            }
            // istiod logs a warning for every not-ready probe: poll gently.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The process (pid, logs, signals).
    pub fn process(&self) -> &ManagedProcess {
        &self.process
    }

    /// istiod's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The secure gRPC address (port 15012 in a cluster) serving the CA and xDS.
    pub fn secure_grpc_addr(&self) -> SocketAddr {
        self.secure_grpc_addr
    }

    /// The name sidecars expect in istiod's serving certificate: `istiod.<namespace>.svc`.
    pub fn server_name(&self) -> String {
        format!("istiod.{}.svc", self.namespace)
    }

    /// istiod's log lines (stdout) so far that contain `needle`.
    pub fn log_lines_with(&self, needle: &str) -> Vec<String> {
        self.process
            .stdout_lines()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }

    /// Waits for a log line containing `needle` (seen already or arriving later).
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String> {
        self.process.wait_for_stdout_line(|l| l.contains(needle), timeout).await
    }

    /// Requests a workload certificate for `namespace/service_account` as its sidecar would:
    /// over TLS trusting `root_pem` (what the sidecar reads from [`ROOT_CERT_CONFIGMAP`]),
    /// authenticated by `token` (see [`service_account_token`]).
    pub async fn request_workload_certificate(
        &self,
        root_pem: &str,
        token: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<WorkloadCertificate> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("workload-{namespace}-{service_account}-"))
            .tempdir_in(&self.workdir)
            .context("creating the workload directory")?
            .keep();
        let (root, token_file, key) = (dir.join("root.pem"), dir.join("token"), dir.join("key.pem"));
        std::fs::write(&root, root_pem).context("writing the root")?;
        write_private(&token_file, token.as_bytes()).context("writing the token")?;
        let mut cmd = tokio::process::Command::new(&self.client_bin);
        cmd.arg(format!("--ca-addr={}", self.secure_grpc_addr))
            .arg(format!("--ca-san={}", self.server_name()))
            .arg(format!("--root-cert={}", root.display()))
            .arg(format!("--token={}", token_file.display()))
            .arg(format!("--namespace={namespace}"))
            .arg(format!("--service-account={service_account}"))
            .arg(format!("--key-out={}", key.display()))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(CLIENT_TIMEOUT, cmd.output())
            .await
            .with_context(|| format!("{} timed out after {CLIENT_TIMEOUT:?}", self.client_bin.display()))?
            .with_context(|| format!("running {}", self.client_bin.display()))?;
        if !out.status.success() {
            bail!(
                "istio-workload-cert for {namespace}/{service_account} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Response {
            cert_chain: Vec<String>,
        }
        let response: Response = serde_json::from_slice(&out.stdout).context("parsing istio-workload-cert's output")?;
        let key_pem = std::fs::read_to_string(&key).context("reading the workload key")?;
        Ok(WorkloadCertificate {
            key_pem,
            chain: response.cert_chain,
        })
    }

    /// SIGTERM, then SIGKILL after a grace period; waits until istiod is gone.
    pub async fn stop(&self) -> Result<ExitStatus> {
        self.process.terminate(STOP_GRACE).await
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(data)
}

/// Creates ServiceAccount `namespace/name` if needed (there is no controller-manager to do it)
/// and returns a token for it from the TokenRequest API, valid for `audience`, as the kubelet
/// projects into a pod.
pub async fn service_account_token(client: &Client, namespace: &str, name: &str, audience: &str) -> Result<String> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let sa = serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    });
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&sa))
        .await
        .with_context(|| format!("creating ServiceAccount {namespace}/{name}"))?;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.to_owned()],
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let response = api
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for ServiceAccount {namespace}/{name}"))?;
    response
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .with_context(|| format!("TokenRequest for {namespace}/{name} returned no token"))
}
