//! Process wiring: health server, optional leader election, the three controllers, shutdown.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use futures::StreamExt;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    runtime::{
        Controller, WatchStreamExt,
        controller::Config as ControllerConfig,
        predicates,
        reflector::{self, ObjectRef},
        watcher,
    },
};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::{error, info, warn};

use super::{Config, Context, IssuerKey, IssuerStores, IssuerTriggers, certificate_request, issuer};
use crate::{
    cert_manager::CertificateRequest,
    crd::{CCMClusterIssuer, CCMIssuer, GROUP},
    http::{self, Health},
    metrics::Metrics,
};

/// Options of `ccm-issuer controller` beyond the reconcile tunables.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tunables.
    pub config: Config,
    /// Health/metrics listen address.
    pub health_addr: SocketAddr,
    /// Use a Lease so only one replica reconciles.
    pub leader_elect: bool,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
}

/// Runs until SIGTERM/SIGINT (or `shutdown`), then drains in-flight reconciliations.
pub async fn run(client: Client, options: RunOptions, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let (listener, bound) = http::bind(options.health_addr)
        .await
        .with_context(|| format!("cannot listen on {}", options.health_addr))?;
    info!(address = %bound, "serving /livez, /readyz and /metrics");
    let server = tokio::spawn(http::serve(
        listener,
        health.clone(),
        metrics.clone(),
        wait_for(shutdown.clone()),
    ));

    check_crds(&client).await?;
    if options.leader_elect {
        // A standby replica is healthy; it just does not reconcile.
        health.set_ready(true);
        let acquired = tokio::select! {
            r = acquire_lease(&client, &options) => r?,
            _ = shutdown.wait_for(|s| *s) => false,
        };
        if !acquired {
            let _ = server.await;
            return Ok(());
        }
        health.set_ready(false);
    }
    run_controllers(client, options.config, metrics, health, shutdown.clone()).await;
    let _ = server.await;
    Ok(())
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Fails early, with an install hint, when our CRDs or cert-manager's are missing.
async fn check_crds(client: &Client) -> anyhow::Result<()> {
    let lp = ListParams::default().limit(1);
    Api::<CCMIssuer>::all(client.clone())
        .list(&lp)
        .await
        .context("CCMIssuer CRD not served: apply crds/ (or install the Helm chart) first")?;
    Api::<CCMClusterIssuer>::all(client.clone())
        .list(&lp)
        .await
        .context("CCMClusterIssuer CRD not served: apply crds/ (or install the Helm chart) first")?;
    Api::<CertificateRequest>::all(client.clone())
        .list(&lp)
        .await
        .context("cert-manager's CertificateRequest CRD not served: install cert-manager first")?;
    Ok(())
}

/// Blocks until this replica holds the Lease; exits the process if it is ever lost.
async fn acquire_lease(client: &Client, options: &RunOptions) -> anyhow::Result<bool> {
    let identity = options
        .config
        .instance
        .clone()
        .unwrap_or_else(|| format!("ccm-issuer-{}", uuid::Uuid::new_v4()));
    let manager = LeaseManagerBuilder::new(client.clone(), &options.lease_name)
        .with_namespace(&options.lease_namespace)
        .with_identity(&identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await
        .context("cannot set up leader election")?;
    let (mut leader, task) = manager.watch().await;
    info!(lease = %options.lease_name, namespace = %options.lease_namespace, %identity, "waiting for the leader lease");
    while !*leader.borrow_and_update() {
        if leader.changed().await.is_err() {
            anyhow::bail!("leader election stopped before the lease was acquired");
        }
    }
    info!("acquired the leader lease; starting controllers");
    tokio::spawn(async move {
        // Losing the lease (or the lease task dying) must stop this replica at once, so two
        // replicas never reconcile together; Kubernetes restarts the pod as a standby.
        let _task = task;
        loop {
            if leader.changed().await.is_err() || !*leader.borrow() {
                error!("lost the leader lease; exiting");
                std::process::exit(1);
            }
        }
    });
    Ok(true)
}

/// Watches only requests of our group when the API server supports the field selector
/// (cert-manager ≥ 1.20 declares `spec.issuerRef.group` selectable); otherwise all requests,
/// filtered in the reconciler.
async fn request_watch_config(client: &Client) -> watcher::Config {
    let selector = format!("spec.issuerRef.group={GROUP}");
    let api: Api<CertificateRequest> = Api::all(client.clone());
    match api.list(&ListParams::default().fields(&selector).limit(1)).await {
        Ok(_) => {
            info!(%selector, "watching only our CertificateRequests (field selector)");
            watcher::Config::default().fields(&selector)
        }
        Err(e) => {
            info!(reason = %e, "field selector on spec.issuerRef.group unsupported; watching all CertificateRequests and filtering");
            watcher::Config::default()
        }
    }
}

fn issuer_key<K: Resource>(issuer: &K, cluster: bool) -> IssuerKey {
    let name = issuer.meta().name.clone().unwrap_or_default();
    if cluster {
        IssuerKey::Cluster { name }
    } else {
        IssuerKey::Namespaced {
            namespace: issuer.meta().namespace.clone().unwrap_or_default(),
            name,
        }
    }
}

async fn run_controllers(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: watch::Receiver<bool>,
) {
    let concurrency = config.max_concurrent_reconciles;
    // Issuers are reconciled on spec changes (generation), never on our own status writes —
    // otherwise every check would trigger the next one and hammer the PCA (and a wrong SK would
    // get the access key locked by the gateway). Secret changes, credential failures seen by
    // requests and the periodic re-check arrive as explicit triggers.
    let (ns_store, ns_writer) = reflector::store::<CCMIssuer>();
    let ns_stream = watcher(Api::<CCMIssuer>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(ns_writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let (cl_store, cl_writer) = reflector::store::<CCMClusterIssuer>();
    let cl_stream = watcher(Api::<CCMClusterIssuer>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(cl_writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let issuer_ctrl = Controller::for_stream(ns_stream, ns_store.clone());
    let cluster_ctrl = Controller::for_stream(cl_stream, cl_store.clone());
    let stores = IssuerStores {
        namespaced: ns_store,
        cluster: cl_store,
    };
    let (ns_tx, ns_rx) = mpsc::unbounded_channel::<ObjectRef<CCMIssuer>>();
    let (cl_tx, cl_rx) = mpsc::unbounded_channel::<ObjectRef<CCMClusterIssuer>>();
    let triggers = IssuerTriggers {
        namespaced: ns_tx,
        cluster: cl_tx,
    };
    let ctx = Arc::new(Context::new(client.clone(), config, metrics, stores.clone(), triggers));

    // CertificateRequests: managedFields dropped before caching (they are large and unused).
    let (cr_reader, cr_writer) = reflector::store::<CertificateRequest>();
    let cr_stream = watcher(
        Api::<CertificateRequest>::all(client.clone()),
        request_watch_config(&client).await,
    )
    .default_backoff()
    .modify(|cr| cr.managed_fields_mut().clear())
    .reflect(cr_writer)
    .applied_objects();
    let by_ns = cr_reader.clone();
    let by_cluster = cr_reader.clone();
    let cr_ctrl = Controller::for_stream(cr_stream, cr_reader.clone())
        .watches(
            Api::<CCMIssuer>::all(client.clone()),
            watcher::Config::default(),
            move |i| certificate_request::waiting_on(by_ns.state(), &issuer_key(&i, false)).collect::<Vec<_>>(),
        )
        .watches(
            Api::<CCMClusterIssuer>::all(client.clone()),
            watcher::Config::default(),
            move |i| certificate_request::waiting_on(by_cluster.state(), &issuer_key(&i, true)).collect::<Vec<_>>(),
        )
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(wait_for(shutdown.clone()));
    let issuer_ctrl = issuer_ctrl
        .reconcile_on(UnboundedReceiverStream::new(ns_rx))
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(wait_for(shutdown.clone()));
    let cluster_ctrl = cluster_ctrl
        .reconcile_on(UnboundedReceiverStream::new(cl_rx))
        .with_config(ControllerConfig::default().concurrency(concurrency))
        .graceful_shutdown_on(wait_for(shutdown.clone()));

    let ready = {
        let health = health.clone();
        let (a, b, c) = (stores.namespaced.clone(), stores.cluster.clone(), cr_reader.clone());
        async move {
            let synced = tokio::time::timeout(Duration::from_secs(300), async {
                let _ = a.wait_until_ready().await;
                let _ = b.wait_until_ready().await;
                let _ = c.wait_until_ready().await;
            })
            .await;
            match synced {
                Ok(()) => {
                    info!("caches synced; ready");
                    health.set_ready(true);
                }
                Err(_) => warn!("caches not synced after 5 minutes"),
            }
        }
    };
    let janitor = {
        let ctx = ctx.clone();
        let mut shutdown = shutdown.clone();
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => ctx.forget_deleted_issuers(),
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
        }
    };
    tokio::join!(
        ready,
        janitor,
        cr_ctrl
            .run(
                certificate_request::reconcile,
                certificate_request::error_policy,
                ctx.clone()
            )
            .for_each(|r| log_result("certificaterequest", r)),
        issuer_ctrl
            .run(issuer::reconcile_namespaced, issuer::error_policy, ctx.clone())
            .for_each(|r| log_result("ccmissuer", r)),
        cluster_ctrl
            .run(issuer::reconcile_cluster, issuer::error_policy, ctx.clone())
            .for_each(|r| log_result("ccmclusterissuer", r)),
    );
    health.set_ready(false);
    info!("controllers stopped");
}

async fn log_result<K: Resource>(
    controller: &'static str,
    result: Result<
        (ObjectRef<K>, kube::runtime::controller::Action),
        kube::runtime::controller::Error<super::Error, watcher::Error>,
    >,
) {
    match result {
        Ok(_) => {}
        Err(kube::runtime::controller::Error::ReconcilerFailed(err, obj)) => {
            warn!(controller, object = %obj.name, error = %err, "reconcile failed")
        }
        Err(other) => warn!(controller, error = %other, "controller error"),
    }
}
