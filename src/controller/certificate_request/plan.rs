//! Validation of a request before any PCA call, and the mapping of its duration to the PCA's
//! validity.

use std::time::Duration;

use crate::{
    cert_manager::{CertificateRequest, parse_go_duration},
    pca::types::{Validity, ValidityUnit},
    pki::{CsrInfo, Ku, parse_csr, parse_usage},
};

/// cert-manager's default certificate duration (90 days).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(90 * 24 * 3600);
/// The PCA's limit for certificates (20 years of 365 days).
const MAX_HOURS: u64 = 20 * 365 * 24;
/// Kept between a clamped certificate's end and the CA's, for clock skew.
const CA_END_MARGIN_SECS: i64 = 3600;

/// A validated request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The CSR.
    pub csr: CsrInfo,
    /// `spec.isCA`.
    pub is_ca: bool,
    /// `spec.duration` or the default.
    pub duration: Duration,
}

/// Validates a request before any PCA call; the error names the problem.
pub fn plan(cr: &CertificateRequest) -> Result<Plan, String> {
    let csr = parse_csr(&cr.spec.request.0).map_err(|e| format!("spec.request: {e}"))?;
    let is_ca = cr.spec.is_ca.unwrap_or(false);
    if let Some(ca) = csr.basic_constraints_ca
        && ca != is_ca
    {
        return Err(format!(
            "the CSR's basicConstraints says CA={ca} but spec.isCA is {is_ca}"
        ));
    }
    for name in cr.spec.usages.iter().flatten() {
        let usage = parse_usage(name).map_err(|e| e.to_string())?;
        if !csr.usages.has(usage) {
            return Err(format!(
                "spec.usages asks for {name:?} but the CSR does not carry it ({usage}); the PCA takes usages only from the CSR"
            ));
        }
    }
    if is_ca && csr.usages.key.is_some() && !csr.usages.has_key(Ku::CertSign) {
        return Err("spec.isCA is true but the CSR's keyUsage lacks keyCertSign (\"cert sign\")".into());
    }
    let duration = match cr.spec.duration.as_deref() {
        Some(d) => parse_go_duration(d).map_err(|e| format!("spec.duration: {e}"))?,
        None => DEFAULT_DURATION,
    };
    let duration = if duration.is_zero() { DEFAULT_DURATION } else { duration };
    Ok(Plan { csr, is_ca, duration })
}

/// Maps a duration to the PCA's validity (whole days → `DAY`, else `HOUR`, rounded up), clamped
/// to the PCA's 20-year limit and to end an hour before the CA does. Returns a note when clamped.
pub fn validity_for(
    duration: Duration,
    ca_not_after: Option<i64>,
    now: i64,
) -> Result<(Validity, Option<String>), String> {
    let requested = duration.as_secs().div_ceil(3600).max(1);
    let mut hours = requested.min(MAX_HOURS);
    let mut note = (requested > MAX_HOURS)
        .then(|| format!("requested {requested}h exceeds the PCA's 20-year limit; clamped to {MAX_HOURS}h"));
    if let Some(not_after) = ca_not_after {
        let available = (not_after - now - CA_END_MARGIN_SECS) / 3600;
        if available < 1 {
            return Err(format!(
                "the PCA CA ends at {} and cannot sign a certificate of at least one hour; renew the CA",
                crate::controller::rfc3339_secs(not_after)
            ));
        }
        let available = u64::try_from(available).unwrap_or(0);
        if hours > available {
            note = Some(format!(
                "requested duration of {requested}h would outlive the PCA CA (notAfter {}); clamped to {available}h",
                crate::controller::rfc3339_secs(not_after)
            ));
            hours = available;
        }
    }
    let validity = if hours.is_multiple_of(24) {
        Validity {
            unit: ValidityUnit::Day,
            value: u32::try_from(hours / 24).unwrap_or(u32::MAX),
            start_from: None,
        }
    } else {
        Validity {
            unit: ValidityUnit::Hour,
            value: u32::try_from(hours).unwrap_or(u32::MAX),
            start_from: None,
        }
    };
    Ok((validity, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    #[test]
    fn whole_days_map_to_day_else_hour() {
        let (v, note) = validity_for(Duration::from_secs(7200 * H), None, 0).unwrap();
        assert_eq!((v.unit, v.value, note), (ValidityUnit::Day, 300, None));
        let (v, _) = validity_for(Duration::from_secs(25 * H), None, 0).unwrap();
        assert_eq!((v.unit, v.value), (ValidityUnit::Hour, 25));
        let (v, _) = validity_for(Duration::from_secs(90 * 60), None, 0).unwrap();
        assert_eq!((v.unit, v.value), (ValidityUnit::Hour, 2), "rounded up");
        let (v, _) = validity_for(Duration::from_secs(60), None, 0).unwrap();
        assert_eq!((v.unit, v.value), (ValidityUnit::Hour, 1));
    }

    #[test]
    fn clamps_to_the_ca_with_a_note() {
        let now = 1_000_000;
        let ca_end = now + 10 * 24 * 3600; // CA ends in 10 days
        let (v, note) = validity_for(Duration::from_secs(7200 * H), Some(ca_end), now).unwrap();
        assert_eq!(
            (v.unit, v.value),
            (ValidityUnit::Hour, 239),
            "10 days minus the 1h margin"
        );
        assert!(note.unwrap().contains("clamped to 239h"));
        let err = validity_for(Duration::from_secs(H), Some(now + 1800), now).unwrap_err();
        assert!(err.contains("renew the CA"), "{err}");
    }

    #[test]
    fn clamps_to_twenty_years() {
        let (v, note) = validity_for(Duration::from_secs(30 * 365 * 24 * H), None, 0).unwrap();
        assert_eq!((v.unit, v.value), (ValidityUnit::Day, 20 * 365));
        assert!(note.unwrap().contains("20-year"));
    }
}
