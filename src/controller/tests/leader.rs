//! Leader election and its fence, against the fake API server.

use std::time::Duration;

use http::Method;

use super::fake_api::FakeApi;
use crate::controller::leader::{Elector, Fence, LeaseConfig, Standing};

const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ccm/leases/ccm-issuer-leader";

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: "ccm".into(),
        name: "ccm-issuer-leader".into(),
        identity: identity.into(),
        duration: Duration::from_secs(3),
        renew_every: Duration::from_secs(1),
    }
}

fn holder(api: &FakeApi) -> Option<String> {
    api.get(LEASE_PATH)?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn lease_is_acquired_renewed_and_released() {
    crate::install_crypto_provider();
    let api = FakeApi::default();
    let fence = Fence::leased();
    assert!(!fence.holds(), "nothing is proven before the lease is held");
    let mut a = Elector::new(api.client(), config("a"), fence.clone());
    a.acquire().await;
    assert!(fence.holds());
    assert_eq!(holder(&api).as_deref(), Some("a"));
    let mut b = Elector::new(api.client(), config("b"), Fence::leased());
    assert_eq!(b.try_lead().await.expect("look"), Standing::Follower);
    assert_eq!(a.try_lead().await.expect("renew"), Standing::Leader);
    a.release().await;
    assert!(!fence.holds(), "released: the fence closes at once");
    assert_eq!(holder(&api), None);
    assert_eq!(
        b.try_lead().await.expect("take"),
        Standing::Leader,
        "a released lease is taken at once"
    );
}

/// The defect: renewal errors were only logged, so a leader that could not renew went on
/// issuing after its lease had expired.
#[tokio::test]
async fn fence_closes_when_renewals_fail() {
    crate::install_crypto_provider();
    let api = FakeApi::default();
    let fence = Fence::leased();
    let mut a = Elector::new(api.client(), config("a"), fence.clone());
    a.acquire().await;
    for _ in 0..20 {
        api.fail_next(Method::PATCH, "/leases/ccm-issuer-leader", 500);
    }
    let lost = tokio::time::timeout(Duration::from_secs(6), a.keep()).await;
    assert!(lost.is_ok(), "keep() returns once the lease cannot be proven");
    assert!(!fence.holds());
}

#[tokio::test]
async fn another_holders_lease_is_taken_only_after_it_stopped_renewing() {
    crate::install_crypto_provider();
    let api = FakeApi::default();
    let mut a = Elector::new(api.client(), config("a"), Fence::leased());
    a.acquire().await;
    let b_fence = Fence::leased();
    let mut b = Elector::new(api.client(), config("b"), b_fence.clone());
    // While a renews, b never takes over.
    for _ in 0..4 {
        assert_eq!(b.try_lead().await.expect("look"), Standing::Follower);
        assert_eq!(a.try_lead().await.expect("renew"), Standing::Leader);
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    // a is killed (stops renewing): b takes over after one lease duration of its own clock.
    let started = tokio::time::Instant::now();
    b.acquire().await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "took over after {waited:?}");
    assert!(b_fence.holds());
    assert_eq!(holder(&api).as_deref(), Some("b"));
    assert_eq!(a.try_lead().await.expect("look"), Standing::Follower, "a sees it lost");
}

/// The defect: a standby looked at the lease every 2 s whatever its duration, so it noticed
/// a dead leader's lease had run out up to 2 s late (failovers of 4.8 s with a 4 s lease).
#[tokio::test]
async fn a_dead_leaders_lease_is_taken_soon_after_it_runs_out() {
    crate::install_crypto_provider();
    let api = FakeApi::default();
    let mut a = Elector::new(api.client(), config("a"), Fence::leased());
    a.acquire().await;
    let mut b = Elector::new(api.client(), config("b"), Fence::leased());
    assert_eq!(b.try_lead().await.expect("look"), Standing::Follower);
    // a renews once more and dies; b first sees that record now, so it expires in 3 s.
    assert_eq!(a.try_lead().await.expect("renew"), Standing::Leader);
    let started = tokio::time::Instant::now();
    b.acquire().await;
    let waited = started.elapsed();
    // Looking every 2 s, b takes over at 4 s; every 3/8 s, by 3.4 s.
    assert!(
        (Duration::from_secs(3)..Duration::from_millis(3900)).contains(&waited),
        "took over after {waited:?}"
    );
}
