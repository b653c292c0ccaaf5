//! Finding the leaf certificate of an issue attempt whose answer was lost (time-out, reset,
//! crash, a replica killed between the PCA's answer and our status write).
//!
//! The PCA lists certificates newest first, filtered by common name and status, with no time
//! filter and no idempotency token. The search therefore:
//!
//! 1. looks only at the window `[intent start − 15 min, intent deadline + margin + 15 min]`
//!    (the gateway accepts our signatures with up to 15 minutes of clock difference, so its
//!    `create_time` may be that far from our clock), finding the window's first page by binary
//!    search over the offset (page-sized probes) instead of paging through everything newer;
//! 2. narrows entries by issuing CA, key algorithm, common name and status from the list
//!    itself, and drops the certificates other requests of ours already hold (their serial
//!    numbers, from the request watch: `certificate_request::delivered`), before any export;
//! 3. exports the few candidates nearest to the attempt first — on the PCA's clock as its
//!    `Date` headers tell it, so the certificate of a lost answer is normally the first one
//!    exported (the hint only orders, it never narrows) — then sweeps the rest newest first,
//!    four exports at a time, ruling out ids the PCA refuses to export; how far the sweep got
//!    is kept in the intent annotation, so a restarted or new leader goes on from there;
//! 4. gets a list entry without `create_time`, or a page without `total`, from the client as an
//!    incomplete answer to retry — never as "nothing was issued".
//!
//! One pass costs at most `2 + ⌈log2(total / 100)⌉ + MAX_WINDOW_PAGES` list calls,
//! `MAX_EXPORTS_PER_PASS` exports and one annotation write; a window with more candidates is
//! continued in the next pass, from the recorded position.

use std::collections::HashSet;

use crate::{
    pca::{
        PcaClient, PcaError,
        types::{CertificateList, ListCertificates, PrivateCertificate},
    },
    pki::Serial,
    signing::{SignRequest, exported_matches},
};

use futures::StreamExt;

use super::intent::{Cursor, Intent};

/// How far the PCA's clock may be from ours (the gateway refuses signatures beyond this).
pub const CLOCK_SKEW_MS: i64 = 15 * 60 * 1000;
/// Entries per list page.
const PAGE: u32 = 100;
/// Pages of the window read in one pass.
pub const MAX_WINDOW_PAGES: u32 = 50;
/// Candidates exported in one pass.
pub const MAX_EXPORTS_PER_PASS: usize = 25;

/// Candidates nearest the attempt (on the PCA's clock) exported first, before the ordered sweep.
const NEAREST_FIRST: usize = 5;
/// Exports in flight at once.
const EXPORTS_AT_ONCE: usize = 4;
/// How long a pass sweeps before it stops to have its position recorded. A pass that outlives
/// its process records nothing: a leader killed (or a PCA slowed down) every few seconds would
/// otherwise repeat the same first candidates for ever.
pub const PASS_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// The result of one search pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// This certificate was issued for the request.
    Found(String),
    /// The whole window was read and no certificate matches.
    NotIssued,
    /// The pass ended before every candidate was ruled out; search again, from `progress` on.
    Undecided {
        /// What is left.
        why: String,
        /// How far candidates are ruled out (newest first), if the pass moved on.
        progress: Option<Cursor>,
    },
}

/// What a pass looks for.
pub struct Target<'a> {
    /// The issue that may have happened.
    pub request: &'a SignRequest<'a>,
    /// The recorded attempt (with how far earlier passes got).
    pub intent: Intent,
    /// How long the sweep may go on before the pass ends with its position ([`PASS_TIME`]).
    pub pass_time: std::time::Duration,
    /// Serials of certificates other requests already hold: not this request's.
    pub delivered: HashSet<Serial>,
}

impl Target<'_> {
    fn window(&self) -> (i64, i64) {
        (
            self.intent.start_ms.saturating_sub(CLOCK_SKEW_MS),
            self.intent.in_flight_until().saturating_add(CLOCK_SKEW_MS),
        )
    }

    fn filter(&self, offset: u32) -> ListCertificates {
        ListCertificates {
            limit: Some(PAGE),
            offset: Some(offset),
            name: self.request.csr.common_name.clone().filter(|cn| !cn.is_empty()),
            status: Some("ISSUED".into()),
            sort_key: Some("create_time".into()),
            sort_dir: Some("DESC".into()),
        }
    }

    /// Whether a listed certificate can be ours, judged from the list alone.
    fn may_be_ours(&self, cert: &PrivateCertificate, created: i64) -> bool {
        let (from, to) = self.window();
        let cn = self.request.csr.common_name.as_deref().unwrap_or_default();
        (from..=to).contains(&created)
            && cert.issuer_id == self.request.ca_id
            && cert
                .key_algorithm
                .as_deref()
                .is_none_or(|k| k.eq_ignore_ascii_case(&self.request.csr.key.to_string()))
            && cert
                .distinguished_name
                .as_ref()
                .and_then(|dn| dn.common_name.as_deref())
                .is_none_or(|c| c == cn)
            && !cert
                .serial_number
                .as_deref()
                .and_then(Serial::from_hex)
                .is_some_and(|s| self.delivered.contains(&s))
    }
}

/// One search pass: on the first pass the candidates nearest the attempt first (a lost
/// answer's certificate is normally among them), then an ordered sweep (newest first) from
/// where earlier passes got.
/// `checked` holds ids this process already ruled out.
pub async fn search(
    client: &PcaClient,
    target: &Target<'_>,
    checked: &mut HashSet<String>,
) -> Result<Search, PcaError> {
    let (mut candidates, complete) = candidates(client, target).await?;
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    if let Some(c) = &target.intent.searched {
        candidates.retain(|(at, id)| !c.passed(*at, id));
    }
    // On the PCA's clock the call landed between the intent's start and its deadline (the
    // clock is known from its Date headers: an ordering hint, never a bound).
    let offset = client.pca_clock_offset_ms().unwrap_or(0);
    let (from, to) = (
        target.intent.start_ms + offset - 1000,
        target.intent.deadline_ms + offset + 1000,
    );
    let mut nearest: Vec<&(i64, String)> = candidates.iter().filter(|(_, id)| !checked.contains(id)).collect();
    nearest.sort_by_key(|(at, id)| ((from - at).max(at - to).max(0), id.clone()));
    // Only the first pass: later ones (a recorded position) go on with the sweep, rather than
    // exporting the same nearest candidates again in every new process.
    nearest.truncate(if target.intent.searched.is_some() {
        0
    } else {
        NEAREST_FIRST
    });
    let nearest_ids: Vec<String> = nearest.iter().map(|(_, id)| id.clone()).collect();
    if let Some(found) = rule_out(client, target, &nearest_ids, checked).await? {
        return Ok(Search::Found(found));
    }
    // The sweep: ruled-out candidates advance the position without an export.
    let started = std::time::Instant::now();
    let mut progress = None;
    let mut budget = MAX_EXPORTS_PER_PASS.saturating_sub(nearest_ids.len());
    let mut rest = candidates.iter().peekable();
    while rest.peek().is_some() {
        if started.elapsed() >= target.pass_time && progress.is_some() {
            return Ok(Search::Undecided {
                why: format!("{} candidate certificates left to check", rest.count()),
                progress,
            });
        }
        let ruled_out = progress.clone();
        let mut batch = Vec::new();
        while let Some((at, id)) = rest.peek() {
            if !checked.contains(id) {
                if budget == 0 || batch.len() == EXPORTS_AT_ONCE {
                    break;
                }
                budget -= 1;
                batch.push(id.clone());
            }
            progress = Some(Cursor {
                at: *at,
                id: id.clone(),
            });
            rest.next();
        }
        match rule_out(client, target, &batch, checked).await {
            Ok(Some(found)) => return Ok(Search::Found(found)),
            Ok(None) => {}
            // Keep what earlier batches ruled out; this batch is checked again next pass.
            Err(e) if e.is_retryable() && ruled_out.is_some() => {
                return Ok(Search::Undecided {
                    why: format!("checking candidates was interrupted ({e})"),
                    progress: ruled_out,
                });
            }
            Err(e) => return Err(e),
        }
        if budget == 0 && rest.peek().is_some() {
            return Ok(Search::Undecided {
                why: format!("{} candidate certificates left to check", rest.count()),
                progress,
            });
        }
    }
    Ok(if complete {
        Search::NotIssued
    } else {
        Search::Undecided {
            why: format!(
                "the time window holds more than {} certificates",
                MAX_WINDOW_PAGES * PAGE
            ),
            progress,
        }
    })
}

/// Exports `ids` (a few at a time) and returns the one issued for the request, if any; the
/// others join `checked`. A candidate the PCA refuses to export (revoked meanwhile, …) cannot
/// be delivered anyway and is ruled out.
async fn rule_out(
    client: &PcaClient,
    target: &Target<'_>,
    ids: &[String],
    checked: &mut HashSet<String>,
) -> Result<Option<String>, PcaError> {
    let exports: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| async move {
            let result = exported_matches(client, &id, target.request).await;
            (id, result)
        })
        .collect();
    let mut results = futures::stream::iter(exports).buffered(EXPORTS_AT_ONCE);
    while let Some((id, result)) = results.next().await {
        match result {
            Ok(true) => return Ok(Some(id)),
            Ok(false) => {}
            Err(e) if !e.is_retryable() && !e.is_credentials() => {}
            Err(e) => return Err(e),
        }
        checked.insert(id);
    }
    Ok(None)
}

/// The window's candidates (each once), and whether the window was read to its end.
async fn candidates(client: &PcaClient, target: &Target<'_>) -> Result<(Vec<(i64, String)>, bool), PcaError> {
    let (from, window_end) = target.window();
    // Earlier passes ruled out everything newer than their position: start listing there.
    let to = target
        .intent
        .searched
        .as_ref()
        .map_or(window_end, |c| c.at.min(window_end));
    let first = list(client, target, 0).await?;
    let total = first.total;
    let (mut offset, mut page) = match first.certificates.last().map(created).transpose()? {
        Some(last) if last > to && total > u64::from(PAGE) => {
            window_start(|at| list(client, target, at), to, total).await?
        }
        _ => (0, first),
    };
    let mut found = Vec::new();
    for _ in 0..MAX_WINDOW_PAGES {
        if page.certificates.is_empty() {
            return Ok((found, true));
        }
        for cert in &page.certificates {
            let at = created(cert)?;
            if at < from {
                return Ok((found, true));
            }
            if target.may_be_ours(cert, at) && !found.iter().any(|(_, id)| id == &cert.certificate_id) {
                found.push((at, cert.certificate_id.clone()));
            }
        }
        offset = offset.saturating_add(u32::try_from(page.certificates.len()).unwrap_or(PAGE));
        if u64::from(offset) >= page.total {
            return Ok((found, true));
        }
        page = list(client, target, offset).await?;
    }
    Ok((found, false))
}

/// A page holding the smallest offset whose entry was created at or before `to` (entries are
/// newest first; everything before the page's own boundary is newer than `to`), and that
/// page's offset. A binary search over 100-entry pages: a probe whose page holds the boundary
/// ends it, so it costs about ⌈log2(total / 100)⌉ list calls where one-entry probes cost
/// ⌈log2(total)⌉, each a rate-limiter token, and a new leader searches again. New certificates
/// only push entries to larger offsets, so the result may be a little early, never late:
/// nothing in the window is skipped.
/// `page_at(offset)` lists the `PAGE` entries from `offset`.
async fn window_start<F: Future<Output = Result<CertificateList, PcaError>>>(
    mut page_at: impl FnMut(u32) -> F,
    to: i64,
    total: u64,
) -> Result<(u32, CertificateList), PcaError> {
    // Entries before `lo` are newer than `to`; the first one at or before it is at most `hi`.
    let mut lo = PAGE;
    let mut hi = u32::try_from(total).unwrap_or(u32::MAX);
    loop {
        // The probed page sits in the middle of what is left (at `lo` once one page covers it).
        let at = lo + (hi - lo).saturating_sub(PAGE) / 2;
        let page = page_at(at).await?;
        let mut boundary = None;
        for (i, cert) in page.certificates.iter().enumerate() {
            if created(cert)? <= to {
                boundary = Some(i);
                break;
            }
        }
        match boundary {
            // The page starts newer than `to` and ends at or before it, or starts right at
            // the known boundary: the window starts in this page.
            // An empty page at `lo`: nothing is left at or before `to`.
            Some(i) if i > 0 || at == lo => return Ok((at, page)),
            None if page.certificates.is_empty() && at == lo => return Ok((at, page)),
            Some(_) => hi = at,
            None if page.certificates.is_empty() => hi = at,
            None => lo = at.saturating_add(u32::try_from(page.certificates.len()).unwrap_or(PAGE)),
        }
        hi = hi.max(lo);
    }
}

/// The page of `PAGE` entries from `offset`.
async fn list(client: &PcaClient, target: &Target<'_>, offset: u32) -> Result<CertificateList, PcaError> {
    let page = client.list_certificates(&target.filter(offset)).await?;
    Ok(page)
}

/// The client refuses list answers without `create_time` (or `total`) as incomplete and
/// retryable, so an absent field never reads as "nothing issued".
fn created(cert: &PrivateCertificate) -> Result<i64, PcaError> {
    Ok(cert.create_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(i: usize, created: i64) -> PrivateCertificate {
        serde_json::from_value(serde_json::json!({
            "certificate_id": format!("{i:08}-0000-4000-8000-000000000000"),
            "status": "ISSUED",
            "issuer_id": "ca",
            "create_time": created,
        }))
        .expect("entry")
    }

    proptest! {
        /// For any newest-first list, the page found starts at or before the first entry at or
        /// before `to` and holds it (or the list ends there), within ⌈log2(total / 100)⌉ + 2
        /// list calls.
        #[test]
        fn the_window_start_is_never_late_and_costs_a_logarithm_of_pages(
            mut times in proptest::collection::vec(0i64..5_000, 101..5_000),
            to in -10i64..5_010,
        ) {
            times.sort_unstable_by(|a, b| b.cmp(a));
            // What the caller already knows: the first page is newer than `to`.
            prop_assume!(times[PAGE as usize - 1] > to);
            let entries: Vec<PrivateCertificate> = times.iter().enumerate().map(|(i, t)| entry(i, *t)).collect();
            let total = entries.len() as u64;
            let calls = std::cell::Cell::new(0u32);
            let (offset, page) = futures::executor::block_on(window_start(
                |at| {
                    calls.set(calls.get() + 1);
                    let from = (at as usize).min(entries.len());
                    let to = (from + PAGE as usize).min(entries.len());
                    std::future::ready(Ok(CertificateList { total, certificates: entries[from..to].to_vec() }))
                },
                to,
                total,
            ))
            .expect("search");
            let boundary = times.iter().position(|t| *t <= to).unwrap_or(times.len());
            let offset = offset as usize;
            prop_assert!(offset <= boundary, "late: page at {offset}, first entry at or before `to` at {boundary}");
            prop_assert!(
                boundary < offset + page.certificates.len() || boundary == times.len() && page.certificates.is_empty() || offset == boundary,
                "the page at {offset} ({} entries) does not reach the boundary {boundary}", page.certificates.len()
            );
            let bound = (total as f64 / f64::from(PAGE)).log2().ceil() as u32 + 2;
            let calls = calls.get();
            prop_assert!(calls <= bound, "{calls} list calls for {total} entries (bound {bound})");
        }
    }
}
