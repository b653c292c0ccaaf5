//! Request parameters: JSON bodies, ids, validity, key usages, CRL settings.

use serde_json::{Map, Value};

use crate::ca::HashAlg;
use crate::errors::{self, ApiError};
use crate::state::CrlConfig;
use crate::timeutil;

/// A lowercase UUID, the form of every CA and certificate id
/// (`[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}`).
pub(crate) fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

pub(super) fn check_ca_id(id: &str) -> Result<(), ApiError> {
    if is_uuid(id) {
        Ok(())
    } else {
        Err(ApiError::bad(
            errors::PCA_BAD_CA_ID,
            "Invalid CA ID. It must match [0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}",
        ))
    }
}

pub(super) fn check_cert_id(id: &str) -> Result<(), ApiError> {
    if is_uuid(id) {
        Ok(())
    } else {
        Err(ApiError::param("invalid certificate_id"))
    }
}

/// Parse a JSON object body. Empty, non-JSON or non-object bodies are errors.
pub(super) fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::param("request body is required"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::param("request body must be a JSON object")),
        Err(_) => Err(ApiError::param("request body is not valid JSON")),
    }
}

pub(super) fn opt_str<'a>(o: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::param(format!("{key} must be a string"))),
    }
}

pub(super) fn req_str<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    opt_str(o, key)?.ok_or_else(|| ApiError::param(format!("{key} is required")))
}

pub(super) fn opt_int(o: &Map<String, Value>, key: &str) -> Result<Option<i64>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::param(format!("{key} must be an integer"))),
        Some(_) => Err(ApiError::param(format!("{key} must be an integer"))),
    }
}

/// A JSON bool or the strings "true"/"false" (the SDK sends strings, terraform bools).
pub(super) fn opt_boolish(o: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(_) => Err(ApiError::param(format!("{key} must be \"true\" or \"false\""))),
    }
}

pub(super) fn check_enterprise_project(o: &Map<String, Value>) -> Result<String, ApiError> {
    let Some(ep) = opt_str(o, "enterprise_project_id")? else {
        return Ok("0".to_owned());
    };
    let uuidish = ep.len() == 36
        && ep.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || c.is_ascii_lowercase(),
        });
    if ep == "0" || ep == "all" || uuidish {
        Ok(ep.to_owned())
    } else {
        Err(ApiError::param("invalid enterprise_project_id"))
    }
}

/// A parsed `Validity` turned into a time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub not_before: time::OffsetDateTime,
    pub not_after: time::OffsetDateTime,
}

/// Parse `validity` and compute [start, end). `max_years` bounds the value per unit
/// (YEAR ≤ n, MONTH ≤ 12n, DAY ≤ 365n, HOUR ≤ 8760n).
pub fn parse_validity(v: Option<&Value>, max_years: i64, now: time::OffsetDateTime) -> Result<Window, ApiError> {
    let bad = |msg: &str| {
        ApiError::bad(
            errors::PCA_BAD_VALIDITY,
            format!("Invalid validity period type or value: {msg}"),
        )
    };
    let o = match v {
        Some(Value::Object(o)) => o,
        None | Some(Value::Null) => return Err(bad("validity is required")),
        Some(_) => return Err(bad("validity must be an object")),
    };
    let ty = match o.get("type") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(bad("type is required (YEAR, MONTH, DAY or HOUR)")),
    };
    let value = match o.get("value") {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| bad("value must be an integer"))?,
        _ => return Err(bad("value is required and must be an integer")),
    };
    // [unconfirmed] minimum value: 1.
    if value < 1 {
        return Err(bad("value must be at least 1"));
    }
    // [unconfirmed] numeric maximum per unit; "converted to years" is read per unit so that
    // e.g. MONTH 240 (= 20 years) is accepted.
    let limit = match ty {
        "YEAR" => max_years,
        "MONTH" => max_years * 12,
        "DAY" => max_years * 365,
        "HOUR" => max_years * 365 * 24,
        _ => return Err(bad("type must be YEAR, MONTH, DAY or HOUR")),
    };
    if value > limit {
        return Err(bad(&format!("longer than {max_years} years")));
    }
    // start_from: epoch ms, as a JSON integer or a numeric string (SDK typing differs).
    let start = match o.get("start_from") {
        None | Some(Value::Null) => now,
        Some(Value::Number(n)) => {
            let ms = n
                .as_i64()
                .ok_or_else(|| bad("start_from must be an integer (epoch ms)"))?;
            start_from_ms(ms, now).map_err(&bad)?
        }
        Some(Value::String(s)) => {
            let ms: i64 = s
                .trim()
                .parse()
                .map_err(|_| bad("start_from must be numeric (epoch ms)"))?;
            start_from_ms(ms, now).map_err(&bad)?
        }
        Some(_) => return Err(bad("start_from must be an integer (epoch ms)")),
    };
    // YEAR = 12 calendar months, MONTH = 31 days. Checked: a far-future start_from must be
    // a refusal, not an overflow.
    let end = match ty {
        "YEAR" => timeutil::add_months(start, value * 12),
        "MONTH" => start.checked_add(time::Duration::days(31 * value)),
        "DAY" => start.checked_add(time::Duration::days(value)),
        _ => start.checked_add(time::Duration::hours(value)),
    }
    .ok_or_else(|| bad("the validity ends beyond the year 9999"))?;
    Ok(Window {
        not_before: start,
        not_after: end,
    })
}

fn start_from_ms(ms: i64, now: time::OffsetDateTime) -> Result<time::OffsetDateTime, &'static str> {
    let t = timeutil::ms_to_datetime(ms).ok_or("start_from is out of range (epoch ms up to the year 9999)")?;
    if t >= now - time::Duration::minutes(5) {
        Ok(t)
    } else {
        Err("start_from must not be earlier than 5 minutes ago")
    }
}

pub(super) fn now_dt() -> time::OffsetDateTime {
    timeutil::ms_to_datetime(timeutil::now_ms()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub(super) fn parse_key_usages(o: &Map<String, Value>) -> Result<Option<Vec<rcgen::KeyUsagePurpose>>, ApiError> {
    use rcgen::KeyUsagePurpose as K;
    let arr = match o.get("key_usages") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::param("key_usages must be an array")),
    };
    let mut out = Vec::new();
    for v in arr {
        out.push(match v.as_str() {
            Some("digitalSignature") => K::DigitalSignature,
            Some("nonRepudiation") => K::ContentCommitment,
            Some("keyEncipherment") => K::KeyEncipherment,
            Some("dataEncipherment") => K::DataEncipherment,
            Some("keyAgreement") => K::KeyAgreement,
            Some("keyCertSign") => K::KeyCertSign,
            Some("cRLSign") => K::CrlSign,
            Some("encipherOnly") => K::EncipherOnly,
            Some("decipherOnly") => K::DecipherOnly,
            _ => return Err(ApiError::param(format!("unknown key usage {v}"))),
        });
    }
    Ok(Some(out))
}

pub(super) fn default_ca_key_usages() -> Vec<rcgen::KeyUsagePurpose> {
    use rcgen::KeyUsagePurpose as K;
    vec![K::DigitalSignature, K::KeyCertSign, K::CrlSign]
}

pub(super) fn parse_hash(o: &Map<String, Value>, required: bool) -> Result<Option<HashAlg>, ApiError> {
    match opt_str(o, "signature_algorithm")? {
        None if required => Err(ApiError::bad(
            errors::PCA_BAD_SIGNATURE_ALGORITHM,
            "Invalid signature hash algorithm: signature_algorithm is required (SHA256, SHA384, SHA512)",
        )),
        None => Ok(None),
        Some(s) => HashAlg::parse(s).map(Some).ok_or_else(|| {
            ApiError::bad(
                errors::PCA_BAD_SIGNATURE_ALGORITHM,
                "Invalid signature hash algorithm (SHA256, SHA384, SHA512)",
            )
        }),
    }
}

pub(super) fn parse_path_length(o: &Map<String, Value>) -> Result<Option<u32>, ApiError> {
    match opt_int(o, "path_length") {
        Ok(None) => Ok(None),
        Ok(Some(n)) if (0..=6).contains(&n) => Ok(Some(n as u32)),
        _ => Err(ApiError::bad(
            errors::PCA_BAD_PATH_LENGTH,
            "Invalid CA path length: must be an integer in [0,6]",
        )),
    }
}

pub(super) fn parse_crl(o: &Map<String, Value>) -> Result<Option<CrlConfig>, ApiError> {
    match o.get("crl_configuration") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(c)) => {
            let enabled = match c.get("enabled") {
                Some(Value::Bool(b)) => *b,
                _ => return Err(ApiError::param("crl_configuration.enabled is required")),
            };
            let mut cfg = CrlConfig {
                enabled,
                ..Default::default()
            };
            if let Some(n) = opt_str(c, "crl_name")? {
                cfg.crl_name = n.to_owned();
            }
            if let Some(n) = opt_str(c, "obs_bucket_name")? {
                cfg.obs_bucket_name = n.to_owned();
            }
            cfg.valid_days = opt_int(c, "valid_days")?.unwrap_or(0);
            if enabled && (cfg.obs_bucket_name.is_empty() || !(7..=30).contains(&cfg.valid_days)) {
                return Err(ApiError::param(
                    "obs_bucket_name and valid_days (7..30) are required when CRL is enabled",
                ));
            }
            Ok(Some(cfg))
        }
        Some(_) => Err(ApiError::param("crl_configuration must be an object")),
    }
}

/// `crl/enable` carries the CRL settings; `crl/disable` has no body.
pub(super) fn body_is_enable_crl(body: &[u8]) -> Result<Option<CrlConfig>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let o = json_object(body)?;
    let mut c = o.clone();
    c.entry("enabled").or_insert(Value::Bool(true));
    let mut wrapper = Map::new();
    wrapper.insert("crl_configuration".into(), Value::Object(c));
    parse_crl(&wrapper)
}

#[cfg(test)]
mod tests;
