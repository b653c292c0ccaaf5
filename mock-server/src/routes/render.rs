//! The JSON views of CAs, certificates and quotas, as the SDK's response models name them.

use serde_json::{Value, json};

use crate::ca::{self, Dn};
use crate::state::{CaRecord, CertRecord};

pub(super) fn dn_json(dn: &Dn) -> Value {
    serde_json::to_value(dn).unwrap_or(Value::Null)
}

pub(super) fn ca_json(ca: &CaRecord, now_ms: i64) -> Value {
    let pending = ca.cert_der.is_none();
    json!({
        "ca_id": ca.ca_id,
        "type": ca.ca_type.as_str(),
        "status": ca.effective_status(now_ms).as_str(),
        "path_length": ca.path_length,
        "issuer_id": ca.issuer_id,
        "issuer_name": ca.issuer_name,
        "key_algorithm": ca.key_algorithm.as_str(),
        "signature_algorithm": ca.signature_algorithm.as_str(),
        "freeze_flag": ca.freeze_flag,
        "gen_mode": ca.gen_mode.as_str(),
        "serial_number": if pending { Value::Null } else { json!(ca.serial_number) },
        "create_time": ca.create_time,
        "delete_time": ca.delete_time,
        "not_before": if pending { Value::Null } else { json!(ca.not_before) },
        "not_after": if pending { Value::Null } else { json!(ca.not_after) },
        "distinguished_name": dn_json(&ca.dn),
        "crl_configuration": {
            "enabled": ca.crl.enabled,
            "crl_name": ca.crl.crl_name,
            "obs_bucket_name": ca.crl.obs_bucket_name,
            "valid_days": ca.crl.valid_days,
            "crl_dis_point": ca.crl.crl_dis_point,
        },
        "enterprise_project_id": ca.enterprise_project_id,
        "free_quota": 0,
        "charging_mode": 1,
        // Dedicated-HSM cluster: none in the mock [unconfirmed: null or absent].
        "cluster_id": null,
        "domain_id": ca.domain_id,
    })
}

pub(super) fn cert_json(c: &CertRecord, now_ms: i64) -> Value {
    json!({
        "certificate_id": c.certificate_id,
        "status": c.effective_status(now_ms).as_str(),
        "issuer_id": c.issuer_id,
        "issuer_name": c.issuer_name,
        "key_algorithm": c.key_algorithm.as_str(),
        "signature_algorithm": c.signature_algorithm.as_str(),
        "freeze_flag": 0,
        "gen_mode": c.gen_mode.as_str(),
        "serial_number": c.serial_number,
        "create_time": c.create_time,
        "delete_time": c.delete_time,
        "not_before": c.not_before,
        "not_after": c.not_after,
        "distinguished_name": dn_json(&c.dn),
        "enterprise_project_id": c.enterprise_project_id,
    })
}

pub(super) fn quota_json(ty: &str, used: u64, quota: u64) -> Value {
    json!({"quotas": {"resources": [{"type": ty, "used": used, "quota": quota}]}})
}

pub(super) fn chain_pem(ders: &[crate::state::Der]) -> String {
    ders.iter().map(|d| ca::pem_crlf("CERTIFICATE", d)).collect()
}
