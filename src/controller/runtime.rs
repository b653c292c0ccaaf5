//! Process wiring: health server, optional leader election, the three controllers, shutdown.

use std::{
    collections::HashSet,
    hash::{DefaultHasher, Hash, Hasher},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use kube::{
    Api, Client, Resource,
    api::ListParams,
    runtime::{
        Controller, WatchStreamExt,
        controller::Config as ControllerConfig,
        predicates,
        reflector::{self, ObjectRef},
        watcher,
    },
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::{debug, error, info, warn};

use super::{
    AnyIssuer, Config, Context, IssuerStores, IssuerTriggers, certificate_request,
    credentials::PcaClients,
    issuer,
    leader::{Elector, Fence, LeaseConfig},
    standby,
};
use crate::{
    cert_manager::{APPROVED, CertificateRequest, DENIED},
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
    /// Lease duration (renewed every third of it).
    pub lease_duration: Duration,
}

/// Runs until SIGTERM/SIGINT (or `shutdown`), then drains in-flight reconciliations and, with
/// leader election, releases the lease so a standby takes over at once.
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
    let pca = Arc::new(PcaClients::new(&options.config, metrics.clone()));
    if !options.leader_elect {
        run_controllers(
            client,
            options.config,
            metrics,
            pca,
            health,
            Fence::open(),
            shutdown.clone(),
        )
        .await;
        let _ = server.await;
        return Ok(());
    }
    // A standby replica is healthy; it just does not reconcile.
    health.set_ready(true);
    let fence = Fence::leased();
    let mut elector = Elector::new(client.clone(), lease_config(&options), fence.clone());
    info!(lease = %options.lease_name, namespace = %options.lease_namespace, "waiting for the leader lease");
    // Preparing only reads. Once the lease is ours, a round under way still finishes: the
    // leader's first calls wait for its discovery rather than start another.
    let (led_tx, led_rx) = watch::channel(false);
    tokio::spawn(standby::prepare_while_waiting(client.clone(), pca.clone(), led_rx));
    tokio::select! {
        _ = elector.acquire() => {}
        _ = shutdown.wait_for(|s| *s) => {
            let _ = server.await;
            return Ok(());
        }
    }
    let _ = led_tx.send(true);
    health.set_ready(false);
    let (stopped_tx, mut stopped_rx) = watch::channel(false);
    let keeper = tokio::spawn(async move {
        let lost = tokio::select! {
            _ = elector.keep() => true,
            _ = stopped_rx.wait_for(|s| *s) => false,
        };
        if lost {
            // The fence already stopped every issue call; exiting stops the rest, and
            // Kubernetes restarts the pod as a standby.
            error!("cannot prove this replica still holds the leader lease; exiting");
            std::process::exit(1);
        }
        elector.release().await;
    });
    run_controllers(client, options.config, metrics, pca, health, fence, shutdown.clone()).await;
    let _ = stopped_tx.send(true);
    let _ = keeper.await;
    let _ = server.await;
    Ok(())
}

fn lease_config(options: &RunOptions) -> LeaseConfig {
    LeaseConfig {
        namespace: options.lease_namespace.clone(),
        name: options.lease_name.clone(),
        identity: options
            .config
            .instance
            .clone()
            .unwrap_or_else(|| format!("ccm-issuer-{}", uuid::Uuid::new_v4())),
        duration: options.lease_duration,
        renew_every: options.lease_duration / 3,
    }
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

/// Requests per page of the request watch's lists. A restart lists every request in the
/// cluster, other issuers' too, and each page is held three times over while it is decoded
/// (body, text, objects): pages of 1,000 put the peak RSS 10 MiB over the chart's 48 MiB
/// request, and the API server's time is per request listed, not per page
/// (docs/benchmarks.md, "Scale").
const REQUEST_PAGE: u32 = 250;

/// Watches only requests of our group when the API server supports the field selector
/// (cert-manager ≥ 1.20 declares `spec.issuerRef.group` selectable); otherwise all requests,
/// filtered in the reconciler.
async fn request_watch_config(client: &Client) -> watcher::Config {
    let selector = format!("spec.issuerRef.group={GROUP}");
    let api: Api<CertificateRequest> = Api::all(client.clone());
    match api.list(&ListParams::default().fields(&selector).limit(1)).await {
        Ok(_) => {
            info!(%selector, "watching only our CertificateRequests (field selector)");
            watcher::Config::default().fields(&selector).page_size(REQUEST_PAGE)
        }
        Err(e) => {
            info!(reason = %e, "field selector on spec.issuerRef.group unsupported; watching all CertificateRequests and filtering");
            watcher::Config::default().page_size(REQUEST_PAGE)
        }
    }
}

/// What makes a request worth reconciling: its identity, spec and the approver's decision.
/// Our own writes (status, annotations) change none of these, so they never trigger a
/// reconciliation: the back-off the reconciler chose holds.
pub fn request_inputs(cr: &CertificateRequest) -> u64 {
    let mut h = DefaultHasher::new();
    cr.metadata.uid.hash(&mut h);
    cr.metadata.generation.hash(&mut h);
    for type_ in [APPROVED, DENIED] {
        cr.condition(type_).map(|c| &c.status).hash(&mut h);
    }
    h.finish()
}

/// What of an issuer matters to the requests waiting on it: its spec and whether it is Ready.
/// Periodic re-checks that change only `lastCheckTime` do not disturb requests in back-off.
pub fn issuer_readiness(issuer: &AnyIssuer) -> Option<u64> {
    let mut h = DefaultHasher::new();
    issuer.meta().uid.hash(&mut h);
    issuer.meta().generation.hash(&mut h);
    issuer.is_ready().hash(&mut h);
    Some(h.finish())
}

async fn run_controllers(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    pca: Arc<PcaClients>,
    health: Arc<Health>,
    fence: Fence,
    shutdown: watch::Receiver<bool>,
) {
    let concurrency = config.max_concurrent_reconciles;
    // Issuers are reconciled on spec changes (generation), never on our own status writes —
    // otherwise every check would trigger the next one and hammer the PCA (and a wrong SK would
    // get the access key locked by the gateway). Secret changes, credential failures seen by
    // requests and the periodic re-check arrive as explicit triggers.
    let (ns_store, ns_writer) = reflector::store::<CCMIssuer>();
    let h = health.clone();
    let ns_stream = watcher(Api::<CCMIssuer>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(ns_writer)
        .applied_objects()
        .inspect(move |r| h.watch_item("ccmissuers", r.is_ok()))
        .predicate_filter(predicates::generation, Default::default());
    let (cl_store, cl_writer) = reflector::store::<CCMClusterIssuer>();
    let h = health.clone();
    let cl_stream = watcher(Api::<CCMClusterIssuer>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(cl_writer)
        .applied_objects()
        .inspect(move |r| h.watch_item("ccmclusterissuers", r.is_ok()))
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
    let ctx = Arc::new(Context::new(
        client.clone(),
        config,
        metrics,
        pca,
        stores.clone(),
        triggers,
        fence,
    ));

    // CertificateRequests: other issuers' kept out (when the field selector is unsupported),
    // ours trimmed before caching (managedFields always; finished ones down to what deciding
    // "nothing to do" needs).
    let (cr_reader, cr_writer) = reflector::store::<CertificateRequest>();
    let _ = ctx.request_store.set(cr_reader.clone());
    // Requests woken when a slot of their issuer is released.
    let (slot_tx, slot_rx) = mpsc::unbounded_channel::<ObjectRef<CertificateRequest>>();
    ctx.slots.wake_with(slot_tx);
    let cr_stream = watcher(
        Api::<CertificateRequest>::all(client.clone()),
        request_watch_config(&client).await,
    )
    .default_backoff()
    .try_filter_map(|event| futures::future::ready(Ok(certificate_request::cache::only_ours(event))))
    .inspect_ok({
        let ctx = ctx.clone();
        move |event| ctx.delivered.observe(event)
    })
    .modify(certificate_request::cache::slim)
    .reflect(cr_writer)
    .inspect({
        let h = health.clone();
        move |r| h.watch_item("certificaterequests", r.is_ok())
    })
    .try_filter_map({
        let mut seen = certificate_request::cache::InputsSeen::default();
        move |event| futures::future::ready(Ok(seen.changed(event)))
    });
    let by_ns = cr_reader.clone();
    let by_cluster = cr_reader.clone();
    let ns_changes = watcher(Api::<CCMIssuer>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(
            |i: &CCMIssuer| issuer_readiness(&AnyIssuer::Namespaced(Arc::new(i.clone()))),
            Default::default(),
        );
    let cl_changes = watcher(Api::<CCMClusterIssuer>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(
            |i: &CCMClusterIssuer| issuer_readiness(&AnyIssuer::Cluster(Arc::new(i.clone()))),
            Default::default(),
        );
    let cr_ctrl = Controller::for_stream(cr_stream, cr_reader.clone())
        .watches_stream(ns_changes, move |i| {
            let key = AnyIssuer::Namespaced(Arc::new(i)).key();
            certificate_request::waiting_on(by_ns.state(), &key).collect::<Vec<_>>()
        })
        .watches_stream(cl_changes, move |i| {
            let key = AnyIssuer::Cluster(Arc::new(i)).key();
            certificate_request::waiting_on(by_cluster.state(), &key).collect::<Vec<_>>()
        })
        .reconcile_on(UnboundedReceiverStream::new(slot_rx))
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
    let (ctx_ns, ctx_cl) = (ctx.clone(), ctx.clone());
    let janitor = {
        let ctx = ctx.clone();
        let requests = cr_reader.clone();
        let mut shutdown = shutdown.clone();
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {
                        ctx.forget_deleted_issuers();
                        let cached = requests.state();
                        // Finished requests are not reconciled again: what this process
                        // remembers of them goes too.
                        let live: HashSet<String> = cached
                            .iter()
                            .filter(|cr| !cr.is_final())
                            .filter_map(|cr| cr.metadata.uid.clone())
                            .collect();
                        ctx.forget_requests_not_in(&live);
                        if ctx.slots.waiting() > 0 {
                            ctx.slots.retain_waiting(&cached.iter().map(|cr| ObjectRef::from(&**cr)).collect());
                        }
                    }
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
        }
    };
    tokio::join!(
        ready,
        janitor,
        drive(
            "certificaterequest",
            cr_ctrl,
            certificate_request::reconcile,
            certificate_request::error_policy,
            ctx.clone(),
            (health.clone(), shutdown.clone()),
        ),
        drive(
            "ccmissuer",
            issuer_ctrl,
            issuer::reconcile_namespaced,
            issuer::error_policy,
            ctx_ns,
            (health.clone(), shutdown.clone()),
        ),
        drive(
            "ccmclusterissuer",
            cluster_ctrl,
            issuer::reconcile_cluster,
            issuer::error_policy,
            ctx_cl,
            (health.clone(), shutdown.clone()),
        ),
    );
    health.set_ready(false);
    info!("controllers stopped");
}

/// Runs one controller until it ends: every reconciliation is tracked for `/livez`, results
/// are logged, and an end without a shutdown request makes the process not alive.
async fn drive<K, Fut>(
    name: &'static str,
    controller: Controller<K>,
    reconcile: fn(Arc<K>, Arc<Context>) -> Fut,
    error_policy: fn(Arc<K>, &super::Error, Arc<Context>) -> kube::runtime::controller::Action,
    ctx: Arc<Context>,
    (health, shutdown): (Arc<Health>, watch::Receiver<bool>),
) where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<kube::runtime::controller::Action, super::Error>> + Send + 'static,
{
    let tracker = health.clone();
    controller
        .run(
            move |obj, ctx| {
                let tracker = tracker.clone();
                async move { tracker.track(name, reconcile(obj, ctx)).await }
            },
            error_policy,
            ctx,
        )
        .for_each(|r| log_result(name, r))
        .await;
    if !*shutdown.borrow() {
        error!(controller = name, "controller loop ended without a shutdown request");
        health.controller_stopped(name);
    }
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
        // A request woken for a slot after it was deleted.
        Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
            debug!(controller, object = %obj.name, "woken object no longer exists")
        }
        Err(other) => warn!(controller, error = %other, "controller error"),
    }
}
