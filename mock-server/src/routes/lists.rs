//! ListCertificateAuthority and ListCertificate: filters, sorting and paging.

use std::sync::Arc;

use serde_json::json;

use super::dispatch::Reply;
use super::render::{ca_json, cert_json};
use crate::Mock;
use crate::errors::{self, ApiError};
use crate::state::{CaStatus, CertStatus};
use crate::timeutil;

struct ListParams {
    limit: usize,
    offset: usize,
    name: Option<String>,
    status: Option<String>,
    ca_type: Option<String>,
    sort_key: String,
    desc: bool,
}

fn parse_list_query(query: &str, sort_keys: &[&str], allow_type: bool) -> Result<ListParams, ApiError> {
    let mut p = ListParams {
        limit: 10,
        offset: 0,
        name: None,
        status: None,
        ca_type: None,
        sort_key: "create_time".into(),
        desc: true,
    };
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = String::from_utf8_lossy(&crate::auth::percent_decode(k, true)).into_owned();
        let v = String::from_utf8_lossy(&crate::auth::percent_decode(v, true)).into_owned();
        match k.as_str() {
            "limit" => {
                p.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= 1000)
                    .ok_or_else(|| ApiError::param("limit must be an integer in [0,1000]"))?;
            }
            "offset" => {
                p.offset = v
                    .parse::<usize>()
                    .map_err(|_| ApiError::param("offset must be a non-negative integer"))?;
            }
            "name" => {
                if v.is_empty() || v.chars().count() > 64 {
                    return Err(ApiError::param("name length must be in [1,64]"));
                }
                p.name = Some(v);
            }
            "status" => p.status = Some(v),
            "type" if allow_type => {
                if v != "ROOT" && v != "SUBORDINATE" {
                    return Err(ApiError::bad(
                        errors::PCA_BAD_CA_TYPE,
                        "Invalid CA type (ROOT or SUBORDINATE)",
                    ));
                }
                p.ca_type = Some(v);
            }
            "sort_key" => {
                if !sort_keys.contains(&v.as_str()) {
                    return Err(ApiError::param(format!(
                        "sort_key must be one of {}",
                        sort_keys.join(", ")
                    )));
                }
                p.sort_key = v;
            }
            "sort_dir" => {
                p.desc = match v.as_str() {
                    "DESC" => true,
                    "ASC" => false,
                    _ => return Err(ApiError::param("sort_dir must be ASC or DESC")),
                }
            }
            // [unconfirmed] unknown query parameters are ignored (e.g. enterprise_project_id
            // filters the mock does not model).
            _ => {}
        }
    }
    Ok(p)
}

fn page<T>(mut items: Vec<T>, p: &ListParams) -> (usize, Vec<T>) {
    let total = items.len();
    let start = p.offset.min(total);
    let end = start.saturating_add(p.limit).min(total);
    (total, items.drain(start..end).collect())
}

pub(super) fn list_cas(m: &Arc<Mock>, query: &str) -> Result<Reply, ApiError> {
    let p = parse_list_query(
        query,
        &["create_time", "common_name", "type", "ca_type", "not_after"],
        true,
    )?;
    if let Some(s) = &p.status
        && CaStatus::parse(s).is_none()
    {
        return Err(ApiError::param(
            "status must be PENDING, ACTIVED, DISABLED, DELETED or EXPIRED",
        ));
    }
    let now = timeutil::now_ms();
    let mut cas: Vec<_> = m
        .store
        .all_cas()
        .into_iter()
        .filter(|c| !c.hidden)
        .filter(|c| p.name.as_ref().is_none_or(|n| c.dn.cn().contains(n.as_str())))
        .filter(|c| p.status.as_ref().is_none_or(|s| c.effective_status(now).as_str() == s))
        .filter(|c| p.ca_type.as_ref().is_none_or(|t| c.ca_type.as_str() == t))
        .collect();
    cas.sort_by(|a, b| {
        let o = match p.sort_key.as_str() {
            "common_name" => a.dn.cn().cmp(b.dn.cn()),
            "type" | "ca_type" => a.ca_type.as_str().cmp(b.ca_type.as_str()),
            "not_after" => a.not_after.cmp(&b.not_after),
            _ => a.create_time.cmp(&b.create_time),
        }
        .then_with(|| a.ca_id.cmp(&b.ca_id));
        if p.desc { o.reverse() } else { o }
    });
    let (total, items) = page(cas, &p);
    Ok(Reply::Json(json!({
        "total": total,
        "certificate_authorities": items.iter().map(|c| ca_json(c, now)).collect::<Vec<_>>(),
    })))
}

pub(super) fn list_certs(m: &Arc<Mock>, query: &str) -> Result<Reply, ApiError> {
    let p = parse_list_query(
        query,
        &["create_time", "common_name", "issuer_name", "not_after"],
        false,
    )?;
    if let Some(s) = &p.status
        && CertStatus::parse(s).is_none()
    {
        return Err(ApiError::param("status must be ISSUED, REVOKED or EXPIRED"));
    }
    let now = timeutil::now_ms();
    let mut certs: Vec<_> = m
        .store
        .all_certs()
        .into_iter()
        .filter(|c| p.name.as_ref().is_none_or(|n| c.dn.cn().contains(n.as_str())))
        .filter(|c| p.status.as_ref().is_none_or(|s| c.effective_status(now).as_str() == s))
        .collect();
    certs.sort_by(|a, b| {
        let o = match p.sort_key.as_str() {
            "common_name" => a.dn.cn().cmp(b.dn.cn()),
            "issuer_name" => a.issuer_name.cmp(&b.issuer_name),
            "not_after" => a.not_after.cmp(&b.not_after),
            _ => a.create_time.cmp(&b.create_time),
        }
        .then_with(|| a.certificate_id.cmp(&b.certificate_id));
        if p.desc { o.reverse() } else { o }
    });
    let (total, items) = page(certs, &p);
    Ok(Reply::Json(json!({
        "total": total,
        "certificates": items.iter().map(|c| cert_json(c, now)).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests;
