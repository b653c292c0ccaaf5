//! Handing a certificate recovery exported for one request to the request it was issued for.
//!
//! Answers are lost several at a time (a leader killed mid-call, an outage cutting every call
//! in flight), and each such request's recovery exports the look-alikes in its window — mostly
//! the unanswered certificates of the others. Each of them used to export the same
//! certificates again in its own recovery, so the cost grew with the square of the lost
//! answers, at 1–3 s an export. Every certificate a pass exports and rules out is therefore
//! offered to our other requests: one whose own recovery would accept it gets its id recorded
//! (`ccm-issuer.ccm.com/certificate-id`, bound to its UID, written with its resourceVersion as
//! precondition) and delivers it without a search of its own.
//!
//! "Would accept it" is checked as that recovery checks: a leaf request of the same issuer,
//! not final, with a recorded intent whose window holds the certificate's creation, the
//! certificate matching its CSR (public key, SANs, usages, not a CA) and its common name. A
//! certificate that more than one request would accept (the same CSR twice) goes to none.

use std::sync::Arc;

use kube::{Resource, runtime::events::EventType};
use tracing::{info, warn};

use super::{
    intent::{CERTIFICATE_ID_ANNOTATION, Intent, RecordedIntent, bind, bound, recorded_intent},
    legacy_grace,
    recovery::{Stranger, window},
};
use crate::{
    cert_manager::CertificateRequest,
    controller::{
        Context, IssuerKey,
        certificate_request::{plan::plan, reasons},
        tracked::{Tracked, Write},
    },
    pki::{CsrInfo, Expectation, check_certificate, csr_public_key},
};

/// A request that may be the owner of a stranger.
struct Claimant {
    request: Arc<CertificateRequest>,
    csr: CsrInfo,
    window: (i64, i64),
}

/// Offers certificates `finder`'s recovery ruled out to our other requests (see the module's
/// doc); returns how many were handed over. Called after each batch of exports, so what a
/// pass learned is kept even when its process dies before the pass ends.
pub async fn hand_over(ctx: &Context, finder: &CertificateRequest, strangers: Vec<Stranger>) -> usize {
    if strangers.is_empty() {
        return 0;
    }
    let Some(store) = ctx.request_store.get() else {
        return 0;
    };
    let Some(issuer) = IssuerKey::for_request(finder) else {
        return 0;
    };
    let finder_uid = finder.meta().uid.clone().unwrap_or_default();
    let grace = legacy_grace(ctx);
    let others: Vec<(Arc<CertificateRequest>, Intent)> = store
        .state()
        .into_iter()
        .filter_map(|cr| {
            let uid = cr.meta().uid.as_deref().unwrap_or_default();
            let eligible = uid != finder_uid
                && !cr.is_final()
                && !cr.spec.is_ca.unwrap_or(false)
                && IssuerKey::for_request(&cr).as_ref() == Some(&issuer)
                && bound(&cr, CERTIFICATE_ID_ANNOTATION, uid).is_none();
            match recorded_intent(&cr, uid, grace) {
                RecordedIntent::Valid(intent) if eligible => Some((cr, intent)),
                _ => None,
            }
        })
        .collect();
    if others.is_empty() {
        return 0;
    }
    // CSR parsing checks signatures: CPU work, off the async workers.
    let matches = match tokio::task::spawn_blocking(move || owners(others, strangers)).await {
        Ok(m) => m,
        Err(e) => {
            warn!(error = %e, "matching recovered certificates to other requests did not finish");
            return 0;
        }
    };
    let mut handed = 0;
    for (owner, stranger) in matches {
        if record(ctx, finder, &owner, &stranger).await {
            handed += 1;
        }
    }
    handed
}

/// Each stranger with exactly one request that would accept it, and that request.
fn owners(
    others: Vec<(Arc<CertificateRequest>, Intent)>,
    strangers: Vec<Stranger>,
) -> Vec<(Arc<CertificateRequest>, Stranger)> {
    let keys: Vec<Vec<u8>> = strangers.iter().filter_map(|s| public_key(&s.der)).collect();
    // The public key first (no signature check), the full CSR check only for a key that fits.
    let claimants: Vec<Claimant> = others
        .into_iter()
        .filter_map(|(request, intent)| {
            let key = csr_public_key(&request.spec.request.0)?;
            if !keys.contains(&key) {
                return None;
            }
            let csr = plan(&request).ok()?.csr;
            Some(Claimant {
                request,
                csr,
                window: window(&intent),
            })
        })
        .collect();
    let now = jiff::Timestamp::now().as_second();
    strangers
        .into_iter()
        .filter_map(|stranger| {
            let mut accepting = claimants.iter().filter(|c| accepts(c, &stranger, now));
            match (accepting.next(), accepting.next()) {
                (Some(c), None) => Some((c.request.clone(), stranger)),
                _ => None,
            }
        })
        .collect()
}

fn public_key(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.public_key().raw.to_vec())
}

/// Whether `claimant`'s own recovery would take `stranger` for its certificate.
fn accepts(claimant: &Claimant, stranger: &Stranger, now: i64) -> bool {
    let (from, to) = claimant.window;
    let expectation = Expectation {
        csr: &claimant.csr,
        is_ca: false,
        path_length: None,
        now,
    };
    (from..=to).contains(&stranger.created_ms)
        && check_certificate(&stranger.der, &expectation).is_ok()
        && common_name_fits(&stranger.der, claimant.csr.common_name.as_deref())
}

/// The certificate's common name, if it has one, is the CSR's (recovery's list filter).
fn common_name_fits(der: &[u8], wanted: Option<&str>) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let names: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .collect();
    names.is_empty() || names == [wanted.unwrap_or_default()]
}

/// Records `stranger` as `owner`'s certificate; whether it was written.
async fn record(ctx: &Context, finder: &CertificateRequest, owner: &CertificateRequest, stranger: &Stranger) -> bool {
    let Some(mut tracked) = Tracked::new(&ctx.client, owner) else {
        return false;
    };
    let uid = tracked.uid().to_owned();
    let value = bind(&uid, &stranger.id);
    match tracked.annotate(&[(CERTIFICATE_ID_ANNOTATION, Some(value))]).await {
        Ok(Write::Written) => {}
        // Changed meanwhile (its own recovery may have decided): it looks for itself.
        Ok(Write::Conflict | Write::Gone) => return false,
        Err(e) => {
            warn!(request = %tracked.name(), error = %e, "could not record a recovered certificate on its request");
            return false;
        }
    }
    let finder_name = finder.meta().name.clone().unwrap_or_default();
    info!(request = %tracked.name(), certificate_id = %stranger.id, found_by = %finder_name, "found the certificate of an earlier attempt while recovering another request; not issuing again");
    ctx.requests.remember_issued(&uid, &stranger.id);
    ctx.metrics.duplicate_avoided(reasons::RECOVERED);
    ctx.event(
        &owner.object_ref(&()),
        EventType::Normal,
        reasons::RECOVERED,
        "Issue",
        // The finder may be another tenant's request (a cluster issuer): its name stays in
        // the controller's log.
        format!(
            "Found PCA certificate {} issued by an earlier attempt whose outcome was unknown (while recovering another request); not issuing again",
            stranger.id
        ),
    )
    .await;
    true
}
