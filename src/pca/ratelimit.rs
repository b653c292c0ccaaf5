//! Client-side token buckets, one per (endpoint, access key), to stay under the gateway's
//! throttle (`429 APIGW.0308`) instead of provoking it.
//!
//! Hand-written rather than taken from `governor` because it must run on tokio's clock, so
//! tests with paused time are deterministic.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

/// A token bucket; `acquire` waits (asynchronously) for a token.
///
/// Tokens are reserved, so waiters are served in arrival order and the long-run rate never
/// exceeds `qps`.
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A bucket refilled at `qps` per second holding at most `burst` tokens. `qps <= 0` means
    /// unlimited.
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps,
            burst,
            state: Mutex::new(BucketState {
                tokens: burst,
                updated: Instant::now(),
            }),
        }
    }

    /// Reserves one token and returns how long to wait before using it.
    fn reserve(&self) -> Duration {
        if self.qps <= 0.0 {
            return Duration::ZERO;
        }
        // A poisoned lock only means another task panicked mid-update; the numbers are still usable.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.updated).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.qps).min(self.burst);
        state.updated = now;
        state.tokens -= 1.0;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / self.qps)
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The buckets of a process, keyed by endpoint and access key, so every issuer that shares an
/// account and endpoint shares one budget.
#[derive(Debug)]
pub struct RateLimiters {
    qps: f64,
    burst: u32,
    buckets: Mutex<HashMap<(String, String), Arc<TokenBucket>>>,
}

impl RateLimiters {
    /// Buckets with the given rate and burst.
    pub fn new(qps: f64, burst: u32) -> Self {
        Self {
            qps,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The bucket for an endpoint and access key.
    pub fn bucket(&self, endpoint: &str, access_key: &str) -> Arc<TokenBucket> {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((endpoint.to_owned(), access_key.to_owned()))
            .or_insert_with(|| Arc::new(TokenBucket::new(self.qps, self.burst)))
            .clone()
    }

    /// Drops buckets no client uses any more (their issuers were deleted), so the map does not
    /// grow with every endpoint and access key ever seen.
    pub fn prune_unused(&self) {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, bucket| Arc::strong_count(bucket) > 1);
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for RateLimiters {
    fn default() -> Self {
        Self::new(5.0, 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let bucket = TokenBucket::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "burst is free");
        for _ in 0..10 {
            bucket.acquire().await;
        }
        let took = start.elapsed().as_secs_f64();
        assert!((0.99..=1.01).contains(&took), "10 more tokens at 10/s took {took}s");
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_when_qps_is_zero() {
        let bucket = TokenBucket::new(0.0, 1);
        let start = Instant::now();
        for _ in 0..1000 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_never_exceed_the_rate() {
        let bucket = Arc::new(TokenBucket::new(20.0, 1));
        let start = Instant::now();
        let tasks: Vec<_> = (0..41)
            .map(|_| {
                let b = bucket.clone();
                tokio::spawn(async move {
                    b.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap());
        }
        let last = times.iter().max().unwrap().duration_since(start).as_secs_f64();
        assert!(last >= 1.99, "41 tokens at 20/s with burst 1 need 2s, took {last}");
    }

    #[test]
    fn unused_buckets_are_pruned() {
        let l = RateLimiters::new(1.0, 1);
        let kept = l.bucket("e", "live");
        drop(l.bucket("e", "gone"));
        assert_eq!(l.len(), 2);
        l.prune_unused();
        assert_eq!(l.len(), 1);
        assert!(Arc::ptr_eq(&kept, &l.bucket("e", "live")), "a bucket in use survives");
    }

    #[test]
    fn buckets_are_shared_per_endpoint_and_key() {
        let l = RateLimiters::new(1.0, 1);
        assert!(Arc::ptr_eq(&l.bucket("e", "ak"), &l.bucket("e", "ak")));
        assert!(!Arc::ptr_eq(&l.bucket("e", "ak"), &l.bucket("e", "ak2")));
        assert!(!Arc::ptr_eq(&l.bucket("e", "ak"), &l.bucket("f", "ak")));
    }
}
