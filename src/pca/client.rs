//! Typed PCA client: signing, rate limiting, time-outs, error parsing and safe retries.

use std::{sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, header::HeaderMap};
use serde::Serialize;
use tokio::{sync::OnceCell, time::Instant};
use tracing::{debug, warn};
use url::Url;

use super::{
    endpoint::host_header,
    error::{Operation, PcaError, request_id_text},
    error_body::ServiceError,
    ratelimit::TokenBucket,
    scrub::id_for_message,
    signer::{self, Credentials, RequestParts},
    types::*,
};

/// Responses larger than this are refused: real ones are a few KiB (a 100-entry list page
/// about 100 KiB), and a hostile body must not cost more memory per request than this.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Longest account id accepted from IAM or STS (real ones are 32 hex characters).
const MAX_DOMAIN_ID: usize = 64;
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
    /// IAM base URL (domain-id discovery), resolved independently of `endpoint`
    /// ([`resolve_iam`](super::endpoint::resolve_iam)).
    pub iam_endpoint: Url,
    /// STS base URL, asked for the account id when IAM lists none
    /// ([`resolve_sts`](super::endpoint::resolve_sts)); `None`: no fallback.
    pub sts_endpoint: Option<Url>,
    /// Account id sent as `X-Domain-Id`; discovered through IAM (then STS) when `None`.
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
            sts_endpoint: None,
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
    sts_endpoint: Option<Url>,
    credentials: Credentials,
    domain_id: OnceCell<String>,
    limiter: Arc<TokenBucket>,
    retry: RetryPolicy,
    request_timeout: Duration,
    observer: Option<Arc<dyn PcaObserver>>,
    pca_clock: PcaClock,
    /// How long the PCA took to answer lately (send to answer, smoothed), in microseconds;
    /// 0 until an answer was seen.
    answer_time_us: std::sync::atomic::AtomicU64,
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
    Sts,
}

/// One logical request, sent once or retried.
struct Call<'a> {
    op: Operation,
    service: Service,
    method: Method,
    path: &'a str,
    query: &'a [(&'a str, String)],
    body: Vec<u8>,
    /// `X-Domain-Id`; never on IAM and STS calls (they tell it).
    domain_id: Option<String>,
    /// The caller already waited for the rate limiter ([`PcaClient::wait_for_turn`]).
    turn_taken: bool,
}

impl<'a> Call<'a> {
    /// A signed `GET` to IAM or STS that discovers the account.
    fn identity(op: Operation, service: Service, path: &'a str) -> Self {
        Self {
            op,
            service,
            method: Method::GET,
            path,
            query: &[],
            body: Vec::new(),
            domain_id: None,
            turn_taken: false,
        }
    }
}

impl PcaClient {
    /// Builds a client. `limiter` is shared by all clients of the same endpoint and access key.
    pub fn new(
        config: ClientConfig,
        credentials: Credentials,
        limiter: Arc<TokenBucket>,
        observer: Option<Arc<dyn PcaObserver>>,
    ) -> Result<Self, PcaError> {
        let tls = super::tls::client_config(config.ca_bundle_pem.as_deref(), config.extra_roots_pem.as_deref())?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(USER_AGENT)
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| PcaError::config(&format!("cannot build the HTTP client: {e}")))?;
        let domain_id = OnceCell::new();
        if let Some(id) = config.domain_id.filter(|d| !d.trim().is_empty()) {
            let _ = domain_id.set(id.trim().to_owned());
        }
        Ok(Self {
            http,
            endpoint: config.endpoint,
            iam_endpoint: config.iam_endpoint,
            sts_endpoint: config.sts_endpoint,
            credentials,
            domain_id,
            limiter,
            retry: config.retry,
            request_timeout: config.request_timeout,
            observer,
            pca_clock: PcaClock::default(),
            answer_time_us: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The PCA endpoint.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// How far the service's clock is ahead of ours (ms), from the `Date` header of its last
    /// answer, if one was seen. Only a hint (a proxy may write its own `Date`): use it to order
    /// work, never to decide.
    pub fn pca_clock_offset_ms(&self) -> Option<i64> {
        self.pca_clock.offset_ms()
    }

    /// How long the PCA has taken to answer lately (from sending a call to its answer, the
    /// rate limiter's wait excluded; smoothed over the last few calls), if any answer was seen.
    pub fn recent_answer_time(&self) -> Option<Duration> {
        match self.answer_time_us.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// The access key in use (not secret).
    pub fn access_key(&self) -> &str {
        self.credentials.access_key()
    }

    /// The IAM endpoint used for account-id discovery.
    pub fn iam_endpoint(&self) -> &Url {
        &self.iam_endpoint
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
    /// idempotency token, so the caller must first look for a certificate that may have been
    /// issued. An answer without a UUID-shaped `certificate_id` is an ambiguous
    /// [`PcaError::Decode`].
    pub async fn issue_from_csr(&self, request: &IssueFromCsr) -> Result<IssuedCertificate, PcaError> {
        checked_id(&request.issuer_id)?;
        self.json(
            Operation::CreateCertificateByCsr,
            Method::POST,
            "/v1/private-certificates/csr",
            &[],
            Some(request),
        )
        .await
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
            serde_json::to_vec(request).map_err(|e| PcaError::invalid(&format!("cannot encode {op} body: {e}")))?;
        let call = Call {
            op,
            service: Service::Pca,
            method: Method::POST,
            path: "/v1/private-certificates/csr",
            query: &[],
            body,
            domain_id: Some(self.domain_id().await?.to_owned()),
            turn_taken: true,
        };
        decode(op, &self.attempt(&call).await?)
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

    /// `ListCertificate`. A page without `total`, or with an entry lacking its id, status, issuer
    /// or creation time (or with an id that is not UUID-shaped), is a [`PcaError::Decode`].
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

    /// The account id: configured, or discovered once like the SDKs do — IAM
    /// `GET /v3/auth/domains` (first domain), and if IAM lists none, STS
    /// `GET /v5/caller-identity` (`account_id`).
    pub async fn domain_id(&self) -> Result<&str, PcaError> {
        self.domain_id
            .get_or_try_init(|| self.discover_domain_id())
            .await
            .map(String::as_str)
    }

    async fn discover_domain_id(&self) -> Result<String, PcaError> {
        let iam = Call::identity(Operation::KeystoneListAuthDomains, Service::Iam, "/v3/auth/domains");
        let (listed, request_id) = self
            .send(&iam, |raw| {
                let domains: Domains = decode(iam.op, raw)?;
                let id = domains
                    .first_id()
                    .map(|id| checked_domain_id(iam.op, raw, id))
                    .transpose()?;
                Ok((id, raw.request_id.clone()))
            })
            .await?;
        if let Some(id) = listed {
            return Ok(id);
        }
        let Some(sts) = &self.sts_endpoint else {
            return Err(PcaError::domain_unknown(&format!(
                "IAM at {} listed no domain (request id {request_id}) and no STS endpoint is known for this region; set domainId, grant the IAM user iam:users:getUser, or give the controller --sts-endpoint",
                self.iam_endpoint
            )));
        };
        let caller = Call::identity(Operation::GetCallerIdentity, Service::Sts, "/v5/caller-identity");
        let answer = self
            .send(&caller, |raw| {
                let identity: CallerIdentity = decode(caller.op, raw)?;
                let id = identity
                    .account_id
                    .as_deref()
                    .filter(|id| !id.trim().is_empty())
                    .map(|id| checked_domain_id(caller.op, raw, id))
                    .transpose()?;
                Ok((id, raw.request_id.clone()))
            })
            .await;
        match answer {
            Ok((Some(id), _)) => Ok(id),
            Ok((None, request_id)) => Err(PcaError::domain_unknown(&format!(
                "IAM listed no domain and STS at {sts} gave no account_id (request id {request_id}); set domainId"
            ))),
            Err(PcaError::Api {
                status: 404,
                request_id,
                ..
            }) => Err(PcaError::domain_unknown(&format!(
                "IAM listed no domain and STS at {sts} answered 404 (request id {request_id}); set domainId"
            ))),
            Err(e) => Err(e),
        }
    }

    async fn json<T: Answer, B: Serialize>(
        &self,
        op: Operation,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T, PcaError> {
        let body = match body {
            Some(b) => {
                serde_json::to_vec(b).map_err(|e| PcaError::invalid(&format!("cannot encode {op} body: {e}")))?
            }
            None => Vec::new(),
        };
        let call = Call {
            op,
            service: Service::Pca,
            method,
            path,
            query,
            body,
            domain_id: Some(self.domain_id().await?.to_owned()),
            turn_taken: false,
        };
        self.send(&call, |raw| decode(op, raw)).await
    }

    /// One logical call, with retries where they are safe. An answer `parse` refuses (e.g. one
    /// missing a field) is retried like any other retryable error: it may be complete next time.
    async fn send<T>(
        &self,
        call: &Call<'_>,
        parse: impl Fn(&RawResponse) -> Result<T, PcaError>,
    ) -> Result<T, PcaError> {
        let policy = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries)
            .with_jitter();
        let op = call.op;
        let attempt = || async { parse(&self.attempt(call).await?) };
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

    /// Smooths answer times (a quarter of each new one): concurrent updates may lose one,
    /// which a hint can afford.
    fn note_answer_time(&self, elapsed: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let new = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.answer_time_us.load(Relaxed);
        let smoothed = if old == 0 { new } else { old - old / 4 + new / 4 };
        self.answer_time_us.store(smoothed.max(1), Relaxed);
    }

    async fn attempt(&self, call: &Call<'_>) -> Result<RawResponse, PcaError> {
        let op = call.op;
        let base = match call.service {
            Service::Pca => &self.endpoint,
            Service::Iam => &self.iam_endpoint,
            Service::Sts => match &self.sts_endpoint {
                Some(url) => url,
                None => return Err(PcaError::config("no STS endpoint configured")),
            },
        };
        let (url, headers) = self.signed_request(base, call)?;
        if !call.turn_taken {
            self.limiter.acquire().await;
        }
        let started = Instant::now();
        let mut request = self.http.request(call.method.clone(), url).headers(headers);
        if !call.body.is_empty() {
            request = request.body(call.body.clone());
        }
        let result = match request.send().await {
            Ok(resp) => {
                self.pca_clock.observe(resp.headers());
                read_response(op, base, resp, self.request_timeout).await
            }
            Err(e) => Err(transport_error(op, base, &e, self.request_timeout)),
        };
        let outcome = match &result {
            Ok(raw) => CallOutcome::Status(raw.status),
            Err(PcaError::Connect { .. }) => CallOutcome::Connect,
            Err(PcaError::Timeout { .. }) => CallOutcome::Timeout,
            Err(PcaError::Transport { .. }) => CallOutcome::Transport,
            Err(PcaError::Api { status, .. } | PcaError::Decode { status, .. }) => CallOutcome::Status(*status),
            Err(PcaError::DomainUnknown(_) | PcaError::Config(_) | PcaError::Invalid(_)) => CallOutcome::Transport,
        };
        let elapsed = started.elapsed();
        if matches!(call.service, Service::Pca) {
            // The adaptive rate learns from every PCA answer (a 429 cuts it).
            self.limiter.observe(started, outcome);
            if matches!(outcome, CallOutcome::Status(_)) {
                self.note_answer_time(elapsed);
            }
        }
        if let Some(o) = &self.observer {
            o.attempt(op, outcome, elapsed);
        }
        debug!(operation = %op, outcome = outcome.class(), elapsed_ms = elapsed.as_millis() as u64, "PCA call");
        let raw = result?;
        if (200..300).contains(&raw.status) {
            Ok(raw)
        } else {
            Err(PcaError::from_answer(op, raw.status, &raw.body, &raw.request_id))
        }
    }

    /// The URL and the signed headers of one attempt (fresh `X-Sdk-Date` each time).
    fn signed_request(&self, base: &Url, call: &Call<'_>) -> Result<(Url, HeaderMap), PcaError> {
        let (method, path, query, body) = (&call.method, call.path, call.query, call.body.as_slice());
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
        if let Some(d) = call.domain_id.as_deref() {
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
                .map_err(|e| PcaError::invalid(&format!("header name {name}: {e}")))?;
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| PcaError::invalid(&format!("header {name} has a value that cannot be sent")))?;
            if name == "x-security-token" || name == "authorization" {
                value.set_sensitive(true);
            }
            headers.insert(name, value);
        }
        Ok((url, headers))
    }
}

/// The service's clock as its `Date` headers tell it (second precision).
#[derive(Debug, Default)]
struct PcaClock {
    offset_ms: std::sync::Mutex<Option<i64>>,
}

impl PcaClock {
    fn observe(&self, headers: &HeaderMap) {
        let Some(date) = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(v).ok())
        else {
            return;
        };
        // The header is truncated to the second: the service's time lies in [date, date + 1 s).
        let offset = date.as_millisecond() + 500 - jiff::Timestamp::now().as_millisecond();
        *self.offset_ms.lock().unwrap_or_else(|e| e.into_inner()) = Some(offset);
    }

    fn offset_ms(&self) -> Option<i64> {
        *self.offset_ms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Proof that the rate limiter was passed for one issue call.
#[must_use = "a turn is spent by issue_from_csr_once"]
#[derive(Debug)]
pub struct Turn {
    _private: (),
}

/// Ids go into URL paths: accept only UUID-shaped ones.
pub fn checked_id(id: &str) -> Result<&str, PcaError> {
    if is_uuid_shaped(id) {
        Ok(id)
    } else {
        Err(PcaError::invalid(&format!(
            "{} is not a PCA id (a 36-character UUID)",
            id_for_message(id)
        )))
    }
}

/// An account id from IAM or STS goes into the `X-Domain-Id` header of every call.
fn checked_domain_id(op: Operation, raw: &RawResponse, id: &str) -> Result<String, PcaError> {
    let id = id.trim();
    if id.len() <= MAX_DOMAIN_ID && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id.to_owned())
    } else {
        Err(PcaError::decode(
            op,
            raw.status,
            &raw.request_id,
            &format!("the account id {} is not an account id", id_for_message(id)),
        ))
    }
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
                    return Err(PcaError::decode(
                        op,
                        status,
                        request_id.as_deref().unwrap_or("unknown"),
                        &format!("response body larger than {MAX_RESPONSE_BYTES} bytes"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(transport_error(op, base, &e, timeout)),
        }
    }
    let request_id = request_id_text(request_id.or_else(|| ServiceError::parse(&body).request_id).as_deref());
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
        PcaError::connect(op, &endpoint, &detail)
    } else if e.is_timeout() {
        PcaError::timeout(op, &endpoint, timeout)
    } else {
        PcaError::transport(op, &endpoint, &detail)
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

fn decode<T: Answer>(op: Operation, raw: &RawResponse) -> Result<T, PcaError> {
    from_json(&raw.body).map_err(|detail| PcaError::decode(op, raw.status, &raw.request_id, &detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            request_id: "r1".into(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn undecodable_answers_name_the_field_and_request() {
        let e = decode::<CertificateList>(Operation::ListCertificate, &raw(200, r#"{"certificates":[]}"#)).unwrap_err();
        assert_eq!(e.reason(), "PCABadResponse");
        assert!(e.is_retryable() && e.is_ambiguous());
        let text = e.to_string();
        assert!(
            text.contains("total") && text.contains("r1") && text.contains("ListCertificate"),
            "{text}"
        );
    }

    #[test]
    fn ids_in_errors_are_bounded() {
        let huge = "9".repeat(100_000);
        let e = checked_id(&huge).unwrap_err().to_string();
        assert!(e.len() < 200 && e.contains("100000 characters"), "{e}");
        let e = checked_domain_id(Operation::KeystoneListAuthDomains, &raw(200, ""), &huge)
            .unwrap_err()
            .to_string();
        assert!(e.len() < 300, "{e}");
        assert_eq!(
            checked_domain_id(Operation::GetCallerIdentity, &raw(200, ""), " 0a1b2c ").unwrap(),
            "0a1b2c"
        );
    }
}
