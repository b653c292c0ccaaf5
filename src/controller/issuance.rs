//! Exactly one PCA certificate per CertificateRequest, even across crashes.
//!
//! The PCA's issue-from-CSR call has no idempotency token. So before calling it we persist an
//! *intent* on the request (an annotation bound to its UID, written with a resourceVersion
//! precondition so two workers cannot both win), and right after it the returned *certificate
//! id*. A request that has an intent but no id had an attempt with an unknown outcome (crash,
//! time-out, reset): we first look for a certificate issued since the intent — listing the CA's
//! certificates created since then and matching the CSR's public key, SANs and CA-ness — and
//! only issue again when none exists and the earlier attempt can no longer be in flight.

use std::time::Duration;

use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::EventType,
};
use serde_json::json;
use tracing::{info, warn};

use super::{Context, is_gone};
use crate::{
    cert_manager::CertificateRequest,
    pca::{
        PcaClient, PcaError,
        types::{IssueFromCsr, ListCertificates},
    },
    pki::{CERT_PEM_TAG, CsrInfo, Expectation, check_certificate, pem::parse_blocks},
};

/// Annotation holding `<request uid>/<epoch ms>` while an issuance may be in flight.
pub const INTENT_ANNOTATION: &str = "ccm-issuer.ccm.com/issuance-intent";
/// Annotation holding `<request uid>/<PCA certificate id>` once issued.
pub const CERTIFICATE_ID_ANNOTATION: &str = "ccm-issuer.ccm.com/certificate-id";

/// How far before the intent a recovered certificate may have been created (clock skew
/// between us and the PCA).
const CLOCK_SKEW: i64 = 5 * 60 * 1000;
/// How many PCA certificates a recovery looks at before giving up for now.
const MAX_RECOVERY_SCAN: usize = 1000;

/// What an issuance attempt produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Obtained {
    /// The PCA certificate (or, for CA requests, CA) id for this request.
    Id(String),
    /// The request was deleted, replaced or finished elsewhere: nothing to do.
    Gone,
}

/// Why no certificate id is available yet.
#[derive(Debug, thiserror::Error)]
pub enum IssuanceError {
    /// The PCA call failed.
    #[error(transparent)]
    Pca(#[from] PcaError),
    /// A Kubernetes call failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),
    /// An earlier attempt's outcome is unknown and it may still be in flight.
    #[error("an earlier issuance attempt may still be in flight; checking again in {0:?}")]
    InFlight(Duration),
    /// Another worker recorded its intent first.
    #[error("another worker is issuing this request")]
    Conflict,
    /// The outcome of an earlier attempt cannot be established (CA certificates issued from a
    /// CSR are not listed by the PCA), so issuing again could duplicate it.
    #[error("{0}")]
    Unrecoverable(String),
}

/// What is being issued.
pub struct IssueInput<'a> {
    /// The request.
    pub request: &'a CertificateRequest,
    /// PCA client of its issuer.
    pub client: &'a PcaClient,
    /// Body of the issue call.
    pub body: &'a IssueFromCsr,
    /// Validated CSR.
    pub csr: &'a CsrInfo,
    /// CA certificate requested.
    pub is_ca: bool,
}

impl IssueInput<'_> {
    fn expectation(&self) -> Expectation<'_> {
        Expectation {
            csr: self.csr,
            is_ca: self.is_ca,
            path_length: self.body.path_length,
            now: jiff::Timestamp::now().as_second(),
        }
    }
}

/// The value of `annotation` if it is bound to `uid` (`<uid>/<value>`). Values copied from a
/// Certificate's annotations (cert-manager copies them) cannot carry the new request's UID.
pub fn bound<'a>(cr: &'a CertificateRequest, annotation: &str, uid: &str) -> Option<&'a str> {
    cr.annotations()
        .get(annotation)
        .and_then(|v| v.strip_prefix(uid))
        .and_then(|v| v.strip_prefix('/'))
        .filter(|v| !v.is_empty())
}

/// Gets the PCA id of the certificate for this request, issuing at most once.
pub async fn obtain(ctx: &Context, input: &IssueInput<'_>) -> Result<Obtained, IssuanceError> {
    let cr = input.request;
    let (Some(uid), Some(namespace)) = (cr.uid(), cr.namespace()) else {
        return Ok(Obtained::Gone);
    };
    if let Some(id) = ctx.requests.issued_for(&uid) {
        return Ok(Obtained::Id(id));
    }
    let api: Api<CertificateRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = cr.name_any();
    // Decide on a quorum read, never on the cache: the cache may lag behind our own writes.
    let fresh = match api.get(&name).await {
        Ok(f) => f,
        Err(e) if is_gone(&e) => return Ok(Obtained::Gone),
        Err(e) => return Err(e.into()),
    };
    if fresh.uid().as_deref() != Some(uid.as_str()) || fresh.is_final() {
        return Ok(Obtained::Gone);
    }
    if let Some(id) = bound(&fresh, CERTIFICATE_ID_ANNOTATION, &uid) {
        return Ok(Obtained::Id(id.to_owned()));
    }
    if let Some(intent) = bound(&fresh, INTENT_ANNOTATION, &uid) {
        let since = intent.parse::<i64>().unwrap_or(0);
        if let Some(id) = recover(input, since).await? {
            info!(request = %name, certificate_id = %id, "found the certificate of an earlier attempt; not issuing again");
            ctx.metrics.duplicate_avoided("Recovered");
            ctx.event(
                &cr.object_ref(&()),
                EventType::Normal,
                "Recovered",
                "Issue",
                format!("Found PCA certificate {id} issued by an earlier attempt whose outcome was unknown; not issuing again"),
            )
            .await;
            persist_id(ctx, &api, &name, &uid, &id).await;
            return Ok(Obtained::Id(id));
        }
        let age = jiff::Timestamp::now().as_millisecond() - since;
        let grace = ctx.pca.request_timeout() + Duration::from_secs(30);
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        if age < grace_ms {
            let wait = u64::try_from(grace_ms - age).unwrap_or(1000).max(1000);
            return Err(IssuanceError::InFlight(Duration::from_millis(wait)));
        }
        if input.is_ca {
            return Err(IssuanceError::Unrecoverable(format!(
                "an earlier attempt to issue this CA certificate ended without a known result (started {}), and the PCA does not list CA certificates issued from CSRs; not issuing again to avoid a second CA certificate for this request. cert-manager will retry with a new request",
                jiff::Timestamp::from_millisecond(since)
                    .map(super::rfc3339)
                    .unwrap_or_default()
            )));
        }
        info!(request = %name, "no certificate from the earlier attempt exists; issuing again");
    }
    // Record the intent with a precondition: if anything changed since the read, another worker
    // may have recorded its own, so back off.
    let now = jiff::Timestamp::now().as_millisecond();
    let patch = json!({"metadata": {
        "resourceVersion": fresh.resource_version(),
        "annotations": {INTENT_ANNOTATION: format!("{uid}/{now}")},
    }});
    match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_conflict() => {
            ctx.metrics.duplicate_avoided("IntentConflict");
            return Err(IssuanceError::Conflict);
        }
        Err(e) if is_gone(&e) => return Ok(Obtained::Gone),
        Err(e) => return Err(e.into()),
    }
    match input.client.issue_from_csr(input.body).await {
        Ok(issued) => {
            let id = issued.certificate_id;
            ctx.requests.remember_issued(&uid, &id);
            persist_id(ctx, &api, &name, &uid, &id).await;
            Ok(Obtained::Id(id))
        }
        Err(e) if e.is_ambiguous() => {
            warn!(request = %name, error = %e, "issuance outcome unknown; the next attempt looks for the certificate first");
            Err(e.into())
        }
        Err(e) => {
            // Definitely not issued: clear the intent so the next attempt need not search.
            let clear = json!({"metadata": {"annotations": {INTENT_ANNOTATION: null}}});
            if let Err(k) = api.patch(&name, &PatchParams::default(), &Patch::Merge(&clear)).await {
                warn!(request = %name, error = %k, "could not clear the issuance intent");
            }
            Err(e.into())
        }
    }
}

async fn persist_id(ctx: &Context, api: &Api<CertificateRequest>, name: &str, uid: &str, id: &str) {
    ctx.requests.remember_issued(uid, id);
    let patch = json!({"metadata": {"annotations": {CERTIFICATE_ID_ANNOTATION: format!("{uid}/{id}")}}});
    if let Err(e) = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        // The in-memory copy covers this process; after a restart, recovery finds it again.
        warn!(request = %name, error = %e, "could not record the certificate id on the request");
    }
}

/// Looks for a certificate issued for this request since `since_ms`.
async fn recover(input: &IssueInput<'_>, since_ms: i64) -> Result<Option<String>, IssuanceError> {
    let from = since_ms.saturating_sub(CLOCK_SKEW);
    let expect = input.expectation();
    let mut found: Vec<(i64, String)> = Vec::new();
    let mut offset = 0u32;
    let mut scanned = 0usize;
    'pages: loop {
        let page = input
            .client
            .list_certificates(&ListCertificates {
                limit: Some(100),
                offset: Some(offset),
                name: input.csr.common_name.clone().filter(|cn| !cn.is_empty()),
                sort_key: Some("create_time".into()),
                sort_dir: Some("DESC".into()),
                status: None,
            })
            .await?;
        if page.certificates.is_empty() {
            break;
        }
        for cert in &page.certificates {
            scanned += 1;
            let created = cert.create_time.unwrap_or(0);
            if created < from {
                break 'pages;
            }
            if cert.issuer_id.as_deref() != Some(input.body.issuer_id.as_str()) {
                continue;
            }
            let exported = if input.is_ca {
                input.client.export_ca(&cert.certificate_id).await?
            } else {
                input.client.export_certificate(&cert.certificate_id).await?
            };
            let der = exported
                .certificate
                .as_deref()
                .and_then(|pem| parse_blocks(pem.as_bytes(), CERT_PEM_TAG).ok())
                .and_then(|mut blocks| (!blocks.is_empty()).then(|| blocks.remove(0)));
            if der.is_some_and(|der| check_certificate(&der, &expect).is_ok()) {
                found.push((created, cert.certificate_id.clone()));
            }
        }
        offset = offset.saturating_add(u32::try_from(page.certificates.len()).unwrap_or(u32::MAX));
        if u64::from(offset) >= page.total {
            break;
        }
        if scanned >= MAX_RECOVERY_SCAN {
            return Err(IssuanceError::InFlight(Duration::from_secs(60)));
        }
    }
    if found.len() > 1 {
        warn!(
            count = found.len(),
            "several certificates match this request; using the earliest"
        );
    }
    Ok(found.into_iter().min().map(|(_, id)| id))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cert_manager::CertificateRequestSpec;

    #[test]
    fn annotations_count_only_when_bound_to_the_uid() {
        let mut cr = CertificateRequest::new("r", CertificateRequestSpec::default());
        cr.metadata.uid = Some("uid-1".into());
        cr.metadata.annotations = Some(BTreeMap::from([
            (CERTIFICATE_ID_ANNOTATION.to_owned(), "uid-0/abc".to_owned()),
            (INTENT_ANNOTATION.to_owned(), "uid-1/1700000000000".to_owned()),
        ]));
        assert_eq!(
            bound(&cr, CERTIFICATE_ID_ANNOTATION, "uid-1"),
            None,
            "copied from another request"
        );
        assert_eq!(bound(&cr, INTENT_ANNOTATION, "uid-1"), Some("1700000000000"));
        assert_eq!(
            bound(&cr, INTENT_ANNOTATION, "uid-"),
            None,
            "prefix of the uid is not the uid"
        );
    }
}
