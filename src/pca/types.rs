//! Wire types of the PCA, IAM and STS REST APIs, named after the SDK models.
//!
//! Requests carry exactly the documented fields. Answers are read like the SDKs read them where a
//! field only informs (unknown fields ignored; a field absent or `null` is `None`), and strictly
//! where a decision depends on it: such fields are not `Option`, so an answer without them (or
//! with `null`) is an error naming the field ([`from_json`]) — the client reports it as an
//! ambiguous, retryable [`PcaError::Decode`](super::PcaError::Decode), never as a default that
//! would change what the controller decides (e.g. a list without `total` read as "nothing
//! issued").

use std::fmt;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::scrub::id_for_message;

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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IssuedCertificate {
    /// Id of the new certificate (for `INTERMEDIATE_CA`, its CA id). Required; the client also
    /// checks that it is UUID-shaped.
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

/// Declares a wire enum: known values, plus `Other` keeping any value this version does not know
/// (the service may add some; an unknown value must not make the whole answer unreadable).
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $wire)] $variant,)+
            /// A value this version does not know, as sent.
            #[serde(untagged)]
            Other(String),
        }

        impl $name {
            /// The value as on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)+
                    $name::Other(s) => s,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// Status of a CA.
    CaStatus {
        /// Created, not yet activated: cannot issue.
        Pending = "PENDING",
        /// The only status that can issue.
        Actived = "ACTIVED",
        /// Disabled: cannot issue.
        Disabled = "DISABLED",
        /// Scheduled for deletion: cannot issue.
        Deleted = "DELETED",
        /// Past its end of validity: cannot issue.
        Expired = "EXPIRED",
    }
}

wire_enum! {
    /// Kind of CA.
    CaType {
        /// A root CA.
        Root = "ROOT",
        /// A subordinate CA.
        Subordinate = "SUBORDINATE",
    }
}

wire_enum! {
    /// How a CA or certificate came to be.
    GenMode {
        /// Key and certificate made by the PCA.
        Generate = "GENERATE",
        /// Imported (the key is in the PCA).
        Import = "IMPORT",
        /// Issued from a CSR: the private key is on the requester's side, not in the PCA. A CA of
        /// this kind cannot sign through the PCA.
        Csr = "CSR",
    }
}

wire_enum! {
    /// Status of a private certificate.
    CertificateStatus {
        /// Valid.
        Issued = "ISSUED",
        /// Revoked.
        Revoked = "REVOKED",
        /// Past its end of validity.
        Expired = "EXPIRED",
    }
}

/// A CA (`ShowCertificateAuthorityResponse`). `type`, `status` and `distinguished_name` are
/// required (the issuer's readiness depends on them); everything else informs and may be absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateAuthority {
    /// CA id.
    pub ca_id: Option<String>,
    /// `ROOT` or `SUBORDINATE`.
    #[serde(rename = "type")]
    pub ca_type: CaType,
    /// Whether it can issue.
    pub status: CaStatus,
    /// Subject.
    pub distinguished_name: DistinguishedName,
    /// Path length (a root reports 7).
    pub path_length: Option<i64>,
    /// Parent CA id (none for a root).
    pub issuer_id: Option<String>,
    /// Parent CA common name.
    pub issuer_name: Option<String>,
    /// e.g. `EC256`, `RSA2048`, `SM2`.
    pub key_algorithm: Option<String>,
    /// e.g. `SHA384`, `SM3`.
    pub signature_algorithm: Option<String>,
    /// `0` is not frozen; any other value is frozen.
    pub freeze_flag: Option<i64>,
    /// How the CA came to be (`CSR`: its key is not in the PCA).
    pub gen_mode: Option<GenMode>,
    /// Serial number (hex).
    pub serial_number: Option<String>,
    /// Creation, epoch ms.
    pub create_time: Option<i64>,
    /// Scheduled deletion, epoch ms (0 or absent when none).
    pub delete_time: Option<i64>,
    /// Start of validity, epoch ms.
    pub not_before: Option<i64>,
    /// End of validity, epoch ms.
    pub not_after: Option<i64>,
    /// Enterprise project.
    pub enterprise_project_id: Option<String>,
}

impl CertificateAuthority {
    /// Whether its status allows issuing (other properties may still forbid it; see
    /// `controller::issuer::evaluate_ca`).
    pub fn is_active(&self) -> bool {
        self.status == CaStatus::Actived
    }
}

/// A private certificate as `ListCertificate` reports it. Id, status, issuer and creation time
/// are required (recovery decides with them); the rest informs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateCertificate {
    /// Certificate id (the client checks that it is UUID-shaped).
    pub certificate_id: String,
    /// `ISSUED`, `REVOKED` or `EXPIRED`.
    pub status: CertificateStatus,
    /// Issuing CA id.
    pub issuer_id: String,
    /// Creation, epoch ms.
    pub create_time: i64,
    /// Issuing CA common name.
    pub issuer_name: Option<String>,
    /// e.g. `EC256`.
    pub key_algorithm: Option<String>,
    /// e.g. `SHA384`.
    pub signature_algorithm: Option<String>,
    /// `GENERATE`, `IMPORT` or `CSR`.
    pub gen_mode: Option<GenMode>,
    /// Serial number (hex).
    pub serial_number: Option<String>,
    /// Start of validity, epoch ms.
    pub not_before: Option<i64>,
    /// End of validity, epoch ms.
    pub not_after: Option<i64>,
    /// Subject.
    pub distinguished_name: Option<DistinguishedName>,
}

/// `GET /v1/private-certificates` response. Both fields are required: a page without `total`
/// cannot tell "nothing issued" from "answer cut short".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CertificateList {
    /// Number of matches over all pages.
    pub total: u64,
    /// This page.
    pub certificates: Vec<PrivateCertificate>,
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

/// Exported certificate or CA: PEMs with CRLF line breaks. Both fields are required (an empty
/// chain is a value: a root CA has none).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExportedPem {
    /// The certificate itself.
    pub certificate: String,
    /// Issuer → … → root.
    pub certificate_chain: String,
}

/// One quota line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QuotaResource {
    /// `CERTIFICATE_AUTHORITY` or `CERTIFICATE`.
    #[serde(rename = "type")]
    pub resource_type: Option<String>,
    /// In use.
    pub used: Option<i64>,
    /// Limit.
    pub quota: Option<i64>,
}

/// Quotas response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Quotas {
    /// Wrapper as on the wire.
    pub quotas: Option<QuotaResources>,
}

/// `quotas.resources`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct QuotaResources {
    /// Lines.
    pub resources: Option<Vec<QuotaResource>>,
}

impl Quotas {
    /// `(used, quota)` of a resource type, when the answer has both.
    pub fn of(&self, resource_type: &str) -> Option<(i64, i64)> {
        self.quotas
            .as_ref()?
            .resources
            .as_ref()?
            .iter()
            .find(|r| r.resource_type.as_deref() == Some(resource_type))
            .and_then(|r| Some((r.used?, r.quota?)))
    }
}

/// IAM `GET /v3/auth/domains` response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Domains {
    /// Accounts the credentials belong to; the first is used. Absent, `null` and `[]` all mean
    /// "none listed" (the SDKs then ask STS).
    pub domains: Option<Vec<Domain>>,
}

impl Domains {
    /// The first listed non-empty id.
    pub fn first_id(&self) -> Option<&str> {
        self.domains
            .iter()
            .flatten()
            .filter_map(|d| d.id.as_deref())
            .find(|id| !id.trim().is_empty())
    }
}

/// One IAM domain (account).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Domain {
    /// Account id, sent as `X-Domain-Id`.
    pub id: Option<String>,
    /// Account name.
    pub name: Option<String>,
}

/// STS `GET /v5/caller-identity` response (only the field the SDKs read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallerIdentity {
    /// Account (domain) id.
    pub account_id: Option<String>,
}

/// An answer body: decoded with [`from_json`], then checked for what serde cannot say (ids that
/// go into URL paths later must be UUID-shaped).
pub trait Answer: DeserializeOwned {
    /// What is wrong with an otherwise well-formed answer, naming the field.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Answer for CertificateAuthority {}
impl Answer for ExportedPem {}
impl Answer for Quotas {}
impl Answer for Domains {}
impl Answer for CallerIdentity {}

impl Answer for IssuedCertificate {
    fn check(&self) -> Result<(), String> {
        check_id("certificate_id", &self.certificate_id)
    }
}

impl Answer for CertificateList {
    fn check(&self) -> Result<(), String> {
        self.certificates
            .iter()
            .enumerate()
            .try_for_each(|(i, c)| check_id(&format!("certificates[{i}].certificate_id"), &c.certificate_id))
    }
}

fn check_id(field: &str, id: &str) -> Result<(), String> {
    if is_uuid_shaped(id) {
        Ok(())
    } else {
        Err(format!("at `{field}`: {} is not a PCA id", id_for_message(id)))
    }
}

/// Whether `s` is a lower-case 8-4-4-4-12 hex UUID, the shape of every PCA id (CA and
/// certificate ids go into URL paths).
pub fn is_uuid_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

/// Decodes and checks an answer, naming the field on failure (`at `certificates[0]`: missing
/// field `create_time``). Trailing data after the JSON value is an error, as in
/// `serde_json::from_slice`.
pub fn from_json<T: Answer>(body: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            inner.to_string()
        } else {
            format!("at `{path}`: {inner}")
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    value.check()?;
    Ok(value)
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
        let ca: CertificateAuthority = from_json(json.as_bytes()).unwrap();
        assert!(ca.is_active());
        assert_eq!(
            (ca.ca_type, ca.gen_mode, ca.freeze_flag),
            (CaType::Subordinate, Some(GenMode::Generate), Some(0))
        );
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

    use serde_json::{Value, json};

    fn ca_json() -> Value {
        json!({"ca_id": "6434f74f-2d13-4e6a-89eb-93ee313f1a43", "type": "ROOT", "status": "ACTIVED",
            "path_length": 7, "issuer_id": null, "issuer_name": null, "key_algorithm": "EC256",
            "signature_algorithm": "SHA256", "freeze_flag": 0, "gen_mode": "GENERATE",
            "serial_number": "01", "create_time": 1, "delete_time": 0, "not_before": 1, "not_after": 2,
            "distinguished_name": {"common_name": "root", "country": "CN", "state": null, "locality": null,
                "organization": null, "organizational_unit": null},
            "crl_configuration": null, "enterprise_project_id": "0", "charging_mode": 1})
    }

    fn listed_json() -> Value {
        json!({"total": 1, "certificates": [{"certificate_id": "4bd1b320-e162-419f-8add-dfcc046197c7",
            "status": "ISSUED", "issuer_id": "6434f74f-2d13-4e6a-89eb-93ee313f1a43", "create_time": 5,
            "issuer_name": "sub", "key_algorithm": "EC256", "signature_algorithm": "SHA256",
            "gen_mode": "CSR", "serial_number": "02", "not_before": 5, "not_after": 6,
            "distinguished_name": {"common_name": "leaf"}}]})
    }

    /// Every field of `value` (at `pointer`) except `keep` set to `null`.
    fn null_all_but(mut value: Value, pointer: &str, keep: &[&str]) -> Value {
        let object = value.pointer_mut(pointer).and_then(Value::as_object_mut).unwrap();
        for (k, v) in object.iter_mut() {
            if !keep.contains(&k.as_str()) {
                *v = Value::Null;
            }
        }
        value
    }

    fn decode<T: Answer>(v: &Value) -> Result<T, String> {
        from_json(v.to_string().as_bytes())
    }

    #[test]
    fn null_in_every_informative_field_is_accepted() {
        let ca = null_all_but(ca_json(), "", &["type", "status", "distinguished_name"]);
        let ca: CertificateAuthority = decode(&ca).unwrap();
        assert_eq!(
            (ca.ca_id, ca.not_after, ca.gen_mode, ca.freeze_flag),
            (None, None, None, None)
        );
        let dn = null_all_but(ca_json(), "/distinguished_name", &[]);
        let ca: CertificateAuthority = decode(&dn).unwrap();
        assert_eq!(ca.distinguished_name, DistinguishedName::default());
        let list = null_all_but(
            listed_json(),
            "/certificates/0",
            &["certificate_id", "status", "issuer_id", "create_time"],
        );
        let list: CertificateList = decode(&list).unwrap();
        assert_eq!(list.certificates[0].create_time, 5);
        assert!(list.certificates[0].distinguished_name.is_none());
        for body in [
            json!({}),
            json!({"domains": null}),
            json!({"domains": []}),
            json!({"domains": [{"id": null, "name": null}]}),
        ] {
            assert_eq!(decode::<Domains>(&body).unwrap().first_id(), None, "{body}");
        }
        let quotas: Quotas =
            decode(&json!({"quotas": {"resources": [{"type": null, "used": null, "quota": null}]}})).unwrap();
        assert_eq!(quotas.of("CERTIFICATE"), None);
        assert_eq!(
            decode::<CallerIdentity>(&json!({"account_id": null}))
                .unwrap()
                .account_id,
            None
        );
    }

    /// Each decision field, absent and `null`: an error that names it.
    fn assert_required<T: Answer + fmt::Debug>(value: &Value, pointer: &str, fields: &[&str]) {
        for field in fields {
            for null in [false, true] {
                let mut v = value.clone();
                let object = v.pointer_mut(pointer).and_then(Value::as_object_mut).unwrap();
                if null {
                    object.insert((*field).to_owned(), Value::Null);
                } else {
                    object.remove(*field);
                }
                let err = decode::<T>(&v).expect_err(&format!("{field} null={null} accepted"));
                assert!(err.contains(field), "{field} null={null}: {err}");
            }
        }
    }

    #[test]
    fn each_decision_field_missing_or_null_is_an_error_naming_it() {
        assert_required::<CertificateAuthority>(&ca_json(), "", &["type", "status", "distinguished_name"]);
        assert_required::<CertificateList>(&listed_json(), "", &["total", "certificates"]);
        assert_required::<CertificateList>(
            &listed_json(),
            "/certificates/0",
            &["certificate_id", "status", "issuer_id", "create_time"],
        );
        assert_required::<ExportedPem>(
            &json!({"certificate": "A", "certificate_chain": ""}),
            "",
            &["certificate", "certificate_chain"],
        );
        assert_required::<IssuedCertificate>(
            &json!({"certificate_id": "4bd1b320-e162-419f-8add-dfcc046197c7"}),
            "",
            &["certificate_id"],
        );
        let err = decode::<CertificateList>(&json!({"total": 1, "certificates": [{}]})).unwrap_err();
        assert!(err.contains("certificates[0]"), "the element is named: {err}");
    }

    #[test]
    fn wrong_types_and_trailing_data_are_errors_naming_the_field() {
        let mut v = listed_json();
        v["total"] = json!("1");
        assert!(decode::<CertificateList>(&v).unwrap_err().contains("total"));
        assert!(from_json::<CertificateList>(br#"{"total":0,"certificates":[]} x"#).is_err());
    }

    #[test]
    fn unknown_enum_values_are_kept() {
        let mut v = ca_json();
        v["status"] = json!("FROZEN");
        v["gen_mode"] = json!("HSM");
        let ca: CertificateAuthority = decode(&v).unwrap();
        assert_eq!(ca.status, CaStatus::Other("FROZEN".into()));
        assert_eq!(ca.status.to_string(), "FROZEN");
        assert_eq!(ca.gen_mode, Some(GenMode::Other("HSM".into())));
        assert!(!ca.is_active());
    }

    #[test]
    fn ids_that_go_into_paths_are_checked() {
        let huge = "a".repeat(1_000_000);
        let err = decode::<IssuedCertificate>(&json!({"certificate_id": huge})).unwrap_err();
        assert!(
            err.contains("certificate_id") && err.len() < 200,
            "{}",
            &err[..err.len().min(300)]
        );
        let mut list = listed_json();
        list["certificates"][0]["certificate_id"] = json!("../quotas");
        let err = decode::<CertificateList>(&list).unwrap_err();
        assert!(
            err.contains("certificates[0].certificate_id") && err.contains("../quotas"),
            "{err}"
        );
    }

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

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Field names of the answers, plus random ones.
        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "type",
                    "status",
                    "distinguished_name",
                    "total",
                    "certificates",
                    "certificate_id",
                    "issuer_id",
                    "create_time",
                    "certificate",
                    "certificate_chain",
                    "common_name",
                    "not_after",
                    "gen_mode",
                    "freeze_flag",
                    "domains",
                    "id",
                    "account_id",
                    "quotas",
                ])
                .prop_map(str::to_owned),
                "[a-z_]{1,10}",
            ]
        }

        /// Arbitrary JSON, a few levels deep.
        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
                "[ -~]{0,16}".prop_map(Value::from),
                Just(Value::from("ACTIVED")),
                Just(Value::from("4bd1b320-e162-419f-8add-dfcc046197c7")),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(key(), inner, 0..6)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn decode_all(body: &[u8]) {
            let _ = from_json::<CertificateAuthority>(body);
            let _ = from_json::<CertificateList>(body);
            let _ = from_json::<ExportedPem>(body);
            let _ = from_json::<IssuedCertificate>(body);
            let _ = from_json::<Quotas>(body);
            let _ = from_json::<Domains>(body);
            let _ = from_json::<CallerIdentity>(body);
        }

        /// `valid` with the value at `pointer`/`field` replaced: decoding either succeeds or names
        /// the field.
        fn errors_name(
            valid: Value,
            pointer: &str,
            field: &str,
            replacement: Value,
            decode: fn(&Value) -> Result<(), String>,
        ) -> Result<(), TestCaseError> {
            let mut v = valid;
            if let Some(object) = v.pointer_mut(pointer).and_then(Value::as_object_mut) {
                object.insert(field.to_owned(), replacement);
            }
            if let Err(e) = decode(&v) {
                prop_assert!(e.contains(field), "{} does not name {}", e, field);
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, max_shrink_time: 10_000, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_json_never_panics(value in json_value()) {
                decode_all(value.to_string().as_bytes());
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                decode_all(&bytes);
            }

            #[test]
            fn a_bad_ca_field_is_named(field in key(), replacement in json_value()) {
                errors_name(ca_json(), "", &field, replacement, |v| decode::<CertificateAuthority>(v).map(|_| ()))?;
            }

            #[test]
            fn a_bad_subject_field_is_named(field in key(), replacement in json_value()) {
                errors_name(ca_json(), "/distinguished_name", &field, replacement, |v| decode::<CertificateAuthority>(v).map(|_| ()))?;
            }

            #[test]
            fn a_bad_listed_field_is_named(field in key(), replacement in json_value()) {
                errors_name(listed_json(), "/certificates/0", &field, replacement.clone(), |v| decode::<CertificateList>(v).map(|_| ()))?;
                errors_name(listed_json(), "", &field, replacement, |v| decode::<CertificateList>(v).map(|_| ()))?;
            }
        }
    }
}
