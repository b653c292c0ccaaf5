//! A minimal, hand-written view of cert-manager's `CertificateRequest` (`cert-manager.io/v1`).
//!
//! Only the fields an external issuer reads or writes are modelled, everything optional where
//! cert-manager allows it; the schema is never generated or installed (cert-manager owns the CRD).

use std::{borrow::Cow, collections::BTreeMap};

use k8s_openapi::{
    ByteString, NamespaceResourceScope,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// cert-manager's API group.
pub const CERT_MANAGER_GROUP: &str = "cert-manager.io";
/// Ready condition type.
pub const READY: &str = "Ready";
/// Approved condition type (set by approvers).
pub const APPROVED: &str = "Approved";
/// Denied condition type (set by approvers).
pub const DENIED: &str = "Denied";
/// InvalidRequest condition type (terminal: the request itself is wrong).
pub const INVALID_REQUEST: &str = "InvalidRequest";

/// Ready reasons cert-manager defines for CertificateRequests.
pub mod reason {
    /// In progress or waiting.
    pub const PENDING: &str = "Pending";
    /// Terminal failure.
    pub const FAILED: &str = "Failed";
    /// Signed.
    pub const ISSUED: &str = "Issued";
    /// An approver denied the request.
    pub const DENIED: &str = "Denied";
}

/// A cert-manager CertificateRequest.
///
/// Written out rather than derived with `kube::CustomResource` so that decoding skips
/// `metadata.managedFields`: every watch event of every request in the cluster carries it
/// (nested JSON from each field manager, often a third of the object), and nothing here
/// reads it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CertificateRequest {
    /// Standard metadata, without `managedFields`.
    #[serde(default, deserialize_with = "metadata_without_managed_fields")]
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: CertificateRequestSpec,
    /// The status.
    #[serde(default)]
    pub status: Option<CertificateRequestStatus>,
}

impl CertificateRequest {
    /// A request named `name` with `spec` and no status (tests, fixtures).
    pub fn new(name: &str, spec: CertificateRequestSpec) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}

impl kube::Resource for CertificateRequest {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "CertificateRequest".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        CERT_MANAGER_GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "certificaterequests".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Serialize for CertificateRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            api_version: &'static str,
            kind: &'static str,
            metadata: &'a ObjectMeta,
            spec: &'a CertificateRequestSpec,
            #[serde(skip_serializing_if = "Option::is_none")]
            status: &'a Option<CertificateRequestStatus>,
        }
        Wire {
            api_version: "cert-manager.io/v1",
            kind: "CertificateRequest",
            metadata: &self.metadata,
            spec: &self.spec,
            status: &self.status,
        }
        .serialize(serializer)
    }
}

/// `ObjectMeta` without `managedFields` (and the deprecated `selfLink`): serde skips unknown
/// fields without building them.
fn metadata_without_managed_fields<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Meta {
        annotations: Option<BTreeMap<String, String>>,
        creation_timestamp: Option<Time>,
        deletion_grace_period_seconds: Option<i64>,
        deletion_timestamp: Option<Time>,
        finalizers: Option<Vec<String>>,
        generate_name: Option<String>,
        generation: Option<i64>,
        labels: Option<BTreeMap<String, String>>,
        name: Option<String>,
        namespace: Option<String>,
        owner_references: Option<Vec<OwnerReference>>,
        resource_version: Option<String>,
        uid: Option<String>,
    }
    let m = Meta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        annotations: m.annotations,
        creation_timestamp: m.creation_timestamp,
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        deletion_timestamp: m.deletion_timestamp,
        finalizers: m.finalizers,
        generate_name: m.generate_name,
        generation: m.generation,
        labels: m.labels,
        managed_fields: None,
        name: m.name,
        namespace: m.namespace,
        owner_references: m.owner_references,
        resource_version: m.resource_version,
        self_link: None,
        uid: m.uid,
    })
}

/// `CertificateRequest.spec`.
#[derive(Deserialize, Serialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestSpec {
    /// PEM CSR (base64 on the wire).
    #[serde(default)]
    pub request: ByteString,
    /// Whether a CA certificate is requested. cert-manager does not encode this in the CSR.
    #[serde(default, rename = "isCA", skip_serializing_if = "Option::is_none")]
    pub is_ca: Option<bool>,
    /// Requested lifetime as a Go duration (e.g. `2160h0m0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Requested usages (cert-manager names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usages: Option<Vec<String>>,
    /// The issuer to use.
    pub issuer_ref: IssuerRef,
}

/// `spec.issuerRef`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct IssuerRef {
    /// Issuer name.
    pub name: String,
    /// Issuer kind; cert-manager defaults an empty kind to `Issuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Issuer group; cert-manager defaults an empty group to `cert-manager.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// `CertificateRequest.status`.
#[derive(Deserialize, Serialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestStatus {
    /// Conditions, keyed by type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CertificateRequestCondition>,
    /// Leaf + intermediates, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<ByteString>,
    /// CA (root), PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<ByteString>,
    /// When the request failed or was denied (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_time: Option<String>,
}

/// A CertificateRequest condition. Unlike `meta/v1.Condition`, cert-manager's may lack
/// `lastTransitionTime`, `reason` and `message`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestCondition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339 time of the last status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl CertificateRequest {
    /// The condition of a type, if present.
    pub fn condition(&self, type_: &str) -> Option<&CertificateRequestCondition> {
        self.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
    }

    /// Whether a condition of this type has status `True`.
    pub fn is_true(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }

    /// The Ready reason, if any.
    pub fn ready_reason(&self) -> Option<&str> {
        self.condition(READY).and_then(|c| c.reason.as_deref())
    }

    /// Whether the request reached a final state (Issued, Failed, Denied) or already carries a
    /// certificate: such requests are never signed again.
    pub fn is_final(&self) -> bool {
        let has_cert = self
            .status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_some_and(|c| !c.0.is_empty());
        has_cert
            || self.is_true(INVALID_REQUEST)
            || matches!(
                self.ready_reason(),
                Some(reason::ISSUED | reason::FAILED | reason::DENIED)
            )
    }
}

/// Parses a Go `time.Duration` string (`2160h0m0s`, `1h30m`, `90m`, `1.5h`, `300ms`).
pub fn parse_go_duration(text: &str) -> Result<std::time::Duration, String> {
    let s = text.trim();
    let bad = || format!("invalid duration {text:?}: expected a Go duration such as 2160h or 1h30m");
    if s.is_empty() || s.starts_with('-') {
        return Err(bad());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = next;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn decoding_skips_managed_fields_and_keeps_the_rest() {
        let json = serde_json::json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {
                "name": "r", "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 2,
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "annotations": {"a": "b"}, "labels": {"l": "v"},
                "ownerReferences": [{"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": "c", "uid": "cu"}],
                "managedFields": [{"manager": "cert-manager", "operation": "Update", "fieldsType": "FieldsV1",
                                   "fieldsV1": {"f:status": {"f:conditions": {}}}}],
                "selfLink": "/x"
            },
            "spec": {"request": "UEVN", "issuerRef": {"name": "pca", "kind": "CCMIssuer", "group": "ccm-issuer.ccm.com"}},
            "status": {"conditions": [{"type": "Approved", "status": "True"}]}
        });
        let cr: CertificateRequest = serde_json::from_value(json).unwrap();
        assert!(cr.metadata.managed_fields.is_none());
        assert_eq!(cr.metadata.name.as_deref(), Some("r"));
        assert_eq!(cr.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(cr.metadata.uid.as_deref(), Some("u"));
        assert_eq!(cr.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(cr.metadata.generation, Some(2));
        assert!(cr.metadata.creation_timestamp.is_some());
        assert_eq!(cr.metadata.annotations.as_ref().unwrap()["a"], "b");
        assert_eq!(cr.metadata.owner_references.as_ref().unwrap()[0].uid, "cu");
        assert_eq!(cr.spec.request.0, b"PEM");
        assert!(cr.is_true(APPROVED));
        let back = serde_json::to_value(&cr).unwrap();
        assert_eq!(back["apiVersion"], "cert-manager.io/v1");
        assert_eq!(back["kind"], "CertificateRequest");
        assert_eq!(back["spec"]["issuerRef"]["name"], "pca");
        assert_eq!(
            <CertificateRequest as kube::Resource>::url_path(&(), Some("ns")),
            "/apis/cert-manager.io/v1/namespaces/ns/certificaterequests"
        );
    }

    #[test]
    fn go_durations() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(parse_go_duration("7200h0m0s").unwrap(), h(7200));
        assert_eq!(parse_go_duration("2160h").unwrap(), h(2160));
        assert_eq!(parse_go_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "h", "10", "-1h", "1d", "1h-2m", "abc", "1e400h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decodes_a_real_cert_manager_request_with_sparse_conditions() {
        let json = r#"{
          "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
          "metadata": {"name": "mesh-ca-1", "namespace": "istio-system", "uid": "u1",
            "annotations": {"cert-manager.io/certificate-name": "mesh-ca"}},
          "spec": {"request": "LS0tLS1CRUdJTg==", "isCA": true, "duration": "7200h0m0s",
            "issuerRef": {"group": "ccm-issuer.ccm.com", "kind": "CCMIssuer", "name": "ccmissuer-mesh"},
            "usages": ["digital signature", "key encipherment", "cert sign"],
            "username": "system:serviceaccount:cert-manager:cert-manager"},
          "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "cert-manager.io",
            "message": "Certificate request has been approved by cert-manager.io", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "False"}]}
        }"#;
        let cr: CertificateRequest = serde_json::from_str(json).unwrap();
        assert_eq!(cr.spec.is_ca, Some(true));
        assert!(cr.is_true(APPROVED));
        assert!(!cr.is_final());
        assert_eq!(cr.spec.issuer_ref.group.as_deref(), Some("ccm-issuer.ccm.com"));
    }

    #[test]
    fn final_states() {
        let with = |reason: &str| {
            let mut cr = CertificateRequest::new("x", CertificateRequestSpec::default());
            cr.status = Some(CertificateRequestStatus {
                conditions: vec![CertificateRequestCondition {
                    type_: READY.into(),
                    status: "False".into(),
                    reason: Some(reason.into()),
                    ..Default::default()
                }],
                ..Default::default()
            });
            cr
        };
        assert!(with(reason::FAILED).is_final());
        assert!(with(reason::DENIED).is_final());
        assert!(with(reason::ISSUED).is_final());
        assert!(!with(reason::PENDING).is_final());
    }
}
