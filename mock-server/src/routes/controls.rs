//! The `/_mock/` controls: unauthenticated, served to loopback peers only.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::{Mock, PeerAddr};

pub(super) async fn loopback_only(req: Request, next: Next) -> Response {
    // Requests that did not come through our listener (in-process tests) carry no peer.
    if let Some(PeerAddr(addr)) = req.extensions().get::<PeerAddr>()
        && !addr.ip().is_loopback()
        && !addr.ip().to_canonical().is_loopback()
    {
        return mock_error(StatusCode::FORBIDDEN, "/_mock/ is only served to loopback clients");
    }
    next.run(req).await
}

fn mock_error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({"error": msg}))).into_response()
}

pub(super) async fn health(State(m): State<Arc<Mock>>) -> Response {
    axum::Json(json!({"status": "ok", "cas": m.store.all_cas().len(), "certificates": m.store.cert_count()}))
        .into_response()
}

pub(super) async fn get_faults(State(m): State<Arc<Mock>>) -> Response {
    axum::Json(m.faults.get()).into_response()
}

pub(super) async fn set_faults(State(m): State<Arc<Mock>>, body: axum::body::Bytes) -> Response {
    let plan: crate::faults::FaultPlan = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return mock_error(StatusCode::BAD_REQUEST, &format!("invalid fault plan: {e}")),
    };
    match m.faults.set(plan) {
        Ok(()) => axum::Json(m.faults.get()).into_response(),
        Err(e) => mock_error(StatusCode::BAD_REQUEST, &e),
    }
}

pub(super) async fn reset_faults(State(m): State<Arc<Mock>>) -> Response {
    m.faults.reset();
    axum::Json(m.faults.get()).into_response()
}

pub(super) async fn get_stats(State(m): State<Arc<Mock>>) -> Response {
    axum::Json(m.stats.snapshot()).into_response()
}

pub(super) async fn reset_stats(State(m): State<Arc<Mock>>) -> Response {
    m.stats.reset();
    StatusCode::NO_CONTENT.into_response()
}
/// Where a hostile `redirect` points: count the client that followed it, and refuse.
pub(super) async fn redirected(State(m): State<Arc<Mock>>) -> Response {
    m.stats.record_redirect_followed();
    mock_error(
        StatusCode::CONFLICT,
        "ccm-mock-pca: this client followed a hostile redirect (it should not follow redirects)",
    )
}

/// `POST /_mock/outage` body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OutageRequest {
    duration_ms: u64,
}

fn outage_state(m: &Mock) -> Response {
    let remaining = m.outage.remaining();
    axum::Json(json!({
        "active": remaining.is_some(),
        "remaining_ms": remaining.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    }))
    .into_response()
}

pub(super) async fn get_outage(State(m): State<Arc<Mock>>) -> Response {
    outage_state(&m)
}

/// Start an outage of `duration_ms`: every Huawei-API request closes its connection
/// without an answer until it ends (the `/_mock/` API keeps answering).
pub(super) async fn start_outage(State(m): State<Arc<Mock>>, body: axum::body::Bytes) -> Response {
    let req: OutageRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return mock_error(StatusCode::BAD_REQUEST, &format!("invalid outage: {e}")),
    };
    m.outage.start(std::time::Duration::from_millis(req.duration_ms));
    outage_state(&m)
}

pub(super) async fn end_outage(State(m): State<Arc<Mock>>) -> Response {
    m.outage.end();
    outage_state(&m)
}

#[cfg(test)]
mod tests;
