//! The mock inside another process's tokio runtime, for tests and benchmarks: bound to
//! 127.0.0.1:0 unless told otherwise, optionally with TLS, stopped when dropped.

use std::sync::Arc;

use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    Mock, MockConfig, auth::Credential, ca::KeyAlgorithm, faults::FaultPlan, state::Store, stats::StatsSnapshot,
};

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// Accepted credentials.
    pub credentials: Vec<Credential>,
    /// Sub-CA ids to seed, each with its own root: `(id, key algorithm, path length)`.
    pub cas: Vec<(String, KeyAlgorithm, u32)>,
    /// Serve HTTPS with a fresh self-signed CA.
    pub tls: bool,
    /// Answer 429 above this many requests per second.
    pub max_tps: Option<u64>,
    /// Certificate quota (default 100000).
    pub cert_quota: Option<u64>,
    /// Address to listen on (default `127.0.0.1:0`). An unspecified address (`0.0.0.0:0`)
    /// serves every address of the network namespace; `url` then names 127.0.0.1.
    pub listen: Option<std::net::SocketAddr>,
    /// Extra SANs (IP literals or DNS names) of the TLS server certificate, besides
    /// 127.0.0.1, ::1 and localhost.
    pub tls_sans: Vec<String>,
}

/// A running embedded mock.
pub struct Embedded {
    /// Base URL, e.g. `https://127.0.0.1:41234`.
    pub url: String,
    /// PEM of the TLS CA when `tls` was requested.
    pub tls_ca_pem: Option<String>,
    /// The mock's state.
    pub mock: Arc<Mock>,
    addr: std::net::SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Embedded {
    /// Seeds the CAs (blocking key generation off the async workers) and starts serving.
    pub async fn start(options: EmbeddedOptions) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = MockConfig {
            credentials: options.credentials,
            max_tps: options.max_tps,
            ..MockConfig::default()
        };
        if let Some(q) = options.cert_quota {
            config.cert_quota = q;
        }
        let mock = Mock::new(config, Store::in_memory());
        {
            let (mock, cas) = (mock.clone(), options.cas.clone());
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                for (id, alg, path_length) in &cas {
                    mock.seed_ca(id, *alg, *path_length)?;
                }
                Ok(())
            })
            .await??;
        }
        let (tls, tls_ca_pem) = if options.tls {
            let material = crate::tls::generate(&options.tls_sans)?;
            (Some(material.server_config), Some(material.ca_pem))
        } else {
            (None, None)
        };
        let listen = options
            .listen
            .unwrap_or_else(|| std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let url_addr = match addr.ip().is_unspecified() {
            true => std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port())),
            false => addr,
        };
        let mut embedded = Self {
            url: crate::base_url(url_addr, tls.is_some()),
            tls_ca_pem,
            mock,
            addr,
            tls,
            stop: None,
            task: None,
        };
        embedded.serve_on(listener);
        Ok(embedded)
    }

    fn serve_on(&mut self, listener: tokio::net::TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = crate::app(self.mock.clone());
        let tls = self.tls.clone();
        self.task = Some(tokio::spawn(async move {
            let _ = crate::serve(listener, app, tls, async {
                let _ = stopped.await;
            })
            .await;
        }));
        self.stop = Some(stop);
    }

    /// Simulates an outage: stops accepting (in-flight requests finish) and frees the port.
    pub async fn pause(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Ends an outage: serves the same state on the same address again.
    pub async fn resume(&mut self) -> std::io::Result<()> {
        if self.task.is_none() {
            let listener = tokio::net::TcpListener::bind(self.addr).await?;
            self.serve_on(listener);
        }
        Ok(())
    }

    /// Counters, as `/_mock/stats` reports them.
    pub fn stats(&self) -> StatsSnapshot {
        self.mock.stats.snapshot()
    }

    /// Replaces the fault plan, as `POST /_mock/faults` does.
    pub fn set_faults(&self, plan: FaultPlan) -> Result<(), String> {
        self.mock.faults.set(plan)
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        self.pause().await;
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
