//! The local demo (`make demo`): a real etcd + kube-apiserver + cert-manager on loopback, the
//! mock PCA over HTTPS and the ccm-issuer controller; applies the talk's two practices from
//! `examples/`, waits for the certificates, shows the issued chains, runs the real istiod on
//! `cacerts` (when `$CCM_E2E_ISTIO` names an istiod build, as `make demo` does) and shows the
//! workload certificate chain it signs, and checks the ingress certificate with
//! `curl --cacert`. Everything is torn down at the end, on Ctrl-C or on error.
//!
//! `ccm-demo [--bin-dir DIR] [--keep] [--chart]` — `--keep` leaves the cluster up until Ctrl-C
//! and prints a kubeconfig for `kubectl`; `--chart` runs the controller as users do: the image
//! from `scripts/image.sh`, installed with `helm install charts/ccm-issuer` on a real node
//! (kubelet + containerd, see `ccm_e2e::node`), inside private namespaces.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use ccm_e2e::{
    ControlPlane, ControlPlaneOptions, ISTIO_TOOLS_ENV, IstioTools, Istiod, IstiodOptions, NodeOptions, SecretVolume,
    istiod::{ISTIO_CA_AUDIENCE, ROOT_CERT_CONFIGMAP, ROOT_CERT_KEY, service_account_token},
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use rustls::pki_types::{CertificateDer, pem::PemObject};

const URN: &str = "4bd1b320-e162-419f-8add-dfcc046197c7";
const AK: &str = "DEMOACCESSKEY0000001";
const SK: &str = "demo-secret-key-for-the-mock-pca-only-0001";
const DOMAIN: &str = "0123456789abcdef0123456789abcdef";

struct Clock(Instant);

impl Clock {
    fn say(&self, what: impl std::fmt::Display) {
        println!("[{:>6.1}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The demo's command line.
struct Options {
    bin_dir: PathBuf,
    keep: bool,
    /// Through the Helm chart on a node instead of a local controller process.
    chart: bool,
}

fn main() -> std::process::ExitCode {
    let mut options = Options {
        bin_dir: workspace_root().join("target/debug"),
        keep: false,
        chart: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bin-dir" => options.bin_dir = args.next().map(PathBuf::from).unwrap_or(options.bin_dir),
            "--keep" => options.keep = true,
            "--chart" => options.chart = true,
            other => {
                eprintln!("unknown argument {other:?}; usage: ccm-demo [--bin-dir DIR] [--keep] [--chart]");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    // A node needs its own namespaces, entered while this process has one thread.
    if options.chart {
        match ccm_e2e::sandbox::enter() {
            Ok(Some(code)) => return code,
            Ok(None) => {}
            Err(e) => {
                eprintln!("demo failed: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(async_main(options)),
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn async_main(options: Options) -> std::process::ExitCode {
    let clock = Clock(Instant::now());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let showing = std::sync::atomic::AtomicBool::new(false);
    let outcome = tokio::select! {
        r = demo(&clock, &options, &showing) => r,
        // Ctrl-C ends a --keep demo normally; earlier it interrupts. Either way dropping the
        // demo future tears the control plane down.
        _ = interrupted() => match showing.load(std::sync::atomic::Ordering::SeqCst) {
            true => Ok(()),
            false => Err(anyhow::anyhow!("interrupted")),
        },
    };
    match outcome {
        Ok(()) => {
            clock.say("demo finished; everything was stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn demo(clock: &Clock, options: &Options, showing: &std::sync::atomic::AtomicBool) -> Result<()> {
    let root = workspace_root();
    let bin_dir = options.bin_dir.as_path();
    let image_archive = root.join("target/image/ccm-issuer.tar");
    if options.chart && !image_archive.is_file() {
        bail!(
            "{} missing: run scripts/image.sh (make demo ARGS=--chart does)",
            image_archive.display()
        );
    }
    for bin in ["ccm-issuer", "ccm-mock-pca"] {
        if !bin_dir.join(bin).exists() {
            bail!(
                "{} missing: run `cargo build --bin ccm-issuer --bin ccm-mock-pca` (make demo does)",
                bin_dir.join(bin).display()
            );
        }
    }
    let istio = match std::env::var_os(ISTIO_TOOLS_ENV) {
        Some(dir) if !dir.is_empty() => Some(IstioTools::from_dir(Path::new(&dir))?),
        _ => None,
    };
    let mut extra_crd_files = vec![
        root.join("crds/ccm-issuer.ccm.com_ccmissuers.yaml"),
        root.join("crds/ccm-issuer.ccm.com_ccmclusterissuers.yaml"),
    ];
    extra_crd_files.extend(istio.as_ref().map(IstioTools::crd_file));
    let t = Instant::now();
    let cp = ControlPlane::start(ControlPlaneOptions {
        extra_crd_files,
        node: options.chart.then(|| NodeOptions {
            image_archives: vec![image_archive.clone()],
        }),
        ..ControlPlaneOptions::default()
    })
    .await?;
    clock.say(format!(
        "control plane up in {:.1}s: etcd, kube-apiserver {}, cert-manager controllers, our CRDs{}{}",
        t.elapsed().as_secs_f64(),
        cp.tools().k8s_version().unwrap_or("?"),
        if istio.is_some() { ", Istio's CRDs" } else { "" },
        if options.chart {
            ", and a node: kubelet, containerd + runc, kube-scheduler, kube-controller-manager"
        } else {
            ""
        }
    ));
    let result = run_demo(clock, &cp, options, istio.as_ref(), showing).await;
    if result.is_err() {
        cp.dump_logs();
    }
    clock.say("tearing down");
    cp.shutdown().await?;
    result
}

async fn run_demo(
    clock: &Clock,
    cp: &ControlPlane,
    options: &Options,
    istio: Option<&IstioTools>,
    showing: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    let work = cp.workdir();
    let mock_ca = work.join("mock-pca-ca.pem");
    let node_ip = ccm_e2e::node::NODE_IP.to_string();
    let mut mock_cmd = Command::new(options.bin_dir.join("ccm-mock-pca"));
    match options.chart {
        // Pods reach it at the node's address (all inside the demo's network namespace).
        true => mock_cmd.args(["--listen", "0.0.0.0:0", "--tls-san", &node_ip]),
        false => mock_cmd.args(["--listen", "127.0.0.1:0"]),
    };
    mock_cmd.args(["--tls", "--tls-ca-out"]).arg(&mock_ca).args([
        "--credential",
        &format!("{AK}:{SK}:{DOMAIN}"),
        "--ca",
        URN,
        "--ca-key-algorithm",
        "EC256",
    ]);
    let mock = cp.spawn("ccm-mock-pca", mock_cmd)?;
    let mock_url = mock
        .first_stdout_line(Duration::from_secs(60))
        .await?
        .replace("0.0.0.0", "127.0.0.1");
    clock.say(format!(
        "mock PCA serving {mock_url} (HTTPS), CA {URN} (EC256, with its root)"
    ));

    cp.create_namespace("istio-system").await?;
    cp.create_namespace("ccm-issuer").await?;
    if options.chart {
        let pods_url = mock_url.replace("127.0.0.1", &node_ip);
        install_chart(clock, cp, &pods_url, &std::fs::read_to_string(&mock_ca)?).await?;
    } else {
        start_controller(clock, cp, &options.bin_dir, &mock_url, &mock_ca).await?;
    }
    issue_and_show(clock, cp, options.keep, istio, showing).await
}

/// The controller as a local process with the admin kubeconfig.
async fn start_controller(
    clock: &Clock,
    cp: &ControlPlane,
    bin_dir: &Path,
    mock_url: &str,
    mock_ca: &Path,
) -> Result<()> {
    let health = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut ctl = Command::new(bin_dir.join("ccm-issuer"));
    ctl.arg("controller")
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .args(["--cluster-resource-namespace", "ccm-issuer"])
        .args(["--health-bind-address", &health.to_string()])
        // The talk's issuer names region cn-north-4: point that region at the mock, as the
        // Huawei SDK's HUAWEICLOUD_SDK_REGION_CCM_CN_NORTH_4 variable would.
        .args(["--pca-endpoint", &format!("cn-north-4={mock_url}")])
        // IAM (account-id discovery) is not moved by it, as in the SDK: HUAWEICLOUD_SDK_IAM_ENDPOINT.
        .args(["--iam-endpoint", mock_url])
        .arg("--ca-bundle")
        .arg(mock_ca)
        .env("RUST_LOG", "info");
    cp.spawn("ccm-issuer", ctl)?;
    wait_http(&format!("http://{health}/readyz")).await?;
    clock.say(format!(
        "ccm-issuer controller ready (health and metrics on http://{health})"
    ));
    Ok(())
}

/// The controller as users run it: `helm install` of the chart with the local image, the
/// talk's region pointed at the mock and the mock's CA through the chart's caBundle.
async fn install_chart(clock: &Clock, cp: &ControlPlane, mock_url: &str, mock_ca_pem: &str) -> Result<()> {
    let root = workspace_root();
    let ca = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "mock-pca-ca", "namespace": "ccm-issuer"},
        "data": {"ca.crt": mock_ca_pem},
    });
    cp.apply_yaml(&serde_json::to_string(&ca)?).await?;
    let values = serde_json::json!({
        "image": {"repository": "localhost/ccm-issuer", "pullPolicy": "Never"},
        "rbac": {"secretNamespaces": ["istio-system"]},
        "caBundle": {"configMapName": "mock-pca-ca"},
        "controller": {"pcaEndpoints": {"cn-north-4": mock_url}},
    });
    let values_file = cp.workdir().join("demo-values.json");
    std::fs::write(&values_file, serde_json::to_string_pretty(&values)?)?;
    let home = cp.workdir().join("helm-home");
    let mut helm = Command::new(cp.tools().helm());
    helm.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .args(["install", "ccm-issuer"])
        .arg(root.join("charts/ccm-issuer"))
        .args(["--namespace", "ccm-issuer", "--wait", "--timeout", "3m", "--values"])
        .arg(&values_file);
    clock.say(format!(
        "$ helm install ccm-issuer charts/ccm-issuer -n ccm-issuer --wait (image localhost/ccm-issuer, mock PCA at {mock_url})"
    ));
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || helm.output()).await??;
    if !out.status.success() {
        bail!(
            "helm install failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(cp.client().await?, "ccm-issuer");
    let names: Vec<String> = pods
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/instance=ccm-issuer"))
        .await?
        .items
        .iter()
        .map(|p| {
            format!(
                "{} ({})",
                kube::ResourceExt::name_any(p),
                p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()
            )
        })
        .collect();
    clock.say(format!(
        "chart installed in {:.1}s: pod {} Ready through its probes on node {}",
        t.elapsed().as_secs_f64(),
        names.join(", "),
        ccm_e2e::node::NODE_NAME
    ));
    Ok(())
}

/// Applies the talk's two practices, waits for them, shows the chains, checks TLS.
async fn issue_and_show(
    clock: &Clock,
    cp: &ControlPlane,
    keep: bool,
    istio: Option<&IstioTools>,
    showing: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    let root = workspace_root();
    let work = cp.workdir();

    // The talk's Secret with the mock's credentials instead of placeholders.
    let secret = std::fs::read_to_string(root.join("examples/mesh-ca/01-ccm-secret.yaml"))?
        .replace("REPLACE_WITH_YOUR_ACCESS_KEY_ID", AK)
        .replace("REPLACE_WITH_YOUR_SECRET_ACCESS_KEY", SK);
    cp.apply_yaml(&secret).await?;
    let issuer = std::fs::read_to_string(root.join("examples/mesh-ca/02-ccmissuer.yaml"))?.replace(
        "  name: ccmissuer-mesh\n",
        "  name: ccmissuer-mesh\n  namespace: istio-system\n",
    );
    cp.apply_yaml(&issuer).await?;
    for file in [
        "mesh-ca/03-certificate-mesh-ca.yaml",
        "ingress-gateway/01-ccmissuer-ingress.yaml",
        "ingress-gateway/02-certificate-ingress-server-crt.yaml",
    ] {
        cp.apply_yaml_file(&root.join("examples").join(file)).await?;
        clock.say(format!("applied examples/{file}"));
    }
    let client = cp.client().await?;
    for name in ["mesh-ca", "ingress-server-crt"] {
        let t = Instant::now();
        ccm_e2e::certificate_ready(&client, "istio-system", name, Duration::from_secs(120)).await?;
        clock.say(format!(
            "Certificate istio-system/{name} is Ready ({:.1}s)",
            t.elapsed().as_secs_f64()
        ));
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "istio-system");
    let show_secret = async |secret: &str, title: &str| -> Result<()> {
        println!("\n{title}:");
        let s = secrets.get(secret).await?;
        for key in ["tls.crt", "ca.crt"] {
            show_chain(work, key, &data(&s, key)?)?;
        }
        println!();
        Ok(())
    };
    show_secret(
        "cacerts",
        "Practice 1 — istiod's plug-in CA, Secret istio-system/cacerts",
    )
    .await?;
    // Kept running (for --keep) until the demo ends; the control plane's teardown stops it.
    let _istiod = match istio {
        Some(istio) => Some(practice1_with_istiod(clock, cp, istio).await?),
        None => {
            println!(
                "(istiod not built: {ISTIO_TOOLS_ENV} is unset; `make demo` builds it with e2e-tools/build.sh istio)"
            );
            None
        }
    };
    show_secret(
        "ingress-server-crt",
        "Practice 2 — ingress gateway, Secret istio-system/ingress-server-crt",
    )
    .await?;
    let s = secrets.get("ingress-server-crt").await?;
    let (crt, key, ca) = (data(&s, "tls.crt")?, data(&s, "tls.key")?, data(&s, "ca.crt")?);
    let ca_file = work.join("ingress-ca.crt");
    std::fs::write(&ca_file, &ca)?;
    let (port, _server) = ccm_e2e::https_server(
        &crt,
        &key,
        "hello from the demo ingress gateway (TLS terminated with the PCA-signed certificate)\n",
    )
    .await?;
    let cmd = format!(
        "curl --cacert {} --resolve cert-test.com:{port}:127.0.0.1 https://cert-test.com:{port}/",
        ca_file.display()
    );
    clock.say(format!("$ {cmd}"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sh")
            .args(["-c", &format!("{cmd} -sS --max-time 10")])
            .output()
    })
    .await??;
    if !out.status.success() {
        bail!("curl failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    clock.say("TLS check passed: the gateway certificate verifies against the PCA root in ca.crt");
    if keep {
        showing.store(true, std::sync::atomic::Ordering::SeqCst);
        // A node runs in the demo's own namespaces: kubectl has to enter them.
        let enter = match cp.has_node() {
            true => "nsenter --target <the sandbox pid printed above> --net --mount -- ",
            false => "",
        };
        println!(
            "\nThe cluster stays up. In another shell:\n  export KUBECONFIG={}\n  {enter}kubectl get ccmissuers,certificates,certificaterequests -A\nPress Ctrl-C to stop.",
            cp.kubeconfig_path().display()
        );
        // Ctrl-C is handled by main, which then drops this future and tears down.
        std::future::pending::<()>().await;
    }
    Ok(())
}

/// Practice 1 with the real istiod: `cacerts` projected into its CA directory as a Secret
/// volume, istiod out of cluster, and a workload certificate requested as a sidecar does.
async fn practice1_with_istiod(clock: &Clock, cp: &ControlPlane, istio: &IstioTools) -> Result<(SecretVolume, Istiod)> {
    let client = cp.client().await?;
    let volume = SecretVolume::start(client.clone(), "istio-system", "cacerts", &cp.workdir().join("cacerts")).await?;
    volume.wait_for_write_after(0, Duration::from_secs(30)).await?;
    let t = Instant::now();
    let istiod = Istiod::start(
        cp,
        istio,
        IstiodOptions {
            name: "istiod".to_owned(),
            namespace: "istio-system".to_owned(),
            ca_dir: volume.dir().to_owned(),
        },
    )
    .await?;
    clock.say(format!(
        "istiod {} (istio.io/istio {}) ready in {:.1}s, cacerts mounted at {}",
        istio.istio_version().unwrap_or("?"),
        istio.module_version().unwrap_or("?"),
        t.elapsed().as_secs_f64(),
        volume.dir().display()
    ));
    let line = istiod
        .wait_for_log("Use local CA certificate", Duration::from_secs(10))
        .await?;
    clock.say(format!("istiod: {}", line.split('\t').next_back().unwrap_or(&line)));

    let ns = "demo-workloads";
    cp.create_namespace(ns).await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    let root_pem = loop {
        if let Some(pem) = configmaps
            .get_opt(ROOT_CERT_CONFIGMAP)
            .await?
            .and_then(|cm| cm.data)
            .and_then(|mut d| d.remove(ROOT_CERT_KEY))
        {
            break pem;
        }
        if Instant::now() > deadline {
            bail!("istiod published no {ROOT_CERT_CONFIGMAP} in {ns} within 60s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    clock.say(format!("istiod published {ns}/{ROOT_CERT_CONFIGMAP}:"));
    show_chain(cp.workdir(), ROOT_CERT_KEY, &root_pem)?;
    let token = service_account_token(&client, ns, "productpage", ISTIO_CA_AUDIENCE).await?;
    let workload = istiod
        .request_workload_certificate(&root_pem, &token, ns, "productpage")
        .await?;
    clock.say(format!(
        "workload certificate for spiffe://cluster.local/ns/{ns}/sa/productpage from istiod's CA (gRPC CreateCertificate, service-account token):"
    ));
    show_chain(cp.workdir(), "chain", &workload.chain.concat())?;
    let dir = cp.workdir().join("workload");
    std::fs::create_dir_all(&dir)?;
    let (leaf, rest) = workload.chain.split_first().context("istiod returned an empty chain")?;
    std::fs::write(dir.join("leaf.pem"), leaf)?;
    std::fs::write(dir.join("istiod-chain.pem"), rest.concat())?;
    std::fs::write(dir.join("pca-root.pem"), &root_pem)?;
    let verify = Command::new("openssl")
        .args([
            "verify",
            "-no-CApath",
            "-no-CAstore",
            "-CAfile",
            "pca-root.pem",
            "-untrusted",
            "istiod-chain.pem",
            "leaf.pem",
        ])
        .current_dir(&dir)
        .output()?;
    let text = String::from_utf8_lossy(&verify.stdout).trim().to_owned();
    if !verify.status.success() {
        bail!(
            "openssl verify of the workload chain failed: {text} {}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
    clock.say(format!(
        "$ openssl verify -CAfile pca-root.pem -untrusted istiod-chain.pem leaf.pem → {text}"
    ));
    Ok((volume, istiod))
}

fn data(secret: &Secret, key: &str) -> Result<String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .with_context(|| format!("no {key}"))?;
    Ok(String::from_utf8(bytes.0.clone())?)
}

/// Prints subject, issuer, validity and CA flag of every certificate in a PEM bundle.
fn show_chain(work: &Path, name: &str, pem: &str) -> Result<()> {
    for (i, der) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let der = der?;
        let file = work.join("cert.der");
        std::fs::write(&file, der.as_ref())?;
        let out = Command::new("openssl")
            .args([
                "x509",
                "-inform",
                "DER",
                "-noout",
                "-subject",
                "-issuer",
                "-dates",
                "-ext",
                "basicConstraints,subjectAltName",
                "-in",
            ])
            .arg(&file)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |prefix: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
                .unwrap_or_default()
        };
        let ca = if text.contains("CA:TRUE") {
            "CA:TRUE"
        } else {
            "CA:FALSE"
        };
        let pathlen = text
            .lines()
            .find_map(|l| l.split("pathlen:").nth(1))
            .map(|p| format!(" pathlen:{}", p.trim()))
            .unwrap_or_default();
        let san = text
            .lines()
            .skip_while(|l| !l.contains("Subject Alternative Name"))
            .nth(1)
            .map(str::trim);
        let subject = field("subject=");
        println!(
            "  {name}[{i}] subject: {}",
            if subject.is_empty() { "(empty)" } else { &subject }
        );
        if let Some(san) = san {
            println!("  {:>width$}  SAN:     {san}", "", width = name.len() + 3);
        }
        println!(
            "  {:>width$}  issuer:  {}",
            "",
            field("issuer="),
            width = name.len() + 3
        );
        println!(
            "  {:>width$}  valid:   {} → {}   {ca}{pathlen}",
            "",
            field("notBefore="),
            field("notAfter="),
            width = name.len() + 3
        );
    }
    Ok(())
}

async fn wait_http(url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if reqwest_get_ok(url).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{url} not ready after 60s")
}

async fn reqwest_get_ok(url: &str) -> bool {
    match reqwest::Client::builder().build() {
        Ok(c) => c.get(url).send().await.is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    }
}
