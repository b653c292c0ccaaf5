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

/// Which operations a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Surface {
    /// PCA, IAM and STS on one address (the default).
    #[default]
    All,
    /// PCA only: IAM and STS paths are the gateway's 404 here.
    Pca,
    /// IAM (`/v3/auth/domains`) and STS (`/v5/caller-identity`) only.
    Iam,
}

impl Surface {
    /// Does a listener of this surface serve `op`?
    pub fn serves(self, op: &Op) -> bool {
        match self {
            Self::All => true,
            Self::Pca => !op.is_iam(),
            Self::Iam => op.is_iam(),
        }
    }
}

/// Build the router for PCA, IAM and STS on one address.
pub fn app(mock: Arc<Mock>) -> Router {
    app_for(mock, Surface::All)
}

/// Build the router of a listener serving `surface` (every listener has `/_mock/`).
pub fn app_for(mock: Arc<Mock>, surface: Surface) -> Router {
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
    controls
        .fallback(dispatch::huawei)
        .layer(axum::Extension(surface))
        .with_state(mock)
}
