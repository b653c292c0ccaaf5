//! HTTP surface: the Huawei paths (matched by hand so that unknown paths, wrong methods
//! and every error get the real API's JSON shapes) and the `/_mock/` controls.
//!
//! * [`op`] — the route table: method + path → SDK operation name.
//! * [`dispatch`] — faults, throttle, body limit and authentication in front of every
//!   operation, then the per-operation handler.
//! * [`params`] — request-body and parameter parsing shared by the handlers.
//! * [`render`] — the JSON views of CAs, certificates and quotas.
//! * [`cas`], [`certificates`], [`lists`], [`iam`] — the operations, by resource.
//! * [`controls`] — the unauthenticated `/_mock/` API for tests.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::Mock;

pub mod cas;
pub mod certificates;
pub mod controls;
pub mod dispatch;
pub mod hostile;
pub mod iam;
pub mod lists;
pub mod op;
pub mod params;
pub mod render;

#[cfg(test)]
mod proptests;

pub use op::Op;
pub use params::{Window, parse_validity};

/// Gateway body limit for AK/SK-signed requests.
pub const MAX_BODY: usize = 12 * 1024 * 1024;

/// Response extension: close the connection instead of sending this response.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// Build the router.
pub fn app(mock: Arc<Mock>) -> Router {
    let controls = Router::new()
        .route("/_mock/health", get(controls::health))
        .route(
            "/_mock/faults",
            get(controls::get_faults)
                .post(controls::set_faults)
                .delete(controls::reset_faults),
        )
        .route(
            "/_mock/outage",
            get(controls::get_outage)
                .post(controls::start_outage)
                .delete(controls::end_outage),
        )
        .route("/_mock/stats", get(controls::get_stats))
        .route("/_mock/stats/reset", post(controls::reset_stats))
        .route(
            &format!("{}/{{*rest}}", hostile::REDIRECT_PREFIX),
            axum::routing::any(controls::redirected),
        )
        .route_layer(axum::middleware::from_fn(controls::loopback_only));
    controls.fallback(dispatch::huawei).with_state(mock)
}
