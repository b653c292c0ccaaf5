//! Which host serves PCA (and IAM) for a region (pca-api.md §1.1).

use url::Url;

use super::error::PcaError;

/// Regions of the official SDKs' CCM region table, with their exceptions to the
/// `https://ccm.{region}.myhuaweicloud.com` pattern.
pub const KNOWN_REGIONS: &[(&str, &str)] = &[
    ("cn-north-4", "https://ccm.cn-north-4.myhuaweicloud.com"),
    ("ap-southeast-3", "https://ccm.ap-southeast-3.myhuaweicloud.com"),
    // The SDK maps this region to the host without a region label.
    ("sa-brazil-1", "https://ccm.myhuaweicloud.com"),
    ("eu-west-101", "https://ccm.eu-west-101.myhuaweicloud.com"),
    ("ru-moscow-1", "https://ccm.ru-moscow-1.myhuaweicloud.com"),
    ("my-kualalumpur-1", "https://ccm.my-kualalumpur-1.myhuaweicloud.com"),
    ("ae-ad-1", "https://ccm.ae-ad-1.myhuaweicloud.com"),
];

/// Names of [`KNOWN_REGIONS`].
pub fn known_region_names() -> impl Iterator<Item = &'static str> {
    KNOWN_REGIONS.iter().map(|(r, _)| *r)
}

/// Whether `region` looks like a Huawei Cloud region id (`xx-name-N`).
pub fn is_region_shaped(region: &str) -> bool {
    let mut parts = region.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| p.len() >= 2 && p.bytes().all(|b| b.is_ascii_lowercase()));
    let rest: Vec<&str> = parts.collect();
    first_ok
        && !rest.is_empty()
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// The PCA endpoint of a region.
pub fn pca_endpoint(region: &str) -> Result<Url, PcaError> {
    if let Some((_, url)) = KNOWN_REGIONS.iter().find(|(r, _)| *r == region) {
        return parse_endpoint(url);
    }
    if !is_region_shaped(region) {
        return Err(PcaError::Config(format!(
            "region {region:?} is not a Huawei Cloud region id (e.g. ap-southeast-3); set an explicit endpoint instead"
        )));
    }
    parse_endpoint(&format!("https://ccm.{region}.myhuaweicloud.com"))
}

/// The IAM endpoint used to discover the account (domain) id of a region.
pub fn iam_endpoint(region: &str) -> Result<Url, PcaError> {
    if !is_region_shaped(region) {
        return Err(PcaError::Config(format!(
            "region {region:?} is not a Huawei Cloud region id"
        )));
    }
    parse_endpoint(&format!("https://iam.{region}.myhuaweicloud.com"))
}

/// Parses and checks an endpoint URL: http(s), a host, no query, no credentials.
pub fn parse_endpoint(raw: &str) -> Result<Url, PcaError> {
    let url = Url::parse(raw.trim()).map_err(|e| PcaError::Config(format!("endpoint {raw:?}: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(PcaError::Config(format!(
            "endpoint {raw:?}: scheme must be https (or http)"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(PcaError::Config(format!("endpoint {raw:?} has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(PcaError::Config(format!(
            "endpoint {raw:?} must be a plain base URL without user info, query or fragment"
        )));
    }
    Ok(url)
}

/// The `Host` header value for a URL, exactly as an HTTP/1.1 client sends it (default ports omitted).
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_regions_and_pattern() {
        assert_eq!(
            pca_endpoint("sa-brazil-1").unwrap().as_str(),
            "https://ccm.myhuaweicloud.com/"
        );
        assert_eq!(
            pca_endpoint("cn-north-4").unwrap().as_str(),
            "https://ccm.cn-north-4.myhuaweicloud.com/"
        );
        assert_eq!(
            pca_endpoint("la-north-2").unwrap().as_str(),
            "https://ccm.la-north-2.myhuaweicloud.com/"
        );
        assert_eq!(
            iam_endpoint("ap-southeast-3").unwrap().as_str(),
            "https://iam.ap-southeast-3.myhuaweicloud.com/"
        );
    }

    #[test]
    fn rejects_what_is_not_a_region_or_endpoint() {
        for bad in ["", "north", "CN-NORTH-4", "cn-north-4.evil.com/x", "cn_north_4", "cn-"] {
            assert!(pca_endpoint(bad).is_err(), "{bad}");
        }
        for bad in ["ftp://x", "https://", "https://u:p@host", "https://h/?a=b", "not a url"] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
        assert!(parse_endpoint("https://127.0.0.1:8443").is_ok());
    }

    #[test]
    fn host_header_omits_default_port() {
        assert_eq!(host_header(&parse_endpoint("https://a.b:443").unwrap()), "a.b");
        assert_eq!(
            host_header(&parse_endpoint("https://127.0.0.1:8443").unwrap()),
            "127.0.0.1:8443"
        );
        assert_eq!(host_header(&parse_endpoint("http://[::1]:9000").unwrap()), "[::1]:9000");
    }
}
