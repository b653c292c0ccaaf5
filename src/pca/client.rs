//! Typed PCA client: signing, rate limiting, time-outs, error parsing and safe retries.

use std::{sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde::{Serialize, de::DeserializeOwned};
use tokio::{sync::OnceCell, time::Instant};
use tracing::{debug, warn};
use url::Url;

use super::{
    endpoint::host_header,
    error::{Operation, PcaError},
    ratelimit::TokenBucket,
    signer::{self, Credentials, RequestParts},
    types::*,
};

/// Responses larger than this are refused (real ones are a few KiB).
const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Error texts from the service are cut to this many characters.
const MAX_ERROR_TEXT: usize = 512;
const USER_AGENT: &str = concat!("ccm-issuer/", env!("CARGO_PKG_VERSION"));

/// When to retry a failed call.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retries).
    pub max_retries: usize,
    /// First back-off delay (jittered).
    pub min_delay: Duration,
    /// Largest back-off delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// Everything needed to build a client, apart from the credentials.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// PCA base URL.
    pub endpoint: Url,
    /// IAM base URL (domain-id discovery).
    pub iam_endpoint: Url,
    /// Account id sent as `X-Domain-Id`; discovered through IAM when `None`.
    pub domain_id: Option<String>,
    /// PEM bundle trusted for the endpoints' TLS instead of the system roots.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// PEM bundle trusted in addition to the system roots (ignored when `ca_bundle_pem` is set).
    pub extra_roots_pem: Option<Vec<u8>>,
    /// TCP + TLS set-up limit.
    pub connect_timeout: Duration,
    /// Limit for one whole request/response.
    pub request_timeout: Duration,
    /// Retry behaviour.
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// Defaults for an endpoint pair.
    pub fn new(endpoint: Url, iam_endpoint: Url) -> Self {
        Self {
            endpoint,
            iam_endpoint,
            domain_id: None,
            ca_bundle_pem: None,
            extra_roots_pem: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// What happened to one HTTP attempt, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// An HTTP status came back.
    Status(u16),
    /// No connection.
    Connect,
    /// No answer in time.
    Timeout,
    /// The connection broke.
    Transport,
}

impl CallOutcome {
    /// A bounded label: `2xx`, `4xx`, `5xx`, `timeout`, `connect_error`, `transport_error`.
    pub fn class(self) -> &'static str {
        match self {
            CallOutcome::Status(s) if s < 300 => "2xx",
            CallOutcome::Status(s) if s < 400 => "3xx",
            CallOutcome::Status(s) if s < 500 => "4xx",
            CallOutcome::Status(_) => "5xx",
            CallOutcome::Connect => "connect_error",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Transport => "transport_error",
        }
    }
}

/// Receives one notification per HTTP attempt (metrics live outside this module).
pub trait PcaObserver: Send + Sync + 'static {
    /// An attempt finished.
    fn attempt(&self, operation: Operation, outcome: CallOutcome, elapsed: Duration);
    /// A failed attempt will be retried.
    fn retry(&self, operation: Operation);
}

/// A PCA client for one account, endpoint and CA bundle.
pub struct PcaClient {
    http: reqwest::Client,
    endpoint: Url,
    iam_endpoint: Url,
    credentials: Credentials,
    domain_id: OnceCell<String>,
    limiter: Arc<TokenBucket>,
    retry: RetryPolicy,
    request_timeout: Duration,
    observer: Option<Arc<dyn PcaObserver>>,
}

impl std::fmt::Debug for PcaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcaClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("access_key", &self.credentials.access_key())
            .finish_non_exhaustive()
    }
}

struct RawResponse {
    status: u16,
    request_id: String,
    body: Vec<u8>,
}

/// Which base URL a call goes to.
#[derive(Clone, Copy)]
enum Service {
    Pca,
    Iam,
}

impl PcaClient {
    /// Builds a client. `limiter` is shared by all clients of the same endpoint and access key.
    pub fn new(
        config: ClientConfig,
        credentials: Credentials,
        limiter: Arc<TokenBucket>,
        observer: Option<Arc<dyn PcaObserver>>,
    ) -> Result<Self, PcaError> {
        crate::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(USER_AGENT)
            .http1_only()
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &config.ca_bundle_pem {
            builder = builder.tls_certs_only(pem_certificates(pem, "caBundle")?);
        } else if let Some(pem) = &config.extra_roots_pem {
            builder = builder.tls_certs_merge(pem_certificates(pem, "the extra CA bundle")?);
        }
        let http = builder
            .build()
            .map_err(|e| PcaError::Config(format!("cannot build the HTTP client: {e}")))?;
        let domain_id = OnceCell::new();
        if let Some(id) = config.domain_id.filter(|d| !d.trim().is_empty()) {
            let _ = domain_id.set(id.trim().to_owned());
        }
        Ok(Self {
            http,
            endpoint: config.endpoint,
            iam_endpoint: config.iam_endpoint,
            credentials,
            domain_id,
            limiter,
            retry: config.retry,
            request_timeout: config.request_timeout,
            observer,
        })
    }

    /// The PCA endpoint.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// The access key in use (not secret).
    pub fn access_key(&self) -> &str {
        self.credentials.access_key()
    }

    /// `ShowCertificateAuthority`.
    pub async fn show_ca(&self, ca_id: &str) -> Result<CertificateAuthority, PcaError> {
        let path = format!("/v1/private-certificate-authorities/{}", checked_id(ca_id)?);
        self.json(
            Operation::ShowCertificateAuthority,
            Method::GET,
            &path,
            &[],
            None::<&()>,
        )
        .await
    }

    /// `ExportCertificateAuthorityCertificate`: the CA certificate and its chain up to the root.
    pub async fn export_ca(&self, ca_id: &str) -> Result<ExportedPem, PcaError> {
        let path = format!("/v1/private-certificate-authorities/{}/export", checked_id(ca_id)?);
        self.json(
            Operation::ExportCertificateAuthorityCertificate,
            Method::POST,
            &path,
            &[],
            None::<&()>,
        )
        .await
    }

    /// `CreateCertificateByCsr`. Never retried after an ambiguous failure: the service has no
    /// idempotency token, so the caller must first look for a certificate that may have been issued.
    pub async fn issue_from_csr(&self, request: &IssueFromCsr) -> Result<IssuedCertificate, PcaError> {
        checked_id(&request.issuer_id)?;
        let issued = self
            .json(
                Operation::CreateCertificateByCsr,
                Method::POST,
                "/v1/private-certificates/csr",
                &[],
                Some(request),
            )
            .await?;
        checked_issued(issued)
    }

    /// Waits for the rate limiter and returns the turn for one call of
    /// [`PcaClient::issue_from_csr_once`]. Taking it before recording an issuance intent keeps
    /// the wait out of the time the intent allows for the call.
    pub async fn wait_for_turn(&self) -> Turn {
        self.limiter.acquire().await;
        Turn { _private: () }
    }

    /// `CreateCertificateByCsr` as exactly one HTTP attempt on a turn already taken: no retry
    /// (the caller owns the retry policy and the exactly-once protocol), nothing waited for
    /// (the account id must already be known or configured).
    pub async fn issue_from_csr_once(&self, turn: Turn, request: &IssueFromCsr) -> Result<IssuedCertificate, PcaError> {
        let Turn { _private: () } = turn;
        checked_id(&request.issuer_id)?;
        let op = Operation::CreateCertificateByCsr;
        let body =
            serde_json::to_vec(request).map_err(|e| PcaError::Invalid(format!("cannot encode {op} body: {e}")))?;
        let domain_id = self.domain_id().await?.to_owned();
        let raw = self
            .attempt(
                op,
                Service::Pca,
                &Method::POST,
                "/v1/private-certificates/csr",
                &[],
                &body,
                Some(&domain_id),
                false,
            )
            .await?;
        checked_issued(decode(op, &raw)?)
    }

    /// `ExportCertificate` (JSON mode, PEM).
    pub async fn export_certificate(&self, certificate_id: &str) -> Result<ExportedPem, PcaError> {
        let path = format!("/v1/private-certificates/{}/export", checked_id(certificate_id)?);
        self.json(
            Operation::ExportCertificate,
            Method::POST,
            &path,
            &[],
            Some(&ExportRequest::default()),
        )
        .await
    }

    /// `ShowCertificate`.
    pub async fn show_certificate(&self, certificate_id: &str) -> Result<PrivateCertificate, PcaError> {
        let path = format!("/v1/private-certificates/{}", checked_id(certificate_id)?);
        self.json(Operation::ShowCertificate, Method::GET, &path, &[], None::<&()>)
            .await
    }

    /// `ListCertificate`.
    pub async fn list_certificates(&self, filter: &ListCertificates) -> Result<CertificateList, PcaError> {
        let query = filter.query();
        self.json(
            Operation::ListCertificate,
            Method::GET,
            "/v1/private-certificates",
            &query,
            None::<&()>,
        )
        .await
    }

    /// `RevokeCertificate`.
    pub async fn revoke_certificate(&self, certificate_id: &str, reason: Option<RevokeReason>) -> Result<(), PcaError> {
        let path = format!("/v1/private-certificates/{}/revoke", checked_id(certificate_id)?);
        let body = RevokeRequest { reason };
        self.call(
            Operation::RevokeCertificate,
            Service::Pca,
            Method::POST,
            &path,
            &[],
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// `ShowCertificateQuota`.
    pub async fn certificate_quota(&self) -> Result<Quotas, PcaError> {
        self.json(
            Operation::ShowCertificateQuota,
            Method::GET,
            "/v1/private-certificates/quotas",
            &[],
            None::<&()>,
        )
        .await
    }

    /// `ShowCertificateAuthorityQuota`.
    pub async fn ca_quota(&self) -> Result<Quotas, PcaError> {
        let path = "/v1/private-certificate-authorities/quotas";
        self.json(
            Operation::ShowCertificateAuthorityQuota,
            Method::GET,
            path,
            &[],
            None::<&()>,
        )
        .await
    }

    /// The account id: configured, or discovered once through IAM `GET /v3/auth/domains`.
    pub async fn domain_id(&self) -> Result<&str, PcaError> {
        self.domain_id
            .get_or_try_init(|| self.discover_domain_id())
            .await
            .map(String::as_str)
    }

    async fn discover_domain_id(&self) -> Result<String, PcaError> {
        let op = Operation::KeystoneListAuthDomains;
        let raw = self
            .call_with_domain(op, Service::Iam, Method::GET, "/v3/auth/domains", &[], Vec::new(), None)
            .await?;
        let domains: Domains = decode(op, &raw)?;
        domains
            .domains
            .into_iter()
            .map(|d| d.id)
            .find(|id| !id.is_empty())
            .ok_or_else(|| PcaError::Decode {
                operation: op,
                status: raw.status,
                request_id: raw.request_id.clone(),
                detail: "IAM listed no domain for these credentials; set domainId explicitly".into(),
            })
    }

    async fn json<T: DeserializeOwned, B: Serialize>(
        &self,
        op: Operation,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T, PcaError> {
        let raw = self.call(op, Service::Pca, method, path, query, body).await?;
        decode(op, &raw)
    }

    /// One logical call, with retries where they are safe.
    async fn call<B: Serialize>(
        &self,
        op: Operation,
        service: Service,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<RawResponse, PcaError> {
        let body = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| PcaError::Invalid(format!("cannot encode {op} body: {e}")))?,
            None => Vec::new(),
        };
        let domain_id = match service {
            Service::Pca => Some(self.domain_id().await?.to_owned()),
            Service::Iam => None,
        };
        self.call_with_domain(op, service, method, path, query, body, domain_id)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn call_with_domain(
        &self,
        op: Operation,
        service: Service,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Vec<u8>,
        domain_id: Option<String>,
    ) -> Result<RawResponse, PcaError> {
        let policy = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries)
            .with_jitter();
        let attempt = || self.attempt(op, service, &method, path, query, &body, domain_id.as_deref(), true);
        attempt
            .retry(policy)
            .sleep(tokio::time::sleep)
            .when(|e: &PcaError| e.is_retryable() && (op.is_idempotent() || !e.is_ambiguous()))
            .notify(|e, delay| {
                warn!(operation = %op, error = %e, ?delay, "retrying PCA call");
                if let Some(o) = &self.observer {
                    o.retry(op);
                }
            })
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        op: Operation,
        service: Service,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: &[u8],
        domain_id: Option<&str>,
        rate_limited: bool,
    ) -> Result<RawResponse, PcaError> {
        let base = match service {
            Service::Pca => &self.endpoint,
            Service::Iam => &self.iam_endpoint,
        };
        let (url, headers) = self.signed_request(base, method, path, query, body, domain_id)?;
        if rate_limited {
            self.limiter.acquire().await;
        }
        let started = Instant::now();
        let mut request = self.http.request(method.clone(), url).headers(headers);
        if !body.is_empty() {
            request = request.body(body.to_vec());
        }
        let result = match request.send().await {
            Ok(resp) => read_response(op, base, resp, self.request_timeout).await,
            Err(e) => Err(transport_error(op, base, &e, self.request_timeout)),
        };
        let outcome = match &result {
            Ok(raw) => CallOutcome::Status(raw.status),
            Err(PcaError::Connect { .. }) => CallOutcome::Connect,
            Err(PcaError::Timeout { .. }) => CallOutcome::Timeout,
            Err(PcaError::Transport { .. }) => CallOutcome::Transport,
            Err(PcaError::Api { status, .. } | PcaError::Decode { status, .. }) => CallOutcome::Status(*status),
            Err(PcaError::Config(_) | PcaError::Invalid(_)) => CallOutcome::Transport,
        };
        let elapsed = started.elapsed();
        if matches!(service, Service::Pca) {
            // The adaptive rate learns from every PCA answer (a 429 cuts it).
            self.limiter.observe(started, outcome);
        }
        if let Some(o) = &self.observer {
            o.attempt(op, outcome, elapsed);
        }
        debug!(operation = %op, outcome = outcome.class(), elapsed_ms = elapsed.as_millis() as u64, "PCA call");
        let raw = result?;
        if (200..300).contains(&raw.status) {
            Ok(raw)
        } else {
            Err(api_error(op, &raw))
        }
    }

    /// The URL and the signed headers of one attempt (fresh `X-Sdk-Date` each time).
    fn signed_request(
        &self,
        base: &Url,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: &[u8],
        domain_id: Option<&str>,
    ) -> Result<(Url, HeaderMap), PcaError> {
        let mut url = base.clone();
        let full_path = format!("{}{}", base.path().trim_end_matches('/'), path);
        url.set_path(&full_path);
        let query_refs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Send exactly the canonical (RFC 3986-escaped, sorted) query, so the gateway decodes
        // what we signed whatever its form-decoding rules are.
        let canonical_query = signer::canonical_query(&query_refs);
        url.set_query((!canonical_query.is_empty()).then_some(canonical_query.as_str()));

        let date = signer::sdk_date(jiff::Timestamp::now());
        let host = host_header(&url);
        let mut to_sign: Vec<(&str, &str)> = vec![
            ("Content-Type", "application/json"),
            ("Host", &host),
            ("X-Sdk-Date", &date),
        ];
        if let Some(d) = domain_id {
            to_sign.push(("X-Domain-Id", d));
        }
        let token = self
            .credentials
            .security_token()
            .map(secrecy::ExposeSecret::expose_secret);
        if let Some(t) = token {
            to_sign.push(("X-Security-Token", t));
        }
        let hash = signer::payload_hash(body);
        let parts = RequestParts {
            method: method.as_str(),
            path: &full_path,
            query: &query_refs,
            headers: &to_sign,
            payload_hash: &hash,
        };
        let authorization = signer::authorization(&self.credentials, &parts, &date);
        let mut headers = HeaderMap::new();
        for (name, value) in to_sign
            .iter()
            .copied()
            .chain([("Authorization", authorization.as_str())])
        {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| PcaError::Invalid(format!("header name {name}: {e}")))?;
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| PcaError::Invalid(format!("header {name} has a value that cannot be sent")))?;
            if name == "x-security-token" || name == "authorization" {
                value.set_sensitive(true);
            }
            headers.insert(name, value);
        }
        Ok((url, headers))
    }
}

/// Proof that the rate limiter was passed for one issue call.
#[must_use = "a turn is spent by issue_from_csr_once"]
#[derive(Debug)]
pub struct Turn {
    _private: (),
}

/// The issue call's answer must carry a usable id.
fn checked_issued(issued: IssuedCertificate) -> Result<IssuedCertificate, PcaError> {
    checked_id(&issued.certificate_id).map_err(|_| PcaError::Decode {
        operation: Operation::CreateCertificateByCsr,
        status: 200,
        request_id: "unknown".into(),
        detail: format!(
            "certificate_id {:?} is not an id",
            issued.certificate_id.chars().take(64).collect::<String>()
        ),
    })?;
    Ok(issued)
}

fn pem_certificates(pem: &[u8], what: &str) -> Result<Vec<reqwest::Certificate>, PcaError> {
    let certs = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|e| PcaError::Config(format!("{what} is not a PEM certificate bundle: {e}")))?;
    if certs.is_empty() {
        return Err(PcaError::Config(format!("{what} contains no certificate")));
    }
    Ok(certs)
}

/// Ids go into URL paths: accept only UUID-shaped ones (pca-api.md §1.4).
pub fn checked_id(id: &str) -> Result<&str, PcaError> {
    if is_uuid_shaped(id) {
        Ok(id)
    } else {
        Err(PcaError::Invalid(format!(
            "{id:?} is not a PCA id (a 36-character UUID)"
        )))
    }
}

/// Whether `s` is a lower-case 8-4-4-4-12 hex UUID.
pub fn is_uuid_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

async fn read_response(
    op: Operation,
    base: &Url,
    mut resp: reqwest::Response,
    timeout: Duration,
) -> Result<RawResponse, PcaError> {
    let status = resp.status().as_u16();
    let request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(PcaError::Decode {
                        operation: op,
                        status,
                        request_id: request_id.unwrap_or_else(|| "unknown".into()),
                        detail: format!("response body larger than {MAX_RESPONSE_BYTES} bytes"),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(transport_error(op, base, &e, timeout)),
        }
    }
    let request_id = request_id
        .or_else(|| {
            serde_json::from_slice::<ErrorBody>(&body)
                .ok()
                .and_then(|b| b.request_id)
        })
        .unwrap_or_else(|| "unknown".into());
    Ok(RawResponse {
        status,
        request_id,
        body,
    })
}

fn transport_error(op: Operation, base: &Url, e: &reqwest::Error, timeout: Duration) -> PcaError {
    let endpoint = base.as_str().trim_end_matches('/').to_owned();
    // The URL is ours and holds no secret, but keep messages short: the cause chain says enough.
    let detail = error_chain(e);
    if e.is_connect() {
        PcaError::Connect {
            operation: op,
            endpoint,
            detail,
        }
    } else if e.is_timeout() {
        PcaError::Timeout {
            operation: op,
            endpoint,
            timeout,
        }
    } else {
        PcaError::Transport {
            operation: op,
            endpoint,
            detail,
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut current = e.source();
    while let Some(cause) = current {
        parts.push(cause.to_string());
        current = cause.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

fn api_error(op: Operation, raw: &RawResponse) -> PcaError {
    let parsed = serde_json::from_slice::<ErrorBody>(&raw.body).unwrap_or_default();
    let code = parsed
        .error_code
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("HTTP{}", raw.status));
    let message = parsed.error_msg.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&raw.body);
        let status = StatusCode::from_u16(raw.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        if text.trim().is_empty() {
            status.to_owned()
        } else {
            text.trim().to_owned()
        }
    });
    PcaError::Api {
        operation: op,
        status: raw.status,
        code,
        message: truncate(&message, MAX_ERROR_TEXT),
        request_id: raw.request_id.clone(),
    }
}

fn decode<T: DeserializeOwned>(op: Operation, raw: &RawResponse) -> Result<T, PcaError> {
    serde_json::from_slice(&raw.body).map_err(|e| PcaError::Decode {
        operation: op,
        status: raw.status,
        request_id: raw.request_id.clone(),
        detail: format!("invalid JSON: {e}"),
    })
}

fn truncate(s: &str, max: usize) -> String {
    let cleaned: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if cleaned.chars().count() <= max {
        cleaned
    } else {
        let cut: String = cleaned.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        assert!(is_uuid_shaped("4bd1b320-e162-419f-8add-dfcc046197c7"));
        for bad in [
            "",
            "4bd1b320-e162-419f-8add-dfcc046197c",
            "4BD1B320-E162-419F-8ADD-DFCC046197C7",
            "../../v1/private-certificates/quotas",
            "4bd1b320-e162-419f-8add-dfcc046197c7/",
            "4bd1b320ee162e419fe8addedfcc046197c7",
        ] {
            assert!(!is_uuid_shaped(bad), "{bad}");
        }
    }

    #[test]
    fn api_errors_without_json_body_still_name_status() {
        let raw = RawResponse {
            status: 502,
            request_id: "r1".into(),
            body: b"<html>bad gateway</html>".to_vec(),
        };
        let e = api_error(Operation::ShowCertificateAuthority, &raw);
        let msg = e.to_string();
        assert!(
            msg.contains("HTTP502") && msg.contains("bad gateway") && msg.contains("r1"),
            "{msg}"
        );
        assert!(e.is_retryable() && e.is_ambiguous());
    }

    #[test]
    fn api_errors_parse_the_service_shape() {
        let raw = RawResponse {
            status: 400,
            request_id: "abc".into(),
            body: br#"{"error_code":"PCA.10010002","error_msg":"CA not found"}"#.to_vec(),
        };
        let e = api_error(Operation::ShowCertificateAuthority, &raw);
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "ShowCertificateAuthority failed: HTTP 400 PCA.10010002: CA not found (request id abc)"
        );
    }

    #[test]
    fn long_error_text_is_cut_and_controls_removed() {
        let t = truncate(&format!("a\nb{}", "x".repeat(2000)), 10);
        assert_eq!(t, "a bxxxxxxx…");
    }
}
