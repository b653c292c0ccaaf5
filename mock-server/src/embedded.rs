//! The mock inside another process's tokio runtime, for tests and benchmarks: bound to
//! 127.0.0.1:0 unless told otherwise, optionally with TLS, stopped when dropped.

use std::sync::Arc;

use tokio::{sync::oneshot, task::JoinHandle};

use crate::{
    Mock, MockConfig, Surface,
    auth::Credential,
    ca::{CnRule, KeyAlgorithm},
    faults::FaultPlan,
    seed::SeedCa,
    state::Store,
    stats::StatsSnapshot,
};

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOptions {
    /// Accepted credentials.
    pub credentials: Vec<Credential>,
    /// Sub-CA ids to seed, each with its own root: `(id, key algorithm, path length)`
    /// (hosted keys, SHA-384 signatures).
    pub cas: Vec<(String, KeyAlgorithm, u32)>,
    /// More CA pairs to seed, with a chosen signature algorithm and kind (gen_mode CSR,
    /// frozen).
    pub seeds: Vec<SeedCa>,
    /// Serve HTTPS with a fresh self-signed CA.
    pub tls: bool,
    /// Answer 429 above this many requests per second.
    pub max_tps: Option<u64>,
    /// Certificate quota (default 100000).
    pub cert_quota: Option<u64>,
    /// Serve IAM (`/v3/auth/domains`) and STS (`/v5/caller-identity`) on a second address
    /// ([`Embedded::iam_url`]); the PCA address then answers them with the gateway's 404.
    pub iam_listener: bool,
    /// IAM lists no domain (clients must fall back to STS).
    pub iam_lists_no_domain: bool,
    /// Whether CSRs need a common name (default strict).
    pub csr_cn_rule: CnRule,
    /// Address to listen on (default `127.0.0.1:0`). An unspecified address (`0.0.0.0:0`)
    /// serves every address of the network namespace; `url` then names 127.0.0.1.
    pub listen: Option<std::net::SocketAddr>,
    /// Extra SANs (IP literals or DNS names) of the TLS server certificate, besides
    /// 127.0.0.1, ::1 and localhost.
    pub tls_sans: Vec<String>,
}

/// One bound address and the server task on it.
struct Listener {
    addr: std::net::SocketAddr,
    surface: Surface,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A running embedded mock.
pub struct Embedded {
    /// Base URL, e.g. `https://127.0.0.1:41234`.
    pub url: String,
    /// Base URL of the IAM/STS listener when `iam_listener` was requested.
    pub iam_url: Option<String>,
    /// PEM of the TLS CA when `tls` was requested.
    pub tls_ca_pem: Option<String>,
    /// The mock's state.
    pub mock: Arc<Mock>,
    tls: Option<Arc<rustls::ServerConfig>>,
    listeners: Vec<Listener>,
}

impl Embedded {
    /// Seeds the CAs (blocking key generation off the async workers) and starts serving.
    pub async fn start(options: EmbeddedOptions) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = MockConfig {
            credentials: options.credentials,
            max_tps: options.max_tps,
            iam_lists_no_domain: options.iam_lists_no_domain,
            csr_cn_rule: options.csr_cn_rule,
            ..MockConfig::default()
        };
        if let Some(q) = options.cert_quota {
            config.cert_quota = q;
        }
        let mock = Mock::new(config, Store::in_memory());
        let seeds: Vec<SeedCa> = options
            .cas
            .iter()
            .map(|(id, alg, path_length)| SeedCa::new(id.clone(), *alg, *path_length))
            .chain(options.seeds.iter().cloned())
            .collect();
        {
            let mock = mock.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                for seed in &seeds {
                    mock.seed(seed)?;
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
        let surfaces: &[Surface] = if options.iam_listener {
            &[Surface::Pca, Surface::Iam]
        } else {
            &[Surface::All]
        };
        let mut embedded = Self {
            url: String::new(),
            iam_url: None,
            tls_ca_pem,
            mock,
            tls,
            listeners: Vec::new(),
        };
        let listen = options
            .listen
            .unwrap_or_else(|| std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)));
        for &surface in surfaces {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let addr = listener.local_addr()?;
            let url_addr = match addr.ip().is_unspecified() {
                true => std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port())),
                false => addr,
            };
            let url = crate::base_url(url_addr, embedded.tls.is_some());
            match surface {
                Surface::Iam => embedded.iam_url = Some(url),
                _ => embedded.url = url,
            }
            let mut l = Listener {
                addr,
                surface,
                stop: None,
                task: None,
            };
            embedded.serve_on(&mut l, listener);
            embedded.listeners.push(l);
        }
        Ok(embedded)
    }

    fn serve_on(&self, l: &mut Listener, listener: tokio::net::TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let app = crate::app_for(self.mock.clone(), l.surface);
        let tls = self.tls.clone();
        l.task = Some(tokio::spawn(async move {
            let _ = crate::serve(listener, app, tls, async {
                let _ = stopped.await;
            })
            .await;
        }));
        l.stop = Some(stop);
    }

    /// Simulates an outage: stops accepting on every address (in-flight requests finish)
    /// and frees the ports, so connections are refused.
    pub async fn pause(&mut self) {
        for l in &mut self.listeners {
            if let Some(s) = l.stop.take() {
                let _ = s.send(());
            }
            if let Some(t) = l.task.take() {
                let _ = t.await;
            }
        }
    }

    /// Ends an outage: serves the same state on the same addresses again.
    pub async fn resume(&mut self) -> std::io::Result<()> {
        let mut listeners = std::mem::take(&mut self.listeners);
        let mut result = Ok(());
        for l in &mut listeners {
            if l.task.is_none() {
                match tokio::net::TcpListener::bind(l.addr).await {
                    Ok(listener) => self.serve_on(l, listener),
                    Err(e) => result = Err(e),
                }
            }
        }
        self.listeners = listeners;
        result
    }

    /// Counters, as `/_mock/stats` reports them.
    pub fn stats(&self) -> StatsSnapshot {
        self.mock.stats.snapshot()
    }

    /// Starts an outage of `duration`, as `POST /_mock/outage` does: the listener stays up
    /// but every Huawei-API request closes its connection without an answer. (For
    /// refused connections instead, use [`Embedded::pause`] / [`Embedded::resume`].)
    pub fn start_outage(&self, duration: std::time::Duration) {
        self.mock.outage.start(duration);
    }

    /// Ends an outage started with [`Embedded::start_outage`].
    pub fn end_outage(&self) {
        self.mock.outage.end();
    }

    /// Replaces the fault plan, as `POST /_mock/faults` does.
    pub fn set_faults(&self, plan: FaultPlan) -> Result<(), String> {
        self.mock.faults.set(plan)
    }

    /// Stops serving and waits for the server tasks.
    pub async fn stop(mut self) {
        self.pause().await;
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        for l in &mut self.listeners {
            if let Some(s) = l.stop.take() {
                let _ = s.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests;
