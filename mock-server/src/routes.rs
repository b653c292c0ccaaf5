//! HTTP surface: the Huawei paths (matched by hand so that unknown paths, wrong methods
//! and every error get the real API's JSON shapes) and the `/_mock/` controls.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::auth::RequestView;
use crate::ca::{self, CaCertSpec, CaKey, Dn, HashAlg, IssueKind, IssuerMaterial, KeyAlgorithm};
use crate::errors::{self, ApiError, new_request_id};
use crate::faults::Injected;
use crate::state::{CaRecord, CaStatus, CaType, CertRecord, CertStatus, CrlConfig, GenMode};
use crate::timeutil;
use crate::{Mock, PeerAddr};

/// Gateway body limit for AK/SK-signed requests.
pub const MAX_BODY: usize = 12 * 1024 * 1024;

/// Response extension: close the connection instead of sending this response.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// Build the router.
pub fn app(mock: Arc<Mock>) -> Router {
    let controls = Router::new()
        .route("/_mock/health", get(health))
        .route("/_mock/faults", get(get_faults).post(set_faults).delete(reset_faults))
        .route("/_mock/stats", get(get_stats))
        .route("/_mock/stats/reset", post(reset_stats))
        .route_layer(axum::middleware::from_fn(loopback_only));
    controls.fallback(huawei).with_state(mock)
}

// ---------------------------------------------------------------------------------------
// /_mock/ controls

async fn loopback_only(req: Request, next: Next) -> Response {
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

async fn health(State(m): State<Arc<Mock>>) -> Response {
    axum::Json(json!({"status": "ok", "cas": m.store.all_cas().len(), "certificates": m.store.cert_count()}))
        .into_response()
}

async fn get_faults(State(m): State<Arc<Mock>>) -> Response {
    axum::Json(m.faults.get()).into_response()
}

async fn set_faults(State(m): State<Arc<Mock>>, body: axum::body::Bytes) -> Response {
    let plan: crate::faults::FaultPlan = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return mock_error(StatusCode::BAD_REQUEST, &format!("invalid fault plan: {e}")),
    };
    match m.faults.set(plan) {
        Ok(()) => axum::Json(m.faults.get()).into_response(),
        Err(e) => mock_error(StatusCode::BAD_REQUEST, &e),
    }
}

async fn reset_faults(State(m): State<Arc<Mock>>) -> Response {
    m.faults.reset();
    axum::Json(m.faults.get()).into_response()
}

async fn get_stats(State(m): State<Arc<Mock>>) -> Response {
    axum::Json(m.stats.snapshot()).into_response()
}

async fn reset_stats(State(m): State<Arc<Mock>>) -> Response {
    m.stats.reset();
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------------------
// Route table

/// One PCA/IAM operation, named as in the official SDKs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    ListCertificateAuthority,
    CreateCertificateAuthority,
    CreateCertificateAuthorityOrder,
    ShowCertificateAuthority(String),
    DeleteCertificateAuthority(String),
    IssueCertificateAuthorityCertificate(String),
    ImportCertificateAuthorityCertificate(String),
    ExportCertificateAuthorityCsr(String),
    ExportCertificateAuthorityCertificate(String),
    EnableCertificateAuthority(String),
    DisableCertificateAuthority(String),
    RestoreCertificateAuthority(String),
    RevokeCertificateAuthority(String),
    EnableCertificateAuthorityCrl(String),
    DisableCertificateAuthorityCrl(String),
    UpdateOcspSwitch(String),
    ShowCertificateAuthorityQuota,
    CreateCertificate,
    CreateCertificateByCsr,
    ParseCertificateSigningRequest,
    ListCertificate,
    ShowCertificate(String),
    ExportCertificate(String),
    RevokeCertificate(String),
    DeleteCertificate(String),
    ShowCertificateQuota,
    ShowConsoleConfig,
    KeystoneListAuthDomains,
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Self::ListCertificateAuthority => "ListCertificateAuthority",
            Self::CreateCertificateAuthority => "CreateCertificateAuthority",
            Self::CreateCertificateAuthorityOrder => "CreateCertificateAuthorityOrder",
            Self::ShowCertificateAuthority(_) => "ShowCertificateAuthority",
            Self::DeleteCertificateAuthority(_) => "DeleteCertificateAuthority",
            Self::IssueCertificateAuthorityCertificate(_) => "IssueCertificateAuthorityCertificate",
            Self::ImportCertificateAuthorityCertificate(_) => "ImportCertificateAuthorityCertificate",
            Self::ExportCertificateAuthorityCsr(_) => "ExportCertificateAuthorityCsr",
            Self::ExportCertificateAuthorityCertificate(_) => "ExportCertificateAuthorityCertificate",
            Self::EnableCertificateAuthority(_) => "EnableCertificateAuthority",
            Self::DisableCertificateAuthority(_) => "DisableCertificateAuthority",
            Self::RestoreCertificateAuthority(_) => "RestoreCertificateAuthority",
            Self::RevokeCertificateAuthority(_) => "RevokeCertificateAuthority",
            Self::EnableCertificateAuthorityCrl(_) => "EnableCertificateAuthorityCrl",
            Self::DisableCertificateAuthorityCrl(_) => "DisableCertificateAuthorityCrl",
            Self::UpdateOcspSwitch(_) => "UpdateOcspSwitch",
            Self::ShowCertificateAuthorityQuota => "ShowCertificateAuthorityQuota",
            Self::CreateCertificate => "CreateCertificate",
            Self::CreateCertificateByCsr => "CreateCertificateByCsr",
            Self::ParseCertificateSigningRequest => "ParseCertificateSigningRequest",
            Self::ListCertificate => "ListCertificate",
            Self::ShowCertificate(_) => "ShowCertificate",
            Self::ExportCertificate(_) => "ExportCertificate",
            Self::RevokeCertificate(_) => "RevokeCertificate",
            Self::DeleteCertificate(_) => "DeleteCertificate",
            Self::ShowCertificateQuota => "ShowCertificateQuota",
            Self::ShowConsoleConfig => "ShowConsoleConfig",
            Self::KeystoneListAuthDomains => "KeystoneListAuthDomains",
        }
    }

    /// PCA operations are a global service: `X-Domain-Id` is required.
    pub fn is_pca(&self) -> bool {
        !matches!(self, Self::KeystoneListAuthDomains)
    }

    /// Match method + raw path. Literal segments win over ids; an unknown path or a
    /// method the path does not have is `None` (gateway 404).
    pub fn route(method: &Method, path: &str) -> Option<Op> {
        let segs: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let m = method;
        let id = |s: &str| s.to_owned();
        Some(match segs.as_slice() {
            ["v1", "private-certificate-authorities"] if m == Method::GET => Self::ListCertificateAuthority,
            ["v1", "private-certificate-authorities"] if m == Method::POST => Self::CreateCertificateAuthority,
            ["v1", "private-certificate-authorities", "quotas"] if m == Method::GET => {
                Self::ShowCertificateAuthorityQuota
            }
            ["v1", "private-certificate-authorities", "quotas"] => return None,
            ["v1", "private-certificate-authorities", "order"] if m == Method::POST => {
                Self::CreateCertificateAuthorityOrder
            }
            ["v1", "private-certificate-authorities", "order"] => return None,
            ["v1", "private-certificate-authorities", ca] if m == Method::GET => Self::ShowCertificateAuthority(id(ca)),
            ["v1", "private-certificate-authorities", ca] if m == Method::DELETE => {
                Self::DeleteCertificateAuthority(id(ca))
            }
            ["v1", "private-certificate-authorities", ca, "csr"] if m == Method::GET => {
                Self::ExportCertificateAuthorityCsr(id(ca))
            }
            ["v1", "private-certificate-authorities", ca, action] if m == Method::POST => match *action {
                "activate" => Self::IssueCertificateAuthorityCertificate(id(ca)),
                "import" => Self::ImportCertificateAuthorityCertificate(id(ca)),
                "export" => Self::ExportCertificateAuthorityCertificate(id(ca)),
                "enable" => Self::EnableCertificateAuthority(id(ca)),
                "disable" => Self::DisableCertificateAuthority(id(ca)),
                "restore" => Self::RestoreCertificateAuthority(id(ca)),
                "revoke" => Self::RevokeCertificateAuthority(id(ca)),
                _ => return None,
            },
            ["v1", "private-certificate-authorities", ca, "crl", "enable"] if m == Method::POST => {
                Self::EnableCertificateAuthorityCrl(id(ca))
            }
            ["v1", "private-certificate-authorities", ca, "crl", "disable"] if m == Method::POST => {
                Self::DisableCertificateAuthorityCrl(id(ca))
            }
            ["v1", "private-certificate-authorities", ca, "ocsp", "switch"] if m == Method::POST => {
                Self::UpdateOcspSwitch(id(ca))
            }
            ["v1", "private-certificates"] if m == Method::GET => Self::ListCertificate,
            ["v1", "private-certificates"] if m == Method::POST => Self::CreateCertificate,
            ["v1", "private-certificates", "csr"] if m == Method::POST => Self::CreateCertificateByCsr,
            ["v1", "private-certificates", "csr"] => return None,
            ["v1", "private-certificates", "csr", "parse"] if m == Method::POST => Self::ParseCertificateSigningRequest,
            ["v1", "private-certificates", "quotas"] if m == Method::GET => Self::ShowCertificateQuota,
            ["v1", "private-certificates", "quotas"] => return None,
            ["v1", "private-certificates", c] if m == Method::GET => Self::ShowCertificate(id(c)),
            ["v1", "private-certificates", c] if m == Method::DELETE => Self::DeleteCertificate(id(c)),
            ["v1", "private-certificates", c, "export"] if m == Method::POST => Self::ExportCertificate(id(c)),
            ["v1", "private-certificates", c, "revoke"] if m == Method::POST => Self::RevokeCertificate(id(c)),
            ["v1", "pca", "config", "console"] if m == Method::GET => Self::ShowConsoleConfig,
            ["v3", "auth", "domains"] if m == Method::GET => Self::KeystoneListAuthDomains,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Dispatch

enum Reply {
    Json(Value),
    NoContent,
    Dropped,
}

async fn huawei(State(m): State<Arc<Mock>>, req: Request) -> Response {
    let request_id = new_request_id();
    let op = Op::route(req.method(), req.uri().path());
    let op_name = op.as_ref().map(Op::name).unwrap_or("Unknown");
    let result = match op {
        Some(op) => dispatch(&m, op, req).await,
        None => Err(ApiError::api_not_found()),
    };
    let mut resp = match result {
        Ok(Reply::Json(v)) => (StatusCode::OK, axum::Json(v)).into_response(),
        Ok(Reply::NoContent) => StatusCode::NO_CONTENT.into_response(),
        Ok(Reply::Dropped) => {
            m.stats.record(op_name, "dropped");
            tracing::info!(op = op_name, request_id, "fault: dropping connection after issuance");
            let mut r = Response::new(Body::empty());
            r.extensions_mut().insert(DropConnection);
            return r;
        }
        Err(e) => {
            if e.status.is_server_error() || e.status == StatusCode::UNAUTHORIZED {
                tracing::info!(op = op_name, request_id, status = %e.status, code = e.code, msg = %e.msg, "error");
            } else {
                tracing::debug!(op = op_name, request_id, status = %e.status, code = e.code, msg = %e.msg, "error");
            }
            e.into_response_with_id(&request_id)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    m.stats.record(op_name, resp.status().as_str());
    resp
}

async fn dispatch(m: &Arc<Mock>, op: Op, req: Request) -> Result<Reply, ApiError> {
    let (latency, injected) = m.faults.before(op.name());
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }
    match injected {
        Injected::TooManyRequests => {
            return Err(ApiError::apig(
                StatusCode::TOO_MANY_REQUESTS,
                errors::APIGW_THROTTLED,
                "The throttling threshold has been reached: policy user over ratelimit,limit:100,time:1 minute (injected fault)",
            ));
        }
        Injected::ServerError => return Err(ApiError::internal("System error (injected fault)")),
        Injected::None => {}
    }
    if let Some(t) = &m.throttle
        && !t.admit(SystemTime::now())
    {
        return Err(ApiError::apig(
            StatusCode::TOO_MANY_REQUESTS,
            errors::APIGW_THROTTLED,
            format!(
                "The throttling threshold has been reached: policy user over ratelimit,limit:{},time:1 second",
                t.limit()
            ),
        ));
    }

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
    ctx: &crate::auth::AuthContext,
    host: &str,
) -> Result<Reply, ApiError> {
    match op {
        Op::ListCertificateAuthority => list_cas(m, query),
        Op::CreateCertificateAuthority => create_ca(m, body, ctx).await,
        Op::ShowCertificateAuthority(id) => {
            check_ca_id(&id)?;
            let ca = m.store.get_ca(&id).ok_or_else(|| ApiError::not_found("CA", &id))?;
            Ok(Reply::Json(ca_json(&ca, timeutil::now_ms())))
        }
        Op::DeleteCertificateAuthority(id) => delete_ca(m, &id, query),
        Op::IssueCertificateAuthorityCertificate(id) => activate_ca(m, &id, body).await,
        Op::ExportCertificateAuthorityCsr(id) => {
            check_ca_id(&id)?;
            let ca = m.store.get_ca(&id).ok_or_else(|| ApiError::not_found("CA", &id))?;
            if ca.status != CaStatus::Pending {
                return Err(ca_status_error(&ca, "export its CSR"));
            }
            let key = ca
                .key
                .clone()
                .ok_or_else(|| ApiError::internal("pending CA has no key"))?;
            let dn = ca.dn.clone();
            let der =
                blocking(move || ca::make_ca_csr(&dn, &key).map_err(|e| ApiError::internal(e.to_string()))).await?;
            Ok(Reply::Json(json!({"csr": ca::pem_crlf("CERTIFICATE REQUEST", &der)})))
        }
        Op::ExportCertificateAuthorityCertificate(id) => export_ca(m, &id),
        Op::EnableCertificateAuthority(id) => {
            check_ca_id(&id)?;
            m.store.update_ca(&id, |ca| {
                if ca.status != CaStatus::Disabled {
                    return Err(ca_status_error(ca, "enable it"));
                }
                ca.status = CaStatus::Actived;
                Ok(())
            })?;
            Ok(Reply::NoContent)
        }
        Op::DisableCertificateAuthority(id) => {
            check_ca_id(&id)?;
            let now = timeutil::now_ms();
            m.store.update_ca(&id, |ca| {
                if !matches!(ca.effective_status(now), CaStatus::Actived | CaStatus::Expired) {
                    return Err(ca_status_error(ca, "disable it"));
                }
                ca.status = CaStatus::Disabled;
                Ok(())
            })?;
            Ok(Reply::NoContent)
        }
        // [unconfirmed] status code for restore: 204 like the other CA actions.
        Op::RestoreCertificateAuthority(id) => {
            check_ca_id(&id)?;
            m.store.update_ca(&id, |ca| {
                if ca.status != CaStatus::Deleted {
                    return Err(ca_status_error(ca, "restore it"));
                }
                ca.status = CaStatus::Disabled;
                ca.delete_time = 0;
                Ok(())
            })?;
            Ok(Reply::NoContent)
        }
        Op::EnableCertificateAuthorityCrl(id) | Op::DisableCertificateAuthorityCrl(id) => {
            check_ca_id(&id)?;
            let enable = body_is_enable_crl(body)?;
            m.store.update_ca(&id, |ca| {
                ca.crl.enabled = enable.is_some();
                if let Some(cfg) = enable {
                    ca.crl = cfg;
                }
                Ok(())
            })?;
            Ok(Reply::NoContent)
        }
        Op::ShowCertificateAuthorityQuota => Ok(Reply::Json(quota_json(
            "CERTIFICATE_AUTHORITY",
            m.store.ca_counts(),
            m.config.ca_quota,
        ))),
        Op::ShowCertificateQuota => Ok(Reply::Json(quota_json(
            "CERTIFICATE",
            m.store.cert_count(),
            m.config.cert_quota,
        ))),
        Op::CreateCertificateByCsr => issue_by_csr(m, body, ctx).await,
        Op::ParseCertificateSigningRequest => parse_csr_op(body).await,
        Op::ListCertificate => list_certs(m, query),
        Op::ShowCertificate(id) => {
            check_cert_id(&id)?;
            let c = m
                .store
                .get_cert(&id)
                .ok_or_else(|| ApiError::not_found("certificate", &id))?;
            Ok(Reply::Json(cert_json(&c, timeutil::now_ms())))
        }
        Op::ExportCertificate(id) => export_cert(m, &id, body),
        Op::RevokeCertificate(id) => revoke_cert(m, &id, body),
        Op::DeleteCertificate(id) => {
            check_cert_id(&id)?;
            m.store
                .remove_cert(&id)
                .ok_or_else(|| ApiError::not_found("certificate", &id))?;
            Ok(Reply::NoContent)
        }
        Op::ShowConsoleConfig => Ok(Reply::Json(json!({
            "is_support_eps": false,
            "is_support_sm2": false,
            "is_support_dhsm": false,
            "dhsm_regions": [],
            "is_support_yearly_monthly_ca": false,
            "is_support_iam5": false,
            "is_support_ocsp": false
        }))),
        Op::KeystoneListAuthDomains => {
            // Keystone shape; the SDKs read `domains[0].id`.
            let base = format!("https://{host}/v3");
            Ok(Reply::Json(json!({
                "domains": [{
                    "id": ctx.domain_id,
                    "name": format!("mock-account-{}", &ctx.domain_id[..ctx.domain_id.len().min(8)]),
                    "enabled": true,
                    "description": "",
                    "links": {"self": format!("{base}/domains/{}", ctx.domain_id)}
                }],
                "links": {"self": format!("{base}/auth/domains"), "previous": null, "next": null}
            })))
        }
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

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

// ---------------------------------------------------------------------------------------
// Validation helpers

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

fn check_ca_id(id: &str) -> Result<(), ApiError> {
    if is_uuid(id) {
        Ok(())
    } else {
        Err(ApiError::bad(
            errors::PCA_BAD_CA_ID,
            "Invalid CA ID. It must match [0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}",
        ))
    }
}

fn check_cert_id(id: &str) -> Result<(), ApiError> {
    if is_uuid(id) {
        Ok(())
    } else {
        Err(ApiError::param("invalid certificate_id"))
    }
}

fn ca_status_error(ca: &CaRecord, action: &str) -> ApiError {
    ApiError::bad(
        errors::PCA_CA_STATUS,
        format!(
            "The CA status is {}; cannot {action}",
            ca.effective_status(timeutil::now_ms()).as_str()
        ),
    )
}

/// Parse a JSON object body. Empty, non-JSON or non-object bodies are errors.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::param("request body is required"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::param("request body must be a JSON object")),
        Err(_) => Err(ApiError::param("request body is not valid JSON")),
    }
}

fn opt_str<'a>(o: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::param(format!("{key} must be a string"))),
    }
}

fn req_str<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    opt_str(o, key)?.ok_or_else(|| ApiError::param(format!("{key} is required")))
}

fn opt_int(o: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::param(format!("{key} must be an integer"))),
        Some(_) => Err(ApiError::param(format!("{key} must be an integer"))),
    }
}

/// A JSON bool or the strings "true"/"false" (the SDK sends strings, terraform bools).
fn opt_boolish(o: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(_) => Err(ApiError::param(format!("{key} must be \"true\" or \"false\""))),
    }
}

fn check_enterprise_project(o: &Map<String, Value>) -> Result<String, ApiError> {
    let Some(ep) = opt_str(o, "enterprise_project_id")? else {
        return Ok("0".to_owned());
    };
    let uuidish = ep.len() == 36
        && ep.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || c.is_ascii_lowercase(),
        });
    if ep == "0" || ep == "all" || uuidish {
        Ok(ep.to_owned())
    } else {
        Err(ApiError::param("invalid enterprise_project_id"))
    }
}

/// A parsed `Validity` turned into a time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub not_before: time::OffsetDateTime,
    pub not_after: time::OffsetDateTime,
}

/// Parse `validity` and compute [start, end). `max_years` bounds the value per unit
/// (YEAR ≤ n, MONTH ≤ 12n, DAY ≤ 365n, HOUR ≤ 8760n).
pub fn parse_validity(v: Option<&Value>, max_years: i64, now: time::OffsetDateTime) -> Result<Window, ApiError> {
    let bad = |msg: &str| {
        ApiError::bad(
            errors::PCA_BAD_VALIDITY,
            format!("Invalid validity period type or value: {msg}"),
        )
    };
    let o = match v {
        Some(Value::Object(o)) => o,
        None | Some(Value::Null) => return Err(bad("validity is required")),
        Some(_) => return Err(bad("validity must be an object")),
    };
    let ty = match o.get("type") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(bad("type is required (YEAR, MONTH, DAY or HOUR)")),
    };
    let value = match o.get("value") {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| bad("value must be an integer"))?,
        _ => return Err(bad("value is required and must be an integer")),
    };
    // [unconfirmed] minimum value: 1.
    if value < 1 {
        return Err(bad("value must be at least 1"));
    }
    // [unconfirmed] numeric maximum per unit; "converted to years" is read per unit so that
    // e.g. MONTH 240 (= 20 years) is accepted.
    let limit = match ty {
        "YEAR" => max_years,
        "MONTH" => max_years * 12,
        "DAY" => max_years * 365,
        "HOUR" => max_years * 365 * 24,
        _ => return Err(bad("type must be YEAR, MONTH, DAY or HOUR")),
    };
    if value > limit {
        return Err(bad(&format!("longer than {max_years} years")));
    }
    // start_from: epoch ms, as a JSON integer or a numeric string (SDK typing differs).
    let start = match o.get("start_from") {
        None | Some(Value::Null) => now,
        Some(Value::Number(n)) => {
            let ms = n
                .as_i64()
                .ok_or_else(|| bad("start_from must be an integer (epoch ms)"))?;
            start_from_ms(ms, now).ok_or_else(|| bad("start_from must not be earlier than 5 minutes ago"))?
        }
        Some(Value::String(s)) => {
            let ms: i64 = s
                .trim()
                .parse()
                .map_err(|_| bad("start_from must be numeric (epoch ms)"))?;
            start_from_ms(ms, now).ok_or_else(|| bad("start_from must not be earlier than 5 minutes ago"))?
        }
        Some(_) => return Err(bad("start_from must be an integer (epoch ms)")),
    };
    let end = match ty {
        // YEAR = 12 calendar months, MONTH = 31 days (pca-api.md §2.8).
        "YEAR" => timeutil::add_months(start, value * 12).ok_or_else(|| bad("out of range"))?,
        "MONTH" => start + time::Duration::days(31 * value),
        "DAY" => start + time::Duration::days(value),
        _ => start + time::Duration::hours(value),
    };
    Ok(Window {
        not_before: start,
        not_after: end,
    })
}

fn start_from_ms(ms: i64, now: time::OffsetDateTime) -> Option<time::OffsetDateTime> {
    let t = timeutil::ms_to_datetime(ms)?;
    (t >= now - time::Duration::minutes(5)).then_some(t)
}

fn now_dt() -> time::OffsetDateTime {
    timeutil::ms_to_datetime(timeutil::now_ms()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn parse_key_usages(o: &Map<String, Value>) -> Result<Option<Vec<rcgen::KeyUsagePurpose>>, ApiError> {
    use rcgen::KeyUsagePurpose as K;
    let arr = match o.get("key_usages") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::param("key_usages must be an array")),
    };
    let mut out = Vec::new();
    for v in arr {
        out.push(match v.as_str() {
            Some("digitalSignature") => K::DigitalSignature,
            Some("nonRepudiation") => K::ContentCommitment,
            Some("keyEncipherment") => K::KeyEncipherment,
            Some("dataEncipherment") => K::DataEncipherment,
            Some("keyAgreement") => K::KeyAgreement,
            Some("keyCertSign") => K::KeyCertSign,
            Some("cRLSign") => K::CrlSign,
            Some("encipherOnly") => K::EncipherOnly,
            Some("decipherOnly") => K::DecipherOnly,
            _ => return Err(ApiError::param(format!("unknown key usage {v}"))),
        });
    }
    Ok(Some(out))
}

fn default_ca_key_usages() -> Vec<rcgen::KeyUsagePurpose> {
    use rcgen::KeyUsagePurpose as K;
    vec![K::DigitalSignature, K::KeyCertSign, K::CrlSign]
}

// ---------------------------------------------------------------------------------------
// JSON views

fn dn_json(dn: &Dn) -> Value {
    serde_json::to_value(dn).unwrap_or(Value::Null)
}

fn ca_json(ca: &CaRecord, now_ms: i64) -> Value {
    let pending = ca.cert_der.is_none();
    json!({
        "ca_id": ca.ca_id,
        "type": ca.ca_type.as_str(),
        "status": ca.effective_status(now_ms).as_str(),
        "path_length": ca.path_length,
        "issuer_id": ca.issuer_id,
        "issuer_name": ca.issuer_name,
        "key_algorithm": ca.key_algorithm.as_str(),
        "signature_algorithm": ca.signature_algorithm.as_str(),
        "freeze_flag": 0,
        "gen_mode": ca.gen_mode.as_str(),
        "serial_number": if pending { Value::Null } else { json!(ca.serial_number) },
        "create_time": ca.create_time,
        "delete_time": ca.delete_time,
        "not_before": if pending { Value::Null } else { json!(ca.not_before) },
        "not_after": if pending { Value::Null } else { json!(ca.not_after) },
        "distinguished_name": dn_json(&ca.dn),
        "crl_configuration": {
            "enabled": ca.crl.enabled,
            "crl_name": ca.crl.crl_name,
            "obs_bucket_name": ca.crl.obs_bucket_name,
            "valid_days": ca.crl.valid_days,
            "crl_dis_point": ca.crl.crl_dis_point,
        },
        "enterprise_project_id": ca.enterprise_project_id,
        "free_quota": 0,
        "charging_mode": 1,
        "domain_id": ca.domain_id,
    })
}

fn cert_json(c: &CertRecord, now_ms: i64) -> Value {
    json!({
        "certificate_id": c.certificate_id,
        "status": c.effective_status(now_ms).as_str(),
        "issuer_id": c.issuer_id,
        "issuer_name": c.issuer_name,
        "key_algorithm": c.key_algorithm.as_str(),
        "signature_algorithm": c.signature_algorithm.as_str(),
        "freeze_flag": 0,
        "gen_mode": c.gen_mode.as_str(),
        "serial_number": c.serial_number,
        "create_time": c.create_time,
        "delete_time": c.delete_time,
        "not_before": c.not_before,
        "not_after": c.not_after,
        "distinguished_name": dn_json(&c.dn),
        "enterprise_project_id": c.enterprise_project_id,
    })
}

fn quota_json(ty: &str, used: u64, quota: u64) -> Value {
    json!({"quotas": {"resources": [{"type": ty, "used": used, "quota": quota}]}})
}

fn chain_pem(ders: &[crate::state::Der]) -> String {
    ders.iter().map(|d| ca::pem_crlf("CERTIFICATE", d)).collect()
}

// ---------------------------------------------------------------------------------------
// Listing

struct ListParams {
    limit: usize,
    offset: usize,
    name: Option<String>,
    status: Option<String>,
    ca_type: Option<String>,
    sort_key: String,
    desc: bool,
}

fn parse_list_query(query: &str, sort_keys: &[&str], allow_type: bool) -> Result<ListParams, ApiError> {
    let mut p = ListParams {
        limit: 10,
        offset: 0,
        name: None,
        status: None,
        ca_type: None,
        sort_key: "create_time".into(),
        desc: true,
    };
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = String::from_utf8_lossy(&crate::auth::percent_decode(k, true)).into_owned();
        let v = String::from_utf8_lossy(&crate::auth::percent_decode(v, true)).into_owned();
        match k.as_str() {
            "limit" => {
                p.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= 1000)
                    .ok_or_else(|| ApiError::param("limit must be an integer in [0,1000]"))?;
            }
            "offset" => {
                p.offset = v
                    .parse::<usize>()
                    .map_err(|_| ApiError::param("offset must be a non-negative integer"))?;
            }
            "name" => {
                if v.is_empty() || v.chars().count() > 64 {
                    return Err(ApiError::param("name length must be in [1,64]"));
                }
                p.name = Some(v);
            }
            "status" => p.status = Some(v),
            "type" if allow_type => {
                if v != "ROOT" && v != "SUBORDINATE" {
                    return Err(ApiError::bad(
                        errors::PCA_BAD_CA_TYPE,
                        "Invalid CA type (ROOT or SUBORDINATE)",
                    ));
                }
                p.ca_type = Some(v);
            }
            "sort_key" => {
                if !sort_keys.contains(&v.as_str()) {
                    return Err(ApiError::param(format!(
                        "sort_key must be one of {}",
                        sort_keys.join(", ")
                    )));
                }
                p.sort_key = v;
            }
            "sort_dir" => {
                p.desc = match v.as_str() {
                    "DESC" => true,
                    "ASC" => false,
                    _ => return Err(ApiError::param("sort_dir must be ASC or DESC")),
                }
            }
            // [unconfirmed] unknown query parameters are ignored (e.g. enterprise_project_id
            // filters the mock does not model).
            _ => {}
        }
    }
    Ok(p)
}

fn page<T>(mut items: Vec<T>, p: &ListParams) -> (usize, Vec<T>) {
    let total = items.len();
    let start = p.offset.min(total);
    let end = start.saturating_add(p.limit).min(total);
    (total, items.drain(start..end).collect())
}

fn list_cas(m: &Arc<Mock>, query: &str) -> Result<Reply, ApiError> {
    let p = parse_list_query(
        query,
        &["create_time", "common_name", "type", "ca_type", "not_after"],
        true,
    )?;
    if let Some(s) = &p.status
        && CaStatus::parse(s).is_none()
    {
        return Err(ApiError::param(
            "status must be PENDING, ACTIVED, DISABLED, DELETED or EXPIRED",
        ));
    }
    let now = timeutil::now_ms();
    let mut cas: Vec<_> = m
        .store
        .all_cas()
        .into_iter()
        .filter(|c| !c.hidden)
        .filter(|c| p.name.as_ref().is_none_or(|n| c.dn.cn().contains(n.as_str())))
        .filter(|c| p.status.as_ref().is_none_or(|s| c.effective_status(now).as_str() == s))
        .filter(|c| p.ca_type.as_ref().is_none_or(|t| c.ca_type.as_str() == t))
        .collect();
    cas.sort_by(|a, b| {
        let o = match p.sort_key.as_str() {
            "common_name" => a.dn.cn().cmp(b.dn.cn()),
            "type" | "ca_type" => a.ca_type.as_str().cmp(b.ca_type.as_str()),
            "not_after" => a.not_after.cmp(&b.not_after),
            _ => a.create_time.cmp(&b.create_time),
        }
        .then_with(|| a.ca_id.cmp(&b.ca_id));
        if p.desc { o.reverse() } else { o }
    });
    let (total, items) = page(cas, &p);
    Ok(Reply::Json(json!({
        "total": total,
        "certificate_authorities": items.iter().map(|c| ca_json(c, now)).collect::<Vec<_>>(),
    })))
}

fn list_certs(m: &Arc<Mock>, query: &str) -> Result<Reply, ApiError> {
    let p = parse_list_query(
        query,
        &["create_time", "common_name", "issuer_name", "not_after"],
        false,
    )?;
    if let Some(s) = &p.status
        && CertStatus::parse(s).is_none()
    {
        return Err(ApiError::param("status must be ISSUED, REVOKED or EXPIRED"));
    }
    let now = timeutil::now_ms();
    let mut certs: Vec<_> = m
        .store
        .all_certs()
        .into_iter()
        .filter(|c| p.name.as_ref().is_none_or(|n| c.dn.cn().contains(n.as_str())))
        .filter(|c| p.status.as_ref().is_none_or(|s| c.effective_status(now).as_str() == s))
        .collect();
    certs.sort_by(|a, b| {
        let o = match p.sort_key.as_str() {
            "common_name" => a.dn.cn().cmp(b.dn.cn()),
            "issuer_name" => a.issuer_name.cmp(&b.issuer_name),
            "not_after" => a.not_after.cmp(&b.not_after),
            _ => a.create_time.cmp(&b.create_time),
        }
        .then_with(|| a.certificate_id.cmp(&b.certificate_id));
        if p.desc { o.reverse() } else { o }
    });
    let (total, items) = page(certs, &p);
    Ok(Reply::Json(json!({
        "total": total,
        "certificates": items.iter().map(|c| cert_json(c, now)).collect::<Vec<_>>(),
    })))
}

// ---------------------------------------------------------------------------------------
// CA management

/// Shared "sign a CA certificate for `key` under `parent`" used by create and activate.
struct SubCaRequest {
    path_length: u32,
    hash: HashAlg,
    window: Window,
    key_usages: Vec<rcgen::KeyUsagePurpose>,
}

fn check_parent_for_sub_ca(parent: &CaRecord, path_length: u32, window: &Window) -> Result<(), ApiError> {
    if parent.effective_status(timeutil::now_ms()) != CaStatus::Actived {
        return Err(ca_status_error(parent, "issue certificates"));
    }
    if parent.key.is_none() {
        return Err(ApiError::bad(
            errors::PCA_CA_STATUS,
            "The issuing CA's private key is not hosted by PCA",
        ));
    }
    // [unconfirmed] exact enforcement. The issuing CA's path_length bounds the new CA's:
    // a CA with path_length 0 cannot issue CAs, and the requested value must be smaller
    // than the parent's (what RFC 5280 path validation would demand anyway).
    if parent.path_length == 0 || path_length >= parent.path_length {
        return Err(ApiError::bad(
            errors::PCA_BAD_PATH_LENGTH,
            format!(
                "Invalid CA path length: {path_length} must be less than the issuing CA's path length {}",
                parent.path_length
            ),
        ));
    }
    check_within_parent(parent, window)
}

fn check_within_parent(parent: &CaRecord, w: &Window) -> Result<(), ApiError> {
    // [unconfirmed] for leaves: a validity ending after the issuing CA's not_after is
    // rejected rather than truncated — the safe choice (a client never receives a
    // certificate shorter than it asked for without knowing).
    if timeutil::datetime_to_ms(w.not_after) > parent.not_after {
        return Err(ApiError::bad(
            errors::PCA_BAD_VALIDITY,
            "Invalid validity period type or value: the validity exceeds the issuing CA's validity",
        ));
    }
    if timeutil::datetime_to_ms(w.not_before) < parent.not_before {
        return Err(ApiError::bad(
            errors::PCA_BAD_VALIDITY,
            "Invalid validity period type or value: the validity starts before the issuing CA's",
        ));
    }
    Ok(())
}

async fn sign_sub_ca(
    m: &Arc<Mock>,
    parent_id: &str,
    key: Arc<CaKey>,
    dn: Dn,
    req: &SubCaRequest,
) -> Result<(Vec<u8>, crate::state::Der, Arc<CaRecord>), ApiError> {
    check_ca_id(parent_id)?;
    let parent = m
        .store
        .get_ca(parent_id)
        .ok_or_else(|| ApiError::not_found("CA", parent_id))?;
    check_parent_for_sub_ca(&parent, req.path_length, &req.window)?;
    let pkey = parent
        .key
        .clone()
        .ok_or_else(|| ApiError::internal("parent key missing"))?;
    let serial = ca::random_serial();
    let (pdn, pkid) = (parent.dn.clone(), parent.key_id.clone());
    let (hash, usages, w, pl) = (req.hash, req.key_usages.clone(), req.window, req.path_length);
    let serial2 = serial.clone();
    let der = blocking(move || {
        let issuer = IssuerMaterial {
            dn: &pdn,
            key_id: &pkid,
            key: &pkey,
        };
        ca::make_ca_cert(
            &CaCertSpec {
                dn: &dn,
                key: &key,
                path_length: Some(u8::try_from(pl).unwrap_or(u8::MAX)),
                key_usages: usages,
                not_before: w.not_before,
                not_after: w.not_after,
                serial: &serial2,
                hash,
            },
            Some(&issuer),
        )
        .map_err(pki_error)
    })
    .await?;
    Ok((serial, crate::state::Der::from(der), parent))
}

fn pki_error(e: ca::PkiError) -> ApiError {
    match e {
        ca::PkiError::UnsupportedHash(what) => ApiError::bad(
            errors::PCA_BAD_SIGNATURE_ALGORITHM,
            format!("Invalid signature hash algorithm: {what} is not supported by ccm-mock-pca for EC keys"),
        ),
        other => ApiError::internal(other.to_string()),
    }
}

fn parse_hash(o: &Map<String, Value>, required: bool) -> Result<Option<HashAlg>, ApiError> {
    match opt_str(o, "signature_algorithm")? {
        None if required => Err(ApiError::bad(
            errors::PCA_BAD_SIGNATURE_ALGORITHM,
            "Invalid signature hash algorithm: signature_algorithm is required (SHA256, SHA384, SHA512)",
        )),
        None => Ok(None),
        Some(s) => HashAlg::parse(s).map(Some).ok_or_else(|| {
            ApiError::bad(
                errors::PCA_BAD_SIGNATURE_ALGORITHM,
                "Invalid signature hash algorithm (SHA256, SHA384, SHA512)",
            )
        }),
    }
}

fn parse_path_length(o: &Map<String, Value>) -> Result<Option<u32>, ApiError> {
    match opt_int(o, "path_length") {
        Ok(None) => Ok(None),
        Ok(Some(n)) if (0..=6).contains(&n) => Ok(Some(n as u32)),
        _ => Err(ApiError::bad(
            errors::PCA_BAD_PATH_LENGTH,
            "Invalid CA path length: must be an integer in [0,6]",
        )),
    }
}

async fn create_ca(m: &Arc<Mock>, body: &[u8], ctx: &crate::auth::AuthContext) -> Result<Reply, ApiError> {
    let o = json_object(body)?;
    let ca_type = match opt_str(&o, "type")? {
        Some("ROOT") => CaType::Root,
        Some("SUBORDINATE") => CaType::Subordinate,
        _ => {
            return Err(ApiError::bad(
                errors::PCA_BAD_CA_TYPE,
                "Invalid CA type (ROOT or SUBORDINATE)",
            ));
        }
    };
    let dn: Dn = match o.get("distinguished_name") {
        Some(v @ Value::Object(_)) => serde_json::from_value(v.clone())
            .map_err(|e| ApiError::bad(errors::PCA_BAD_DN, format!("Incorrect distinguished name: {e}")))?,
        _ => {
            return Err(ApiError::bad(
                errors::PCA_BAD_DN,
                "Incorrect distinguished name: distinguished_name is required",
            ));
        }
    };
    dn.validate_for_ca()
        .map_err(|e| ApiError::bad(errors::PCA_BAD_DN, format!("Incorrect distinguished name: {e}")))?;
    let key_alg = opt_str(&o, "key_algorithm")?
        .and_then(KeyAlgorithm::parse)
        .ok_or_else(|| {
            ApiError::bad(
                errors::PCA_BAD_KEY_ALGORITHM,
                "Invalid key algorithm (RSA2048, RSA4096, EC256, EC384)",
            )
        })?;
    let ep = check_enterprise_project(&o)?;
    let key_usages = parse_key_usages(&o)?;
    if opt_str(&o, "ca_id")?.is_some() {
        return Err(ApiError::bad(
            errors::PCA_UNSUPPORTED,
            "prepaid CA orders (ca_id) are not supported by ccm-mock-pca",
        ));
    }
    if m.store.ca_counts() >= m.config.ca_quota {
        return Err(ApiError::bad(
            errors::PCA_QUOTA,
            format!("The CA quota ({}) has been used up", m.config.ca_quota),
        ));
    }
    let hash = parse_hash(&o, ca_type == CaType::Root)?;
    let now = now_dt();
    let id = uuid::Uuid::new_v4().to_string();
    let key =
        Arc::new(blocking(move || CaKey::generate(key_alg).map_err(|e| ApiError::internal(e.to_string()))).await?);
    let mut rec = CaRecord {
        ca_id: id.clone(),
        ca_type,
        status: CaStatus::Pending,
        path_length: 0,
        issuer_id: None,
        issuer_name: None,
        key_algorithm: key_alg,
        signature_algorithm: hash.unwrap_or(HashAlg::Sha384),
        gen_mode: GenMode::Generate,
        serial_number: String::new(),
        create_time: timeutil::now_ms(),
        delete_time: 0,
        not_before: 0,
        not_after: 0,
        dn: dn.clone(),
        crl: parse_crl(&o)?.unwrap_or_default(),
        enterprise_project_id: ep,
        hidden: false,
        domain_id: ctx.domain_id.clone(),
        cert_der: None,
        key_pkcs8: Some(crate::state::Der::from(key.pkcs8_der())),
        key_id: key.key_id(),
        key: Some(key.clone()),
        revoke_reason: None,
    };
    match ca_type {
        CaType::Root => {
            let w = parse_validity(o.get("validity"), 30, now)?;
            let hash = hash.unwrap_or(HashAlg::Sha384);
            let serial = ca::random_serial();
            let (dn2, key2, serial2) = (dn.clone(), key.clone(), serial.clone());
            let der = blocking(move || {
                ca::make_ca_cert(
                    &CaCertSpec {
                        dn: &dn2,
                        key: &key2,
                        path_length: None,
                        key_usages: default_ca_key_usages(),
                        not_before: w.not_before,
                        not_after: w.not_after,
                        serial: &serial2,
                        hash,
                    },
                    None,
                )
                .map_err(pki_error)
            })
            .await?;
            // Roots are stored with path_length 7 and carry no pathLen constraint.
            rec.path_length = 7;
            rec.status = CaStatus::Actived;
            rec.serial_number = ca::serial_hex(&serial);
            rec.not_before = timeutil::datetime_to_ms(w.not_before);
            rec.not_after = timeutil::datetime_to_ms(w.not_after);
            rec.cert_der = Some(der.into());
        }
        CaType::Subordinate => {
            let path_length = parse_path_length(&o)?.unwrap_or(0);
            rec.path_length = path_length;
            let issuer_id = opt_str(&o, "issuer_id")?;
            let validity = o.get("validity").filter(|v| !v.is_null());
            if let (Some(issuer_id), Some(hash), Some(validity)) = (issuer_id, hash, validity) {
                let w = parse_validity(Some(validity), 20, now)?;
                let req = SubCaRequest {
                    path_length,
                    hash,
                    window: w,
                    key_usages: key_usages.unwrap_or_else(default_ca_key_usages),
                };
                let (serial, der, parent) = sign_sub_ca(m, issuer_id, key.clone(), dn.clone(), &req).await?;
                rec.status = CaStatus::Actived;
                rec.issuer_id = Some(parent.ca_id.clone());
                rec.issuer_name = Some(parent.dn.cn().to_owned());
                rec.serial_number = ca::serial_hex(&serial);
                rec.not_before = timeutil::datetime_to_ms(w.not_before);
                rec.not_after = timeutil::datetime_to_ms(w.not_after);
                rec.cert_der = Some(der);
            }
            // Otherwise: PENDING; activate or import later.
        }
    }
    m.store.insert_ca_checked(rec, m.config.ca_quota)?;
    Ok(Reply::Json(json!({"ca_id": id})))
}

fn parse_crl(o: &Map<String, Value>) -> Result<Option<CrlConfig>, ApiError> {
    match o.get("crl_configuration") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(c)) => {
            let enabled = match c.get("enabled") {
                Some(Value::Bool(b)) => *b,
                _ => return Err(ApiError::param("crl_configuration.enabled is required")),
            };
            let mut cfg = CrlConfig {
                enabled,
                ..Default::default()
            };
            if let Some(n) = opt_str(c, "crl_name")? {
                cfg.crl_name = n.to_owned();
            }
            if let Some(n) = opt_str(c, "obs_bucket_name")? {
                cfg.obs_bucket_name = n.to_owned();
            }
            cfg.valid_days = opt_int(c, "valid_days")?.unwrap_or(0);
            if enabled && (cfg.obs_bucket_name.is_empty() || !(7..=30).contains(&cfg.valid_days)) {
                return Err(ApiError::param(
                    "obs_bucket_name and valid_days (7..30) are required when CRL is enabled",
                ));
            }
            Ok(Some(cfg))
        }
        Some(_) => Err(ApiError::param("crl_configuration must be an object")),
    }
}

/// `crl/enable` carries the CRL settings; `crl/disable` has no body.
fn body_is_enable_crl(body: &[u8]) -> Result<Option<CrlConfig>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let o = json_object(body)?;
    let mut c = o.clone();
    c.entry("enabled").or_insert(Value::Bool(true));
    let mut wrapper = Map::new();
    wrapper.insert("crl_configuration".into(), Value::Object(c));
    parse_crl(&wrapper)
}

async fn activate_ca(m: &Arc<Mock>, id: &str, body: &[u8]) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    let o = json_object(body)?;
    let ca = m.store.get_ca(id).ok_or_else(|| ApiError::not_found("CA", id))?;
    if ca.status != CaStatus::Pending {
        return Err(ca_status_error(&ca, "activate it"));
    }
    let issuer_id = req_str(&o, "issuer_id")?;
    let hash = parse_hash(&o, true)?.unwrap_or(HashAlg::Sha384);
    let w = parse_validity(o.get("validity"), 20, now_dt())?;
    let path_length = parse_path_length(&o)?.unwrap_or(ca.path_length);
    let key = ca
        .key
        .clone()
        .ok_or_else(|| ApiError::internal("pending CA has no key"))?;
    let req = SubCaRequest {
        path_length,
        hash,
        window: w,
        key_usages: parse_key_usages(&o)?.unwrap_or_else(default_ca_key_usages),
    };
    let (serial, der, parent) = sign_sub_ca(m, issuer_id, key, ca.dn.clone(), &req).await?;
    m.store.update_ca(id, |rec| {
        if rec.status != CaStatus::Pending {
            return Err(ca_status_error(rec, "activate it"));
        }
        rec.status = CaStatus::Actived;
        rec.path_length = path_length;
        rec.signature_algorithm = hash;
        rec.issuer_id = Some(parent.ca_id.clone());
        rec.issuer_name = Some(parent.dn.cn().to_owned());
        rec.serial_number = ca::serial_hex(&serial);
        rec.not_before = timeutil::datetime_to_ms(w.not_before);
        rec.not_after = timeutil::datetime_to_ms(w.not_after);
        rec.cert_der = Some(der.clone());
        Ok(())
    })?;
    Ok(Reply::NoContent)
}

fn delete_ca(m: &Arc<Mock>, id: &str, query: &str) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    // [unconfirmed] pending_days default when absent: 7 (the minimum of 7..30).
    let mut pending_days: i64 = 7;
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        if let Some(("pending_days", v)) = pair.split_once('=') {
            pending_days = v
                .parse()
                .ok()
                .filter(|d| (7..=30).contains(d))
                .ok_or_else(|| ApiError::param("pending_days must be an integer in [7,30]"))?;
        }
    }
    let ca = m.store.get_ca(id).ok_or_else(|| ApiError::not_found("CA", id))?;
    match ca.status {
        // PENDING CAs are removed immediately.
        CaStatus::Pending => {
            m.store.remove_ca(id);
        }
        CaStatus::Disabled => {
            m.store.update_ca(id, |rec| {
                if rec.status != CaStatus::Disabled {
                    return Err(ca_status_error(rec, "delete it"));
                }
                rec.status = CaStatus::Deleted;
                rec.delete_time = timeutil::now_ms() + pending_days * 86_400_000;
                Ok(())
            })?;
        }
        _ => {
            return Err(ca_status_error(
                &ca,
                "delete it (only PENDING or DISABLED CAs can be deleted)",
            ));
        }
    }
    Ok(Reply::NoContent)
}

fn export_ca(m: &Arc<Mock>, id: &str) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    let ca = m.store.get_ca(id).ok_or_else(|| ApiError::not_found("CA", id))?;
    if !matches!(
        ca.effective_status(timeutil::now_ms()),
        CaStatus::Actived | CaStatus::Expired
    ) {
        return Err(ca_status_error(&ca, "export its certificate"));
    }
    let der = ca
        .cert_der
        .clone()
        .ok_or_else(|| ApiError::internal("CA has no certificate"))?;
    // [unconfirmed] root export: `certificate_chain` is empty (the root is only in
    // `certificate`). A client must take the trust anchor from `certificate` of a root
    // export, or from the last block of a subordinate's chain.
    let chain = match &ca.issuer_id {
        Some(parent) => chain_pem(&m.store.chain_from(parent)?),
        None => String::new(),
    };
    Ok(Reply::Json(json!({
        "certificate": ca::pem_crlf("CERTIFICATE", &der),
        "certificate_chain": chain,
    })))
}

// ---------------------------------------------------------------------------------------
// Certificates

async fn issue_by_csr(m: &Arc<Mock>, body: &[u8], ctx: &crate::auth::AuthContext) -> Result<Reply, ApiError> {
    let o = json_object(body)?;
    let issuer_id = req_str(&o, "issuer_id")?;
    check_ca_id(issuer_id)?;
    let csr_pem = req_str(&o, "csr")?.to_owned();
    let kind = match opt_str(&o, "type")? {
        None | Some("ENTITY_CERT") => IssueKind::Entity,
        Some("INTERMEDIATE_CA") => {
            let pl = match opt_int(&o, "path_length")? {
                None => 0,
                Some(n) if (0..=6).contains(&n) => n as u8,
                Some(_) => {
                    return Err(ApiError::bad(
                        errors::PCA_BAD_PATH_LENGTH,
                        "Invalid CA path length: must be in [0,6]",
                    ));
                }
            };
            IssueKind::Intermediate { path_length: pl }
        }
        Some(_) => return Err(ApiError::param("type must be ENTITY_CERT or INTERMEDIATE_CA")),
    };
    // subject_alternative_names in the body is documented as reserved and ignored.
    if let Some(v) = o.get("subject_alternative_names")
        && !v.is_null()
        && !v.is_array()
    {
        return Err(ApiError::param("subject_alternative_names must be an array"));
    }
    let ep = check_enterprise_project(&o)?;
    let window = parse_validity(o.get("validity"), 20, now_dt())?;

    let ca = m
        .store
        .get_ca(issuer_id)
        .ok_or_else(|| ApiError::not_found("CA", issuer_id))?;
    if ca.effective_status(timeutil::now_ms()) != CaStatus::Actived {
        return Err(ca_status_error(&ca, "issue certificates"));
    }
    let key = ca.key.clone().ok_or_else(|| {
        ApiError::bad(
            errors::PCA_CA_STATUS,
            "The CA's private key is not hosted by PCA; it cannot issue",
        )
    })?;
    // [unconfirmed] same path-length rule as for CA creation (see check_parent_for_sub_ca).
    if let IssueKind::Intermediate { path_length } = kind
        && (ca.path_length == 0 || u32::from(path_length) >= ca.path_length)
    {
        return Err(ApiError::bad(
            errors::PCA_BAD_PATH_LENGTH,
            format!(
                "Invalid CA path length: {path_length} must be less than the issuing CA's path length {}",
                ca.path_length
            ),
        ));
    }
    check_within_parent(&ca, &window)?;
    if kind == IssueKind::Entity && m.store.cert_count() >= m.config.cert_quota {
        return Err(ApiError::bad(
            errors::PCA_QUOTA,
            format!(
                "The private certificate quota ({}) has been used up",
                m.config.cert_quota
            ),
        ));
    }

    // Parse, verify and sign off the async workers and outside every lock.
    let serial = ca::random_serial();
    let (ca2, serial2) = (ca.clone(), serial.clone());
    let (parsed, der) = blocking(move || {
        let parsed = ca::parse_csr(&csr_pem).map_err(csr_error)?;
        let issuer = IssuerMaterial {
            dn: &ca2.dn,
            key_id: &ca2.key_id,
            key: &key,
        };
        let der = ca::issue_from_csr(&parsed, &issuer, kind, window.not_before, window.not_after, &serial2)
            .map_err(pki_error)?;
        Ok((parsed, der))
    })
    .await?;

    let id = uuid::Uuid::new_v4().to_string();
    let now_ms = timeutil::now_ms();
    let (nb, na) = (
        timeutil::datetime_to_ms(window.not_before),
        timeutil::datetime_to_ms(window.not_after),
    );
    match kind {
        IssueKind::Entity => {
            m.store.insert_cert_checked(
                CertRecord {
                    certificate_id: id.clone(),
                    status: CertStatus::Issued,
                    issuer_id: ca.ca_id.clone(),
                    issuer_name: ca.dn.cn().to_owned(),
                    key_algorithm: parsed.key_algorithm,
                    signature_algorithm: HashAlg::Sha384,
                    gen_mode: GenMode::Csr,
                    serial_number: ca::serial_hex(&serial),
                    create_time: now_ms,
                    delete_time: 0,
                    not_before: nb,
                    not_after: na,
                    dn: parsed.dn.clone(),
                    enterprise_project_id: ep,
                    domain_id: ctx.domain_id.clone(),
                    cert_der: Some(der.into()),
                    revoke_reason: None,
                    spki_sha256: parsed.spki_sha256.clone(),
                },
                m.config.cert_quota,
            )?;
        }
        IssueKind::Intermediate { path_length } => {
            // §2.3: the certificate_id is the new CA's ca_id; readable via show-CA and
            // CA export, not listed, no CA quota, key on the user side (gen_mode CSR).
            m.store.insert_ca(CaRecord {
                ca_id: id.clone(),
                ca_type: CaType::Subordinate,
                status: CaStatus::Actived,
                path_length: u32::from(path_length),
                issuer_id: Some(ca.ca_id.clone()),
                issuer_name: Some(ca.dn.cn().to_owned()),
                key_algorithm: parsed.key_algorithm,
                signature_algorithm: HashAlg::Sha384,
                gen_mode: GenMode::Csr,
                serial_number: ca::serial_hex(&serial),
                create_time: now_ms,
                delete_time: 0,
                not_before: nb,
                not_after: na,
                dn: parsed.dn.clone(),
                crl: CrlConfig::default(),
                enterprise_project_id: ep,
                hidden: true,
                domain_id: ctx.domain_id.clone(),
                cert_der: Some(der.into()),
                key_pkcs8: None,
                key_id: ca::key_id_of(&parsed.public_key_bits),
                key: None,
                revoke_reason: None,
            });
        }
    }
    m.stats.record_issued(&parsed.spki_sha256);

    // Fault injection after a successful issuance: the ambiguous failures.
    if m.faults.take_drop() {
        return Ok(Reply::Dropped);
    }
    if let Some(d) = m.faults.hang() {
        tokio::time::sleep(d).await;
    }
    Ok(Reply::Json(json!({"certificate_id": id})))
}

fn csr_error(e: ca::CsrError) -> ApiError {
    match e {
        ca::CsrError::UnsupportedKey(_) => {
            ApiError::bad(errors::PCA_BAD_KEY_ALGORITHM, format!("Invalid key algorithm: {e}"))
        }
        ca::CsrError::BadDn(_) => ApiError::bad(
            errors::PCA_BAD_DN,
            format!("Incorrect certificate distinguished name: {e}"),
        ),
        ca::CsrError::BadSan(_) => ApiError::bad(errors::PCA_BAD_SAN_TYPE, format!("Invalid SAN type: {e}")),
        ca::CsrError::Garbage(_) | ca::CsrError::BadSignature => ApiError::param(e.to_string()),
    }
}

async fn parse_csr_op(body: &[u8]) -> Result<Reply, ApiError> {
    let o = json_object(body)?;
    let pem = req_str(&o, "csr")?.to_owned();
    let parsed = blocking(move || ca::parse_csr(&pem).map_err(csr_error)).await?;
    let (alg, bits) = match parsed.key_algorithm {
        KeyAlgorithm::Rsa2048 => ("RSA", 2048),
        KeyAlgorithm::Rsa4096 => ("RSA", 4096),
        KeyAlgorithm::Ec256 => ("EC", 256),
        KeyAlgorithm::Ec384 => ("EC", 384),
    };
    Ok(Reply::Json(json!({
        "key_algorithm": alg,
        "key_algorithm_length": bits,
        "signature_algorithm": parsed.signature_algorithm,
        "public_key": ca::pem_crlf("PUBLIC KEY", &parsed.spki_der),
        "distinguished_name": dn_json(&parsed.dn),
    })))
}

fn export_cert(m: &Arc<Mock>, id: &str, body: &[u8]) -> Result<Reply, ApiError> {
    check_cert_id(id)?;
    let o = json_object(body)?;
    let compressed = opt_boolish(&o, "is_compressed")?.ok_or_else(|| ApiError::param("is_compressed is required"))?;
    match req_str(&o, "type")? {
        "APACHE" | "NGINX" | "IIS" | "TOMCAT" | "OTHER" => {}
        _ => return Err(ApiError::param("type must be APACHE, NGINX, IIS, TOMCAT or OTHER")),
    }
    opt_boolish(&o, "is_sm_standard")?;
    let c = m
        .store
        .get_cert(id)
        .ok_or_else(|| ApiError::not_found("certificate", id))?;
    if c.effective_status(timeutil::now_ms()) != CertStatus::Issued {
        return Err(ApiError::bad(
            errors::PCA_CERT_STATUS,
            format!(
                "The certificate status is {}; only ISSUED certificates can be exported",
                c.effective_status(timeutil::now_ms()).as_str()
            ),
        ));
    }
    if compressed {
        return Err(ApiError::bad(
            errors::PCA_UNSUPPORTED,
            "is_compressed=true (zip export) is not supported by ccm-mock-pca; use is_compressed=false",
        ));
    }
    let der = c
        .cert_der
        .clone()
        .ok_or_else(|| ApiError::internal("certificate has no DER"))?;
    let chain = m.store.chain_from(&c.issuer_id)?;
    Ok(Reply::Json(json!({
        "certificate": ca::pem_crlf("CERTIFICATE", &der),
        "certificate_chain": chain_pem(&chain),
    })))
}

const REVOKE_REASONS: &[&str] = &[
    "UNSPECIFIED",
    "KEY_COMPROMISE",
    "CERTIFICATE_AUTHORITY_COMPROMISE",
    "AFFILIATION_CHANGED",
    "SUPERSEDED",
    "CESSATION_OF_OPERATION",
    "CERTIFICATE_HOLD",
    "PRIVILEGE_WITHDRAWN",
    "ATTRIBUTE_AUTHORITY_COMPROMISE",
];

fn revoke_cert(m: &Arc<Mock>, id: &str, body: &[u8]) -> Result<Reply, ApiError> {
    check_cert_id(id)?;
    // Documented: without a reason the body must be `{}`; an empty body is an error.
    let o =
        json_object(body).map_err(|e| ApiError::param(format!("{}; send {{}} to revoke without a reason", e.msg)))?;
    let reason = opt_str(&o, "reason")?.unwrap_or("UNSPECIFIED").to_owned();
    if !REVOKE_REASONS.contains(&reason.as_str()) {
        return Err(ApiError::param(format!(
            "reason must be one of {}",
            REVOKE_REASONS.join(", ")
        )));
    }
    let now = timeutil::now_ms();
    m.store.update_cert(id, |c| {
        if c.effective_status(now) != CertStatus::Issued {
            return Err(ApiError::bad(
                errors::PCA_CERT_STATUS,
                format!(
                    "The certificate status is {}; only ISSUED certificates can be revoked",
                    c.effective_status(now).as_str()
                ),
            ));
        }
        c.status = CertStatus::Revoked;
        c.revoke_reason = Some(reason);
        Ok(())
    })?;
    Ok(Reply::NoContent)
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
