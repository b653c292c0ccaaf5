//! CA operations: create, show, activate, export, enable/disable, delete/restore, CRL
//! settings and the CA quota.

use std::sync::Arc;

use serde_json::{Value, json};

use super::dispatch::{Reply, blocking};
use super::params::{
    Window, body_is_enable_crl, check_ca_id, check_enterprise_project, default_ca_key_usages, json_object, now_dt,
    opt_str, parse_crl, parse_hash, parse_key_usages, parse_path_length, parse_validity, req_str,
};
use super::render::{ca_json, chain_pem, quota_json};
use crate::Mock;
use crate::auth::AuthContext;
use crate::ca::{self, CaCertSpec, CaKey, Dn, HashAlg, IssuerMaterial, KeyAlgorithm};
use crate::errors::{self, ApiError};
use crate::state::{CaRecord, CaStatus, CaType, GenMode};
use crate::timeutil;

/// [unconfirmed] code and text: a frozen CA (`freeze_flag` ≠ 0) refuses to sign like a CA
/// whose status forbids it.
pub(super) fn refuse_frozen(ca: &CaRecord) -> Result<(), ApiError> {
    if ca.freeze_flag == 0 {
        return Ok(());
    }
    Err(ApiError::bad(
        errors::PCA_CA_STATUS,
        format!(
            "The CA is frozen (freeze_flag {}); it cannot issue certificates",
            ca.freeze_flag
        ),
    ))
}

pub(super) fn ca_status_error(ca: &CaRecord, action: &str) -> ApiError {
    ApiError::bad(
        errors::PCA_CA_STATUS,
        format!(
            "The CA status is {}; cannot {action}",
            ca.effective_status(timeutil::now_ms()).as_str()
        ),
    )
}

/// Shared "sign a CA certificate for `key` under `parent`" used by create and activate.
struct SubCaRequest {
    path_length: u32,
    hash: HashAlg,
    window: Window,
    key_usages: Vec<rcgen::KeyUsagePurpose>,
}

fn check_parent_for_sub_ca(parent: &CaRecord, path_length: u32, window: &Window) -> Result<(), ApiError> {
    if parent.effective_status(timeutil::now_ms()) != CaStatus::Actived {
        return Err(ca_status_error(parent, "issue certificates"));
    }
    refuse_frozen(parent)?;
    if parent.key.is_none() {
        return Err(ApiError::bad(
            errors::PCA_CA_STATUS,
            "The issuing CA's private key is not hosted by PCA",
        ));
    }
    // [unconfirmed] exact enforcement. The issuing CA's path_length bounds the new CA's:
    // a CA with path_length 0 cannot issue CAs, and the requested value must be smaller
    // than the parent's (what RFC 5280 path validation would demand anyway).
    if parent.path_length == 0 || path_length >= parent.path_length {
        return Err(ApiError::bad(
            errors::PCA_BAD_PATH_LENGTH,
            format!(
                "Invalid CA path length: {path_length} must be less than the issuing CA's path length {}",
                parent.path_length
            ),
        ));
    }
    check_within_parent(parent, window)
}

pub(super) fn check_within_parent(parent: &CaRecord, w: &Window) -> Result<(), ApiError> {
    // [unconfirmed] for leaves: a validity ending after the issuing CA's not_after is
    // rejected rather than truncated — the safe choice (a client never receives a
    // certificate shorter than it asked for without knowing).
    if timeutil::datetime_to_ms(w.not_after) > parent.not_after {
        return Err(ApiError::bad(
            errors::PCA_BAD_VALIDITY,
            "Invalid validity period type or value: the validity exceeds the issuing CA's validity",
        ));
    }
    if timeutil::datetime_to_ms(w.not_before) < parent.not_before {
        return Err(ApiError::bad(
            errors::PCA_BAD_VALIDITY,
            "Invalid validity period type or value: the validity starts before the issuing CA's",
        ));
    }
    Ok(())
}

async fn sign_sub_ca(
    m: &Arc<Mock>,
    parent_id: &str,
    key: Arc<CaKey>,
    dn: Dn,
    req: &SubCaRequest,
) -> Result<(Vec<u8>, crate::state::Der, Arc<CaRecord>), ApiError> {
    check_ca_id(parent_id)?;
    let parent = m
        .store
        .get_ca(parent_id)
        .ok_or_else(|| ApiError::not_found("CA", parent_id))?;
    check_parent_for_sub_ca(&parent, req.path_length, &req.window)?;
    let pkey = parent
        .key
        .clone()
        .ok_or_else(|| ApiError::internal("parent key missing"))?;
    let serial = ca::random_serial();
    let (pdn, pkid) = (parent.dn.clone(), parent.key_id.clone());
    let (hash, usages, w, pl) = (req.hash, req.key_usages.clone(), req.window, req.path_length);
    let serial2 = serial.clone();
    let der = blocking(move || {
        let issuer = IssuerMaterial {
            dn: &pdn,
            key_id: &pkid,
            key: &pkey,
        };
        ca::make_ca_cert(
            &CaCertSpec {
                dn: &dn,
                key: &key,
                path_length: Some(u8::try_from(pl).unwrap_or(u8::MAX)),
                key_usages: usages,
                not_before: w.not_before,
                not_after: w.not_after,
                serial: &serial2,
                hash,
            },
            Some(&issuer),
        )
        .map_err(pki_error)
    })
    .await?;
    Ok((serial, crate::state::Der::from(der), parent))
}

pub(super) fn pki_error(e: ca::PkiError) -> ApiError {
    ApiError::internal(e.to_string())
}

pub(super) async fn create_ca(m: &Arc<Mock>, body: &[u8], ctx: &AuthContext) -> Result<Reply, ApiError> {
    let o = json_object(body)?;
    let ca_type = match opt_str(&o, "type")? {
        Some("ROOT") => CaType::Root,
        Some("SUBORDINATE") => CaType::Subordinate,
        _ => {
            return Err(ApiError::bad(
                errors::PCA_BAD_CA_TYPE,
                "Invalid CA type (ROOT or SUBORDINATE)",
            ));
        }
    };
    let dn: Dn = match o.get("distinguished_name") {
        Some(v @ Value::Object(_)) => serde_json::from_value(v.clone())
            .map_err(|e| ApiError::bad(errors::PCA_BAD_DN, format!("Incorrect distinguished name: {e}")))?,
        _ => {
            return Err(ApiError::bad(
                errors::PCA_BAD_DN,
                "Incorrect distinguished name: distinguished_name is required",
            ));
        }
    };
    dn.validate_for_ca()
        .map_err(|e| ApiError::bad(errors::PCA_BAD_DN, format!("Incorrect distinguished name: {e}")))?;
    let key_alg = opt_str(&o, "key_algorithm")?
        .and_then(KeyAlgorithm::parse)
        .ok_or_else(|| {
            ApiError::bad(
                errors::PCA_BAD_KEY_ALGORITHM,
                "Invalid key algorithm (RSA2048, RSA4096, EC256, EC384)",
            )
        })?;
    let ep = check_enterprise_project(&o)?;
    let key_usages = parse_key_usages(&o)?;
    if opt_str(&o, "ca_id")?.is_some() {
        return Err(ApiError::bad(
            errors::PCA_UNSUPPORTED,
            "prepaid CA orders (ca_id) are not supported by ccm-mock-pca",
        ));
    }
    if m.store.ca_counts() >= m.config.ca_quota {
        return Err(ApiError::bad(
            errors::PCA_QUOTA,
            format!("The CA quota ({}) has been used up", m.config.ca_quota),
        ));
    }
    let hash = parse_hash(&o, ca_type == CaType::Root)?;
    let now = now_dt();
    let id = uuid::Uuid::new_v4().to_string();
    let key =
        Arc::new(blocking(move || CaKey::generate(key_alg).map_err(|e| ApiError::internal(e.to_string()))).await?);
    let mut rec = CaRecord {
        ca_id: id.clone(),
        ca_type,
        status: CaStatus::Pending,
        path_length: 0,
        issuer_id: None,
        issuer_name: None,
        key_algorithm: key_alg,
        signature_algorithm: hash.unwrap_or(HashAlg::Sha384),
        gen_mode: GenMode::Generate,
        freeze_flag: 0,
        serial_number: String::new(),
        create_time: timeutil::now_ms(),
        delete_time: 0,
        not_before: 0,
        not_after: 0,
        dn: dn.clone(),
        crl: parse_crl(&o)?.unwrap_or_default(),
        enterprise_project_id: ep,
        hidden: false,
        domain_id: ctx.domain_id.clone(),
        cert_der: None,
        key_pkcs8: Some(crate::state::Der::from(key.pkcs8_der())),
        key_id: key.key_id(),
        key: Some(key.clone()),
        revoke_reason: None,
    };
    match ca_type {
        CaType::Root => {
            let w = parse_validity(o.get("validity"), 30, now)?;
            let hash = hash.unwrap_or(HashAlg::Sha384);
            let serial = ca::random_serial();
            let (dn2, key2, serial2) = (dn.clone(), key.clone(), serial.clone());
            let der = blocking(move || {
                ca::make_ca_cert(
                    &CaCertSpec {
                        dn: &dn2,
                        key: &key2,
                        path_length: None,
                        key_usages: default_ca_key_usages(),
                        not_before: w.not_before,
                        not_after: w.not_after,
                        serial: &serial2,
                        hash,
                    },
                    None,
                )
                .map_err(pki_error)
            })
            .await?;
            // Roots are stored with path_length 7 and carry no pathLen constraint.
            rec.path_length = 7;
            rec.status = CaStatus::Actived;
            rec.serial_number = ca::serial_hex(&serial);
            rec.not_before = timeutil::datetime_to_ms(w.not_before);
            rec.not_after = timeutil::datetime_to_ms(w.not_after);
            rec.cert_der = Some(der.into());
        }
        CaType::Subordinate => {
            let path_length = parse_path_length(&o)?.unwrap_or(0);
            rec.path_length = path_length;
            let issuer_id = opt_str(&o, "issuer_id")?;
            let validity = o.get("validity").filter(|v| !v.is_null());
            if let (Some(issuer_id), Some(hash), Some(validity)) = (issuer_id, hash, validity) {
                let w = parse_validity(Some(validity), 20, now)?;
                let req = SubCaRequest {
                    path_length,
                    hash,
                    window: w,
                    key_usages: key_usages.unwrap_or_else(default_ca_key_usages),
                };
                let (serial, der, parent) = sign_sub_ca(m, issuer_id, key.clone(), dn.clone(), &req).await?;
                rec.status = CaStatus::Actived;
                rec.issuer_id = Some(parent.ca_id.clone());
                rec.issuer_name = Some(parent.dn.cn().to_owned());
                rec.serial_number = ca::serial_hex(&serial);
                rec.not_before = timeutil::datetime_to_ms(w.not_before);
                rec.not_after = timeutil::datetime_to_ms(w.not_after);
                rec.cert_der = Some(der);
            }
            // Otherwise: PENDING; activate or import later.
        }
    }
    m.store.insert_ca_checked(rec, m.config.ca_quota)?;
    Ok(Reply::Json(json!({"ca_id": id})))
}

pub(super) async fn activate_ca(m: &Arc<Mock>, id: &str, body: &[u8]) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    let o = json_object(body)?;
    let ca = m.store.get_ca(id).ok_or_else(|| ApiError::not_found("CA", id))?;
    if ca.status != CaStatus::Pending {
        return Err(ca_status_error(&ca, "activate it"));
    }
    let issuer_id = req_str(&o, "issuer_id")?;
    let hash = parse_hash(&o, true)?.unwrap_or(HashAlg::Sha384);
    let w = parse_validity(o.get("validity"), 20, now_dt())?;
    let path_length = parse_path_length(&o)?.unwrap_or(ca.path_length);
    let key = ca
        .key
        .clone()
        .ok_or_else(|| ApiError::internal("pending CA has no key"))?;
    let req = SubCaRequest {
        path_length,
        hash,
        window: w,
        key_usages: parse_key_usages(&o)?.unwrap_or_else(default_ca_key_usages),
    };
    let (serial, der, parent) = sign_sub_ca(m, issuer_id, key, ca.dn.clone(), &req).await?;
    m.store.update_ca(id, |rec| {
        if rec.status != CaStatus::Pending {
            return Err(ca_status_error(rec, "activate it"));
        }
        rec.status = CaStatus::Actived;
        rec.path_length = path_length;
        rec.signature_algorithm = hash;
        rec.issuer_id = Some(parent.ca_id.clone());
        rec.issuer_name = Some(parent.dn.cn().to_owned());
        rec.serial_number = ca::serial_hex(&serial);
        rec.not_before = timeutil::datetime_to_ms(w.not_before);
        rec.not_after = timeutil::datetime_to_ms(w.not_after);
        rec.cert_der = Some(der.clone());
        Ok(())
    })?;
    Ok(Reply::NoContent)
}

pub(super) fn delete_ca(m: &Arc<Mock>, id: &str, query: &str) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    // [unconfirmed] pending_days default when absent: 7 (the minimum of 7..30).
    let mut pending_days: i64 = 7;
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        if let Some(("pending_days", v)) = pair.split_once('=') {
            pending_days = v
                .parse()
                .ok()
                .filter(|d| (7..=30).contains(d))
                .ok_or_else(|| ApiError::param("pending_days must be an integer in [7,30]"))?;
        }
    }
    let ca = m.store.get_ca(id).ok_or_else(|| ApiError::not_found("CA", id))?;
    match ca.status {
        // PENDING CAs are removed immediately.
        CaStatus::Pending => {
            m.store.remove_ca(id);
        }
        CaStatus::Disabled => {
            m.store.update_ca(id, |rec| {
                if rec.status != CaStatus::Disabled {
                    return Err(ca_status_error(rec, "delete it"));
                }
                rec.status = CaStatus::Deleted;
                rec.delete_time = timeutil::now_ms() + pending_days * 86_400_000;
                Ok(())
            })?;
        }
        _ => {
            return Err(ca_status_error(
                &ca,
                "delete it (only PENDING or DISABLED CAs can be deleted)",
            ));
        }
    }
    Ok(Reply::NoContent)
}

pub(super) fn export_ca(m: &Arc<Mock>, id: &str) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    let ca = m.store.get_ca(id).ok_or_else(|| ApiError::not_found("CA", id))?;
    if !matches!(
        ca.effective_status(timeutil::now_ms()),
        CaStatus::Actived | CaStatus::Expired
    ) {
        return Err(ca_status_error(&ca, "export its certificate"));
    }
    let der = ca
        .cert_der
        .clone()
        .ok_or_else(|| ApiError::internal("CA has no certificate"))?;
    // [unconfirmed] root export: `certificate_chain` is empty (the root is only in
    // `certificate`). A client must take the trust anchor from `certificate` of a root
    // export, or from the last block of a subordinate's chain.
    let chain = match &ca.issuer_id {
        Some(parent) => chain_pem(&m.store.chain_from(parent)?),
        None => String::new(),
    };
    Ok(Reply::Json(json!({
        "certificate": ca::pem_crlf("CERTIFICATE", &der),
        "certificate_chain": chain,
    })))
}

pub(super) fn show_ca(m: &Arc<Mock>, id: &str) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    let ca = m.store.get_ca(id).ok_or_else(|| ApiError::not_found("CA", id))?;
    Ok(Reply::Json(ca_json(&ca, timeutil::now_ms())))
}

pub(super) async fn export_ca_csr(m: &Arc<Mock>, id: &str) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    let ca = m.store.get_ca(id).ok_or_else(|| ApiError::not_found("CA", id))?;
    if ca.status != CaStatus::Pending {
        return Err(ca_status_error(&ca, "export its CSR"));
    }
    let key = ca
        .key
        .clone()
        .ok_or_else(|| ApiError::internal("pending CA has no key"))?;
    let dn = ca.dn.clone();
    let der = blocking(move || ca::make_ca_csr(&dn, &key).map_err(|e| ApiError::internal(e.to_string()))).await?;
    Ok(Reply::Json(json!({"csr": ca::pem_crlf("CERTIFICATE REQUEST", &der)})))
}

pub(super) fn enable_ca(m: &Arc<Mock>, id: &str) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    m.store.update_ca(id, |ca| {
        if ca.status != CaStatus::Disabled {
            return Err(ca_status_error(ca, "enable it"));
        }
        ca.status = CaStatus::Actived;
        Ok(())
    })?;
    Ok(Reply::NoContent)
}

pub(super) fn disable_ca(m: &Arc<Mock>, id: &str) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    let now = timeutil::now_ms();
    m.store.update_ca(id, |ca| {
        if !matches!(ca.effective_status(now), CaStatus::Actived | CaStatus::Expired) {
            return Err(ca_status_error(ca, "disable it"));
        }
        ca.status = CaStatus::Disabled;
        Ok(())
    })?;
    Ok(Reply::NoContent)
}

/// [unconfirmed] status code for restore: 204 like the other CA actions.
pub(super) fn restore_ca(m: &Arc<Mock>, id: &str) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    m.store.update_ca(id, |ca| {
        if ca.status != CaStatus::Deleted {
            return Err(ca_status_error(ca, "restore it"));
        }
        ca.status = CaStatus::Disabled;
        ca.delete_time = 0;
        Ok(())
    })?;
    Ok(Reply::NoContent)
}

/// `crl/enable` (with settings) and `crl/disable` (no body): flags only.
pub(super) fn switch_crl(m: &Arc<Mock>, id: &str, body: &[u8]) -> Result<Reply, ApiError> {
    check_ca_id(id)?;
    let enable = body_is_enable_crl(body)?;
    m.store.update_ca(id, |ca| {
        ca.crl.enabled = enable.is_some();
        if let Some(cfg) = enable {
            ca.crl = cfg;
        }
        Ok(())
    })?;
    Ok(Reply::NoContent)
}

pub(super) fn quota(m: &Arc<Mock>) -> Reply {
    Reply::Json(quota_json(
        "CERTIFICATE_AUTHORITY",
        m.store.ca_counts(),
        m.config.ca_quota,
    ))
}

#[cfg(test)]
mod tests;
