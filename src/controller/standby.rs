//! What a standby replica does while it waits for the leader lease: it builds the PCA clients
//! of the Ready issuers it would serve and has each discover its account id, so that after a
//! failover the new leader's first calls go to the PCA at once. Discovery (IAM, sometimes STS)
//! is one or two round trips before any PCA call of a fresh process — seen to take 2 s of a
//! chaos leader's median 10 s — and it only reads, so a replica without the lease may make it.
//!
//! Only issuers whose status says Ready are prepared: their credentials were accepted, so a
//! standby never repeats calls with a wrong secret key (the gateway locks access keys that
//! keep failing). The leader finds the prepared client in the shared cache
//! (`credentials::PcaClients`) as long as the issuer's spec and Secret are unchanged.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{Api, Client, api::ListParams};
use tokio::sync::watch;
use tracing::debug;

use super::{AnyIssuer, credentials::PcaClients};
use crate::crd::{CCMClusterIssuer, CCMIssuer};

/// How often a waiting standby prepares again (new issuers, rotated Secrets).
pub const PREPARE_EVERY: Duration = Duration::from_secs(300);
/// Issuers prepared at once.
const AT_ONCE: usize = 4;

/// Prepares the clients of every Ready issuer, now and every [`PREPARE_EVERY`], until `led`
/// turns true (or its sender is gone); a round under way is finished, not cut short.
pub async fn prepare_while_waiting(kube: Client, pca: Arc<PcaClients>, mut led: watch::Receiver<bool>) {
    while !*led.borrow() {
        prepare(&kube, &pca).await;
        tokio::select! {
            _ = tokio::time::sleep(PREPARE_EVERY) => {}
            _ = led.wait_for(|l| *l) => return,
        }
    }
}

/// One round: every Ready issuer's client built and its account id known. Failures are left
/// for the leader, which makes the same calls and reports them.
pub async fn prepare(kube: &Client, pca: &PcaClients) {
    let issuers = match ready_issuers(kube).await {
        Ok(issuers) => issuers,
        Err(e) => {
            debug!(error = %e, "standby: cannot list issuers to prepare their clients");
            return;
        }
    };
    futures::stream::iter(issuers)
        .for_each_concurrent(AT_ONCE, |issuer| async move {
            let key = issuer.key();
            match pca.client_for(kube, &issuer, None).await {
                Ok(client) => match client.domain_id().await {
                    Ok(_) => debug!(issuer = %key, "standby: client prepared"),
                    Err(e) => debug!(issuer = %key, error = %e, "standby: account id not discovered"),
                },
                Err(problem) => debug!(issuer = %key, reason = problem.reason, "standby: no client"),
            }
        })
        .await;
}

async fn ready_issuers(kube: &Client) -> Result<Vec<AnyIssuer>, kube::Error> {
    let lp = ListParams::default();
    let namespaced = Api::<CCMIssuer>::all(kube.clone()).list(&lp).await?;
    let cluster = Api::<CCMClusterIssuer>::all(kube.clone()).list(&lp).await?;
    Ok(namespaced
        .items
        .into_iter()
        .map(|i| AnyIssuer::Namespaced(Arc::new(i)))
        .chain(cluster.items.into_iter().map(|i| AnyIssuer::Cluster(Arc::new(i))))
        .filter(AnyIssuer::is_ready)
        .collect())
}
