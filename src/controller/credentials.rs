//! From an issuer to a PCA client: where its Secret may live, reading it on demand (no
//! cluster-wide Secret cache), and a client cache keyed by spec + Secret version so a rotated
//! Secret takes effect at the next call.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};
use secrecy::SecretString;

use super::{AnyIssuer, Config, IssuerKey, issuer::reasons, secret_watch::SecretWatches};
use crate::{
    crd::IssuerSpec,
    metrics::Metrics,
    pca::{
        ClientConfig, Credentials, PcaClient, PcaObserver,
        endpoint::{parse_endpoint, pca_endpoint, resolve_iam, resolve_sts},
        ratelimit::{RateLimiters, TokenBucket},
    },
};

/// Why an issuer cannot be used; it is reported on the issuer's Ready condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IssuerProblem {
    /// Stable CamelCase reason.
    pub reason: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
    /// Whether it may go away by itself (e.g. an API hiccup).
    pub retryable: bool,
}

impl IssuerProblem {
    /// A problem that needs a fix (spec, Secret, RBAC, controller flags).
    pub fn permanent(reason: &'static str, message: String) -> Self {
        Self {
            reason,
            message,
            retryable: false,
        }
    }
}

/// The Secret an issuer uses: `(namespace, name)`.
///
/// A CCMIssuer may only read a Secret in its own namespace (a security boundary: otherwise any
/// namespace could borrow another's credentials); a CCMClusterIssuer uses `secretRef.namespace`
/// or the cluster resource namespace.
pub fn secret_location(
    issuer: &AnyIssuer,
    cluster_resource_namespace: &str,
) -> Result<(String, String), IssuerProblem> {
    let secret_ref = &issuer.spec().secret_ref;
    let namespace = match issuer.key() {
        IssuerKey::Namespaced { namespace, .. } => match secret_ref.namespace.as_deref() {
            None | Some("") => namespace,
            Some(ns) if ns == namespace => namespace,
            Some(other) => {
                return Err(IssuerProblem::permanent(
                    reasons::SECRET_NAMESPACE_NOT_ALLOWED,
                    format!(
                        "secretRef.namespace {other:?} is not this CCMIssuer's namespace {namespace:?}: a CCMIssuer may only use a Secret in its own namespace; move the Secret or use a CCMClusterIssuer"
                    ),
                ));
            }
        },
        IssuerKey::Cluster { .. } => match secret_ref.namespace.as_deref() {
            None | Some("") => cluster_resource_namespace.to_owned(),
            Some(ns) => ns.to_owned(),
        },
    };
    Ok((namespace, secret_ref.name.clone()))
}

/// Reads the referenced Secret (one GET; nothing is cached cluster-wide).
pub async fn read_secret(client: &Client, namespace: &str, name: &str) -> Result<Secret, IssuerProblem> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    api.get(name).await.map_err(|e| match &e {
        kube::Error::Api(s) if s.is_not_found() => IssuerProblem::permanent(
            reasons::SECRET_NOT_FOUND,
            format!("Secret {namespace}/{name} does not exist; create it with the AK/SK keys"),
        ),
        kube::Error::Api(s) if s.is_forbidden() => IssuerProblem::permanent(
            reasons::SECRET_FORBIDDEN,
            format!(
                "the controller may not read Secrets in namespace {namespace:?}; grant it (Helm value rbac.secretNamespaces) or keep the Secret elsewhere"
            ),
        ),
        other => IssuerProblem {
            reason: reasons::SECRET_UNAVAILABLE,
            message: format!("cannot read Secret {namespace}/{name}: {other}"),
            retryable: true,
        },
    })
}

/// Extracts AK, SK and the optional security token from the Secret.
pub fn credentials_from_secret(secret: &Secret, spec: &IssuerSpec) -> Result<Credentials, IssuerProblem> {
    let r = &spec.secret_ref;
    let location = format!("{}/{}", secret.namespace().unwrap_or_default(), secret.name_any());
    let value = |key: &str| -> Result<Option<String>, IssuerProblem> {
        let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes.0.clone()).map_err(|_| {
            IssuerProblem::permanent(
                reasons::SECRET_INVALID,
                format!("key {key:?} of Secret {location} is not UTF-8 text"),
            )
        })?;
        // `echo key | kubectl create secret` leaves a newline; it is never part of a key.
        let trimmed = text.trim().to_owned();
        Ok((!trimmed.is_empty()).then_some(trimmed))
    };
    let missing = |key: &str| {
        IssuerProblem::permanent(
            reasons::SECRET_INVALID,
            format!(
                "Secret {location} has no non-empty key {key:?} (set secretRef keys if your Secret uses other names)"
            ),
        )
    };
    let ak = value(r.ak_key())?.ok_or_else(|| missing(r.ak_key()))?;
    let sk = value(r.sk_key())?.ok_or_else(|| missing(r.sk_key()))?;
    let token = value(r.token_key())?;
    Ok(Credentials::with_token(
        ak,
        &SecretString::from(sk),
        token.map(SecretString::from),
    ))
}

/// A caBundle is PEM text or base64 of PEM.
pub fn decode_ca_bundle(raw: &str) -> Result<Vec<u8>, IssuerProblem> {
    let trimmed = raw.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.as_bytes().to_vec());
    }
    let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
    let decoded = base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| {
        IssuerProblem::permanent(
            reasons::INVALID_CA_BUNDLE,
            "caBundle is neither PEM nor base64-encoded PEM".into(),
        )
    })?;
    if !String::from_utf8_lossy(&decoded).contains("-----BEGIN CERTIFICATE-----") {
        return Err(IssuerProblem::permanent(
            reasons::INVALID_CA_BUNDLE,
            "caBundle does not contain a PEM certificate".into(),
        ));
    }
    Ok(decoded)
}

/// The client configuration an issuer spec asks for.
pub fn client_config(spec: &IssuerSpec, config: &Config) -> Result<ClientConfig, IssuerProblem> {
    let invalid = |e: crate::pca::PcaError| IssuerProblem::permanent(reasons::INVALID_SPEC, e.to_string());
    let region_override = config.region_endpoints.get(&spec.region);
    let endpoint = match (spec.endpoint.as_deref(), region_override) {
        (Some(e), _) => parse_endpoint(e).map_err(invalid)?,
        (None, Some(url)) => url.clone(),
        (None, None) => {
            pca_endpoint(&spec.region).map_err(|e| IssuerProblem::permanent(reasons::UNKNOWN_REGION, e.to_string()))?
        }
    };
    // Independent of the PCA endpoint, as in the SDKs: a CCM host serves no IAM API.
    let iam = resolve_iam(spec.iam_endpoint.as_deref(), config.iam_endpoint.as_ref(), &spec.region).map_err(invalid)?;
    let mut cc = ClientConfig::new(endpoint, iam);
    cc.sts_endpoint = resolve_sts(config.sts_endpoint.as_ref(), &spec.region);
    cc.domain_id = spec.domain_id.clone();
    cc.ca_bundle_pem = spec.ca_bundle.as_deref().map(decode_ca_bundle).transpose()?;
    cc.extra_roots_pem = config.extra_ca_bundle.clone();
    cc.request_timeout = config.pca_timeout;
    cc.connect_timeout = config.pca_connect_timeout;
    Ok(cc)
}

struct Cached {
    /// Hash of the issuer's spec.
    spec: u64,
    /// The Secret the client was built from: UID and resourceVersion.
    secret_uid: Option<String>,
    secret_version: Option<String>,
    client: Arc<PcaClient>,
}

/// PCA clients per issuer. Rate limits are shared per endpoint and access key.
pub struct PcaClients {
    config: Config,
    limiters: Arc<RateLimiters>,
    observer: Arc<Metrics>,
    cache: Mutex<HashMap<IssuerKey, Cached>>,
}

impl PcaClients {
    /// An empty cache.
    pub fn new(config: &Config, observer: Arc<Metrics>) -> Self {
        let limiters = Arc::new(RateLimiters::new(config.pca_qps, config.pca_burst));
        observer.watch_rates(limiters.clone());
        Self {
            config: config.clone(),
            limiters,
            observer,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client for an issuer. Without `watches` the Secret is read now (the issuer check
    /// does that, so each check sees the Secret as it is); with them, a cached client built
    /// from the version of the Secret its watch last saw is used without reading it again.
    pub async fn client_for(
        &self,
        kube: &Client,
        issuer: &AnyIssuer,
        watches: Option<&SecretWatches>,
    ) -> Result<Arc<PcaClient>, IssuerProblem> {
        self.config.endpoint_policy.check_spec(issuer)?;
        let location = secret_location(issuer, &self.config.cluster_resource_namespace)?;
        let spec = issuer.spec();
        let spec_hash = {
            let mut hasher = DefaultHasher::new();
            serde_json::to_string(spec).unwrap_or_default().hash(&mut hasher);
            hasher.finish()
        };
        let key = issuer.key();
        if let Some(watched) = watches.and_then(|w| w.version(&location)) {
            let cached = self
                .lock()
                .get(&key)
                .filter(|c| c.spec == spec_hash && c.secret_version.as_deref() == Some(watched.as_str()))
                .map(|c| c.client.clone());
            if let Some(client) = cached {
                return Ok(client);
            }
        }
        let secret = read_secret(kube, &location.0, &location.1).await?;
        if let Some(c) = self.lock().get(&key).filter(|c| {
            c.spec == spec_hash
                && c.secret_uid == secret.metadata.uid
                && c.secret_version == secret.metadata.resource_version
        }) {
            return Ok(c.client.clone());
        }
        let credentials = credentials_from_secret(&secret, spec)?;
        let cc = client_config(spec, &self.config)?;
        self.config.endpoint_policy.check_transport(
            &[&cc.endpoint, &cc.iam_endpoint],
            credentials.security_token().is_some(),
        )?;
        let limiter = self.limiters.bucket(cc.endpoint.as_str(), credentials.access_key());
        let observer: Arc<dyn PcaObserver> = self.observer.clone();
        let client = PcaClient::new(cc, credentials, limiter, Some(observer))
            .map_err(|e| IssuerProblem::permanent(reasons::INVALID_SPEC, e.to_string()))?;
        let client = Arc::new(client);
        self.lock().insert(
            key,
            Cached {
                spec: spec_hash,
                secret_uid: secret.metadata.uid.clone(),
                secret_version: secret.metadata.resource_version.clone(),
                client: client.clone(),
            },
        );
        Ok(client)
    }

    /// The rate-limit bucket a client draws from (shared by every issuer with its endpoint and
    /// access key).
    pub fn bucket_of(&self, client: &PcaClient) -> Arc<TokenBucket> {
        self.limiters.bucket(client.endpoint().as_str(), client.access_key())
    }

    /// Drops the cached client of an issuer (deleted, or its credentials were refused).
    pub fn invalidate(&self, key: &IssuerKey) {
        self.lock().remove(key);
    }

    /// Drops the clients of issuers not in `live`, and the rate-limit buckets no client uses.
    pub fn retain(&self, live: &std::collections::HashSet<IssuerKey>) {
        self.lock().retain(|k, _| live.contains(k));
        self.limiters.prune_unused();
    }

    /// Clients and rate-limit buckets held (memory bound checks).
    pub fn sizes(&self) -> (usize, usize) {
        (self.lock().len(), self.limiters.len())
    }

    /// Request time-out of the clients, for in-flight reasoning.
    pub fn request_timeout(&self) -> Duration {
        self.config.pca_timeout
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IssuerKey, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use kube::api::ObjectMeta;

    use super::*;
    use crate::crd::{CCMClusterIssuer, CCMIssuer, ClusterIssuerSpec};

    fn spec(secret_ns: Option<&str>) -> IssuerSpec {
        crate::crd::test_spec(secret_ns)
    }

    fn namespaced(ns: &str, secret_ns: Option<&str>) -> AnyIssuer {
        let mut i = CCMIssuer::new("iss", spec(secret_ns));
        i.metadata.namespace = Some(ns.into());
        AnyIssuer::Namespaced(Arc::new(i))
    }

    #[test]
    fn namespaced_issuer_may_only_use_its_own_namespace() {
        assert_eq!(
            secret_location(&namespaced("istio-system", Some("istio-system")), "crns").unwrap(),
            ("istio-system".into(), "ccm-secret".into())
        );
        assert_eq!(secret_location(&namespaced("a", None), "crns").unwrap().0, "a");
        let err = secret_location(&namespaced("a", Some("kube-system")), "crns").unwrap_err();
        assert_eq!(err.reason, "SecretNamespaceNotAllowed");
        assert!(err.message.contains("kube-system"));
    }

    #[test]
    fn cluster_issuer_defaults_to_cluster_resource_namespace() {
        let c = AnyIssuer::Cluster(Arc::new(CCMClusterIssuer::new("c", ClusterIssuerSpec(spec(None)))));
        assert_eq!(secret_location(&c, "crns").unwrap().0, "crns");
        let c = AnyIssuer::Cluster(Arc::new(CCMClusterIssuer::new("c", ClusterIssuerSpec(spec(Some("x"))))));
        assert_eq!(secret_location(&c, "crns").unwrap().0, "x");
    }

    fn secret(pairs: &[(&str, &[u8])]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                namespace: Some("n".into()),
                ..Default::default()
            },
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn credentials_are_trimmed_and_never_printed() {
        let s = secret(&[
            ("ak", b"AK123\n"),
            ("sk", b"super-secret-sk\n"),
            ("securityToken", b"tok"),
        ]);
        let c = credentials_from_secret(&s, &spec(None)).unwrap();
        assert_eq!(c.access_key(), "AK123");
        assert!(c.security_token().is_some());
        assert!(!format!("{c:?}").contains("super-secret-sk"));
    }

    #[test]
    fn missing_or_empty_keys_are_named() {
        let err = credentials_from_secret(&secret(&[("ak", b"A")]), &spec(None)).unwrap_err();
        assert!(err.message.contains("\"sk\"") && err.reason == "SecretInvalid", "{err}");
        let err = credentials_from_secret(&secret(&[("ak", b" "), ("sk", b"x")]), &spec(None)).unwrap_err();
        assert!(err.message.contains("\"ak\""), "{err}");
        let mut custom = spec(None);
        custom.secret_ref.access_key_key = Some("accessKey".into());
        custom.secret_ref.secret_key_key = Some("secretKey".into());
        let ok = credentials_from_secret(&secret(&[("accessKey", b"A"), ("secretKey", b"S")]), &custom).unwrap();
        assert_eq!(ok.access_key(), "A");
        assert!(ok.security_token().is_none());
    }

    #[test]
    fn ca_bundle_accepts_pem_or_base64() {
        let pem = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
        assert_eq!(decode_ca_bundle(pem).unwrap(), pem.trim().as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        assert_eq!(decode_ca_bundle(&b64).unwrap(), pem.as_bytes());
        assert_eq!(
            decode_ca_bundle("bm90IGEgY2VydA==").unwrap_err().reason,
            "InvalidCABundle"
        );
        assert_eq!(decode_ca_bundle("***").unwrap_err().reason, "InvalidCABundle");
    }

    #[test]
    fn endpoint_overrides_never_move_iam() {
        let mut s = spec(None);
        s.endpoint = Some("https://127.0.0.1:8443".into());
        let cc = client_config(&s, &Config::default()).unwrap();
        assert_eq!(cc.endpoint.as_str(), "https://127.0.0.1:8443/");
        assert_eq!(cc.iam_endpoint.as_str(), "https://iam.cn-north-4.myhuaweicloud.com/");
        assert_eq!(
            cc.sts_endpoint.unwrap().as_str(),
            "https://sts.cn-north-4.myhuaweicloud.com/"
        );
        let config = Config {
            iam_endpoint: Some(url::Url::parse("https://iam.private.example").unwrap()),
            ..Config::default()
        };
        assert_eq!(
            client_config(&s, &config).unwrap().iam_endpoint.as_str(),
            "https://iam.private.example/"
        );
        s.iam_endpoint = Some("https://iam.example:443".into());
        assert_eq!(
            client_config(&s, &config).unwrap().iam_endpoint.as_str(),
            "https://iam.example/"
        );
        let cc = client_config(&spec(None), &Config::default()).unwrap();
        assert_eq!(cc.endpoint.as_str(), "https://ccm.cn-north-4.myhuaweicloud.com/");
        assert_eq!(cc.iam_endpoint.as_str(), "https://iam.cn-north-4.myhuaweicloud.com/");
        // Not in the SDKs' IAM table: the global IAM endpoint, and no STS.
        let mut eu = spec(None);
        eu.region = "eu-west-101".into();
        let cc = client_config(&eu, &Config::default()).unwrap();
        assert_eq!(cc.iam_endpoint.as_str(), "https://iam.myhuaweicloud.com/");
        assert_eq!(cc.sts_endpoint, None);
    }

    #[test]
    fn unknown_region_without_endpoint_is_an_issuer_problem() {
        let mut s = spec(None);
        s.region = "la-north-2".into();
        let p = client_config(&s, &Config::default()).unwrap_err();
        assert_eq!(p.reason, crate::controller::issuer::reasons::UNKNOWN_REGION);
        assert!(!p.retryable);
        assert!(p.message.contains("--pca-endpoint la-north-2=URL"), "{}", p.message);
        let mut config = Config::default();
        config.region_endpoints.insert(
            "la-north-2".into(),
            url::Url::parse("https://ccm.private.example").unwrap(),
        );
        assert_eq!(
            client_config(&s, &config).unwrap().endpoint.as_str(),
            "https://ccm.private.example/"
        );
    }

    #[test]
    fn region_override_replaces_the_table_for_that_region_only() {
        let mut config = Config::default();
        config
            .region_endpoints
            .insert("cn-north-4".into(), url::Url::parse("https://127.0.0.1:9443").unwrap());
        let cc = client_config(&spec(None), &config).unwrap();
        assert_eq!(cc.endpoint.as_str(), "https://127.0.0.1:9443/");
        assert_eq!(cc.iam_endpoint.as_str(), "https://iam.cn-north-4.myhuaweicloud.com/");
        let mut other = spec(None);
        other.region = "ap-southeast-3".into();
        let cc = client_config(&other, &config).unwrap();
        assert_eq!(cc.endpoint.as_str(), "https://ccm.ap-southeast-3.myhuaweicloud.com/");
    }
}
