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
//!    itself, and drops the certificates other requests of ours already hold (by issuer, serial
//!    and start of validity, from the request watch: `certificate_request::delivered`) or have
//!    recorded the id of, before any export;
//! 3. exports the few candidates nearest to the attempt first — on the PCA's clock as its
//!    `Date` headers tell it, so the certificate of a lost answer is normally the first one
//!    exported (the hint only orders, it never narrows), and those on the list's first page
//!    before the rest of the window is read (a lost answer is normally recent: one list call
//!    and one export, whose answer is delivered as is) — then sweeps the rest newest first,
//!    four exports at a time, ruling out ids the PCA refuses to export; how far the sweep got
//!    is kept in the intent annotation, so a restarted or new leader goes on from there;
//! 4. gets a list entry without `create_time`, or a page without `total`, from the client as an
//!    incomplete answer to retry — never as "nothing was issued";
//! 5. reads the window's pages four at a time, each overlapping the one before and required to
//!    hold its last entry, so a certificate leaving the list between two reads (revoked,
//!    deleted), which moves older entries to offsets already read, is noticed and the pass read
//!    again — never taken for "nothing was issued".
//!
//! One pass costs at most `3 + ⌈log2(total / 100)⌉ + MAX_WINDOW_PAGES` list calls,
//! `MAX_EXPORTS_PER_PASS` exports and one annotation write (plus one on each other request a
//! certificate is handed to, `issuance::handover`); a window with more candidates is
//! continued in the next pass, from the recorded position.

use std::collections::HashSet;

use crate::{
    pca::{
        PcaClient, PcaError,
        types::{CertificateList, ExportedPem, ListCertificates, PrivateCertificate},
    },
    pki::CertificateIdentity,
    signing::{SignRequest, exported_certificate, issued_for},
};

use futures::StreamExt;

use super::intent::{Cursor, Intent};

/// How far the PCA's clock may be from ours (the gateway refuses signatures beyond this).
pub const CLOCK_SKEW_MS: i64 = 15 * 60 * 1000;
/// Entries per list page.
const PAGE: u32 = 100;
/// Pages of the window read in one pass (after finding its first page).
pub const MAX_WINDOW_PAGES: u32 = 50;
/// Pages of the window read at once: a window of several pages (a list without a common-name
/// filter holds every certificate of the CA) then costs a few round trips, not one per page —
/// read one by one at 1–3 s each, it outlived a chaos leader killed every few seconds.
const PAGES_AT_ONCE: u32 = 4;
/// Entries each page read at once shares with the page before it, beyond the one the read's
/// overlap check needs: certificates created between the two reads, in either order, shift
/// the shared entries by that many.
const OVERLAP: u32 = 20;
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
    /// This certificate was issued for the request (its export answer in hand).
    Found {
        /// Its id.
        id: String,
        /// The PCA's export answer.
        exported: ExportedPem,
    },
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

/// Where a pass sends the certificates it exported and ruled out, after each batch.
pub type Strangers = tokio::sync::mpsc::UnboundedSender<Vec<Stranger>>;

/// What a pass looks for.
pub struct Target<'a> {
    /// The issue that may have happened.
    pub request: &'a SignRequest<'a>,
    /// The recorded attempt (with how far earlier passes got).
    pub intent: Intent,
    /// How long the sweep may go on before the pass ends with its position ([`PASS_TIME`]).
    pub pass_time: std::time::Duration,
    /// Certificates other requests already hold: not this request's.
    pub delivered: HashSet<CertificateIdentity>,
    /// Certificate ids other requests have recorded, not delivered yet: not this request's.
    pub claimed: HashSet<String>,
}

/// The creation times, on the PCA's clock, a certificate of the attempt `intent` can have.
pub fn window(intent: &Intent) -> (i64, i64) {
    (
        intent.start_ms.saturating_sub(CLOCK_SKEW_MS),
        intent.in_flight_until().saturating_add(CLOCK_SKEW_MS),
    )
}

/// A certificate a pass exported that is not the request's: perhaps that of another request
/// whose answer was lost too (see `issuance::handover`).
#[derive(Debug, Clone)]
pub struct Stranger {
    /// Its id.
    pub id: String,
    /// Its creation, epoch ms (from the list).
    pub created_ms: i64,
    /// The exported certificate.
    pub der: Vec<u8>,
}

impl Target<'_> {
    fn window(&self) -> (i64, i64) {
        window(&self.intent)
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
            && !CertificateIdentity::of_listed(cert).is_some_and(|c| self.delivered.contains(&c))
            && !self.claimed.contains(&cert.certificate_id)
    }
}

/// One search pass: on the first pass the candidates nearest the attempt first — those on the
/// list's first page before the rest of the window is read ([`quick_look`]), then those of
/// the whole window (a lost answer's certificate is normally among them) — then an ordered
/// sweep (newest first) from where earlier passes got.
/// `checked` holds ids this process already ruled out; the certificates exported and ruled
/// out go to `strangers`, a batch at a time.
pub async fn search(
    client: &PcaClient,
    target: &Target<'_>,
    checked: &mut HashSet<String>,
    strangers: &Strangers,
) -> Result<Search, PcaError> {
    let hint = pca_clock_hint(client, &target.intent);
    let first_pass = target.intent.searched.is_none();
    let (first, quick_exports) = if first_pass {
        let first = list(client, target, 0).await?;
        let quick = quick_look(&first, target, hint, checked)?;
        if let Some((id, exported)) = rule_out(client, target, &quick, checked, strangers).await? {
            return Ok(Search::Found { id, exported });
        }
        (Some(first), quick.len())
    } else {
        (None, 0)
    };
    let (mut candidates, read) = candidates(client, target, first).await?;
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    if let Some(c) = &target.intent.searched {
        candidates.retain(|(at, id)| !c.passed(*at, id));
    }
    // Only the first pass: later ones (a recorded position) go on with the sweep, rather than
    // exporting the same nearest candidates again in every new process.
    let nearest = nearest(
        &candidates,
        hint,
        checked,
        if first_pass {
            NEAREST_FIRST.saturating_sub(quick_exports)
        } else {
            0
        },
    );
    if let Some((id, exported)) = rule_out(client, target, &nearest, checked, strangers).await? {
        return Ok(Search::Found { id, exported });
    }
    // The sweep: ruled-out candidates advance the position without an export.
    let started = std::time::Instant::now();
    let mut progress = None;
    let mut budget = MAX_EXPORTS_PER_PASS.saturating_sub(quick_exports + nearest.len());
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
                batch.push((*at, id.clone()));
            }
            progress = Some(Cursor {
                at: *at,
                id: id.clone(),
            });
            rest.next();
        }
        match rule_out(client, target, &batch, checked, strangers).await {
            Ok(Some((id, exported))) => return Ok(Search::Found { id, exported }),
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
    Ok(match read {
        Read::Complete => Search::NotIssued,
        Read::TooLarge => Search::Undecided {
            why: format!("the time window holds more certificates than one pass reads ({MAX_WINDOW_PAGES} pages)"),
            progress,
        },
        Read::Shifted => Search::Undecided {
            why: "the PCA's list lost entries while it was read (a certificate revoked or deleted meanwhile); reading it again".into(),
            progress,
        },
    })
}

/// When, on the PCA's clock, the issue call landed: between the intent's start and its
/// deadline, moved by the offset its `Date` headers show (an ordering hint, never a bound).
fn pca_clock_hint(client: &PcaClient, intent: &Intent) -> (i64, i64) {
    let offset = client.pca_clock_offset_ms().unwrap_or(0);
    (intent.start_ms + offset - 1000, intent.deadline_ms + offset + 1000)
}

/// Up to `n` of `candidates` not yet checked, nearest to the `hint` first.
fn nearest(
    candidates: &[(i64, String)],
    (from, to): (i64, i64),
    checked: &HashSet<String>,
    n: usize,
) -> Vec<(i64, String)> {
    let mut nearest: Vec<&(i64, String)> = candidates.iter().filter(|(_, id)| !checked.contains(id)).collect();
    nearest.sort_by_key(|(at, id)| ((from - at).max(at - to).max(0), id.clone()));
    nearest.into_iter().take(n).cloned().collect()
}

/// The candidates of the list's first page nearest the attempt, when that page reaches back
/// past the attempt (or holds the whole list): a lost answer is normally recent, so its
/// certificate is found with one list call and one export instead of after the whole window
/// was read (several round trips, longer than a chaos leader lived).
fn quick_look(
    first: &CertificateList,
    target: &Target<'_>,
    hint: (i64, i64),
    checked: &HashSet<String>,
) -> Result<Vec<(i64, String)>, PcaError> {
    let reaches_back = first
        .certificates
        .last()
        .map(created)
        .transpose()?
        .is_none_or(|oldest| oldest < hint.0)
        || u64::try_from(first.certificates.len()).unwrap_or(u64::MAX) >= first.total;
    if !reaches_back {
        return Ok(Vec::new());
    }
    let (from, _) = target.window();
    let mut on_page = Vec::new();
    take(first, from, &|cert, at| target.may_be_ours(cert, at), &mut on_page)?;
    Ok(nearest(&on_page, hint, checked, NEAREST_FIRST))
}

/// Exports the candidates (a few at a time) and returns the one issued for the request, if
/// any; the others join `checked`, and those exported go to `strangers`. A candidate the PCA
/// refuses to export (revoked meanwhile, …) cannot be delivered anyway and is ruled out.
async fn rule_out(
    client: &PcaClient,
    target: &Target<'_>,
    candidates: &[(i64, String)],
    checked: &mut HashSet<String>,
    strangers: &Strangers,
) -> Result<Option<(String, ExportedPem)>, PcaError> {
    let mut exported = Vec::new();
    let result = export_each(client, target, candidates, checked, &mut exported).await;
    if !exported.is_empty() {
        // A closed receiver only means nobody takes them.
        let _ = strangers.send(exported);
    }
    result
}

/// [`rule_out`]'s exports.
async fn export_each(
    client: &PcaClient,
    target: &Target<'_>,
    candidates: &[(i64, String)],
    checked: &mut HashSet<String>,
    exported: &mut Vec<Stranger>,
) -> Result<Option<(String, ExportedPem)>, PcaError> {
    let exports: Vec<_> = candidates
        .iter()
        .cloned()
        .map(|(at, id)| async move {
            let result = exported_certificate(client, &id, target.request.kind).await;
            (at, id, result)
        })
        .collect();
    let mut results = futures::stream::iter(exports).buffered(EXPORTS_AT_ONCE);
    while let Some((at, id, result)) = results.next().await {
        match result {
            Ok(Some((der, answer))) if issued_for(&der, target.request) => return Ok(Some((id, answer))),
            Ok(Some((der, _))) => exported.push(Stranger {
                id: id.clone(),
                created_ms: at,
                der,
            }),
            Ok(None) => {}
            Err(e) if !e.is_retryable() && !e.is_credentials() => {}
            Err(e) => return Err(e),
        }
        checked.insert(id);
    }
    Ok(None)
}

/// How far a read of the window got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// To the window's start or the list's end: every entry in the window was seen.
    Complete,
    /// [`MAX_WINDOW_PAGES`] pages were read before the window's start.
    TooLarge,
    /// Entries left the list between two page reads (revoked, expired or deleted), so older
    /// ones moved to offsets already read: some may not have been seen.
    Shifted,
}

/// The window's candidates (each once), and how far the read got. `first`, the list's first
/// page, is read again only if not given (the quick look read it).
async fn candidates(
    client: &PcaClient,
    target: &Target<'_>,
    mut first: Option<CertificateList>,
) -> Result<(Vec<(i64, String)>, Read), PcaError> {
    let (from, window_end) = target.window();
    // Earlier passes ruled out everything newer than their position: start listing there.
    let to = target
        .intent
        .searched
        .as_ref()
        .map_or(window_end, |c| c.at.min(window_end));
    read_window(
        |offset| {
            let read = (offset == 0).then(|| first.take()).flatten();
            async move {
                match read {
                    Some(page) => Ok(page),
                    None => list(client, target, offset).await,
                }
            }
        },
        from,
        to,
        |cert, at| target.may_be_ours(cert, at),
    )
    .await
}

/// Reads the entries created in `[from, to]` (newest first) and keeps those `keep` accepts.
///
/// New certificates only push entries to larger offsets, which re-reads some (kept once);
/// entries leaving the list (revoked, expired, deleted) pull older ones to offsets already
/// read, which would hide them. So each page must hold the last entry of the page before it:
/// finding it proves nothing between them moved out of sight, whatever order the two reads
/// landed in (each page is one consistent run of the list at its own time, and an entry that
/// stayed keeps its place relative to the shared one). Not finding it ends the read as
/// [`Read::Shifted`], never as "nothing issued". The first page read in the window must start
/// newer than `to` (or at the list's start) for the same reason.
///
/// After the first, pages are read [`PAGES_AT_ONCE`] at a time, each overlapping the one
/// before by [`OVERLAP`] entries, so certificates created between reads landing in either
/// order keep the shared entry in both. A page that does not chain (more certificates created
/// meanwhile) ends its batch; the next batch reads on from the last page that chained, after
/// it, as a sequential read would.
async fn read_window<F: Future<Output = Result<CertificateList, PcaError>>>(
    mut page_at: impl FnMut(u32) -> F,
    from: i64,
    to: i64,
    keep: impl Fn(&PrivateCertificate, i64) -> bool,
) -> Result<(Vec<(i64, String)>, Read), PcaError> {
    let first = page_at(0).await?;
    let total = first.total;
    let (mut offset, mut page) = match first.certificates.last().map(created).transpose()? {
        Some(last) if last > to && total > u64::from(PAGE) => window_start(&mut page_at, to, total).await?,
        _ => (0, first),
    };
    let starts_at_or_before_to = |page: &CertificateList| -> Result<bool, PcaError> {
        Ok(page
            .certificates
            .first()
            .map(created)
            .transpose()?
            .is_none_or(|t| t <= to))
    };
    if offset > 0 && starts_at_or_before_to(&page)? {
        // The boundary fell on the page's start: read it from the entry before.
        offset -= 1;
        page = page_at(offset).await?;
        if starts_at_or_before_to(&page)? {
            return Ok((Vec::new(), Read::Shifted));
        }
    }
    let mut found: Vec<(i64, String)> = Vec::new();
    if let Some(read) = take(&page, from, &keep, &mut found)? {
        return Ok((found, read));
    }
    let mut reads = 0;
    loop {
        let end = offset.saturating_add(u32::try_from(page.certificates.len()).unwrap_or(PAGE));
        if u64::from(end) >= page.total {
            return Ok((found, Read::Complete));
        }
        if reads >= MAX_WINDOW_PAGES {
            return Ok((found, Read::TooLarge));
        }
        let count = pages_wanted(&page, from, page.total - u64::from(end)).min(MAX_WINDOW_PAGES - reads);
        // The first page overlaps this one by its last entry, the others the page before
        // them by `OVERLAP` more.
        let offsets: Vec<u32> = (0..count)
            .map(|k| (end - 1).saturating_add(k * (PAGE - OVERLAP)))
            .collect();
        let pages = futures::future::try_join_all(offsets.iter().map(|at| page_at(*at))).await?;
        reads += count;
        let mut chained = false;
        for (at, next) in offsets.into_iter().zip(pages) {
            let Some(last) = page.certificates.last().map(|c| c.certificate_id.clone()) else {
                return Ok((found, Read::Complete));
            };
            let Some(j) = next.certificates.iter().position(|c| c.certificate_id == last) else {
                break;
            };
            chained = true;
            offset = at.saturating_add(u32::try_from(j).unwrap_or(PAGE));
            page = CertificateList {
                total: next.total,
                certificates: next.certificates.into_iter().skip(j).collect(),
            };
            if let Some(read) = take(&page, from, &keep, &mut found)? {
                return Ok((found, read));
            }
        }
        // The batch's first page was read after the page it must chain from: a miss there
        // means entries left the list.
        if !chained {
            return Ok((found, Read::Shifted));
        }
    }
}

/// Adds the page's entries `keep` accepts to `found` (each once); the read is complete once
/// the page reaches past the window's start or comes back empty.
fn take(
    page: &CertificateList,
    from: i64,
    keep: &impl Fn(&PrivateCertificate, i64) -> bool,
    found: &mut Vec<(i64, String)>,
) -> Result<Option<Read>, PcaError> {
    for cert in &page.certificates {
        let at = created(cert)?;
        if at < from {
            return Ok(Some(Read::Complete));
        }
        if keep(cert, at) && !found.iter().any(|(_, id)| id == &cert.certificate_id) {
            found.push((at, cert.certificate_id.clone()));
        }
    }
    Ok(page.certificates.is_empty().then_some(Read::Complete))
}

/// How many pages to read at once after `page`, of which `left` entries follow: as many as
/// the rest of the window seems to need at `page`'s density of entries over time (all that
/// are left when it tells nothing), at least one, at most [`PAGES_AT_ONCE`]. Only a guess to
/// spare rate-limiter tokens: the read goes on until it reaches the window's start anyway.
fn pages_wanted(page: &CertificateList, from: i64, left: u64) -> u32 {
    let times = (page.certificates.first(), page.certificates.last());
    let wanted = match times {
        (Some(newest), Some(oldest)) if newest.create_time > oldest.create_time => {
            let span = i128::from(newest.create_time - oldest.create_time);
            let rest = i128::from(oldest.create_time.saturating_sub(from)).max(0);
            let per_span = i128::try_from(page.certificates.len()).unwrap_or(i128::from(PAGE));
            u64::try_from(rest * per_span / span + 1).unwrap_or(left).min(left)
        }
        _ => left,
    };
    // The first page adds `PAGE - 1` new entries, each further one `PAGE - OVERLAP`.
    let pages = 1 + wanted
        .saturating_sub(u64::from(PAGE - 1))
        .div_ceil(u64::from(PAGE - OVERLAP));
    u32::try_from(pages).unwrap_or(PAGES_AT_ONCE).clamp(1, PAGES_AT_ONCE)
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
    page_at: &mut impl FnMut(u32) -> F,
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
    client.list_certificates(&target.filter(offset)).await
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

    /// A future that is pending once (and asks to be polled again).
    #[derive(Default)]
    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }

    /// Reads `entries` (a fixed list) through `read_window`; returns what it found, how the
    /// read ended, the list calls and the most calls in flight at once.
    fn read_fixed(entries: &[PrivateCertificate], from: i64, to: i64) -> (usize, Read, u32, u32) {
        let (calls, in_flight, most) = (
            std::cell::Cell::new(0u32),
            std::cell::Cell::new(0u32),
            std::cell::Cell::new(0u32),
        );
        let (found, read) = futures::executor::block_on(read_window(
            |at: u32| {
                calls.set(calls.get() + 1);
                in_flight.set(in_flight.get() + 1);
                most.set(most.get().max(in_flight.get()));
                let (in_flight, total) = (&in_flight, entries.len() as u64);
                let start = (at as usize).min(entries.len());
                let page = entries[start..(start + PAGE as usize).min(entries.len())].to_vec();
                async move {
                    YieldOnce::default().await;
                    in_flight.set(in_flight.get() - 1);
                    Ok(CertificateList {
                        total,
                        certificates: page,
                    })
                }
            },
            from,
            to,
            |_, at| (from..=to).contains(&at),
        ))
        .expect("read");
        (found.len(), read, calls.get(), most.get())
    }

    #[test]
    fn a_window_of_many_pages_is_read_several_pages_at_a_time() {
        // 700 certificates, one a millisecond, all in the window: a list without a
        // common-name filter during a busy hour.
        let entries: Vec<_> = (0..700).map(|i| entry(i, 10_000 - i as i64)).collect();
        let (found, read, calls, most) = read_fixed(&entries, 0, 20_000);
        assert_eq!((found, read), (700, Read::Complete));
        assert_eq!(most, PAGES_AT_ONCE, "pages read at once");
        // 100 entries first, then 99 + 80 × k: 8 more pages (two rounds of four).
        assert_eq!(calls, 9, "list calls");
    }

    #[test]
    fn a_narrow_window_is_not_over_read() {
        // 5,000 certificates one a millisecond; the window holds 150 of them, 2,000 in.
        let entries: Vec<_> = (0..5_000).map(|i| entry(i, 10_000 - i as i64)).collect();
        let (found, read, calls, _) = read_fixed(&entries, 7_851, 8_000);
        assert_eq!((found, read), (150, Read::Complete));
        // The first page, ⌈log2(50)⌉ = 6 probes at most, then the window's two pages.
        assert!(calls <= 1 + 6 + 2, "{calls} list calls for a two-page window");
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
                &mut |at| {
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

        /// While the window is read, certificates are created (at the top of the list) and
        /// runs of them leave it (revoked, deleted), and pages read at once land in any order: the
        /// read either sees every entry of the window that stayed in the list, or ends
        /// `Shifted` — never `Complete` with one missed. With nothing leaving, it is never
        /// `Shifted`.
        #[test]
        fn a_window_read_never_misses_an_entry_unnoticed(
            times in proptest::collection::vec(0i64..5_000, 0..900),
            (from, span) in (-10i64..5_010, 0i64..5_000),
            created_between in proptest::collection::vec(0usize..6, 12),
            removed_between in proptest::collection::vec(proptest::option::weighted(0.3, (0usize..900, 1usize..40)), 12),
            delays in proptest::collection::vec(0usize..4, 12),
        ) {
            let mut times = times;
            times.sort_unstable_by(|a, b| b.cmp(a));
            let to = from + span;
            let list = std::cell::RefCell::new(
                times.iter().enumerate().map(|(i, t)| entry(i, *t)).collect::<Vec<_>>(),
            );
            let original: Vec<PrivateCertificate> = list.borrow().clone();
            let removed = std::cell::RefCell::new(std::collections::HashSet::new());
            let (calls, reads, next_id) = (std::cell::Cell::new(0usize), std::cell::Cell::new(0usize), std::cell::Cell::new(100_000));
            let (list, removed, reads, next_id) = (&list, &removed, &reads, &next_id);
            let (created_between, removed_between) = (&created_between, &removed_between);
            let (found, read) = futures::executor::block_on(read_window(
                |at: u32| {
                    // Reads started together land after a random number of polls.
                    let delay = delays[calls.get() % 12];
                    calls.set(calls.get() + 1);
                    async move {
                        for _ in 0..delay {
                            YieldOnce::default().await;
                        }
                        let n = reads.get();
                        reads.set(n + 1);
                        let mut entries = list.borrow_mut();
                        if n > 0 {
                            // Between reads: newer certificates, and perhaps one leaving.
                            for _ in 0..created_between[n % 12] {
                                next_id.set(next_id.get() + 1);
                                entries.insert(0, entry(next_id.get(), 6_000));
                            }
                            // A run of them revoked at once.
                            if let Some((i, count)) = removed_between[n % 12] {
                                let run = i.min(entries.len())..(i + count).min(entries.len());
                                removed.borrow_mut().extend(entries.drain(run).map(|c| c.certificate_id));
                            }
                        }
                        let from = (at as usize).min(entries.len());
                        let end = (from + PAGE as usize).min(entries.len());
                        Ok(CertificateList { total: entries.len() as u64, certificates: entries[from..end].to_vec() })
                    }
                },
                from,
                to,
                |_, at| (from..=to).contains(&at),
            ))
            .expect("read");
            let found: std::collections::HashSet<String> = found.into_iter().map(|(_, id)| id).collect();
            let removed = removed.borrow();
            if read == Read::Complete {
                for cert in original.iter().filter(|c| (from..=to).contains(&c.create_time)) {
                    prop_assert!(
                        found.contains(&cert.certificate_id) || removed.contains(&cert.certificate_id),
                        "missed {} (created {}) in a complete read", cert.certificate_id, cert.create_time
                    );
                }
            }
            if removed.is_empty() {
                prop_assert!(read != Read::Shifted, "shifted with nothing removed");
            }
        }
    }
}
