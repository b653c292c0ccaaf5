//! Per-issuer limits on reconciliations that call the PCA, so one slow, failing or throttled
//! issuer cannot hold every worker: a request whose issuer has no free slot is put back with a
//! short, jittered delay instead of waiting on a worker, and other issuers' requests go on.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::IssuerKey;

/// The slots of every issuer.
#[derive(Debug)]
pub struct IssuerSlots {
    limit: usize,
    slots: Mutex<HashMap<IssuerKey, Arc<Semaphore>>>,
}

impl IssuerSlots {
    /// `limit` concurrent PCA-bound reconciliations per issuer (at least 1).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for the issuer, if one is free; it is given back when the guard is dropped.
    pub fn try_acquire(&self, key: &IssuerKey) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut map = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
                .clone()
        };
        semaphore.try_acquire_owned().ok()
    }

    /// Forgets issuers not in `live` (slots in use stay valid until released).
    pub fn retain(&self, live: &HashSet<IssuerKey>) {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| live.contains(k));
    }

    /// Issuers with slot state (memory bound checks).
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no issuer has slot state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long a request without a slot waits before it is looked at again: 1–3 s, jittered so
/// the waiting requests of a slow issuer do not come back in lockstep.
pub fn retry_delay() -> Duration {
    Duration::from_millis(rand::rng().random_range(1000..3000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_gets_its_limit_and_others_are_unaffected() {
        let slots = IssuerSlots::new(2);
        let slow = IssuerKey::Cluster { name: "tarpit".into() };
        let healthy = IssuerKey::Cluster { name: "ok".into() };
        let a = slots.try_acquire(&slow).expect("first");
        let _b = slots.try_acquire(&slow).expect("second");
        assert!(slots.try_acquire(&slow).is_none(), "a third waits");
        assert!(slots.try_acquire(&healthy).is_some(), "another issuer is not affected");
        drop(a);
        assert!(slots.try_acquire(&slow).is_some(), "a released slot is free again");
        slots.retain(&HashSet::from([healthy]));
        assert_eq!(slots.len(), 1);
    }
}
