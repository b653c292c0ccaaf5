//! Health and metrics endpoints, on their own port: `/livez` (the controllers still work),
//! `/readyz` (caches synced, and with leader election this replica may act or stands by),
//! `/metrics` (OpenMetrics text).

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, http::header, response::IntoResponse, routing::get};
use tokio::{net::TcpListener, time::Instant};

use crate::metrics::Metrics;

/// How long one reconciliation may run before the process counts as stuck (the longest
/// legitimate one is a few PCA calls of at most `--pca-timeout` each).
const STUCK_RECONCILE: Duration = Duration::from_secs(600);
/// How long a watch may fail without a break before the process counts as stuck.
const FAILING_WATCH: Duration = Duration::from_secs(300);
/// A watch whose last error is older than this has recovered (watch errors repeat at the
/// watcher's back-off, at most about a minute apart, while they last).
const WATCH_RECOVERED: Duration = Duration::from_secs(90);

/// Health shared with the controllers: readiness, running reconciliations and failing watches.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    running: Mutex<HashMap<u64, (&'static str, Instant)>>,
    next_id: AtomicU64,
    failing: Mutex<HashMap<&'static str, (Instant, Instant)>>,
    stopped: Mutex<Vec<&'static str>>,
}

impl Health {
    /// Marks the process ready (caches synced, or standing by for the lease).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Runs one reconciliation, registered as running while it does.
    pub async fn track<T>(&self, controller: &'static str, work: impl Future<Output = T>) -> T {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.running).insert(id, (controller, Instant::now()));
        let _done = Finished { health: self, id };
        work.await
    }

    /// Notes one item of a watch stream: `ok` false for an error.
    pub fn watch_item(&self, watch: &'static str, ok: bool) {
        let mut failing = lock(&self.failing);
        if ok {
            failing.remove(watch);
            return;
        }
        let now = Instant::now();
        let entry = failing.entry(watch).or_insert((now, now));
        if now.duration_since(entry.1) > WATCH_RECOVERED {
            *entry = (now, now);
        } else {
            entry.1 = now;
        }
    }

    /// A controller loop ended although no shutdown was asked for.
    pub fn controller_stopped(&self, controller: &'static str) {
        lock(&self.stopped).push(controller);
    }

    /// Why the process is not alive any more, if it is not.
    pub fn stuck(&self) -> Option<String> {
        let now = Instant::now();
        if let Some(c) = lock(&self.stopped).first() {
            return Some(format!("the {c} controller stopped"));
        }
        if let Some((c, started)) = lock(&self.running)
            .values()
            .find(|(_, started)| now.duration_since(*started) > STUCK_RECONCILE)
        {
            return Some(format!(
                "a {c} reconciliation has been running for {}s",
                now.duration_since(*started).as_secs()
            ));
        }
        lock(&self.failing)
            .iter()
            .find(|(_, (since, last))| {
                now.duration_since(*last) <= WATCH_RECOVERED && now.duration_since(*since) > FAILING_WATCH
            })
            .map(|(w, (since, _))| format!("the {w} watch has failed for {}s", now.duration_since(*since).as_secs()))
    }
}

struct Finished<'a> {
    health: &'a Health,
    id: u64,
}

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        lock(&self.health.running).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another task panicked mid-update; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

/// The router.
pub fn router(health: Arc<Health>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { health, metrics })
}

async fn livez(State(s): State<AppState>) -> impl IntoResponse {
    match s.health.stuck() {
        None => (StatusCode::OK, "ok".to_owned()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

/// Binds the listener (port 0 allowed) and returns it with the bound address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(health, metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_reconciliation_that_never_ends_makes_the_process_not_alive() {
        let health = Arc::new(Health::default());
        let h = health.clone();
        let stuck = tokio::spawn(async move { h.track("certificaterequest", std::future::pending::<()>()).await });
        tokio::task::yield_now().await;
        assert!(health.stuck().is_none());
        tokio::time::advance(STUCK_RECONCILE + Duration::from_secs(1)).await;
        let why = health.stuck().expect("stuck");
        assert!(why.contains("certificaterequest reconciliation"), "{why}");
        stuck.abort();
        let _ = stuck.await;
        assert!(health.stuck().is_none(), "an ended reconciliation is forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_failing_without_a_break_makes_the_process_not_alive() {
        let health = Health::default();
        for _ in 0..12 {
            health.watch_item("certificaterequests", false);
            tokio::time::advance(Duration::from_secs(30)).await;
        }
        assert!(health.stuck().is_some_and(|w| w.contains("certificaterequests watch")));
        health.watch_item("certificaterequests", true);
        assert!(health.stuck().is_none(), "recovered");
        // Errors far apart are separate episodes, not one long failure.
        for _ in 0..6 {
            health.watch_item("ccmissuers", false);
            tokio::time::advance(Duration::from_secs(120)).await;
        }
        assert!(health.stuck().is_none());
        health.controller_stopped("ccmissuer");
        assert!(
            health
                .stuck()
                .is_some_and(|w| w.contains("ccmissuer controller stopped"))
        );
    }
}
