//! What every Huawei-API request goes through: fault injection, the `--max-tps` throttle,
//! the gateway body limit and AK/SK verification; then the operation's handler.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{DropConnection, MAX_BODY, Op, Surface, cas, certificates, hostile, iam, lists};
use crate::Mock;
use crate::auth::{AuthContext, RequestView};
use crate::errors::{self, ApiError, new_request_id};
use crate::faults::Injected;
use crate::server::Scheme;
use crate::stats::Origin;

/// A handler's successful answer.
pub(super) enum Reply {
    Json(Value),
    /// A 200 body that is not (valid) JSON text: hostile answers only.
    Bytes(Vec<u8>),
    /// 302 to this URL: hostile answers only.
    Redirect(String),
    NoContent,
    Dropped,
}

/// An error answer and who produced it.
pub(super) struct Refusal {
    error: ApiError,
    origin: Origin,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            origin: Origin::Service,
        }
    }
}

pub(super) async fn huawei(State(m): State<Arc<Mock>>, req: Request) -> Response {
    let request_id = new_request_id();
    let surface = req.extensions().get::<Surface>().copied().unwrap_or_default();
    let op = Op::route(req.method(), req.uri().path()).filter(|op| surface.serves(op));
    let op_name = op.as_ref().map(Op::name).unwrap_or("Unknown");
    if m.outage.remaining().is_some() {
        tracing::info!(op = op_name, request_id, "outage: closing the connection");
        return dropped(&m, op_name, Origin::Outage);
    }
    let (base, path) = (own_base(&req), req.uri().path().to_owned());
    let result = match op.clone() {
        Some(op) => dispatch(&m, op, req).await,
        None => Err(ApiError::api_not_found().into()),
    };
    let hostile = op.as_ref().and_then(|o| m.faults.hostile_for(o.name()).map(|h| (o, h)));
    let (result, origin) = match (result, hostile) {
        (Ok(Reply::Json(v)), Some((op, plan))) => {
            tracing::info!(op = op_name, request_id, mode = ?plan.mode, "fault: hostile answer");
            let hostile = hostile::apply(&m, &plan, op, v, &base, &path).await;
            (hostile.map_err(Refusal::from), Origin::Hostile)
        }
        (Ok(Reply::Json(v)), None) => {
            let nulled = op
                .as_ref()
                .map(|o| m.faults.null_fields_for(o.name()))
                .unwrap_or_default();
            let v = if nulled.is_empty() {
                v
            } else {
                hostile::null_named(v, &nulled)
            };
            (Ok(Reply::Json(v)), Origin::Service)
        }
        (result, _) => (result, Origin::Service),
    };
    let (mut resp, origin) = match result {
        Ok(Reply::Json(v)) => ((StatusCode::OK, axum::Json(v)).into_response(), origin),
        Ok(Reply::Bytes(b)) => (
            ([(axum::http::header::CONTENT_TYPE, "application/json")], b).into_response(),
            origin,
        ),
        Ok(Reply::Redirect(to)) => (
            (StatusCode::FOUND, [(axum::http::header::LOCATION, to)]).into_response(),
            origin,
        ),
        Ok(Reply::NoContent) => (StatusCode::NO_CONTENT.into_response(), origin),
        Ok(Reply::Dropped) => {
            tracing::info!(op = op_name, request_id, "fault: dropping connection after issuance");
            return dropped(&m, op_name, Origin::DroppedAfterIssue);
        }
        Err(Refusal { error: e, origin }) => {
            if e.status.is_server_error() || e.status == StatusCode::UNAUTHORIZED {
                tracing::info!(op = op_name, request_id, status = %e.status, code = e.code, msg = %e.msg, "error");
            } else {
                tracing::debug!(op = op_name, request_id, status = %e.status, code = e.code, msg = %e.msg, "error");
            }
            (e.into_response_with_id(&request_id), origin)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    m.stats.record_from(op_name, resp.status().as_str(), origin);
    resp
}

/// `scheme://host` of the request, as the client addressed the mock.
fn own_base(req: &Request) -> String {
    let scheme = req.extensions().get::<Scheme>().map_or("http", |s| s.0);
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("{scheme}://{host}")
}

/// Close the connection without an answer (the server sees the extension).
fn dropped(m: &Mock, op_name: &str, origin: Origin) -> Response {
    m.stats.record_from(op_name, "dropped", origin);
    let mut r = Response::new(Body::empty());
    r.extensions_mut().insert(DropConnection);
    r
}

async fn dispatch(m: &Arc<Mock>, op: Op, req: Request) -> Result<Reply, Refusal> {
    let (latency, injected) = m.faults.before(op.name());
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }
    match injected {
        Injected::TooManyRequests => {
            return Err(Refusal {
                error: ApiError::apig(
                    StatusCode::TOO_MANY_REQUESTS,
                    errors::APIGW_THROTTLED,
                    "The throttling threshold has been reached: policy user over ratelimit,limit:100,time:1 minute (injected fault)",
                ),
                origin: Origin::Injected429,
            });
        }
        Injected::ServerError => {
            return Err(Refusal {
                error: ApiError::internal("System error (injected fault)"),
                origin: Origin::Injected5xx,
            });
        }
        Injected::None => {}
    }
    if let Some(t) = &m.throttle
        && !t.admit_for(&access_key(&req), SystemTime::now())
    {
        return Err(Refusal {
            error: ApiError::apig(
                StatusCode::TOO_MANY_REQUESTS,
                errors::APIGW_THROTTLED,
                format!(
                    "The throttling threshold has been reached: policy user over ratelimit,limit:{},time:1 second",
                    t.limit()
                ),
            ),
            origin: Origin::Throttle,
        });
    }
    Ok(authenticated(m, op, req).await?)
}

/// The `Access=` of the Authorization header (unverified: the gateway throttles before it
/// checks signatures), or "" when there is none.
fn access_key(req: &Request) -> String {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    auth.split_once("Access=")
        .map(|(_, rest)| rest.split(',').next().unwrap_or("").trim().to_owned())
        .unwrap_or_default()
}

/// Body limit and AK/SK verification, then the operation.
async fn authenticated(m: &Arc<Mock>, op: Op, req: Request) -> Result<Reply, ApiError> {
    let (parts, body) = req.into_parts();
    if parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| too_large())?;

    let view = RequestView {
        method: &parts.method,
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        authority: parts.uri.authority().map(|a| a.as_str()),
        body: &body,
    };
    let ctx = m
        .verifier
        .verify(&view, SystemTime::now(), op.is_pca())
        .map_err(|e| ApiError::unauthorized(e.message()))?;

    let query = parts.uri.query().unwrap_or("");
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    handle(m, op, query, &body, &ctx, &host).await
}

fn too_large() -> ApiError {
    ApiError::apig(
        StatusCode::PAYLOAD_TOO_LARGE,
        errors::APIGW_REQUEST_TOO_LARGE,
        "Request entity too large",
    )
}

async fn handle(
    m: &Arc<Mock>,
    op: Op,
    query: &str,
    body: &[u8],
    ctx: &AuthContext,
    host: &str,
) -> Result<Reply, ApiError> {
    match op {
        Op::ListCertificateAuthority => lists::list_cas(m, query),
        Op::CreateCertificateAuthority => cas::create_ca(m, body, ctx).await,
        Op::ShowCertificateAuthority(id) => cas::show_ca(m, &id),
        Op::DeleteCertificateAuthority(id) => cas::delete_ca(m, &id, query),
        Op::IssueCertificateAuthorityCertificate(id) => cas::activate_ca(m, &id, body).await,
        Op::ExportCertificateAuthorityCsr(id) => cas::export_ca_csr(m, &id).await,
        Op::ExportCertificateAuthorityCertificate(id) => cas::export_ca(m, &id),
        Op::EnableCertificateAuthority(id) => cas::enable_ca(m, &id),
        Op::DisableCertificateAuthority(id) => cas::disable_ca(m, &id),
        Op::RestoreCertificateAuthority(id) => cas::restore_ca(m, &id),
        Op::EnableCertificateAuthorityCrl(id) | Op::DisableCertificateAuthorityCrl(id) => cas::switch_crl(m, &id, body),
        Op::ShowCertificateAuthorityQuota => Ok(cas::quota(m)),
        Op::ShowCertificateQuota => Ok(certificates::quota(m)),
        Op::CreateCertificateByCsr => certificates::issue_by_csr(m, body, ctx).await,
        Op::ParseCertificateSigningRequest => certificates::parse_csr_op(m, body).await,
        Op::ListCertificate => lists::list_certs(m, query),
        Op::ShowCertificate(id) => certificates::show_cert(m, &id),
        Op::ExportCertificate(id) => certificates::export_cert(m, &id, body),
        Op::RevokeCertificate(id) => certificates::revoke_cert(m, &id, body),
        Op::DeleteCertificate(id) => certificates::delete_cert(m, &id),
        Op::ShowConsoleConfig => Ok(iam::console_config()),
        Op::KeystoneListAuthDomains => Ok(iam::list_auth_domains(ctx, host, m.config.iam_lists_no_domain)),
        Op::GetCallerIdentity => Ok(iam::caller_identity(ctx)),
        Op::CreateCertificateAuthorityOrder
        | Op::ImportCertificateAuthorityCertificate(_)
        | Op::RevokeCertificateAuthority(_)
        | Op::UpdateOcspSwitch(_)
        | Op::CreateCertificate => Err(ApiError::bad(
            errors::PCA_UNSUPPORTED,
            format!("{} is not supported by ccm-mock-pca", op.name()),
        )),
    }
}

/// Run CPU-heavy work (key generation, signing, CSR checks) off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

#[cfg(test)]
mod tests;
