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
pub mod server;
pub mod state;
pub mod stats;
#[cfg(test)]
pub(crate) mod test_support;
pub mod timeutil;
pub mod tls;

use std::sync::Arc;

pub use config::Cli;
pub use routes::app;
pub use server::{PeerAddr, base_url, serve};

use ca::{CaCertSpec, CaKey, Dn, HashAlg, IssuerMaterial, KeyAlgorithm};
use state::{CaRecord, CaStatus, CaType, CrlConfig, GenMode, Store};

/// Settings of a mock instance (everything except networking).
#[derive(Debug, Clone)]
pub struct MockConfig {
    pub credentials: Vec<auth::Credential>,
    pub max_tps: Option<u64>,
    pub ca_quota: u64,
    pub cert_quota: u64,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            credentials: Vec::new(),
            max_tps: None,
            ca_quota: 100,
            cert_quota: 100_000,
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
    fn default_domain(&self) -> String {
        self.config
            .credentials
            .first()
            .map(auth::Credential::effective_domain_id)
            .unwrap_or_default()
    }

    /// Create an ACTIVED root and an ACTIVED subordinate CA whose id is `sub_id` (no-op
    /// if `sub_id` already exists). Blocking (key generation): call at start-up.
    pub fn seed_ca(&self, sub_id: &str, alg: KeyAlgorithm, path_length: u32) -> anyhow::Result<()> {
        if !routes::params::is_uuid(sub_id) {
            anyhow::bail!(
                "--ca {sub_id:?} is not a lowercase UUID ([0-9a-f]{{8}}(-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}})"
            );
        }
        if path_length < 1 {
            anyhow::bail!("--ca-path-length must be at least 1");
        }
        if let Some(existing) = self.store.get_ca(sub_id) {
            tracing::info!(
                ca_id = sub_id,
                status = existing.status.as_str(),
                "CA already present in state; reusing it"
            );
            return Ok(());
        }
        let domain = self.default_domain();
        let short = &sub_id[..8];
        let now = timeutil::ms_to_datetime(timeutil::now_ms()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        // Backdate CA validity a little so clients with a slightly slow clock accept them.
        let start = now - time::Duration::minutes(5);

        let root_key = Arc::new(CaKey::generate(alg)?);
        let root_dn = mock_dn(&format!("ccm-mock-pca Root CA {short}"));
        let root_serial = ca::random_serial();
        let root_end = timeutil::add_months(start, 20 * 12).ok_or_else(|| anyhow::anyhow!("date overflow"))?;
        let root_der = ca::make_ca_cert(
            &CaCertSpec {
                dn: &root_dn,
                key: &root_key,
                path_length: None,
                key_usages: vec![
                    rcgen::KeyUsagePurpose::DigitalSignature,
                    rcgen::KeyUsagePurpose::KeyCertSign,
                    rcgen::KeyUsagePurpose::CrlSign,
                ],
                not_before: start,
                not_after: root_end,
                serial: &root_serial,
                hash: HashAlg::Sha384,
            },
            None,
        )?;
        let root_id = uuid::Uuid::new_v4().to_string();
        let root = seeded_record(
            &root_id,
            CaType::Root,
            7,
            None,
            &root_dn,
            &root_key,
            &root_serial,
            start,
            root_end,
            root_der,
            &domain,
        );

        let sub_key = Arc::new(CaKey::generate(alg)?);
        let sub_dn = mock_dn(&format!("ccm-mock-pca Sub CA {short}"));
        let sub_serial = ca::random_serial();
        let sub_end = timeutil::add_months(start, 10 * 12).ok_or_else(|| anyhow::anyhow!("date overflow"))?;
        let root_kid = root_key.key_id();
        let sub_der = ca::make_ca_cert(
            &CaCertSpec {
                dn: &sub_dn,
                key: &sub_key,
                path_length: Some(u8::try_from(path_length)?),
                key_usages: vec![
                    rcgen::KeyUsagePurpose::DigitalSignature,
                    rcgen::KeyUsagePurpose::KeyCertSign,
                    rcgen::KeyUsagePurpose::CrlSign,
                ],
                not_before: start,
                not_after: sub_end,
                serial: &sub_serial,
                hash: HashAlg::Sha384,
            },
            Some(&IssuerMaterial {
                dn: &root_dn,
                key_id: &root_kid,
                key: &root_key,
            }),
        )?;
        let sub = seeded_record(
            sub_id,
            CaType::Subordinate,
            path_length,
            Some((&root_id, root_dn.cn())),
            &sub_dn,
            &sub_key,
            &sub_serial,
            start,
            sub_end,
            sub_der,
            &domain,
        );
        self.store.insert_ca(root);
        self.store.insert_ca(sub);
        tracing::info!(
            ca_id = sub_id,
            root_id,
            key_algorithm = alg.as_str(),
            path_length,
            "created CA pair"
        );
        Ok(())
    }
}

fn mock_dn(cn: &str) -> Dn {
    Dn {
        common_name: Some(cn.to_owned()),
        country: Some("CN".to_owned()),
        state: Some("Guangdong".to_owned()),
        locality: Some("Shenzhen".to_owned()),
        organization: Some("ccm-mock-pca".to_owned()),
        organizational_unit: Some("Private CA".to_owned()),
    }
}

#[allow(clippy::too_many_arguments)]
fn seeded_record(
    id: &str,
    ca_type: CaType,
    path_length: u32,
    issuer: Option<(&str, &str)>,
    dn: &Dn,
    key: &Arc<CaKey>,
    serial: &[u8],
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
    der: Vec<u8>,
    domain: &str,
) -> CaRecord {
    CaRecord {
        ca_id: id.to_owned(),
        ca_type,
        status: CaStatus::Actived,
        path_length,
        issuer_id: issuer.map(|(i, _)| i.to_owned()),
        issuer_name: issuer.map(|(_, n)| n.to_owned()),
        key_algorithm: key.alg,
        signature_algorithm: HashAlg::Sha384,
        gen_mode: GenMode::Generate,
        serial_number: ca::serial_hex(serial),
        create_time: timeutil::now_ms(),
        delete_time: 0,
        not_before: timeutil::datetime_to_ms(not_before),
        not_after: timeutil::datetime_to_ms(not_after),
        dn: dn.clone(),
        crl: CrlConfig::default(),
        enterprise_project_id: "0".to_owned(),
        hidden: false,
        domain_id: domain.to_owned(),
        cert_der: Some(der.into()),
        key_pkcs8: Some(key.pkcs8_der().into()),
        key_id: key.key_id(),
        key: Some(key.clone()),
        revoke_reason: None,
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
    };
    if config.credentials.is_empty() {
        tracing::warn!("no --credential given: every Huawei API call will be rejected with 401");
    }
    let mock = Mock::new(config, store);
    {
        let (mock, cli2) = (mock.clone(), cli.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            for id in &cli2.cas {
                mock.seed_ca(id, cli2.ca_key_algorithm, cli2.ca_path_length)?;
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
    let addr = listener.local_addr()?;
    let url = base_url(addr, tls.is_some());
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{url}")?;
        out.flush()?;
    }
    tracing::info!(%url, "ccm-mock-pca listening");

    let writer = tokio::spawn(mock.store.clone().run_writer());
    serve(listener, app(mock.clone()), tls, shutdown_signal()).await?;
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
