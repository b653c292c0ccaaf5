//! Wire types of the PCA REST API (pca-api.md §2), named after the SDK models.
//!
//! Responses are decoded leniently (unknown fields ignored, absent ones defaulted) because the
//! service adds fields over time; requests carry exactly the documented fields.

use serde::{Deserialize, Serialize};

/// How long a certificate is valid (`Validity`, pca-api.md §2.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validity {
    /// Unit of `value`.
    #[serde(rename = "type")]
    pub unit: ValidityUnit,
    /// Number of units.
    pub value: u32,
    /// Start of validity, epoch milliseconds; omitted means "now".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub start_from: Option<i64>,
}

/// Units of [`Validity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ValidityUnit {
    /// 12 months.
    Year,
    /// 31 days.
    Month,
    /// 24 hours.
    Day,
    /// One hour.
    Hour,
}

/// What kind of certificate issue-from-CSR creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertificateType {
    /// A leaf certificate (CA:FALSE).
    EntityCert,
    /// A subordinate CA certificate whose key stays with the requester.
    IntermediateCa,
}

/// Body of `POST /v1/private-certificates/csr` (`CreateCertificateByCsrRequestBody`).
#[derive(Debug, Clone, Serialize)]
pub struct IssueFromCsr {
    /// Id of the issuing CA.
    pub issuer_id: String,
    /// PEM CSR.
    pub csr: String,
    /// Requested validity.
    pub validity: Validity,
    /// Leaf or intermediate CA.
    #[serde(rename = "type")]
    pub cert_type: CertificateType,
    /// Path length for `INTERMEDIATE_CA`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_length: Option<u32>,
    /// Enterprise project id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enterprise_project_id: Option<String>,
}

/// Response of issue-from-CSR.
#[derive(Debug, Clone, Deserialize)]
pub struct IssuedCertificate {
    /// Id of the new certificate (for `INTERMEDIATE_CA`, its CA id).
    pub certificate_id: String,
}

/// Distinguished name as the API reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DistinguishedName {
    /// CN.
    pub common_name: Option<String>,
    /// C.
    pub country: Option<String>,
    /// ST.
    pub state: Option<String>,
    /// L.
    pub locality: Option<String>,
    /// O.
    pub organization: Option<String>,
    /// OU.
    pub organizational_unit: Option<String>,
}

impl DistinguishedName {
    /// A compact, human-readable form such as `CN=sub,O=huawei,C=CN`.
    pub fn display(&self) -> String {
        [
            ("CN", &self.common_name),
            ("OU", &self.organizational_unit),
            ("O", &self.organization),
            ("L", &self.locality),
            ("ST", &self.state),
            ("C", &self.country),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
    }
}

/// A CA (`ShowCertificateAuthorityResponse`, list element).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertificateAuthority {
    /// CA id.
    pub ca_id: String,
    /// `ROOT` or `SUBORDINATE`.
    #[serde(rename = "type")]
    pub ca_type: String,
    /// `PENDING`, `ACTIVED`, `DISABLED`, `DELETED` or `EXPIRED`.
    pub status: String,
    /// Path length (a root reports 7).
    pub path_length: Option<i64>,
    /// Parent CA id (none for a root).
    pub issuer_id: Option<String>,
    /// Parent CA common name.
    pub issuer_name: Option<String>,
    /// e.g. `EC256`.
    pub key_algorithm: Option<String>,
    /// e.g. `SHA384`.
    pub signature_algorithm: Option<String>,
    /// `GENERATE`, `IMPORT` or `CSR`.
    pub gen_mode: Option<String>,
    /// Serial number (hex).
    pub serial_number: Option<String>,
    /// Creation, epoch ms.
    pub create_time: Option<i64>,
    /// Start of validity, epoch ms.
    pub not_before: Option<i64>,
    /// End of validity, epoch ms.
    pub not_after: Option<i64>,
    /// Subject.
    pub distinguished_name: DistinguishedName,
    /// Enterprise project.
    pub enterprise_project_id: Option<String>,
}

/// The only CA status that can issue.
pub const CA_STATUS_ACTIVE: &str = "ACTIVED";

impl CertificateAuthority {
    /// Whether the CA can issue.
    pub fn is_active(&self) -> bool {
        self.status == CA_STATUS_ACTIVE
    }
}

/// A private certificate (`ShowCertificateResponse`, list element).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PrivateCertificate {
    /// Certificate id.
    pub certificate_id: String,
    /// `ISSUED`, `REVOKED` or `EXPIRED`.
    pub status: String,
    /// Issuing CA id.
    pub issuer_id: Option<String>,
    /// Issuing CA common name.
    pub issuer_name: Option<String>,
    /// e.g. `EC256`.
    pub key_algorithm: Option<String>,
    /// e.g. `SHA384`.
    pub signature_algorithm: Option<String>,
    /// `GENERATE`, `IMPORT` or `CSR`.
    pub gen_mode: Option<String>,
    /// Serial number (hex).
    pub serial_number: Option<String>,
    /// Creation, epoch ms.
    pub create_time: Option<i64>,
    /// Start of validity, epoch ms.
    pub not_before: Option<i64>,
    /// End of validity, epoch ms.
    pub not_after: Option<i64>,
    /// Subject.
    pub distinguished_name: DistinguishedName,
}

/// `GET /v1/private-certificates` response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CertificateList {
    /// Number of matches over all pages.
    pub total: u64,
    /// This page.
    pub certificates: Vec<PrivateCertificate>,
}

/// `GET /v1/private-certificate-authorities` response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CaList {
    /// Number of matches over all pages.
    pub total: u64,
    /// This page.
    pub certificate_authorities: Vec<CertificateAuthority>,
}

/// Filters of `ListCertificate` (pca-api.md §2.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListCertificates {
    /// Page size (service default 10).
    pub limit: Option<u32>,
    /// Offset of the page.
    pub offset: Option<u32>,
    /// Common-name substring.
    pub name: Option<String>,
    /// `ISSUED`, `REVOKED` or `EXPIRED`.
    pub status: Option<String>,
    /// `create_time`, `common_name`, `issuer_name` or `not_after`.
    pub sort_key: Option<String>,
    /// `DESC` or `ASC`.
    pub sort_dir: Option<String>,
}

impl ListCertificates {
    /// Query parameters in wire form.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(v) = self.limit {
            q.push(("limit", v.to_string()));
        }
        if let Some(v) = self.offset {
            q.push(("offset", v.to_string()));
        }
        for (k, v) in [
            ("name", &self.name),
            ("status", &self.status),
            ("sort_key", &self.sort_key),
            ("sort_dir", &self.sort_dir),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        q
    }
}

/// Body of certificate export.
#[derive(Debug, Clone, Serialize)]
pub struct ExportRequest {
    /// Always `"false"`: we want JSON, not a zip.
    pub is_compressed: &'static str,
    /// Server type; `OTHER` gives plain PEM.
    #[serde(rename = "type")]
    pub server_type: &'static str,
}

impl Default for ExportRequest {
    fn default() -> Self {
        Self {
            is_compressed: "false",
            server_type: "OTHER",
        }
    }
}

/// Exported certificate or CA: PEMs with CRLF line breaks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExportedPem {
    /// The certificate itself.
    pub certificate: Option<String>,
    /// Issuer → … → root.
    pub certificate_chain: Option<String>,
}

/// Revocation reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RevokeReason {
    /// No reason given.
    Unspecified,
    /// The key leaked.
    KeyCompromise,
    /// The CA was compromised.
    CertificateAuthorityCompromise,
    /// Affiliation changed.
    AffiliationChanged,
    /// Replaced by another certificate.
    Superseded,
    /// No longer needed.
    CessationOfOperation,
    /// On hold.
    CertificateHold,
    /// Privilege withdrawn.
    PrivilegeWithdrawn,
    /// Attribute authority compromised.
    AttributeAuthorityCompromise,
}

/// Body of revoke: `{}` or `{"reason": ...}` (an empty body is an error, pca-api.md §2.7).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RevokeRequest {
    /// Optional reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<RevokeReason>,
}

/// One quota line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct QuotaResource {
    /// `CERTIFICATE_AUTHORITY` or `CERTIFICATE`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// In use.
    pub used: i64,
    /// Limit.
    pub quota: i64,
}

/// Quotas response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Quotas {
    /// Wrapper as on the wire.
    pub quotas: QuotaResources,
}

/// `quotas.resources`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QuotaResources {
    /// Lines.
    pub resources: Vec<QuotaResource>,
}

/// IAM `GET /v3/auth/domains` response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Domains {
    /// Accounts the credentials belong to; the first is used.
    pub domains: Vec<Domain>,
}

/// One IAM domain (account).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Domain {
    /// Account id, sent as `X-Domain-Id`.
    pub id: String,
    /// Account name.
    pub name: Option<String>,
}

/// Error body of the service and the gateway: `{error_code, error_msg[, request_id]}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    /// e.g. `PCA.10010002` or `APIGW.0301`.
    pub error_code: Option<String>,
    /// Human-readable text.
    pub error_msg: Option<String>,
    /// Gateway errors carry the request id in the body as well.
    pub request_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_body_matches_documented_shape() {
        let body = IssueFromCsr {
            issuer_id: "6434f74f-2d13-4e6a-89eb-93ee313f1a43".into(),
            csr: "PEM".into(),
            validity: Validity {
                unit: ValidityUnit::Day,
                value: 90,
                start_from: None,
            },
            cert_type: CertificateType::IntermediateCa,
            path_length: Some(0),
            enterprise_project_id: None,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"issuer_id":"6434f74f-2d13-4e6a-89eb-93ee313f1a43","csr":"PEM","validity":{"type":"DAY","value":90},"type":"INTERMEDIATE_CA","path_length":0}"#
        );
    }

    #[test]
    fn revoke_without_reason_is_empty_object() {
        assert_eq!(serde_json::to_string(&RevokeRequest::default()).unwrap(), "{}");
        let r = RevokeRequest {
            reason: Some(RevokeReason::KeyCompromise),
        };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"reason":"KEY_COMPROMISE"}"#);
    }

    #[test]
    fn show_ca_decodes_documented_example() {
        let json = r#"{"ca_id":"6434f74f-2d13-4e6a-89eb-93ee313f1a43","type":"SUBORDINATE","status":"ACTIVED",
 "path_length":0,"issuer_id":"1d8f","issuer_name":"test-root","key_algorithm":"RSA2048",
 "signature_algorithm":"SHA256","freeze_flag":0,"gen_mode":"GENERATE",
 "serial_number":"2a5f","create_time":1700000000000,"delete_time":0,
 "not_before":1700000000000,"not_after":1860000000000,
 "distinguished_name":{"common_name":"test-sub","country":"CN","state":"GD","locality":"SZ",
   "organization":"huawei","organizational_unit":"cloud"},
 "crl_configuration":{"enabled":false,"crl_name":"","obs_bucket_name":"","valid_days":0,"crl_dis_point":""},
 "enterprise_project_id":"0","charging_mode":1,"free_quota":0}"#;
        let ca: CertificateAuthority = serde_json::from_str(json).unwrap();
        assert!(ca.is_active());
        assert_eq!(ca.not_after, Some(1_860_000_000_000));
        assert_eq!(
            ca.distinguished_name.display(),
            "CN=test-sub,OU=cloud,O=huawei,L=SZ,ST=GD,C=CN"
        );
    }

    #[test]
    fn list_query_only_has_given_filters() {
        let q = ListCertificates {
            limit: Some(100),
            sort_key: Some("create_time".into()),
            ..Default::default()
        };
        assert_eq!(
            q.query(),
            vec![("limit", "100".to_string()), ("sort_key", "create_time".to_string())]
        );
    }
}
