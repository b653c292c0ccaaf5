//! The in-process mock PCA and controller contexts over the fake API server.

use std::sync::Arc;

use kube::runtime::reflector;
use serde_json::Value;
use tokio::sync::mpsc;

use super::fake_api::FakeApi;
use crate::{
    controller::{Config, Context, IssuerStores, IssuerTriggers, credentials::PcaClients, leader::Fence},
    crd::CCMClusterIssuer,
    metrics::Metrics,
};

/// Test credentials of the mock.
pub const AK: &str = "UNITTESTAK0000000001";
/// Test secret key.
pub const SK: &str = "unit-test-secret-key-0000000000000000001";
/// Test account.
pub const DOMAIN: &str = "0123456789abcdef0123456789abcdef";
/// The seeded sub-CA.
pub const CA_ID: &str = "4bd1b320-e162-419f-8add-dfcc046197c7";

/// The embedded mock PCA (plain HTTP on 127.0.0.1:0) with one EC256 CA pair, sub-CA `CA_ID`
/// with path length 1.
pub struct MockPca(ccm_mock_pca::embedded::Embedded);

impl std::ops::Deref for MockPca {
    type Target = ccm_mock_pca::embedded::Embedded;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl MockPca {
    /// Starts it.
    pub async fn start() -> Self {
        crate::install_crypto_provider();
        let options = ccm_mock_pca::embedded::EmbeddedOptions {
            credentials: vec![format!("{AK}:{SK}:{DOMAIN}").parse().expect("credential")],
            cas: vec![(CA_ID.to_owned(), ccm_mock_pca::ca::KeyAlgorithm::Ec256, 1)],
            ..Default::default()
        };
        Self(
            ccm_mock_pca::embedded::Embedded::start(options)
                .await
                .expect("mock PCA"),
        )
    }

    /// Starts it with one seeded CA pair instead (sub-CA id `CA_ID`): a chosen key and
    /// signature algorithm or kind.
    pub async fn start_with_seed(seed: ccm_mock_pca::seed::SeedCa) -> Self {
        crate::install_crypto_provider();
        let options = ccm_mock_pca::embedded::EmbeddedOptions {
            credentials: vec![format!("{AK}:{SK}:{DOMAIN}").parse().expect("credential")],
            seeds: vec![seed],
            ..Default::default()
        };
        Self(
            ccm_mock_pca::embedded::Embedded::start(options)
                .await
                .expect("mock PCA"),
        )
    }

    /// The `/_mock/stats` document.
    pub async fn stats(&self) -> Value {
        serde_json::to_value(self.0.stats()).expect("stats")
    }

    /// Sets fault injection (a `/_mock/faults` body).
    pub async fn faults(&self, faults: Value) {
        let plan = serde_json::from_value(faults).expect("fault plan");
        self.0.set_faults(plan).expect("valid fault plan");
    }
}

/// A context over the fake API server. Issuer stores start empty (the reconciler then reads
/// issuers from the API, as it does when its cache lags).
pub fn context(api: &FakeApi, config: Config) -> Arc<Context> {
    context_with_triggers(api, config).0
}

/// Receivers of the issuer re-check triggers.
pub struct Triggered {
    /// CCMIssuers.
    pub namespaced: mpsc::UnboundedReceiver<reflector::ObjectRef<crate::crd::CCMIssuer>>,
    /// CCMClusterIssuers (kept open so sends succeed).
    #[allow(dead_code)]
    pub cluster: mpsc::UnboundedReceiver<reflector::ObjectRef<CCMClusterIssuer>>,
}

/// [`context`], also returning the re-check trigger receivers.
pub fn context_with_triggers(api: &FakeApi, config: Config) -> (Arc<Context>, Triggered) {
    context_with(api, config, Fence::open())
}

/// A context whose replica acts only while `fence` holds. The mock is plain HTTP on
/// 127.0.0.1 and the fixtures' namespaced issuers name it, so the administrator's policy
/// allows exactly that (tests of the policy itself set their own).
pub fn context_with(api: &FakeApi, mut config: Config, fence: Fence) -> (Arc<Context>, Triggered) {
    if config.endpoint_policy == Default::default() {
        config.endpoint_policy = crate::controller::endpoint_policy::EndpointPolicy {
            namespaced_allowed: vec!["127.0.0.1".parse().expect("host")],
            allow_insecure: true,
        };
    }
    let (ns_store, _ns_writer) = reflector::store();
    let (cl_store, _cl_writer) = reflector::store::<CCMClusterIssuer>();
    let (ns_tx, ns_rx) = mpsc::unbounded_channel();
    let (cl_tx, cl_rx) = mpsc::unbounded_channel();
    let metrics = Arc::new(Metrics::new());
    let pca = Arc::new(PcaClients::new(&config, metrics.clone()));
    let ctx = Arc::new(Context::new(
        api.client(),
        config,
        metrics,
        pca,
        IssuerStores {
            namespaced: ns_store,
            cluster: cl_store,
        },
        IssuerTriggers {
            namespaced: ns_tx,
            cluster: cl_tx,
        },
        fence,
    ));
    (
        ctx,
        Triggered {
            namespaced: ns_rx,
            cluster: cl_rx,
        },
    )
}
