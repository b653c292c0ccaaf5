//! `ccm-mock-pca`: an offline stand-in for Huawei Cloud CCM Private CA (PCA).
//!
//! * [`auth`] — independent verification of SDK-HMAC-SHA256 request signatures.
//! * [`ca`] — keys, CSR validation, X.509 issuance.
//! * [`state`] — the CA/certificate store and its persistence.
//! * [`routes`] — the Huawei API surface and the `/_mock/` controls.
//! * [`faults`], [`stats`] — fault injection, throttling and counters.
//! * [`server`], [`tls`] — the accept loop and self-signed TLS.

pub mod auth;
pub mod ca;
pub mod config;
pub mod embedded;
pub mod errors;
pub mod faults;
pub mod forge;
pub mod routes;
pub mod seed;
pub mod server;
pub mod state;
pub mod stats;
#[cfg(test)]
pub(crate) mod test_support;
pub mod timeutil;
pub mod tls;

use std::sync::Arc;

pub use config::Cli;
pub use routes::{Surface, app, app_for};
pub use server::{PeerAddr, base_url, serve};

use state::Store;

/// Settings of a mock instance (everything except networking).
#[derive(Debug, Clone)]
pub struct MockConfig {
    pub credentials: Vec<auth::Credential>,
    pub max_tps: Option<u64>,
    pub ca_quota: u64,
    pub cert_quota: u64,
    /// IAM `GET /v3/auth/domains` lists no domain (clients must fall back to STS).
    pub iam_lists_no_domain: bool,
    /// Whether a CSR must carry a common name.
    pub csr_cn_rule: ca::CnRule,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            credentials: Vec::new(),
            max_tps: None,
            ca_quota: 100,
            cert_quota: 100_000,
            iam_lists_no_domain: false,
            csr_cn_rule: ca::CnRule::Strict,
        }
    }
}

/// The shared state behind every request.
#[derive(Debug)]
pub struct Mock {
    pub verifier: auth::Verifier,
    pub store: Arc<Store>,
    pub faults: faults::Faults,
    /// A simulated outage (`/_mock/outage`).
    pub outage: faults::Outage,
    pub stats: stats::Stats,
    pub throttle: Option<faults::Throttle>,
    pub config: MockConfig,
}

impl Mock {
    pub fn new(config: MockConfig, store: Store) -> Arc<Self> {
        Arc::new(Self {
            verifier: auth::Verifier::new(config.credentials.clone()),
            store: Arc::new(store),
            faults: faults::Faults::default(),
            outage: faults::Outage::default(),
            stats: stats::Stats::default(),
            throttle: config.max_tps.map(faults::Throttle::new),
            config,
        })
    }

    /// The account id new CAs are attributed to.
    pub(crate) fn default_domain(&self) -> String {
        self.config
            .credentials
            .first()
            .map(auth::Credential::effective_domain_id)
            .unwrap_or_default()
    }
}

/// Run the mock as the binary does: build state, bind, print the base URL, serve until
/// SIGTERM/SIGINT, flush state.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    use std::io::Write;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = match &cli.state {
        Some(p) => Store::open(p)?,
        None => Store::in_memory(),
    };
    let config = MockConfig {
        credentials: cli.all_credentials(),
        max_tps: cli.max_tps,
        ca_quota: cli.ca_quota,
        cert_quota: cli.cert_quota,
        iam_lists_no_domain: cli.iam_no_domain,
        csr_cn_rule: cli.csr_cn_rule,
    };
    if config.credentials.is_empty() {
        tracing::warn!("no --credential given: every Huawei API call will be rejected with 401");
    }
    let mock = Mock::new(config, store);
    {
        let (mock, seeds) = (mock.clone(), cli.seeds());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            for seed in &seeds {
                mock.seed(seed)?;
            }
            Ok(())
        })
        .await??;
    }
    if cli.state.is_some() {
        mock.store.flush()?;
    }

    let tls = if cli.tls {
        let material = tls::generate(&cli.tls_sans)?;
        if let Some(path) = &cli.tls_ca_out {
            std::fs::write(path, &material.ca_pem)?;
        }
        Some(material.server_config)
    } else {
        if cli.tls_ca_out.is_some() || !cli.tls_sans.is_empty() {
            anyhow::bail!("--tls-ca-out and --tls-san require --tls");
        }
        None
    };

    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    let url = base_url(listener.local_addr()?, tls.is_some());
    let iam_listener = match cli.iam_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{url}")?;
        if let Some(l) = &iam_listener {
            writeln!(out, "{}", base_url(l.local_addr()?, tls.is_some()))?;
        }
        out.flush()?;
    }
    tracing::info!(%url, separate_iam = iam_listener.is_some(), "ccm-mock-pca listening");

    // One signal stops every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let writer = tokio::spawn(mock.store.clone().run_writer());
    let iam = iam_listener.map(|l| {
        let app = app_for(mock.clone(), Surface::Iam);
        tokio::spawn(serve(l, app, tls.clone(), stopped(stop_rx.clone())))
    });
    let surface = if iam.is_some() { Surface::Pca } else { Surface::All };
    serve(listener, app_for(mock.clone(), surface), tls, stopped(stop_rx)).await?;
    if let Some(iam) = iam {
        iam.await??;
    }
    writer.abort();
    mock.store.flush()?;
    tracing::info!("bye");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
