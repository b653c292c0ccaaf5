//! Command-line interface: `controller`, `pca describe-ca`, `pca sign`, `crds`.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::{
    cert_manager::parse_go_duration,
    controller::issuer::signing_blocker,
    controller::{
        Config,
        certificate_request::plan::validity_for,
        endpoint_policy::{Allowed, EndpointPolicy},
        runtime::{RunOptions, run},
    },
    pca::{
        ClientConfig, Credentials, PcaClient, PcaError,
        endpoint::{PCA_REGION_ENV_PREFIX, parse_endpoint, pca_endpoint, resolve_iam, resolve_sts, sdk_endpoint_value},
        ratelimit::TokenBucket,
    },
    pki::parse_csr,
    signing::{self, Kind, SignError, SignRequest, Verified},
    telemetry::{self, LogFormat},
};

/// cert-manager external issuer for Huawei Cloud CCM Private CA.
#[derive(Debug, Parser)]
#[command(name = "ccm-issuer", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (reconciles CCMIssuers, CCMClusterIssuers and CertificateRequests).
    Controller(ControllerArgs),
    /// Talk to the PCA directly: check credentials and CA, or sign a CSR.
    #[command(subcommand)]
    Pca(PcaCommand),
    /// Print (or write) the CustomResourceDefinitions generated from the Rust types.
    Crds {
        /// Write one file per CRD into each of these directories instead of printing.
        #[arg(long)]
        out_dir: Vec<PathBuf>,
    },
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_go_duration(s)
}

/// A Go duration within `[min, max]`.
fn bounded_duration(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse_go_duration(s)?;
    if d < min || d > max {
        return Err(format!(
            "{s} is outside the allowed range {} .. {}",
            humanize(min),
            humanize(max)
        ));
    }
    Ok(d)
}

fn humanize(d: Duration) -> String {
    match d.as_secs() {
        s if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn pca_timeout_arg(s: &str) -> Result<Duration, String> {
    bounded_duration(s, Duration::from_secs(1), Duration::from_secs(600))
}

fn retry_duration_arg(s: &str) -> Result<Duration, String> {
    bounded_duration(s, Duration::from_secs(1), Duration::from_secs(30 * 86_400))
}

fn recheck_interval_arg(s: &str) -> Result<Duration, String> {
    bounded_duration(s, Duration::from_secs(10), Duration::from_secs(7 * 86_400))
}

fn lease_duration_arg(s: &str) -> Result<Duration, String> {
    bounded_duration(s, Duration::from_secs(2), Duration::from_secs(600))
}

/// Calls per second: a finite number from 0 (unlimited) to 100,000. `NaN` or `inf` would
/// otherwise poison the token bucket's arithmetic.
fn qps_arg(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !v.is_finite() || !(0.0..=100_000.0).contains(&v) {
        return Err(format!("{s} must be a finite number from 0 (no ceiling) to 100000"));
    }
    Ok(v)
}

fn burst_arg(s: &str) -> Result<u32, String> {
    let v: u32 = s.trim().parse().map_err(|_| format!("{s:?} is not a whole number"))?;
    if !(1..=100_000).contains(&v) {
        return Err(format!("{s} must be from 1 to 100000"));
    }
    Ok(v)
}

fn concurrency_arg(s: &str) -> Result<u16, String> {
    let v: u16 = s.trim().parse().map_err(|_| format!("{s:?} is not a whole number"))?;
    if !(1..=1024).contains(&v) {
        return Err(format!("{s} must be from 1 to 1024"));
    }
    Ok(v)
}

fn sdk_endpoint_arg(s: &str) -> Result<url::Url, String> {
    sdk_endpoint_value(s).map_err(|e| e.to_string())
}

fn region_endpoint_arg(s: &str) -> Result<(String, url::Url), String> {
    let (region, url) = s.split_once('=').ok_or("expected REGION=URL")?;
    let url = parse_endpoint(url).map_err(|e| e.to_string())?;
    Ok((region.trim().to_owned(), url))
}

/// `HUAWEICLOUD_SDK_REGION_CCM_AP_SOUTHEAST_3=https://host[,https://host2]` → (`ap-southeast-3`, first URL).
fn sdk_region_endpoints() -> Vec<(String, url::Url)> {
    std::env::vars()
        .filter_map(|(k, v)| {
            let region = k.strip_prefix(PCA_REGION_ENV_PREFIX)?.to_lowercase().replace('_', "-");
            let first = v.split(',').next()?.trim().to_owned();
            parse_endpoint(&first).ok().map(|u| (region, u))
        })
        .collect()
}

/// Flags of `ccm-issuer controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Kubeconfig file (default: in-cluster config, then $KUBECONFIG / ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace where CCMClusterIssuers keep their Secrets when secretRef.namespace is empty
    /// (default: the controller's own namespace).
    #[arg(long, env = "CLUSTER_RESOURCE_NAMESPACE")]
    pub cluster_resource_namespace: Option<String>,
    /// Use a coordination.k8s.io Lease so only one replica reconciles; a replica that cannot
    /// prove it still holds the lease stops issuing and exits.
    #[arg(long)]
    pub leader_elect: bool,
    /// Duration of the leader-election Lease (renewed every third of it); a killed leader is
    /// replaced after about this long.
    #[arg(long, default_value = "15s", value_parser = lease_duration_arg)]
    pub leader_election_lease_duration: Duration,
    /// Namespace of the leader-election Lease (default: the controller's own namespace).
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "ccm-issuer-leader")]
    pub leader_election_id: String,
    /// Parallel reconciliations per controller (1–1024).
    #[arg(long, default_value = "8", value_parser = concurrency_arg)]
    pub max_concurrent_reconciles: u16,
    /// Reconciliations of one issuer's requests that may call the PCA at once (1–1024); the
    /// others wait without holding a worker, so one slow issuer cannot stall the rest.
    #[arg(long, default_value = "4", value_parser = concurrency_arg)]
    pub max_concurrent_per_issuer: u16,
    /// Ceiling of the client-side PCA call rate, calls per second per endpoint and access key
    /// (0 = no ceiling). The rate itself is adaptive: it starts at 5/s, rises while calls wait
    /// for it and are not throttled, and falls when the service answers 429 (APIGW.0308).
    #[arg(long, default_value = "0", value_parser = qps_arg)]
    pub pca_qps: f64,
    /// Largest burst of PCA calls (1–100000); the client holds at most a fifth of a second of
    /// calls at its current rate, and never more than this.
    #[arg(long, default_value = "10", value_parser = burst_arg)]
    pub pca_burst: u32,
    /// Timeout of one PCA HTTP request (1s–10m).
    #[arg(long, default_value = "30s", value_parser = pca_timeout_arg)]
    pub pca_timeout: Duration,
    /// How long transient PCA errors (before anything was issued) keep a request Pending,
    /// counted from the first error of the episode, before it is Failed (1s–30d).
    #[arg(long, default_value = "5m", value_parser = retry_duration_arg)]
    pub max_retry_duration: Duration,
    /// How often a Ready issuer's CA is re-checked (10s–7d).
    #[arg(long, default_value = "10m", value_parser = recheck_interval_arg)]
    pub issuer_recheck_interval: Duration,
    /// An endpoint namespaced CCMIssuers may set in spec.endpoint / spec.iamEndpoint (and then
    /// trust with spec.caBundle): a host name (any scheme and port) or an http(s) URL prefix.
    /// Repeatable. Without it, namespaced issuers cannot override endpoints; CCMClusterIssuers
    /// always can.
    #[arg(long = "namespaced-issuer-endpoint", value_parser = clap::value_parser!(Allowed))]
    pub namespaced_issuer_endpoints: Vec<Allowed>,
    /// Allow plain http:// PCA and IAM endpoints (never with a security token).
    #[arg(long)]
    pub allow_insecure_endpoints: bool,
    /// PCA endpoint for a region, `REGION=URL` (repeatable), replacing the built-in region table
    /// for issuers without spec.endpoint (and serving regions the table does not know); the Huawei
    /// SDK's `HUAWEICLOUD_SDK_REGION_CCM_<REGION>` environment variables are honoured too. IAM is
    /// not moved by it (see --iam-endpoint).
    #[arg(long = "pca-endpoint", value_parser = region_endpoint_arg)]
    pub pca_endpoints: Vec<(String, url::Url)>,
    /// IAM endpoint for account-id discovery of issuers without spec.iamEndpoint and domainId
    /// (default: the Huawei SDKs' IAM endpoint of the issuer's region, else
    /// https://iam.myhuaweicloud.com). A value without scheme means https://.
    #[arg(long, env = "HUAWEICLOUD_SDK_IAM_ENDPOINT", value_parser = sdk_endpoint_arg)]
    pub iam_endpoint: Option<url::Url>,
    /// STS endpoint asked for the account id when IAM lists none (default: the Huawei SDKs' STS
    /// endpoint of the issuer's region, if it has one).
    #[arg(long, env = "HUAWEICLOUD_SDK_STS_ENDPOINT", value_parser = sdk_endpoint_arg)]
    pub sts_endpoint: Option<url::Url>,
    /// PEM file of CAs trusted, besides the system roots, for PCA endpoints of issuers without
    /// their own caBundle (e.g. a TLS-inspecting proxy).
    #[arg(long)]
    pub ca_bundle: Option<PathBuf>,
    /// Address of /livez, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:9402")]
    pub health_bind_address: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// `ccm-issuer pca ...`
#[derive(Debug, Subcommand)]
pub enum PcaCommand {
    /// Show the CA and check that the credentials and URN work (exit 1 if it cannot issue).
    DescribeCa(PcaTarget),
    /// Sign a CSR: leaf + intermediates to stdout, root to --ca-out.
    Sign(SignArgs),
}

/// Where the PCA is and which CA. Credentials come from the Huawei SDK's environment variables
/// `HUAWEICLOUD_SDK_AK`, `HUAWEICLOUD_SDK_SK`, `HUAWEICLOUD_SDK_SECURITY_TOKEN`, `HUAWEICLOUD_SDK_DOMAIN_ID`.
#[derive(Debug, Args)]
pub struct PcaTarget {
    /// Region, e.g. ap-southeast-3.
    #[arg(long, env = "HUAWEICLOUD_SDK_REGION")]
    pub region: Option<String>,
    /// CA id (the issuer's spec.urn).
    #[arg(long)]
    pub urn: String,
    /// Endpoint override (e.g. a private endpoint or the mock). It does not move IAM.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// IAM endpoint for account-id discovery (default: the Huawei SDKs' IAM endpoint of
    /// --region, else https://iam.myhuaweicloud.com).
    #[arg(long, env = "HUAWEICLOUD_SDK_IAM_ENDPOINT", value_parser = sdk_endpoint_arg)]
    pub iam_endpoint: Option<url::Url>,
    /// STS endpoint asked for the account id when IAM lists none (default: the Huawei SDKs' STS
    /// endpoint of --region, if it has one).
    #[arg(long, env = "HUAWEICLOUD_SDK_STS_ENDPOINT", value_parser = sdk_endpoint_arg)]
    pub sts_endpoint: Option<url::Url>,
    /// PEM file of CAs trusted for the endpoint's TLS.
    #[arg(long)]
    pub ca_bundle: Option<PathBuf>,
    /// Request timeout.
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    pub timeout: Duration,
}

/// Flags of `pca sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Target CA and endpoint.
    #[command(flatten)]
    pub target: PcaTarget,
    /// PEM (or DER) CSR file.
    #[arg(long)]
    pub csr: PathBuf,
    /// Issue a CA certificate (INTERMEDIATE_CA).
    #[arg(long)]
    pub ca: bool,
    /// Path length of the CA certificate.
    #[arg(long, default_value_t = 0)]
    pub path_length: u32,
    /// Validity, a Go duration (whole days are sent as DAY, else HOUR).
    #[arg(long, default_value = "2160h", value_parser = duration_arg)]
    pub duration: Duration,
    /// Write the root CA certificate here.
    #[arg(long)]
    pub ca_out: Option<PathBuf>,
}

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    crate::install_crypto_provider();
    let result = match cli.command {
        Command::Crds { out_dir } => crds(&out_dir),
        Command::Controller(args) => block_on(controller(args)),
        Command::Pca(cmd) => {
            telemetry::init(LogFormat::Text);
            block_on(pca(cmd))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(f: F) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

fn crds(out_dirs: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let docs = crate::crd::crd_documents()?;
    if out_dirs.is_empty() {
        for (_, yaml) in docs {
            print!("{yaml}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    for dir in out_dirs {
        std::fs::create_dir_all(dir)?;
        for (name, yaml) in &docs {
            std::fs::write(dir.join(name), yaml)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The namespace this process runs in: `POD_NAMESPACE`, the service-account file, or the
/// kubeconfig's default.
fn own_namespace(kube_default: &str) -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| kube_default.to_owned())
}

async fn kube_config(path: Option<&PathBuf>) -> anyhow::Result<kube::Config> {
    match path {
        Some(p) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(p).with_context(|| format!("cannot read {}", p.display()))?;
            Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?)
        }
        None => Ok(kube::Config::infer().await?),
    }
}

async fn controller(args: ControllerArgs) -> anyhow::Result<ExitCode> {
    telemetry::init(args.log_format);
    let kube_config = kube_config(args.kubeconfig.as_ref()).await?;
    let namespace = own_namespace(&kube_config.default_namespace);
    let client = kube::Client::try_from(kube_config)?;
    let config = Config {
        cluster_resource_namespace: args.cluster_resource_namespace.unwrap_or_else(|| namespace.clone()),
        max_retry_duration: args.max_retry_duration,
        issuer_recheck_interval: args.issuer_recheck_interval,
        max_concurrent_reconciles: args.max_concurrent_reconciles,
        max_concurrent_per_issuer: args.max_concurrent_per_issuer.min(args.max_concurrent_reconciles),
        pca_qps: args.pca_qps,
        pca_burst: args.pca_burst,
        pca_timeout: args.pca_timeout,
        instance: std::env::var("POD_NAME").ok(),
        // Flags win over the SDK environment variables.
        region_endpoints: sdk_region_endpoints().into_iter().chain(args.pca_endpoints).collect(),
        iam_endpoint: args.iam_endpoint,
        sts_endpoint: args.sts_endpoint,
        extra_ca_bundle: match &args.ca_bundle {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("cannot read --ca-bundle {}", p.display()))?),
            None => None,
        },
        endpoint_policy: EndpointPolicy {
            namespaced_allowed: args.namespaced_issuer_endpoints,
            allow_insecure: args.allow_insecure_endpoints,
        },
        ..Config::default()
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        cluster_resource_namespace = %config.cluster_resource_namespace,
        leader_elect = args.leader_elect,
        "starting ccm-issuer controller"
    );
    let options = RunOptions {
        config,
        health_addr: args.health_bind_address,
        leader_elect: args.leader_elect,
        lease_namespace: args.leader_election_namespace.unwrap_or(namespace),
        lease_name: args.leader_election_id,
        lease_duration: args.leader_election_lease_duration,
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing in-flight work");
        let _ = tx.send(true);
    });
    run(client, options, rx).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn env_secret(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn client_for(target: &PcaTarget) -> anyhow::Result<PcaClient> {
    let ak = env_secret("HUAWEICLOUD_SDK_AK").context("set HUAWEICLOUD_SDK_AK to the access key id")?;
    let sk = env_secret("HUAWEICLOUD_SDK_SK").context("set HUAWEICLOUD_SDK_SK to the secret access key")?;
    let token = env_secret("HUAWEICLOUD_SDK_SECURITY_TOKEN").map(SecretString::from);
    let credentials = Credentials::with_token(ak, &SecretString::from(sk), token);
    let endpoint = match (&target.endpoint, &target.region) {
        (Some(e), _) => parse_endpoint(e)?,
        (None, Some(r)) => match sdk_region_endpoints().into_iter().find(|(region, _)| region == r) {
            Some((_, url)) => url,
            None => pca_endpoint(r)?,
        },
        (None, None) => bail!("set --region (e.g. ap-southeast-3) or --endpoint"),
    };
    // As in the SDKs, IAM and STS follow the region (or their own overrides), never the PCA
    // endpoint.
    let region = target.region.as_deref().unwrap_or_default();
    let iam = resolve_iam(None, target.iam_endpoint.as_ref(), region)?;
    let mut config = ClientConfig::new(endpoint, iam);
    config.sts_endpoint = resolve_sts(target.sts_endpoint.as_ref(), region);
    config.domain_id = env_secret("HUAWEICLOUD_SDK_DOMAIN_ID");
    config.request_timeout = target.timeout;
    if let Some(path) = &target.ca_bundle {
        config.ca_bundle_pem = Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?);
    }
    Ok(PcaClient::new(
        config,
        credentials,
        Arc::new(TokenBucket::new(0.0, 1)),
        None,
    )?)
}

/// Adds what to do about an error to its message.
fn hint(e: PcaError, target: &PcaTarget) -> anyhow::Error {
    let advice = if matches!(e, PcaError::DomainUnknown(_)) {
        "set HUAWEICLOUD_SDK_DOMAIN_ID to the account id, or point --iam-endpoint / --sts-endpoint at services that can tell it"
    } else if e.is_credentials() {
        "check HUAWEICLOUD_SDK_AK / HUAWEICLOUD_SDK_SK (and the account's PCA permissions), and that this machine's clock is right"
    } else if e.is_not_found() {
        "check --urn (the CA id) and --region: the CA does not exist there"
    } else if matches!(e, PcaError::Connect { .. } | PcaError::Timeout { .. }) {
        "check --region/--endpoint, DNS, proxies (HTTPS_PROXY) and --ca-bundle"
    } else {
        "see the PCA error code in the README's troubleshooting table"
    };
    let decode = e
        .authorization_message()
        .map(|m| format!("\nencoded authorization message (decode it with IAM): {m}"))
        .unwrap_or_default();
    anyhow::anyhow!("{e}{decode}\nhint: {advice} (CA {})", target.urn)
}

async fn pca(cmd: PcaCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PcaCommand::DescribeCa(target) => describe_ca(&target).await,
        PcaCommand::Sign(args) => sign(&args).await,
    }
}

async fn describe_ca(target: &PcaTarget) -> anyhow::Result<ExitCode> {
    let client = client_for(target)?;
    let domain = client.domain_id().await.map_err(|e| hint(e, target))?.to_owned();
    let ca = client.show_ca(&target.urn).await.map_err(|e| hint(e, target))?;
    let now = jiff::Timestamp::now().as_millisecond();
    let ms = |v: Option<i64>| v.map_or_else(|| "-".into(), crate::controller::rfc3339_ms);
    let text = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("endpoint:       {}", client.endpoint());
    println!("IAM endpoint:   {}", client.iam_endpoint());
    println!("account:        {domain}");
    println!("CA id:          {}", text(ca.ca_id.clone()));
    println!("subject:        {}", ca.distinguished_name.display());
    println!("type:           {}", ca.ca_type);
    println!("status:         {}", ca.status);
    println!(
        "generated by:   {}",
        text(ca.gen_mode.as_ref().map(ToString::to_string))
    );
    println!("freeze flag:    {}", text(ca.freeze_flag.map(|f| f.to_string())));
    println!("key algorithm:  {}", text(ca.key_algorithm.clone()));
    println!("signature:      {}", text(ca.signature_algorithm.clone()));
    println!("path length:    {}", text(ca.path_length.map(|p| p.to_string())));
    println!("valid:          {} .. {}", ms(ca.not_before), ms(ca.not_after));
    if let Some(na) = ca.not_after {
        println!("remaining:      {} days", (na - now) / 86_400_000);
    }
    // Informative only: a quota answer we cannot read does not change the verdict.
    match client.certificate_quota().await {
        Ok(q) => match q.of("CERTIFICATE") {
            Some((used, quota)) => println!("certificates:   {used} of {quota} used"),
            None => println!("certificates:   quota not reported"),
        },
        Err(e) => println!("certificates:   quota unknown ({})", e.reason()),
    }
    match signing_blocker(&ca, &target.urn, now) {
        None => {
            println!("result:         OK, this CA can issue");
            Ok(ExitCode::SUCCESS)
        }
        Some((reason, message)) => {
            println!("result:         cannot issue ({reason}): {message}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let target = &args.target;
    let raw = std::fs::read(&args.csr).with_context(|| format!("cannot read {}", args.csr.display()))?;
    let csr = parse_csr(&raw).with_context(|| format!("{} is not a usable CSR", args.csr.display()))?;
    let client = client_for(target)?;
    let ca = client.show_ca(&target.urn).await.map_err(|e| hint(e, target))?;
    if let Some((reason, message)) = signing_blocker(&ca, &target.urn, jiff::Timestamp::now().as_millisecond()) {
        bail!("cannot issue ({reason}): {message}");
    }
    let now = jiff::Timestamp::now().as_second();
    let (validity, note) =
        validity_for(args.duration, ca.not_after.map(|ms| ms / 1000), now).map_err(anyhow::Error::msg)?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    let request = SignRequest {
        ca_id: &target.urn,
        csr: &csr,
        kind: Kind::new(args.ca, args.path_length),
        validity,
        enterprise_project_id: None,
    };
    // No automatic retry here: an ambiguous failure may already have issued a certificate.
    let issued = client
        .issue_from_csr(&request.issue_body())
        .await
        .map_err(|e| hint(e, target))?;
    eprintln!("issued certificate id {}", issued.certificate_id);
    let Verified { chain, .. } = signing::export_verified(&client, &issued.certificate_id, &request)
        .await
        .map_err(|e| match e {
            SignError::Pca(e) => hint(e, target),
            mismatch => anyhow::Error::new(mismatch),
        })?;
    print!("{}", chain.chain_pem());
    if let Some(path) = &args.ca_out {
        std::fs::write(path, chain.ca_pem()).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote the root CA to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
