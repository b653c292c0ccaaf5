//! Certificate operations: issue from a CSR, parse a CSR, show, export, revoke, delete,
//! and the certificate quota.

use std::sync::Arc;

use serde_json::json;

use super::cas::{ca_status_error, check_within_parent, pki_error, refuse_frozen};
use super::dispatch::{Reply, blocking};
use super::params::{
    check_ca_id, check_cert_id, check_enterprise_project, json_object, now_dt, opt_boolish, opt_int, opt_str,
    parse_validity, req_str,
};
use super::render::{cert_json, chain_pem, dn_json, quota_json};
use crate::Mock;
use crate::auth::AuthContext;
use crate::ca::{self, HashAlg, IssueKind, IssuerMaterial, KeyAlgorithm};
use crate::errors::{self, ApiError};
use crate::state::{CaRecord, CaStatus, CaType, CertRecord, CertStatus, CrlConfig, GenMode};
use crate::timeutil;

pub(super) async fn issue_by_csr(m: &Arc<Mock>, body: &[u8], ctx: &AuthContext) -> Result<Reply, ApiError> {
    let o = json_object(body)?;
    let issuer_id = req_str(&o, "issuer_id")?;
    check_ca_id(issuer_id)?;
    let csr_pem = req_str(&o, "csr")?.to_owned();
    let kind = match opt_str(&o, "type")? {
        None | Some("ENTITY_CERT") => IssueKind::Entity,
        Some("INTERMEDIATE_CA") => {
            let pl = match opt_int(&o, "path_length")? {
                None => 0,
                Some(n) if (0..=6).contains(&n) => n as u8,
                Some(_) => {
                    return Err(ApiError::bad(
                        errors::PCA_BAD_PATH_LENGTH,
                        "Invalid CA path length: must be in [0,6]",
                    ));
                }
            };
            IssueKind::Intermediate { path_length: pl }
        }
        Some(_) => return Err(ApiError::param("type must be ENTITY_CERT or INTERMEDIATE_CA")),
    };
    // subject_alternative_names in the body is documented as reserved and ignored.
    if let Some(v) = o.get("subject_alternative_names")
        && !v.is_null()
        && !v.is_array()
    {
        return Err(ApiError::param("subject_alternative_names must be an array"));
    }
    let ep = check_enterprise_project(&o)?;
    let window = parse_validity(o.get("validity"), 20, now_dt())?;

    let ca = m
        .store
        .get_ca(issuer_id)
        .ok_or_else(|| ApiError::not_found("CA", issuer_id))?;
    if ca.effective_status(timeutil::now_ms()) != CaStatus::Actived {
        return Err(ca_status_error(&ca, "issue certificates"));
    }
    refuse_frozen(&ca)?;
    let key = ca.key.clone().ok_or_else(|| {
        ApiError::bad(
            errors::PCA_CA_STATUS,
            "The CA's private key is not hosted by PCA; it cannot issue",
        )
    })?;
    // [unconfirmed] same path-length rule as for CA creation (see check_parent_for_sub_ca).
    if let IssueKind::Intermediate { path_length } = kind
        && (ca.path_length == 0 || u32::from(path_length) >= ca.path_length)
    {
        return Err(ApiError::bad(
            errors::PCA_BAD_PATH_LENGTH,
            format!(
                "Invalid CA path length: {path_length} must be less than the issuing CA's path length {}",
                ca.path_length
            ),
        ));
    }
    check_within_parent(&ca, &window)?;
    if kind == IssueKind::Entity && m.store.cert_count() >= m.config.cert_quota {
        return Err(ApiError::bad(
            errors::PCA_QUOTA,
            format!(
                "The private certificate quota ({}) has been used up",
                m.config.cert_quota
            ),
        ));
    }

    // Parse, verify and sign off the async workers and outside every lock.
    let serial = ca::random_serial();
    let (ca2, serial2, cn_rule) = (ca.clone(), serial.clone(), m.config.csr_cn_rule);
    let (parsed, der) = blocking(move || {
        let parsed = ca::parse_csr_with(&csr_pem, cn_rule).map_err(csr_error)?;
        let issuer = IssuerMaterial {
            dn: &ca2.dn,
            key_id: &ca2.key_id,
            key: &key,
        };
        let der = ca::issue_from_csr(&parsed, &issuer, kind, window.not_before, window.not_after, &serial2)
            .map_err(pki_error)?;
        Ok((parsed, der))
    })
    .await?;

    let id = uuid::Uuid::new_v4().to_string();
    let now_ms = timeutil::now_ms();
    let (nb, na) = (
        timeutil::datetime_to_ms(window.not_before),
        timeutil::datetime_to_ms(window.not_after),
    );
    match kind {
        IssueKind::Entity => {
            m.store.insert_cert_checked(
                CertRecord {
                    certificate_id: id.clone(),
                    status: CertStatus::Issued,
                    issuer_id: ca.ca_id.clone(),
                    issuer_name: ca.dn.cn().to_owned(),
                    key_algorithm: parsed.key_algorithm,
                    signature_algorithm: HashAlg::Sha384,
                    gen_mode: GenMode::Csr,
                    serial_number: ca::serial_hex(&serial),
                    create_time: now_ms,
                    delete_time: 0,
                    not_before: nb,
                    not_after: na,
                    dn: parsed.dn.clone(),
                    enterprise_project_id: ep,
                    domain_id: ctx.domain_id.clone(),
                    cert_der: Some(der.into()),
                    revoke_reason: None,
                    spki_sha256: parsed.spki_sha256.clone(),
                },
                m.config.cert_quota,
            )?;
        }
        IssueKind::Intermediate { path_length } => {
            // Documented: the certificate_id is the new CA's ca_id; readable via show-CA and
            // CA export, not listed, no CA quota, key on the user side (gen_mode CSR).
            m.store.insert_ca(CaRecord {
                ca_id: id.clone(),
                ca_type: CaType::Subordinate,
                status: CaStatus::Actived,
                path_length: u32::from(path_length),
                issuer_id: Some(ca.ca_id.clone()),
                issuer_name: Some(ca.dn.cn().to_owned()),
                key_algorithm: parsed.key_algorithm,
                signature_algorithm: HashAlg::Sha384,
                gen_mode: GenMode::Csr,
                freeze_flag: 0,
                serial_number: ca::serial_hex(&serial),
                create_time: now_ms,
                delete_time: 0,
                not_before: nb,
                not_after: na,
                dn: parsed.dn.clone(),
                crl: CrlConfig::default(),
                enterprise_project_id: ep,
                hidden: true,
                domain_id: ctx.domain_id.clone(),
                cert_der: Some(der.into()),
                key_pkcs8: None,
                key_id: ca::key_id_of(&parsed.public_key_bits),
                key: None,
                revoke_reason: None,
            });
        }
    }
    m.stats.record_issued(&parsed.spki_sha256);

    // Fault injection after a successful issuance: the ambiguous failures.
    if m.faults.take_drop() {
        return Ok(Reply::Dropped);
    }
    if let Some(d) = m.faults.hang() {
        tokio::time::sleep(d).await;
    }
    Ok(Reply::Json(json!({"certificate_id": id})))
}

fn csr_error(e: ca::CsrError) -> ApiError {
    match e {
        ca::CsrError::UnsupportedKey(_) => {
            ApiError::bad(errors::PCA_BAD_KEY_ALGORITHM, format!("Invalid key algorithm: {e}"))
        }
        ca::CsrError::BadDn(_) => ApiError::bad(
            errors::PCA_BAD_DN,
            format!("Incorrect certificate distinguished name: {e}"),
        ),
        ca::CsrError::BadSan(_) => ApiError::bad(errors::PCA_BAD_SAN_TYPE, format!("Invalid SAN type: {e}")),
        ca::CsrError::Garbage(_) | ca::CsrError::BadSignature => ApiError::param(e.to_string()),
    }
}

pub(super) async fn parse_csr_op(m: &Arc<Mock>, body: &[u8]) -> Result<Reply, ApiError> {
    let cn_rule = m.config.csr_cn_rule;
    let o = json_object(body)?;
    let pem = req_str(&o, "csr")?.to_owned();
    let parsed = blocking(move || ca::parse_csr_with(&pem, cn_rule).map_err(csr_error)).await?;
    let (alg, bits) = match parsed.key_algorithm {
        KeyAlgorithm::Rsa2048 => ("RSA", 2048),
        KeyAlgorithm::Rsa4096 => ("RSA", 4096),
        KeyAlgorithm::Ec256 => ("EC", 256),
        KeyAlgorithm::Ec384 => ("EC", 384),
    };
    Ok(Reply::Json(json!({
        "key_algorithm": alg,
        "key_algorithm_length": bits,
        "signature_algorithm": parsed.signature_algorithm,
        "public_key": ca::pem_crlf("PUBLIC KEY", &parsed.spki_der),
        "distinguished_name": dn_json(&parsed.dn),
    })))
}

pub(super) fn export_cert(m: &Arc<Mock>, id: &str, body: &[u8]) -> Result<Reply, ApiError> {
    check_cert_id(id)?;
    let o = json_object(body)?;
    let compressed = opt_boolish(&o, "is_compressed")?.ok_or_else(|| ApiError::param("is_compressed is required"))?;
    match req_str(&o, "type")? {
        "APACHE" | "NGINX" | "IIS" | "TOMCAT" | "OTHER" => {}
        _ => return Err(ApiError::param("type must be APACHE, NGINX, IIS, TOMCAT or OTHER")),
    }
    opt_boolish(&o, "is_sm_standard")?;
    let c = m
        .store
        .get_cert(id)
        .ok_or_else(|| ApiError::not_found("certificate", id))?;
    if c.effective_status(timeutil::now_ms()) != CertStatus::Issued {
        return Err(ApiError::bad(
            errors::PCA_CERT_STATUS,
            format!(
                "The certificate status is {}; only ISSUED certificates can be exported",
                c.effective_status(timeutil::now_ms()).as_str()
            ),
        ));
    }
    if compressed {
        return Err(ApiError::bad(
            errors::PCA_UNSUPPORTED,
            "is_compressed=true (zip export) is not supported by ccm-mock-pca; use is_compressed=false",
        ));
    }
    let der = c
        .cert_der
        .clone()
        .ok_or_else(|| ApiError::internal("certificate has no DER"))?;
    let chain = m.store.chain_from(&c.issuer_id)?;
    Ok(Reply::Json(json!({
        "certificate": ca::pem_crlf("CERTIFICATE", &der),
        "certificate_chain": chain_pem(&chain),
    })))
}

const REVOKE_REASONS: &[&str] = &[
    "UNSPECIFIED",
    "KEY_COMPROMISE",
    "CERTIFICATE_AUTHORITY_COMPROMISE",
    "AFFILIATION_CHANGED",
    "SUPERSEDED",
    "CESSATION_OF_OPERATION",
    "CERTIFICATE_HOLD",
    "PRIVILEGE_WITHDRAWN",
    "ATTRIBUTE_AUTHORITY_COMPROMISE",
];

pub(super) fn revoke_cert(m: &Arc<Mock>, id: &str, body: &[u8]) -> Result<Reply, ApiError> {
    check_cert_id(id)?;
    // Documented: without a reason the body must be `{}`; an empty body is an error.
    let o =
        json_object(body).map_err(|e| ApiError::param(format!("{}; send {{}} to revoke without a reason", e.msg)))?;
    let reason = opt_str(&o, "reason")?.unwrap_or("UNSPECIFIED").to_owned();
    if !REVOKE_REASONS.contains(&reason.as_str()) {
        return Err(ApiError::param(format!(
            "reason must be one of {}",
            REVOKE_REASONS.join(", ")
        )));
    }
    let now = timeutil::now_ms();
    m.store.update_cert(id, |c| {
        if c.effective_status(now) != CertStatus::Issued {
            return Err(ApiError::bad(
                errors::PCA_CERT_STATUS,
                format!(
                    "The certificate status is {}; only ISSUED certificates can be revoked",
                    c.effective_status(now).as_str()
                ),
            ));
        }
        c.status = CertStatus::Revoked;
        c.revoke_reason = Some(reason);
        Ok(())
    })?;
    Ok(Reply::NoContent)
}

pub(super) fn show_cert(m: &Arc<Mock>, id: &str) -> Result<Reply, ApiError> {
    check_cert_id(id)?;
    let c = m
        .store
        .get_cert(id)
        .ok_or_else(|| ApiError::not_found("certificate", id))?;
    Ok(Reply::Json(cert_json(&c, timeutil::now_ms())))
}

pub(super) fn delete_cert(m: &Arc<Mock>, id: &str) -> Result<Reply, ApiError> {
    check_cert_id(id)?;
    m.store
        .remove_cert(id)
        .ok_or_else(|| ApiError::not_found("certificate", id))?;
    Ok(Reply::NoContent)
}

pub(super) fn quota(m: &Arc<Mock>) -> Reply {
    Reply::Json(quota_json("CERTIFICATE", m.store.cert_count(), m.config.cert_quota))
}

#[cfg(test)]
mod tests;
