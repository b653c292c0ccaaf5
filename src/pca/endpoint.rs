//! Which hosts serve PCA, IAM and STS for a region, resolved the way the official SDKs resolve
//! them (Go `huaweicloud-sdk-go-v3` `services/ccm/v1/region/region.go`,
//! `core/auth/internal/iam_helper.go`, `iam_endpoint.go`, `sts_helper.go`, `sts_endpoint.go`;
//! Python `huaweicloudsdkcore/auth/endpoint.py`, `internal.py`).
//!
//! The PCA endpoint and the IAM endpoint are independent: overriding where PCA is (`spec.endpoint`,
//! `--pca-endpoint`, `HUAWEICLOUD_SDK_REGION_CCM_<REGION>`) never moves IAM, because a CCM host has
//! no IAM API. IAM comes from `spec.iamEndpoint`, else the controller's `--iam-endpoint`
//! (`HUAWEICLOUD_SDK_IAM_ENDPOINT`), else the SDKs' IAM region table, else the global
//! `https://iam.myhuaweicloud.com`.

use url::Url;

use super::error::PcaError;

/// The CCM (PCA) region table of the official SDKs (Go `services/ccm/v1/region/region.go`, the
/// same six regions in Python `huaweicloudsdkccm`), with its one exception to the
/// `https://ccm.{region}.myhuaweicloud.com` pattern.
pub const SDK_PCA_REGIONS: &[(&str, &str)] = &[
    ("cn-north-4", "https://ccm.cn-north-4.myhuaweicloud.com"),
    ("ap-southeast-3", "https://ccm.ap-southeast-3.myhuaweicloud.com"),
    // The SDKs map this region to the host without a region label.
    ("sa-brazil-1", "https://ccm.myhuaweicloud.com"),
    // The SDKs' host; the European documentation names `ccm.eu-west-101.myhuaweicloud.eu`.
    ("eu-west-101", "https://ccm.eu-west-101.myhuaweicloud.com"),
    ("ru-moscow-1", "https://ccm.ru-moscow-1.myhuaweicloud.com"),
    ("my-kualalumpur-1", "https://ccm.my-kualalumpur-1.myhuaweicloud.com"),
];

/// PCA regions named by Huawei's documentation but in no SDK table: `ae-ad-1` (Abu Dhabi) comes
/// from the CCM documentation of that region.
pub const DOCUMENTED_PCA_REGIONS: &[(&str, &str)] = &[("ae-ad-1", "https://ccm.ae-ad-1.myhuaweicloud.com")];

/// The IAM region table of the official SDKs (Go `core/auth/internal/iam_endpoint.go`, Python
/// `auth/endpoint.py`); each maps to `https://iam.{region}.myhuaweicloud.com`. It has no
/// `eu-west-101`: such regions use [`GLOBAL_IAM_ENDPOINT`].
pub const SDK_IAM_REGIONS: &[&str] = &[
    "cn-north-2",
    "cn-north-4",
    "cn-north-1",
    "cn-east-2",
    "cn-east-3",
    "cn-south-1",
    "cn-south-2",
    "cn-southwest-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "af-south-1",
    "sa-brazil-1",
    "la-south-2",
    "na-mexico-1",
    "la-north-2",
    "cn-north-9",
    "eu-west-0",
    "my-kualalumpur-1",
    "ru-moscow-1",
    "me-east-1",
    "ap-southeast-4",
    "ae-ad-1",
    "cn-east-4",
    "cn-east-5",
    "tr-west-1",
    "cn-north-12",
];

/// The STS region table of the official SDKs (Go `core/auth/internal/sts_endpoint.go`, Python
/// `auth/endpoint.py`); each maps to `https://sts.{region}.myhuaweicloud.com`.
pub const SDK_STS_REGIONS: &[&str] = &[
    "cn-north-4",
    "cn-south-1",
    "cn-east-3",
    "cn-southwest-2",
    "ap-southeast-1",
    "ap-southeast-3",
    "ap-southeast-2",
    "sa-brazil-1",
    "la-south-2",
    "af-south-1",
    "ap-southeast-4",
    "tr-west-1",
];

/// IAM for regions not in [`SDK_IAM_REGIONS`] (the SDKs' `DefaultIamEndpoint`).
pub const GLOBAL_IAM_ENDPOINT: &str = "https://iam.myhuaweicloud.com";
/// The SDKs' IAM endpoint override variable.
pub const IAM_ENDPOINT_ENV: &str = "HUAWEICLOUD_SDK_IAM_ENDPOINT";
/// The SDKs' STS endpoint override variable.
pub const STS_ENDPOINT_ENV: &str = "HUAWEICLOUD_SDK_STS_ENDPOINT";
/// Prefix of the SDKs' per-region PCA endpoint variables (`…_CCM_AP_SOUTHEAST_3`).
pub const PCA_REGION_ENV_PREFIX: &str = "HUAWEICLOUD_SDK_REGION_CCM_";

/// Every region with a known PCA endpoint: the SDK table, then the documented extras.
pub fn known_region_names() -> impl Iterator<Item = &'static str> {
    SDK_PCA_REGIONS
        .iter()
        .chain(DOCUMENTED_PCA_REGIONS)
        .map(|(region, _)| *region)
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

/// The PCA endpoint of a known region. An unknown region has none: the SDKs refuse it too, and
/// guessing a host would send signed requests to a name nobody checked. Configure one with
/// `--pca-endpoint REGION=URL` (or `HUAWEICLOUD_SDK_REGION_CCM_<REGION>`) or `spec.endpoint`.
pub fn pca_endpoint(region: &str) -> Result<Url, PcaError> {
    match SDK_PCA_REGIONS
        .iter()
        .chain(DOCUMENTED_PCA_REGIONS)
        .find(|(r, _)| *r == region)
    {
        Some((_, url)) => parse_endpoint(url),
        None => Err(unknown_region(region)),
    }
}

/// The error for a region without a PCA endpoint, naming the known ones and the ways out.
pub fn unknown_region(region: &str) -> PcaError {
    let known: Vec<&str> = known_region_names().collect();
    let what = if is_region_shaped(region) {
        "has no known PCA endpoint"
    } else {
        "is not a Huawei Cloud region id"
    };
    PcaError::config(&format!(
        "region {region:?} {what} (known: {}); set spec.endpoint, or start the controller with --pca-endpoint {region}=URL (or HUAWEICLOUD_SDK_REGION_CCM_<REGION>)",
        known.join(", ")
    ))
}

/// The SDKs' IAM endpoint of a region: its entry in [`SDK_IAM_REGIONS`], else the global one.
pub fn iam_endpoint(region: &str) -> Result<Url, PcaError> {
    if SDK_IAM_REGIONS.contains(&region) {
        parse_endpoint(&format!("https://iam.{region}.myhuaweicloud.com"))
    } else {
        parse_endpoint(GLOBAL_IAM_ENDPOINT)
    }
}

/// The SDKs' STS endpoint of a region, if the table has one (Go has no fallback; Python falls
/// back to `cn-north-4`, a China-site host wrong for international accounts — we follow Go).
pub fn sts_endpoint(region: &str) -> Option<Url> {
    SDK_STS_REGIONS
        .contains(&region)
        .then(|| Url::parse(&format!("https://sts.{region}.myhuaweicloud.com")).ok())
        .flatten()
}

/// Where IAM is for an issuer: `explicit` (`spec.iamEndpoint`), else `configured`
/// (`--iam-endpoint` / `HUAWEICLOUD_SDK_IAM_ENDPOINT`), else [`iam_endpoint`] of the region. The
/// PCA endpoint plays no part.
pub fn resolve_iam(explicit: Option<&str>, configured: Option<&Url>, region: &str) -> Result<Url, PcaError> {
    match (explicit, configured) {
        (Some(e), _) => parse_endpoint(e),
        (None, Some(url)) => Ok(url.clone()),
        (None, None) => iam_endpoint(region),
    }
}

/// Where STS is for the account-id fallback: `configured` (`--sts-endpoint` /
/// `HUAWEICLOUD_SDK_STS_ENDPOINT`), else the region's entry in [`SDK_STS_REGIONS`].
pub fn resolve_sts(configured: Option<&Url>, region: &str) -> Option<Url> {
    configured.cloned().or_else(|| sts_endpoint(region))
}

/// Reads an endpoint given the SDKs' way (an environment value or flag): a value without a scheme
/// is `https://` + value, as the Go SDK does for `HUAWEICLOUD_SDK_IAM_ENDPOINT`.
pub fn sdk_endpoint_value(raw: &str) -> Result<Url, PcaError> {
    let raw = raw.trim();
    if raw.contains("://") {
        parse_endpoint(raw)
    } else {
        parse_endpoint(&format!("https://{raw}"))
    }
}

/// Parses and checks an endpoint URL: http(s), a host, no query, no credentials.
pub fn parse_endpoint(raw: &str) -> Result<Url, PcaError> {
    let url = Url::parse(raw.trim()).map_err(|e| PcaError::config(&format!("endpoint {raw:?}: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(PcaError::config(&format!(
            "endpoint {raw:?}: scheme must be https (or http)"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(PcaError::config(&format!("endpoint {raw:?} has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(PcaError::config(&format!(
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
    fn pca_endpoints_come_from_the_sdk_table_and_the_documented_extra() {
        assert_eq!(
            pca_endpoint("sa-brazil-1").unwrap().as_str(),
            "https://ccm.myhuaweicloud.com/"
        );
        assert_eq!(
            pca_endpoint("cn-north-4").unwrap().as_str(),
            "https://ccm.cn-north-4.myhuaweicloud.com/"
        );
        assert_eq!(
            pca_endpoint("ae-ad-1").unwrap().as_str(),
            "https://ccm.ae-ad-1.myhuaweicloud.com/"
        );
        assert_eq!(SDK_PCA_REGIONS.len(), 6, "the SDKs' CCM table has six regions");
        assert!(!SDK_PCA_REGIONS.iter().any(|(r, _)| *r == "ae-ad-1"));
    }

    #[test]
    fn unknown_regions_have_no_pca_endpoint_and_say_how_to_set_one() {
        let e = pca_endpoint("la-north-2").unwrap_err().to_string();
        assert!(
            e.contains("--pca-endpoint la-north-2=URL") && e.contains("spec.endpoint"),
            "{e}"
        );
        assert!(e.contains("ap-southeast-3"), "names the known regions: {e}");
        for bad in ["", "north", "CN-NORTH-4", "cn-north-4.evil.com/x", "cn_north_4", "cn-"] {
            let e = pca_endpoint(bad).unwrap_err().to_string();
            assert!(e.contains("not a Huawei Cloud region id"), "{bad}: {e}");
        }
    }

    #[test]
    fn iam_follows_the_sdk_table_with_the_global_fallback() {
        assert_eq!(
            iam_endpoint("ap-southeast-3").unwrap().as_str(),
            "https://iam.ap-southeast-3.myhuaweicloud.com/"
        );
        assert_eq!(
            iam_endpoint("ae-ad-1").unwrap().as_str(),
            "https://iam.ae-ad-1.myhuaweicloud.com/"
        );
        // Not in the SDKs' IAM table.
        for region in ["eu-west-101", "la-north-99", "not a region"] {
            assert_eq!(
                iam_endpoint(region).unwrap().as_str(),
                "https://iam.myhuaweicloud.com/",
                "{region}"
            );
        }
        assert_eq!(SDK_IAM_REGIONS.len(), 27);
    }

    #[test]
    fn iam_resolution_order_ignores_the_pca_endpoint() {
        let configured = Url::parse("https://iam.private.example").unwrap();
        assert_eq!(
            resolve_iam(Some("https://iam.spec.example"), Some(&configured), "cn-north-4")
                .unwrap()
                .as_str(),
            "https://iam.spec.example/"
        );
        assert_eq!(
            resolve_iam(None, Some(&configured), "cn-north-4").unwrap().as_str(),
            "https://iam.private.example/"
        );
        assert_eq!(
            resolve_iam(None, None, "cn-north-4").unwrap().as_str(),
            "https://iam.cn-north-4.myhuaweicloud.com/"
        );
        assert!(resolve_iam(Some("ftp://x"), None, "cn-north-4").is_err());
    }

    #[test]
    fn sts_follows_its_table_without_a_fallback() {
        assert_eq!(
            sts_endpoint("ap-southeast-3").unwrap().as_str(),
            "https://sts.ap-southeast-3.myhuaweicloud.com/"
        );
        assert_eq!(sts_endpoint("ru-moscow-1"), None);
        let configured = Url::parse("https://sts.private.example").unwrap();
        assert_eq!(resolve_sts(Some(&configured), "ru-moscow-1"), Some(configured));
    }

    #[test]
    fn sdk_values_without_scheme_are_https() {
        assert_eq!(
            sdk_endpoint_value("iam.example.com").unwrap().as_str(),
            "https://iam.example.com/"
        );
        assert_eq!(
            sdk_endpoint_value("http://127.0.0.1:8080").unwrap().as_str(),
            "http://127.0.0.1:8080/"
        );
        assert!(sdk_endpoint_value("ftp://x").is_err());
    }

    #[test]
    fn rejects_what_is_not_an_endpoint() {
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
