//! Our custom resources: `CCMIssuer` (namespaced) and `CCMClusterIssuer` (cluster-scoped), group
//! `ccm-issuer.ccm.com`, version `v1beta1`. The YAML in `crds/` is generated from these types
//! (`ccm-issuer crds`); a unit test fails when the committed files drift.

use std::ops::Deref;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of our kinds.
pub const GROUP: &str = "ccm-issuer.ccm.com";
/// Version of our kinds.
pub const VERSION: &str = "v1beta1";
/// Kind of the namespaced issuer.
pub const ISSUER_KIND: &str = "CCMIssuer";
/// Kind of the cluster-scoped issuer.
pub const CLUSTER_ISSUER_KIND: &str = "CCMClusterIssuer";
/// Default Secret key holding the access key id.
pub const DEFAULT_AK_KEY: &str = "ak";
/// Default Secret key holding the secret access key.
pub const DEFAULT_SK_KEY: &str = "sk";
/// Default Secret key holding a security token (temporary credentials), if present.
pub const DEFAULT_TOKEN_KEY: &str = "securityToken";

/// A well-formed Huawei Cloud region id (`xx-name-N`), the shape `pca::endpoint::is_region_shaped`
/// checks. Any such id is accepted: whether the controller knows a PCA endpoint for it depends on
/// its `--pca-endpoint` flags, so an unknown region is reported on the issuer's Ready condition
/// (`UnknownRegion`), not refused here.
const REGION_PATTERN: &str = r"^[a-z]{2,}(-[a-z0-9]+)+$";

/// Desired state of a CCMIssuer: which Huawei Cloud PCA CA signs, and with which credentials.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ccm-issuer.ccm.com",
    version = "v1beta1",
    kind = "CCMIssuer",
    namespaced,
    status = "IssuerStatus",
    shortname = "ccmi",
    category = "cert-manager",
    doc = "A cert-manager issuer that signs CertificateRequests in its own namespace with a Huawei Cloud CCM Private CA.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"URN","type":"string","jsonPath":".spec.urn"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.region"}"#,
    printcolumn = r#"{"name":"CA Not After","type":"string","jsonPath":".status.ca.notAfter","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IssuerSpec {
    /// Id of the PCA certificate authority that signs, a UUID such as
    /// `4bd1b320-e162-419f-8add-dfcc046197c7` (the CA's id in the CCM console). It must be ACTIVED.
    #[schemars(regex(pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"))]
    pub urn: String,

    /// Huawei Cloud region id, e.g. `ap-southeast-3` (international) or `cn-north-4` (China).
    /// Selects the PCA endpoint from the built-in table (the Huawei SDKs' CCM regions and
    /// `ae-ad-1`) unless `endpoint` is set or the controller has `--pca-endpoint` for it, and the
    /// IAM endpoint from the SDKs' IAM table (else `https://iam.myhuaweicloud.com`).
    #[schemars(length(min = 1, max = 64), regex(pattern = REGION_PATTERN))]
    pub region: String,

    /// Secret holding the AK/SK (and optionally a security token) used to sign PCA API calls.
    pub secret_ref: SecretRef,

    /// Huawei Cloud account (domain) id, sent as `X-Domain-Id`. When omitted, it is discovered
    /// once with the same credentials, as the Huawei SDKs do: IAM `GET /v3/auth/domains`, and if
    /// IAM lists none, STS `GET /v5/caller-identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub domain_id: Option<String>,

    /// Override of the PCA endpoint, e.g. `https://ccm.ap-southeast-3.myhuaweicloud.com` or a
    /// private endpoint. Must be an https (or http) base URL without a path. On a namespaced
    /// CCMIssuer only an endpoint the controller allows (`--namespaced-issuer-endpoint`); plain
    /// http only with `--allow-insecure-endpoints`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/?#]+/?$"))]
    pub endpoint: Option<String>,

    /// Override of the IAM endpoint used for account-id discovery. Defaults to the controller's
    /// `--iam-endpoint` (`HUAWEICLOUD_SDK_IAM_ENDPOINT`), else the Huawei SDKs' IAM endpoint of
    /// the region, else `https://iam.myhuaweicloud.com`. Never derived from `endpoint`: a CCM host
    /// serves no IAM API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/?#]+/?$"))]
    pub iam_endpoint: Option<String>,

    /// PEM bundle (plain or base64-encoded) of CA certificates trusted for the endpoints' TLS,
    /// instead of the system roots. Use it for private endpoints and TLS-inspecting proxies. On
    /// a namespaced CCMIssuer only together with an allowed `endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,

    /// Enterprise project id passed on issuance (`0` is the default project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|all|[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12})$"))]
    pub enterprise_project_id: Option<String>,

    /// Path length of CA certificates issued for `isCA: true` requests (e.g. an Istio mesh
    /// intermediate). 0 means the issued CA may sign only leaf certificates. The PCA CA itself
    /// must have a larger path length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 6))]
    pub path_length: Option<u32>,
}

impl IssuerSpec {
    /// Path length for CA requests (default 0).
    pub fn path_length(&self) -> u32 {
        self.path_length.unwrap_or(0)
    }
}

/// Reference to the Secret holding the credentials, and the keys inside it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Namespace of the Secret. A CCMIssuer may only use a Secret in its own namespace (leave it
    /// empty or name that namespace). A CCMClusterIssuer defaults to the controller's cluster
    /// resource namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,

    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Key of the access key id in the Secret. Defaults to `ak`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_key: Option<String>,

    /// Key of the secret access key in the Secret. Defaults to `sk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_key: Option<String>,

    /// Key of the security token of temporary credentials. Defaults to `securityToken`; when the
    /// key is absent from the Secret, the credentials are treated as permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_token_key: Option<String>,
}

impl SecretRef {
    /// Key of the AK.
    pub fn ak_key(&self) -> &str {
        self.access_key_key.as_deref().unwrap_or(DEFAULT_AK_KEY)
    }

    /// Key of the SK.
    pub fn sk_key(&self) -> &str {
        self.secret_key_key.as_deref().unwrap_or(DEFAULT_SK_KEY)
    }

    /// Key of the security token.
    pub fn token_key(&self) -> &str {
        self.security_token_key.as_deref().unwrap_or(DEFAULT_TOKEN_KEY)
    }
}

/// Desired state of a CCMClusterIssuer: the same fields as a CCMIssuer.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ccm-issuer.ccm.com",
    version = "v1beta1",
    kind = "CCMClusterIssuer",
    status = "IssuerStatus",
    shortname = "ccmci",
    category = "cert-manager",
    doc = "A cert-manager issuer that signs CertificateRequests in any namespace with a Huawei Cloud CCM Private CA.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"URN","type":"string","jsonPath":".spec.urn"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.region"}"#,
    printcolumn = r#"{"name":"CA Not After","type":"string","jsonPath":".status.ca.notAfter","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct ClusterIssuerSpec(pub IssuerSpec);

impl Deref for ClusterIssuerSpec {
    type Target = IssuerSpec;
    fn deref(&self) -> &IssuerSpec {
        &self.0
    }
}

/// Observed state of an issuer.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerStatus {
    /// `Ready` says whether CertificateRequests can be signed (reason says why not);
    /// `CAExpiringSoon` warns when the CA ends within 30 days.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The PCA CA as last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaSummary>,

    /// When the CA was last checked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<String>,
}

/// What the PCA reported about the CA.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaSummary {
    /// Subject distinguished name, e.g. `CN=mesh-sub,O=example,C=CN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// PCA status: `ACTIVED` (the only one that can issue), `PENDING`, `DISABLED`, `DELETED`, `EXPIRED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `ROOT` or `SUBORDINATE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Key algorithm, e.g. `EC256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<String>,
    /// Path length of the CA (how many CA levels it may sign below it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_length: Option<i64>,
    /// Start of validity (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// End of validity (RFC 3339). Certificates are clamped to end no later than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// Both CRDs, as YAML documents in a stable order.
pub fn crd_documents() -> Result<Vec<(String, String)>, serde_saphyr::ser::Error> {
    let issuer = CCMIssuer::crd();
    let cluster = CCMClusterIssuer::crd();
    Ok(vec![
        (file_name(&issuer), to_yaml(&issuer)?),
        (file_name(&cluster), to_yaml(&cluster)?),
    ])
}

fn file_name(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

fn to_yaml<T: Serialize>(value: &T) -> Result<String, serde_saphyr::ser::Error> {
    let body = serde_saphyr::to_string(value)?;
    Ok(format!(
        "# Generated by `ccm-issuer crds` from src/crd.rs; do not edit.\n---\n{body}"
    ))
}

/// A minimal valid spec (the talk's CA and region), for tests.
#[cfg(test)]
pub(crate) fn test_spec(secret_namespace: Option<&str>) -> IssuerSpec {
    IssuerSpec {
        urn: "4bd1b320-e162-419f-8add-dfcc046197c7".into(),
        region: "cn-north-4".into(),
        secret_ref: SecretRef {
            namespace: secret_namespace.map(str::to_owned),
            name: "ccm-secret".into(),
            access_key_key: None,
            secret_key_key: None,
            security_token_key: None,
        },
        domain_id: None,
        endpoint: None,
        iam_endpoint: None,
        ca_bundle: None,
        enterprise_project_id: None,
        path_length: None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn seed_yaml_is_accepted_verbatim() {
        // The CCMIssuer from the talk (seed), metadata and all.
        let yaml = r#"
apiVersion: ccm-issuer.ccm.com/v1beta1
kind: CCMIssuer
metadata:
  labels:
    app.kubernetes.io/name: ccmissuer
    app.kubernetes.io/created-by: ccm-issuer
  name: ccmissuer-mesh
spec:
  urn: "4bd1b320-e162-419f-8add-dfcc046197c7"
  region: "cn-north-4"
  secretRef:
    namespace: istio-system
    name: ccm-secret
"#;
        let issuer: CCMIssuer = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(issuer.spec.urn, "4bd1b320-e162-419f-8add-dfcc046197c7");
        assert_eq!(issuer.spec.secret_ref.namespace.as_deref(), Some("istio-system"));
        assert_eq!(issuer.spec.secret_ref.ak_key(), "ak");
        assert_eq!(issuer.spec.secret_ref.sk_key(), "sk");
        assert_eq!(issuer.spec.path_length(), 0);
    }

    #[test]
    fn cluster_issuer_has_the_same_spec_and_cluster_scope() {
        let ns = CCMIssuer::crd();
        let cl = CCMClusterIssuer::crd();
        assert_eq!(ns.spec.scope, "Namespaced");
        assert_eq!(cl.spec.scope, "Cluster");
        assert_eq!(cl.spec.names.plural, "ccmclusterissuers");
        assert_eq!(ns.spec.names.plural, "ccmissuers");
        let schema =
            |c: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition| {
                serde_json::to_value(
                    &c.spec.versions[0]
                        .schema
                        .as_ref()
                        .unwrap()
                        .open_api_v3_schema
                        .as_ref()
                        .unwrap()
                        .properties
                        .as_ref()
                        .unwrap()["spec"]
                        .properties,
                )
                .unwrap()
            };
        assert_eq!(schema(&ns), schema(&cl));
    }

    #[test]
    fn every_spec_field_is_documented_and_validated() {
        let json = serde_json::to_value(CCMIssuer::crd()).unwrap();
        let spec = &json["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        for (name, field) in spec["properties"].as_object().unwrap() {
            assert!(
                field["description"].as_str().is_some_and(|d| d.len() > 20),
                "{name} lacks a description"
            );
        }
        for (name, field) in spec["properties"]["secretRef"]["properties"].as_object().unwrap() {
            assert!(
                field["description"].as_str().is_some(),
                "secretRef.{name} lacks a description"
            );
        }
        assert!(spec["properties"]["urn"]["pattern"].is_string());
        assert_eq!(spec["properties"]["region"]["pattern"], REGION_PATTERN);
        let columns: Vec<String> = json["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        for c in ["Ready", "Reason", "URN", "Region", "Age"] {
            assert!(columns.iter().any(|x| x == c), "{c} column missing");
        }
    }

    #[test]
    fn region_pattern_accepts_every_well_formed_region_and_only_those() {
        let pattern = regex::Regex::new(REGION_PATTERN).unwrap();
        let samples = [
            "la-north-2",
            "mars-north-1",
            "cn-north-4",
            "x-y",
            "CN-NORTH-4",
            "cn_north_4",
            "cn-",
            "c-north-1",
            "",
            "cn-north-4.evil.com",
        ];
        for region in crate::pca::endpoint::known_region_names().chain(samples) {
            assert_eq!(
                pattern.is_match(region),
                crate::pca::endpoint::is_region_shaped(region),
                "{region:?}: the schema and the controller disagree"
            );
        }
        for region in crate::pca::endpoint::known_region_names() {
            assert!(pattern.is_match(region), "{region}");
        }
    }

    #[test]
    fn committed_crds_match_the_types() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (name, yaml) in crd_documents().unwrap() {
            for dir in ["crds", "charts/ccm-issuer/crds"] {
                let path = root.join(dir).join(&name);
                let committed = std::fs::read_to_string(&path).unwrap_or_default();
                assert!(
                    committed == yaml,
                    "{} is out of date: run `make crds` (cargo run -- crds --out-dir crds --out-dir charts/ccm-issuer/crds)",
                    path.display()
                );
            }
        }
    }
}
