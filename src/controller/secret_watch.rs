//! One metadata-only watch per Secret that some issuer references (field selector
//! `metadata.name`), so a rotated or fixed Secret re-checks its issuers at once — without a
//! cluster-wide Secret cache and without reading Secret data in the watch. The version each
//! watch last saw also tells the request controller when the client it built from a Secret is
//! still current, so requests need not read the Secret again.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, core::PartialObjectMeta, runtime::watcher};
use tokio::task::JoinHandle;
use tracing::{debug, info};

use super::{IssuerKey, IssuerTriggers};

type SecretKey = (String, String);

/// What a watch last saw: `None` until its first listing is complete, then the Secret's
/// resourceVersion (`Some(None)`: the Secret does not exist).
type SeenVersion = Arc<Mutex<Option<Option<String>>>>;

struct Watch {
    issuers: Arc<Mutex<BTreeSet<IssuerKey>>>,
    seen: SeenVersion,
    task: JoinHandle<()>,
}

/// The set of Secret watches, each shared by the issuers that reference that Secret.
pub struct SecretWatches {
    client: Client,
    triggers: IssuerTriggers,
    watches: Mutex<HashMap<SecretKey, Watch>>,
}

impl SecretWatches {
    /// No watches yet.
    pub fn new(client: Client, triggers: IssuerTriggers) -> Self {
        Self {
            client,
            triggers,
            watches: Mutex::new(HashMap::new()),
        }
    }

    /// Makes sure `issuer` is re-checked when Secret `secret` changes, and stops watching a
    /// Secret it no longer uses.
    pub fn ensure(&self, secret: SecretKey, issuer: IssuerKey) {
        let mut watches = self.lock();
        drop_issuer(&mut watches, &issuer, Some(&secret));
        if let Some(w) = watches.get(&secret) {
            w.issuers.lock().unwrap_or_else(|e| e.into_inner()).insert(issuer);
            return;
        }
        let issuers = Arc::new(Mutex::new(BTreeSet::from([issuer])));
        let seen = SeenVersion::default();
        let task = tokio::spawn(watch_secret(
            self.client.clone(),
            secret.clone(),
            issuers.clone(),
            seen.clone(),
            self.triggers.clone(),
        ));
        info!(namespace = %secret.0, name = %secret.1, "watching Secret referenced by issuers");
        watches.insert(secret, Watch { issuers, seen, task });
    }

    /// The resourceVersion of a watched Secret as its watch last saw it; `None` when it is not
    /// watched, its watch has not listed it yet, or it does not exist.
    pub fn version(&self, secret: &SecretKey) -> Option<String> {
        let watches = self.lock();
        let seen = watches.get(secret)?.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.clone().flatten()
    }

    /// Forgets a deleted issuer.
    pub fn forget(&self, issuer: &IssuerKey) {
        drop_issuer(&mut self.lock(), issuer, None);
    }

    /// Forgets every issuer not in `live` (deleted issuers are never reconciled again).
    pub fn retain_issuers(&self, live: &std::collections::HashSet<IssuerKey>) {
        let mut watches = self.lock();
        let gone: Vec<IssuerKey> = watches
            .values()
            .flat_map(|w| w.issuers.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .filter(|k| !live.contains(k))
            .collect();
        for issuer in &gone {
            drop_issuer(&mut watches, issuer, None);
        }
    }

    /// Number of Secrets watched (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SecretKey, Watch>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for SecretWatches {
    fn drop(&mut self) {
        for (_, w) in self.lock().drain() {
            w.task.abort();
        }
    }
}

/// Removes `issuer` from every watch except `keep`, stopping watches nobody uses.
fn drop_issuer(watches: &mut HashMap<SecretKey, Watch>, issuer: &IssuerKey, keep: Option<&SecretKey>) {
    watches.retain(|key, w| {
        if Some(key) == keep {
            return true;
        }
        let mut set = w.issuers.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(issuer);
        let used = !set.is_empty();
        if !used {
            w.task.abort();
        }
        used
    });
}

/// The longest pause between tries of a failing Secret watch.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// Delays between tries of a failing Secret watch: 1 s doubling to 5 minutes. Not the watcher's
/// `default_backoff()`: it resets on the `Init` event every relist starts with, so a watch that
/// is refused (403 outside the Secret namespaces the chart grants) would retry about every
/// second for ever, each try a warning in the log and a request to the apiserver.
fn retry_delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(MAX_RETRY_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
}

async fn watch_secret(
    client: Client,
    (namespace, name): SecretKey,
    issuers: Arc<Mutex<BTreeSet<IssuerKey>>>,
    seen: SeenVersion,
    triggers: IssuerTriggers,
) {
    // Metadata only: the watch never carries Secret data.
    let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    // `None` until the first listing is complete; then the version last seen (`Some(None)`: absent).
    let mut last_version: Option<Option<String>> = None;
    let mut listed: Option<String> = None;
    let mut events = watcher(api, config).boxed();
    let mut retry = retry_delays();
    while let Some(event) = events.next().await {
        let version = match event {
            Ok(watcher::Event::Init) => {
                // A relist: changes may have been missed until it completes.
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = None;
                listed = None;
                continue;
            }
            Ok(watcher::Event::InitApply(m)) => {
                listed = m.metadata.resource_version;
                continue;
            }
            // A relist replays the same object; only a new resourceVersion (or a deletion) matters.
            Ok(watcher::Event::InitDone) => listed.take(),
            Ok(watcher::Event::Apply(m)) => m.metadata.resource_version,
            Ok(watcher::Event::Delete(_)) => None,
            Err(e) => {
                // Until the watch works again, the Secret is read on every use.
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = None;
                let delay = retry.next().unwrap_or(MAX_RETRY_DELAY);
                debug!(%namespace, %name, error = %e, ?delay, "Secret watch error (retrying)");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        retry = retry_delays();
        *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(version.clone());
        if last_version.as_ref().is_some_and(|last| *last != version) {
            let set = issuers.lock().unwrap_or_else(|e| e.into_inner()).clone();
            info!(%namespace, %name, issuers = set.len(), "referenced Secret changed; re-checking issuers");
            for issuer in &set {
                triggers.recheck(issuer);
            }
        }
        last_version = Some(version);
    }
}
