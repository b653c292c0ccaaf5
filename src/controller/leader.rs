//! Leader election over a `coordination.k8s.io` Lease, with a *fence*.
//!
//! Written here rather than taken from a crate because the one maintained crate for kube 5
//! (`kube-lease-manager`) only logs renewal errors: a leader that cannot renew keeps believing
//! it leads after its lease has expired and another replica has taken over. Here the leader
//! knows how long its lease is proven — until `lease duration` after the start of its last
//! successful renewal, on its own monotonic clock — and the [`Fence`] answers "may I still
//! act?" from that alone. The controllers ask before every issue call, and the process exits
//! when the proof runs out, so two replicas never issue side by side.
//!
//! Another replica's lease is judged expired the client-go way: when the holder and renew time
//! it last saw have not changed for a whole lease duration of our clock, so clock differences
//! between nodes do not matter.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
};
use tokio::time::Instant;
use tracing::{info, warn};

/// How long before the proof runs out the fence closes (time for one issue call to be sent).
const FENCE_MARGIN: Duration = Duration::from_secs(2);
/// How often a standby looks at the lease: an eighth of its duration, within these bounds.
/// Expiry is measured from when the standby first saw the holder's last renewal, so each look
/// it skips after a leader died adds to the failover (a fixed 2 s made a 4 s lease's failover
/// about 4.8 s in the chaos runs).
const CANDIDATE_POLL: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(2));

/// Where the lease lives and how long it lasts.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity.
    pub identity: String,
    /// Lease duration.
    pub duration: Duration,
    /// Renewal interval (a third of the duration is usual).
    pub renew_every: Duration,
}

/// "May this replica act?": always yes without leader election; with it, only while the lease
/// is proven.
#[derive(Debug, Clone)]
pub struct Fence {
    inner: Option<Arc<Mutex<Option<Instant>>>>,
}

impl Fence {
    /// No leader election: always holds.
    pub fn open() -> Self {
        Self { inner: None }
    }

    /// Leader election: holds once a lease is acquired, until its proof runs out.
    pub fn leased() -> Self {
        Self {
            inner: Some(Arc::new(Mutex::new(None))),
        }
    }

    /// Whether this replica may act now (and for the next couple of seconds).
    pub fn holds(&self) -> bool {
        match &self.inner {
            None => true,
            Some(until) => lock(until).is_some_and(|u| u > Instant::now() + FENCE_MARGIN),
        }
    }

    /// Whether leader election is on.
    pub fn is_leased(&self) -> bool {
        self.inner.is_some()
    }

    fn prove_until(&self, until: Instant) {
        if let Some(u) = &self.inner {
            let mut guard = lock(u);
            *guard = Some(guard.map_or(until, |old| old.max(until)));
        }
    }

    fn revoke(&self) {
        if let Some(u) = &self.inner {
            *lock(u) = None;
        }
    }

    fn proven_until(&self) -> Option<Instant> {
        self.inner.as_ref().and_then(|u| *lock(u))
    }
}

fn lock(m: &Mutex<Option<Instant>>) -> std::sync::MutexGuard<'_, Option<Instant>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One replica's view of the election.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    fence: Fence,
    /// The other holder's record as last seen, and when (our clock) it was first seen so.
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
}

/// What one look at the lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// We hold it (acquired or renewed just now).
    Leader,
    /// Someone else holds it.
    Follower,
}

impl Elector {
    /// An elector that proves leadership to `fence`.
    pub fn new(client: Client, config: LeaseConfig, fence: Fence) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            fence,
            observed: None,
        }
    }

    /// Waits until this replica holds the lease. API errors are retried.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_lead().await {
                Ok(Standing::Leader) => return,
                Ok(Standing::Follower) => {}
                Err(e) => warn!(error = %e, "cannot read or write the leader lease; retrying"),
            }
            tokio::time::sleep((self.config.duration / 8).clamp(CANDIDATE_POLL.0, CANDIDATE_POLL.1)).await;
        }
    }

    /// Renews the lease until the proof runs out (renewals failed for a whole lease duration,
    /// or another replica took it). Returns when leadership is lost.
    pub async fn keep(&mut self) {
        loop {
            let proven = self.fence.proven_until().unwrap_or_else(Instant::now);
            tokio::time::sleep_until((Instant::now() + self.config.renew_every).min(proven)).await;
            match self.try_lead().await {
                Ok(Standing::Leader) => {}
                Ok(Standing::Follower) => {
                    self.fence.revoke();
                    return;
                }
                Err(e) => warn!(error = %e, "cannot renew the leader lease; the fence closes if this lasts"),
            }
            if self.fence.proven_until().is_none_or(|until| until <= Instant::now()) {
                self.fence.revoke();
                return;
            }
        }
    }

    /// Gives the lease up (graceful shutdown), so a standby takes over at once.
    pub async fn release(&mut self) {
        self.fence.revoke();
        let Ok(Some(lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref());
        if holder != Some(self.config.identity.as_str()) {
            return;
        }
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": lease.metadata.resource_version},
            "spec": {"holderIdentity": null, "leaseDurationSeconds": 1},
        });
        match self
            .api
            .patch(&self.config.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => info!("released the leader lease"),
            Err(e) => warn!(error = %e, "could not release the leader lease; it expires by itself"),
        }
    }

    /// One look: renew if ours, take it if free or expired, else note what we saw.
    pub async fn try_lead(&mut self) -> Result<Standing, kube::Error> {
        let started = Instant::now();
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            return self.create(started).await;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.config.identity.as_str());
        let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
        if !ours && !free && !self.expired(&spec, started) {
            return Ok(Standing::Follower);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let now = MicroTime(jiff::Timestamp::now());
        let renewed = LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds()),
            acquire_time: if ours { spec.acquire_time } else { Some(now.clone()) },
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..Default::default()
        };
        // The lease's resourceVersion makes this a compare-and-swap: of two replicas taking an
        // expired lease, one wins. A merge patch (not an update) keeps the RBAC to get/patch.
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": lease.metadata.resource_version},
            "spec": renewed,
        });
        match self
            .api
            .patch(&self.config.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(self.proven(started, ours)),
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(Standing::Follower),
            Err(e) => Err(e),
        }
    }

    async fn create(&mut self, started: Instant) -> Result<Standing, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(self.duration_seconds()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(self.proven(started, false)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Standing::Follower),
            Err(e) => Err(e),
        }
    }

    fn proven(&mut self, started: Instant, renewal: bool) -> Standing {
        if !renewal {
            info!(lease = %self.config.name, identity = %self.config.identity, "acquired the leader lease");
        }
        self.observed = None;
        self.fence.prove_until(started + self.config.duration);
        Standing::Leader
    }

    /// Whether another holder's lease has run out: its record unchanged for its whole
    /// duration, measured on our clock from when we first saw that record.
    fn expired(&mut self, spec: &LeaseSpec, now: Instant) -> bool {
        let record = (spec.holder_identity.clone(), spec.renew_time.clone());
        let since = match &self.observed {
            Some((holder, renewed, since)) if (holder, renewed) == (&record.0, &record.1) => *since,
            _ => {
                self.observed = Some((record.0, record.1, now));
                now
            }
        };
        let duration = Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(15)).unwrap_or(15));
        now.saturating_duration_since(since) >= duration
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}
