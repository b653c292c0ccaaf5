//! Per-issuer limits on reconciliations that call the PCA, so one slow, failing or throttled
//! issuer cannot hold every worker: a request whose issuer has no free slot is put back in the
//! issuer's queue instead of waiting on a worker, and other issuers' requests go on.
//!
//! A released slot wakes the request that has waited longest (through the controller's
//! `reconcile_on` stream), so a backlog of thousands of requests costs one reconciliation per
//! freed slot, not one per request every few seconds, and is served in order of arrival.
//! Waiting requests are also put back with a long fallback delay: a wake-up can be lost when it
//! goes to a request deleted meanwhile or a newcomer takes the slot first.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    time::Duration,
};

use kube::runtime::reflector::ObjectRef;
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc::UnboundedSender};

use super::IssuerKey;
use crate::cert_manager::CertificateRequest;

/// A request to reconcile again.
pub type Waiter = ObjectRef<CertificateRequest>;

/// The slots of every issuer.
#[derive(Debug, Clone)]
pub struct IssuerSlots {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    issuers: Mutex<HashMap<IssuerKey, Issuer>>,
    /// Where wake-ups go (the request controller's trigger stream); unset in unit tests that
    /// drive reconciliations by hand.
    waker: OnceLock<UnboundedSender<Waiter>>,
}

/// One issuer's slots and the requests waiting for one, oldest first.
#[derive(Debug)]
struct Issuer {
    semaphore: Arc<Semaphore>,
    waiting: VecDeque<Waiter>,
    queued: HashSet<Waiter>,
}

/// A slot held by one reconciliation; dropping it frees the slot and wakes the next waiter.
#[derive(Debug)]
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    key: IssuerKey,
    slots: IssuerSlots,
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.slots.wake_next(&self.key);
    }
}

impl IssuerSlots {
    /// `limit` concurrent PCA-bound reconciliations per issuer (at least 1).
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit: limit.max(1),
                issuers: Mutex::new(HashMap::new()),
                waker: OnceLock::new(),
            }),
        }
    }

    /// Sends wake-ups to `waker` from now on (set once; later calls are ignored).
    pub fn wake_with(&self, waker: UnboundedSender<Waiter>) {
        let _ = self.inner.waker.set(waker);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IssuerKey, Issuer>> {
        self.inner.issuers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for the issuer, if one is free. If none is, `waiter` joins the issuer's queue
    /// (once) and is woken when a slot is released.
    pub fn try_acquire(&self, key: &IssuerKey, waiter: Waiter) -> Option<Slot> {
        let mut issuers = self.lock();
        let issuer = issuers.entry(key.clone()).or_insert_with(|| Issuer {
            semaphore: Arc::new(Semaphore::new(self.inner.limit)),
            waiting: VecDeque::new(),
            queued: HashSet::new(),
        });
        match issuer.semaphore.clone().try_acquire_owned() {
            Ok(permit) => {
                // Only a request that was queued is looked for in the queue (a scan).
                if issuer.queued.remove(&waiter) {
                    issuer.waiting.retain(|w| w != &waiter);
                }
                Some(Slot {
                    permit: Some(permit),
                    key: key.clone(),
                    slots: self.clone(),
                })
            }
            Err(_) => {
                if issuer.queued.insert(waiter.clone()) {
                    issuer.waiting.push_back(waiter);
                }
                None
            }
        }
    }

    /// Wakes the request of `key` that has waited longest, if any.
    fn wake_next(&self, key: &IssuerKey) {
        let next = {
            let mut issuers = self.lock();
            let Some(issuer) = issuers.get_mut(key) else { return };
            let next = issuer.waiting.pop_front();
            if let Some(w) = &next {
                issuer.queued.remove(w);
            }
            next
        };
        if let (Some(waiter), Some(waker)) = (next, self.inner.waker.get()) {
            let _ = waker.send(waiter);
        }
    }

    /// Forgets issuers not in `live` (slots in use stay valid until released).
    pub fn retain(&self, live: &HashSet<IssuerKey>) {
        self.lock().retain(|k, _| live.contains(k));
    }

    /// Forgets waiting requests that are not in `live` (deleted ones).
    pub fn retain_waiting(&self, live: &HashSet<Waiter>) {
        for issuer in self.lock().values_mut() {
            issuer.waiting.retain(|w| live.contains(w));
            issuer.queued.retain(|w| live.contains(w));
        }
    }

    /// Issuers with slot state (memory bound checks).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no issuer has slot state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests waiting for a slot, all issuers together (memory bound checks).
    pub fn waiting(&self) -> usize {
        self.lock().values().map(|i| i.waiting.len()).sum()
    }
}

/// How long a request without a slot waits before it is looked at again if no wake-up comes:
/// 10–20 s, jittered so the waiting requests of a slow issuer do not come back in lockstep.
pub fn fallback_delay() -> Duration {
    Duration::from_millis(rand::rng().random_range(10_000..20_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str) -> Waiter {
        ObjectRef::new(name).within("ns")
    }

    #[test]
    fn an_issuer_gets_its_limit_and_others_are_unaffected() {
        let slots = IssuerSlots::new(2);
        let slow = IssuerKey::Cluster { name: "tarpit".into() };
        let healthy = IssuerKey::Cluster { name: "ok".into() };
        let a = slots.try_acquire(&slow, request("a")).expect("first");
        let _b = slots.try_acquire(&slow, request("b")).expect("second");
        assert!(slots.try_acquire(&slow, request("c")).is_none(), "a third waits");
        assert!(
            slots.try_acquire(&healthy, request("d")).is_some(),
            "another issuer is not affected"
        );
        drop(a);
        assert!(
            slots.try_acquire(&slow, request("c")).is_some(),
            "a released slot is free again"
        );
        slots.retain(&HashSet::from([healthy]));
        assert_eq!(slots.len(), 1);
    }

    #[test]
    fn a_released_slot_wakes_the_request_that_waited_longest_once() {
        let slots = IssuerSlots::new(1);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        slots.wake_with(tx);
        let key = IssuerKey::Cluster { name: "busy".into() };
        let held = slots.try_acquire(&key, request("holder")).expect("free");
        for name in ["first", "second", "first", "third"] {
            assert!(slots.try_acquire(&key, request(name)).is_none());
        }
        assert_eq!(slots.waiting(), 3, "a request that looks again is queued once");
        drop(held);
        assert_eq!(rx.try_recv().ok(), Some(request("first")));
        assert!(rx.try_recv().is_err(), "one slot freed, one request woken");
        let next = slots
            .try_acquire(&key, request("first"))
            .expect("the woken request gets it");
        drop(next);
        assert_eq!(rx.try_recv().ok(), Some(request("second")));
        assert_eq!(slots.waiting(), 1);
    }

    #[test]
    fn deleted_requests_leave_the_queue() {
        let slots = IssuerSlots::new(1);
        let key = IssuerKey::Cluster { name: "busy".into() };
        let _held = slots.try_acquire(&key, request("holder")).expect("free");
        assert!(slots.try_acquire(&key, request("gone")).is_none());
        assert!(slots.try_acquire(&key, request("kept")).is_none());
        slots.retain_waiting(&HashSet::from([request("kept"), request("holder")]));
        assert_eq!(slots.waiting(), 1);
    }
}
