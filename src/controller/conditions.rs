//! Condition helpers: `lastTransitionTime` only moves when the status changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::cert_manager::CertificateRequestCondition;

/// `True`, `False` or `Unknown`.
pub fn status_str(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    }
}

/// A condition for our issuers' status.
pub fn issuer_condition(
    existing: &[Condition],
    type_: &str,
    status: Option<bool>,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    let status = status_str(status);
    let last_transition_time = existing
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// A condition for a CertificateRequest's status.
pub fn request_condition(
    existing: &[CertificateRequestCondition],
    type_: &str,
    status: Option<bool>,
    reason: &str,
    message: String,
) -> CertificateRequestCondition {
    let status = status_str(status);
    let last_transition_time = existing
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(super::now_rfc3339);
    CertificateRequestCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_transition_time: Some(last_transition_time),
        observed_generation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let old_time = Time("2020-01-01T00:00:00Z".parse().unwrap());
        let existing = vec![Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: "A".into(),
            message: "a".into(),
            observed_generation: Some(1),
            last_transition_time: old_time.clone(),
        }];
        let same = issuer_condition(&existing, "Ready", Some(false), "B", "b".into(), Some(2));
        assert_eq!(same.last_transition_time, old_time);
        assert_eq!(same.reason, "B");
        let flipped = issuer_condition(&existing, "Ready", Some(true), "C", "c".into(), Some(2));
        assert_ne!(flipped.last_transition_time, old_time);

        let cr_existing = vec![CertificateRequestCondition {
            type_: "Ready".into(),
            status: "False".into(),
            last_transition_time: Some("2020-01-01T00:00:00Z".into()),
            ..Default::default()
        }];
        let kept = request_condition(&cr_existing, "Ready", Some(false), "Pending", "m".into());
        assert_eq!(kept.last_transition_time.as_deref(), Some("2020-01-01T00:00:00Z"));
        let moved = request_condition(&cr_existing, "Ready", Some(true), "Issued", "m".into());
        assert_ne!(moved.last_transition_time.as_deref(), Some("2020-01-01T00:00:00Z"));
    }
}
