//! Which endpoints an issuer may point the controller at.
//!
//! A namespaced `CCMIssuer` is created by whoever may create objects in its namespace, while
//! the controller runs with the cluster's network position. Letting such an issuer choose
//! `endpoint`, `iamEndpoint` or `caBundle` would let any tenant make the controller call
//! cluster-internal or metadata addresses (and reflect the answers into status). So on
//! namespaced issuers these fields are refused unless the administrator allows the endpoint
//! (`--namespaced-issuer-endpoint`, a host or a URL prefix, repeatable); `CCMClusterIssuer`s
//! (cluster-admin objects) keep them. Plain `http://` endpoints need `--allow-insecure-endpoints`
//! on any issuer, and never carry a security token.

use url::Url;

use super::{
    AnyIssuer, IssuerKey,
    credentials::IssuerProblem,
    issuer::reasons::{ENDPOINT_NOT_ALLOWED, INSECURE_ENDPOINT},
};
use crate::crd::IssuerSpec;

/// One allowed endpoint: a host (any scheme and port) or a URL prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// `pca.internal.example`: any URL on this host.
    Host(String),
    /// `https://proxy.example:8443/ccm/`: URLs starting with this (scheme, host, port, path).
    Prefix(Url),
}

impl std::str::FromStr for Allowed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.contains("://") {
            let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
            if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
                return Err(format!("{s:?} must be an http(s) URL with a host"));
            }
            if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
                return Err(format!("{s:?} must not carry a query, fragment or user"));
            }
            return Ok(Allowed::Prefix(url));
        }
        let host = s.to_ascii_lowercase();
        if host.is_empty() || host.contains(['/', ':', '@', ' ', '?', '#']) {
            return Err(format!("{s:?} is neither a host name nor an http(s) URL prefix"));
        }
        Ok(Allowed::Host(host))
    }
}

impl Allowed {
    fn admits(&self, url: &Url) -> bool {
        match self {
            Allowed::Host(h) => url.host_str().is_some_and(|u| u.eq_ignore_ascii_case(h)),
            Allowed::Prefix(p) => {
                p.scheme() == url.scheme()
                    && p.host_str().map(str::to_ascii_lowercase) == url.host_str().map(str::to_ascii_lowercase)
                    && p.port_or_known_default() == url.port_or_known_default()
                    && path_within(p.path(), url.path())
            }
        }
    }
}

/// `/ccm/` admits `/ccm` and `/ccm/x`, not `/ccmx`.
fn path_within(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty()
}

/// The administrator's endpoint policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Endpoints namespaced issuers may use (empty: none).
    pub namespaced_allowed: Vec<Allowed>,
    /// Whether `http://` endpoints may be used at all.
    pub allow_insecure: bool,
}

impl EndpointPolicy {
    /// Checks an issuer's own endpoint fields (`endpoint`, `iamEndpoint`, `caBundle`).
    pub fn check_spec(&self, issuer: &AnyIssuer) -> Result<(), IssuerProblem> {
        let spec = issuer.spec();
        if matches!(issuer.key(), IssuerKey::Namespaced { .. }) {
            self.check_namespaced(spec)?;
        }
        for (field, value) in [("endpoint", &spec.endpoint), ("iamEndpoint", &spec.iam_endpoint)] {
            if let Some(url) = value.as_deref().and_then(|v| Url::parse(v.trim()).ok())
                && url.scheme() == "http"
                && !self.allow_insecure
            {
                return Err(IssuerProblem::permanent(INSECURE_ENDPOINT, insecure_message(field)));
            }
        }
        Ok(())
    }

    /// Checks the endpoints a client will really use (also those from controller flags) against
    /// the credentials: a security token is never sent over plain HTTP.
    pub fn check_transport(&self, urls: &[&Url], has_token: bool) -> Result<(), IssuerProblem> {
        for url in urls.iter().filter(|u| u.scheme() == "http") {
            if !self.allow_insecure {
                return Err(IssuerProblem::permanent(
                    INSECURE_ENDPOINT,
                    format!("{url} uses plain http; start the controller with --allow-insecure-endpoints to allow it"),
                ));
            }
            if has_token {
                return Err(IssuerProblem::permanent(
                    INSECURE_ENDPOINT,
                    format!(
                        "{url} uses plain http, and temporary credentials (a security token) are never sent over plain http; use https"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_namespaced(&self, spec: &IssuerSpec) -> Result<(), IssuerProblem> {
        let how = "start the controller with --namespaced-issuer-endpoint=<host or URL prefix> (Helm value namespacedIssuerEndpoints) or use a CCMClusterIssuer";
        for (field, value) in [("endpoint", &spec.endpoint), ("iamEndpoint", &spec.iam_endpoint)] {
            let Some(value) = value.as_deref() else { continue };
            let admitted = Url::parse(value.trim())
                .ok()
                .is_some_and(|url| self.namespaced_allowed.iter().any(|a| a.admits(&url)));
            if !admitted {
                return Err(IssuerProblem::permanent(
                    ENDPOINT_NOT_ALLOWED,
                    format!(
                        "spec.{field} is set on a namespaced CCMIssuer, and the controller does not allow that endpoint for namespaced issuers: {how}"
                    ),
                ));
            }
        }
        if spec.ca_bundle.is_some() && spec.endpoint.is_none() {
            return Err(IssuerProblem::permanent(
                ENDPOINT_NOT_ALLOWED,
                format!(
                    "spec.caBundle is set on a namespaced CCMIssuer without an allowed spec.endpoint; a namespaced issuer may only trust its own CAs for an endpoint the administrator allowed: {how}"
                ),
            ));
        }
        Ok(())
    }
}

fn insecure_message(field: &str) -> String {
    format!(
        "spec.{field} uses plain http; start the controller with --allow-insecure-endpoints to allow it (temporary credentials are never sent over http)"
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::crd::{CCMClusterIssuer, CCMIssuer};

    fn spec(endpoint: Option<&str>, iam: Option<&str>, ca_bundle: bool) -> IssuerSpec {
        let mut s: IssuerSpec = serde_json::from_value(serde_json::json!({
            "urn": "4bd1b320-e162-419f-8add-dfcc046197c7", "region": "cn-north-4",
            "secretRef": {"name": "s"}
        }))
        .expect("spec");
        s.endpoint = endpoint.map(str::to_owned);
        s.iam_endpoint = iam.map(str::to_owned);
        s.ca_bundle = ca_bundle.then(|| "-----BEGIN CERTIFICATE-----".to_owned());
        s
    }

    fn namespaced(s: IssuerSpec) -> AnyIssuer {
        let mut i = CCMIssuer::new("i", s);
        i.metadata.namespace = Some("team-a".into());
        AnyIssuer::Namespaced(Arc::new(i))
    }

    fn cluster(s: IssuerSpec) -> AnyIssuer {
        AnyIssuer::Cluster(Arc::new(CCMClusterIssuer::new("c", crate::crd::ClusterIssuerSpec(s))))
    }

    fn policy(allowed: &[&str], insecure: bool) -> EndpointPolicy {
        EndpointPolicy {
            namespaced_allowed: allowed.iter().map(|a| a.parse().expect("allowed")).collect(),
            allow_insecure: insecure,
        }
    }

    #[test]
    fn namespaced_overrides_are_refused_by_default_with_a_way_out() {
        for s in [
            spec(Some("https://169.254.169.254"), None, false),
            spec(None, Some("https://kubernetes.default.svc"), false),
            spec(None, None, true),
        ] {
            let e = policy(&[], false).check_spec(&namespaced(s)).expect_err("refused");
            assert_eq!(e.reason, ENDPOINT_NOT_ALLOWED);
            assert!(e.message.contains("--namespaced-issuer-endpoint"), "{}", e.message);
        }
        let plain = spec(None, None, false);
        assert!(
            policy(&[], false).check_spec(&namespaced(plain)).is_ok(),
            "no override, nothing to allow"
        );
    }

    #[test]
    fn cluster_issuers_keep_their_overrides() {
        let s = spec(Some("https://pca.internal"), Some("https://iam.internal"), true);
        assert!(policy(&[], false).check_spec(&cluster(s)).is_ok());
    }

    #[test]
    fn hosts_and_prefixes_admit_only_what_they_name() {
        let p = policy(&["pca.internal", "https://proxy.example:8443/ccm/"], false);
        for ok in [
            "https://pca.internal",
            "https://PCA.internal:9443/x",
            "https://proxy.example:8443/ccm",
            "https://proxy.example:8443/ccm/v1",
        ] {
            assert!(p.check_spec(&namespaced(spec(Some(ok), None, true))).is_ok(), "{ok}");
        }
        for refused in [
            "https://pca.internal.evil.example",
            "https://proxy.example:8443/ccmx",
            "https://proxy.example/ccm",
            "http://proxy.example:8443/ccm",
            "https://evil.example/?pca.internal",
        ] {
            assert!(
                p.check_spec(&namespaced(spec(Some(refused), None, false))).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn plain_http_needs_the_opt_in_and_never_carries_a_token() {
        let s = spec(Some("http://pca.internal"), None, false);
        let e = policy(&["pca.internal"], false)
            .check_spec(&namespaced(s.clone()))
            .expect_err("http");
        assert_eq!(e.reason, INSECURE_ENDPOINT);
        assert!(policy(&["pca.internal"], true).check_spec(&namespaced(s)).is_ok());
        let url: Url = "http://pca.internal".parse().expect("url");
        assert!(policy(&[], true).check_transport(&[&url], false).is_ok());
        let e = policy(&[], true)
            .check_transport(&[&url], true)
            .expect_err("token over http");
        assert!(e.message.contains("security token"), "{}", e.message);
        assert!(policy(&[], false).check_transport(&[&url], false).is_err());
    }

    #[test]
    fn allow_list_entries_are_validated() {
        for bad in ["", "a b", "ftp://x", "https://x/?q=1", "host:8443", "https://user@x"] {
            assert!(bad.parse::<Allowed>().is_err(), "{bad}");
        }
    }
}
