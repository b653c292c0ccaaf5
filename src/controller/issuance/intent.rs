//! The annotations of the exactly-once protocol. Each value starts with the request's UID, so
//! values cert-manager copies from a Certificate onto a new request never count.

use std::time::Duration;

use kube::ResourceExt;

use crate::cert_manager::CertificateRequest;

/// `<uid>/<start ms>/<deadline ms>` while an issue call may be in flight: recorded before the
/// call, which is never sent after the deadline.
pub const INTENT_ANNOTATION: &str = "ccm-issuer.ccm.com/issuance-intent";
/// `<uid>/<PCA certificate id>` once a CA certificate is issued (leaf ids are found again by
/// listing, CA ids cannot be).
pub const CERTIFICATE_ID_ANNOTATION: &str = "ccm-issuer.ccm.com/certificate-id";
/// `<uid>/<epoch ms>`: the first transient error of the current retry episode, so
/// `--max-retry-duration` survives restarts and never counts from the request's creation.
pub const RETRYING_SINCE_ANNOTATION: &str = "ccm-issuer.ccm.com/retrying-since";

/// How long after an intent's deadline another replica waits before it treats the attempt as
/// over: covers clock differences between replicas (a lease of 15 s assumes less).
pub const IN_FLIGHT_MARGIN_MS: i64 = 15_000;

/// The value of `annotation` if it is bound to `uid` (`<uid>/<value>`).
pub fn bound<'a>(cr: &'a CertificateRequest, annotation: &str, uid: &str) -> Option<&'a str> {
    cr.annotations()
        .get(annotation)
        .and_then(|v| v.strip_prefix(uid))
        .and_then(|v| v.strip_prefix('/'))
        .filter(|v| !v.is_empty())
}

/// `<uid>/<value>`.
pub fn bind(uid: &str, value: impl std::fmt::Display) -> String {
    format!("{uid}/{value}")
}

/// An issue attempt, recorded before the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// When the attempt started (our clock), epoch ms.
    pub start_ms: i64,
    /// The issue call is never sent after this instant (our clock), epoch ms.
    pub deadline_ms: i64,
    /// How far a search for its certificate has ruled candidates out (kept on the request so
    /// a restarted or new leader goes on from there).
    pub searched: Option<Cursor>,
}

/// A position in the PCA's certificate list, newest first: every candidate created after
/// `at`, and those created at `at` whose id sorts up to `id`, have been ruled out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Creation time (PCA clock), epoch ms.
    pub at: i64,
    /// Certificate id.
    pub id: String,
}

impl Cursor {
    /// Whether the candidate `(at, id)` is at or before this position (already ruled out).
    pub fn passed(&self, at: i64, id: &str) -> bool {
        at > self.at || (at == self.at && id <= self.id.as_str())
    }
}

/// What the intent annotation of a request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedIntent {
    /// No attempt is recorded for this UID.
    None,
    /// A readable attempt.
    Valid(Intent),
    /// Bound to this UID but unreadable (edited by hand, or written by an unknown version).
    Malformed(String),
}

impl Intent {
    /// An attempt starting at `start_ms` whose call must be sent within `budget`.
    pub fn new(start_ms: i64, budget: Duration) -> Self {
        let budget_ms = i64::try_from(budget.as_millis()).unwrap_or(i64::MAX);
        Self {
            start_ms,
            deadline_ms: start_ms.saturating_add(budget_ms),
            searched: None,
        }
    }

    /// The annotation value for a request: `<uid>/<start>/<deadline>[/<at>:<id>]`.
    pub fn encode(&self, uid: &str) -> String {
        match &self.searched {
            None => bind(uid, format!("{}/{}", self.start_ms, self.deadline_ms)),
            Some(c) => bind(uid, format!("{}/{}/{}:{}", self.start_ms, self.deadline_ms, c.at, c.id)),
        }
    }

    /// Reads `<start>/<deadline>[/<at>:<id>]`; the one-field form of earlier versions
    /// (`<start>`) had an implicit deadline of `legacy_grace` after the start.
    pub fn parse(value: &str, legacy_grace: Duration) -> Option<Intent> {
        let mut fields = value.split('/');
        let start: i64 = fields.next()?.parse().ok()?;
        let deadline = match fields.next() {
            Some(d) => d.parse().ok()?,
            None => Intent::new(start, legacy_grace).deadline_ms,
        };
        let searched = match fields.next() {
            None => None,
            Some(c) => {
                let (at, id) = c.split_once(':')?;
                (!id.is_empty() && id.len() <= 64).then_some(())?;
                Some(Cursor {
                    at: at.parse().ok()?,
                    id: id.to_owned(),
                })
            }
        };
        if fields.next().is_some() || start <= 0 || deadline < start {
            return None;
        }
        Some(Intent {
            start_ms: start,
            deadline_ms: deadline,
            searched,
        })
    }

    /// Until when (our clock, epoch ms) the attempt may still reach the PCA, as any replica
    /// must assume.
    pub fn in_flight_until(&self) -> i64 {
        self.deadline_ms.saturating_add(IN_FLIGHT_MARGIN_MS)
    }
}

/// The intent recorded on a request for `uid`.
pub fn recorded_intent(cr: &CertificateRequest, uid: &str, legacy_grace: Duration) -> RecordedIntent {
    match bound(cr, INTENT_ANNOTATION, uid) {
        None => RecordedIntent::None,
        Some(v) => match Intent::parse(v, legacy_grace) {
            Some(i) => RecordedIntent::Valid(i),
            None => RecordedIntent::Malformed(v.chars().take(64).collect()),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cert_manager::CertificateRequestSpec;

    fn request(annotations: &[(&str, &str)]) -> CertificateRequest {
        let mut cr = CertificateRequest::new("r", CertificateRequestSpec::default());
        cr.metadata.uid = Some("uid-1".into());
        cr.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        );
        cr
    }

    #[test]
    fn annotations_count_only_when_bound_to_the_uid() {
        let cr = request(&[
            (CERTIFICATE_ID_ANNOTATION, "uid-0/abc"),
            (INTENT_ANNOTATION, "uid-1/1700000000000/1700000035000"),
        ]);
        assert_eq!(
            bound(&cr, CERTIFICATE_ID_ANNOTATION, "uid-1"),
            None,
            "copied from another request"
        );
        assert_eq!(
            bound(&cr, INTENT_ANNOTATION, "uid-1"),
            Some("1700000000000/1700000035000")
        );
        assert_eq!(
            bound(&cr, INTENT_ANNOTATION, "uid-"),
            None,
            "prefix of the uid is not the uid"
        );
    }

    #[test]
    fn intents_round_trip_and_old_ones_get_the_old_grace() {
        let i = Intent::new(1_700_000_000_000, Duration::from_secs(35));
        let cr = request(&[(INTENT_ANNOTATION, &i.encode("uid-1"))]);
        assert_eq!(
            recorded_intent(&cr, "uid-1", Duration::from_secs(60)),
            RecordedIntent::Valid(i.clone())
        );
        let legacy = request(&[(INTENT_ANNOTATION, "uid-1/1700000000000")]);
        assert_eq!(
            recorded_intent(&legacy, "uid-1", Duration::from_secs(60)),
            RecordedIntent::Valid(Intent {
                start_ms: 1_700_000_000_000,
                deadline_ms: 1_700_000_060_000,
                searched: None,
            })
        );
        assert_eq!(i.in_flight_until(), i.deadline_ms + IN_FLIGHT_MARGIN_MS);
    }

    #[test]
    fn search_progress_round_trips_and_orders_newest_first() {
        let mut i = Intent::new(1_700_000_000_000, Duration::from_secs(35));
        i.searched = Some(Cursor {
            at: 1_700_000_001_000,
            id: "6434f74f-2d13-4e6a-89eb-93ee313f1a43".into(),
        });
        let cr = request(&[(INTENT_ANNOTATION, &i.encode("uid-1"))]);
        assert_eq!(
            recorded_intent(&cr, "uid-1", Duration::from_secs(60)),
            RecordedIntent::Valid(i.clone())
        );
        let c = i.searched.expect("cursor");
        assert!(c.passed(c.at + 1, "zzz"), "newer ones come first");
        assert!(c.passed(c.at, "0000"), "same time, smaller id");
        assert!(!c.passed(c.at, "ffff"), "same time, larger id");
        assert!(!c.passed(c.at - 1, "0000"), "older ones come after");
    }

    #[test]
    fn unreadable_intents_are_malformed_not_epoch_zero() {
        for bad in [
            "garbage",
            "0",
            "-5",
            "10/5",
            "1/2/3",
            "1700000000000/x",
            "1/2/3:",
            "1/2/x:y",
            "1/2/3:4/5",
        ] {
            let cr = request(&[(INTENT_ANNOTATION, &format!("uid-1/{bad}"))]);
            assert!(
                matches!(
                    recorded_intent(&cr, "uid-1", Duration::from_secs(60)),
                    RecordedIntent::Malformed(_)
                ),
                "{bad}"
            );
        }
        assert_eq!(
            recorded_intent(&request(&[]), "uid-1", Duration::from_secs(60)),
            RecordedIntent::None
        );
    }
}
