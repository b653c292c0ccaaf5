//! What the request cache keeps. Before cert-manager 1.20 the watch cannot select our requests
//! by field, so it sees every request in the cluster: other issuers' requests are kept out of
//! the cache, and our finished ones (most of ours) are cut down to what deciding "nothing to
//! do" needs. Every watch event brings the whole object again, so trimming loses nothing for
//! good.

use std::collections::{HashMap, HashSet};

use kube::runtime::{reflector::ObjectRef, watcher::Event};

use crate::{
    cert_manager::{CertificateRequest, CertificateRequestStatus, INVALID_REQUEST, reason},
    controller::{IssuerKey, runtime::request_inputs},
};

/// Keeps other issuers' requests out of the cache (and out of the controller's queue): their
/// listing is dropped, and a change of one becomes a deletion, so an entry of ours that
/// changed issuer (only possible without cert-manager's webhook) does not linger.
pub fn only_ours(event: Event<CertificateRequest>) -> Option<Event<CertificateRequest>> {
    let ours = |cr: &CertificateRequest| IssuerKey::for_request(cr).is_some();
    match event {
        Event::InitApply(cr) if !ours(&cr) => None,
        Event::Apply(cr) if !ours(&cr) => Some(Event::Delete(cr)),
        other => Some(other),
    }
}

/// Trims a request before it is cached: `managedFields` always; one of ours that is final
/// (never signed again) down to its identity, issuer and condition types, statuses and
/// reasons.
pub fn slim(cr: &mut CertificateRequest) {
    cr.metadata.managed_fields = None;
    if !final_by_conditions(cr) {
        return;
    }
    let meta = &mut cr.metadata;
    meta.annotations = None;
    meta.labels = None;
    meta.owner_references = None;
    cr.spec.request.0 = Vec::new();
    cr.spec.usages = None;
    cr.spec.duration = None;
    if let Some(status) = cr.status.take() {
        let conditions = status
            .conditions
            .into_iter()
            .map(|mut c| {
                c.message = None;
                c.last_transition_time = None;
                c
            })
            .collect();
        cr.status = Some(CertificateRequestStatus {
            conditions,
            ..CertificateRequestStatus::default()
        });
    }
}

/// Final by its conditions alone, so it stays final once the certificate is trimmed.
fn final_by_conditions(cr: &CertificateRequest) -> bool {
    cr.is_true(INVALID_REQUEST)
        || matches!(
            cr.ready_reason(),
            Some(reason::ISSUED | reason::FAILED | reason::DENIED)
        )
}

/// Passes a request on to the controller only when what decides its reconciliation changed
/// ([`request_inputs`]), so our own status and annotation writes do not wake it, and never a
/// finished one. It keeps one hash per *live* unfinished request: a deletion forgets the
/// request at once, and a relist forgets the ones that did not come back. kube's
/// `predicate_filter` keeps every key it saw within its TTL, deleted ones included, and its
/// table keeps the capacity of the busiest minutes: under churn (the memory soak: 25
/// requests/s created and deleted) that held thousands of entries.
#[derive(Debug, Default)]
pub struct InputsSeen {
    hashes: HashMap<ObjectRef<CertificateRequest>, u64>,
    /// Requests seen since a relist began (`Init`), to forget the rest at `InitDone`.
    relisted: Option<HashSet<ObjectRef<CertificateRequest>>>,
}

impl InputsSeen {
    /// The request to reconcile for this event, if its inputs changed.
    pub fn changed(&mut self, event: Event<CertificateRequest>) -> Option<CertificateRequest> {
        match event {
            Event::Apply(cr) => self.note(cr),
            Event::InitApply(cr) => {
                if let Some(seen) = &mut self.relisted {
                    seen.insert(ObjectRef::from(&cr));
                }
                self.note(cr)
            }
            Event::Delete(cr) => {
                self.hashes.remove(&ObjectRef::from(&cr));
                self.shrink();
                None
            }
            Event::Init => {
                self.relisted = Some(HashSet::new());
                None
            }
            Event::InitDone => {
                if let Some(seen) = self.relisted.take() {
                    self.hashes.retain(|r, _| seen.contains(r));
                    self.shrink();
                }
                None
            }
        }
    }

    fn note(&mut self, cr: CertificateRequest) -> Option<CertificateRequest> {
        // A finished request is never signed again: nothing to reconcile, nothing to keep (a
        // restarted controller lists every finished request of ours). Its per-request memory
        // goes with the janitor's next pass.
        if cr.is_final() {
            self.hashes.remove(&ObjectRef::from(&cr));
            return None;
        }
        let hash = request_inputs(&cr);
        let previous = self.hashes.insert(ObjectRef::from(&cr), hash);
        (previous != Some(hash)).then_some(cr)
    }

    /// Gives back the table's memory once it is mostly empty (a burst has passed).
    fn shrink(&mut self) {
        if self.hashes.capacity() > 64 && self.hashes.len() * 4 < self.hashes.capacity() {
            self.hashes.shrink_to(self.hashes.len() * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;
    use crate::cert_manager::{CertificateRequestCondition, CertificateRequestSpec, IssuerRef};

    fn request(group: &str, ready_reason: Option<&str>) -> CertificateRequest {
        let mut cr = CertificateRequest::new(
            "r",
            CertificateRequestSpec {
                request: ByteString(b"-----BEGIN CERTIFICATE REQUEST-----".to_vec()),
                usages: Some(vec!["server auth".into()]),
                duration: Some("2160h".into()),
                issuer_ref: IssuerRef {
                    name: "pca".into(),
                    kind: Some("CCMIssuer".into()),
                    group: Some(group.into()),
                },
                ..Default::default()
            },
        );
        cr.metadata.namespace = Some("ns".into());
        cr.metadata.uid = Some("uid-1".into());
        cr.metadata.resource_version = Some("42".into());
        cr.metadata.annotations = Some(BTreeMap::from([("a".into(), "b".into())]));
        let mut conditions = vec![CertificateRequestCondition {
            type_: "Approved".into(),
            status: "True".into(),
            reason: Some("cert-manager.io".into()),
            message: Some("approved".into()),
            last_transition_time: Some("2026-01-01T00:00:00Z".into()),
            observed_generation: None,
        }];
        if let Some(r) = ready_reason {
            conditions.push(CertificateRequestCondition {
                type_: "Ready".into(),
                status: if r == "Issued" { "True" } else { "False" }.into(),
                reason: Some(r.into()),
                message: Some("a long message".into()),
                last_transition_time: None,
                observed_generation: None,
            });
        }
        cr.status = Some(CertificateRequestStatus {
            conditions,
            certificate: (ready_reason == Some("Issued")).then(|| ByteString(b"PEM".to_vec())),
            ca: (ready_reason == Some("Issued")).then(|| ByteString(b"PEM".to_vec())),
            failure_time: None,
        });
        cr
    }

    #[test]
    fn requests_still_to_sign_keep_everything() {
        for reason in [None, Some("Pending")] {
            let original = request("ccm-issuer.ccm.com", reason);
            let mut cr = original.clone();
            slim(&mut cr);
            assert_eq!(
                serde_json::to_value(&cr).unwrap(),
                serde_json::to_value(&original).unwrap(),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn our_final_requests_keep_identity_issuer_and_finality() {
        for reason in ["Issued", "Failed", "Denied"] {
            let mut cr = request("ccm-issuer.ccm.com", Some(reason));
            slim(&mut cr);
            assert!(cr.is_final(), "{reason}");
            assert!(cr.is_true("Approved"));
            assert_eq!(cr.ready_reason(), Some(reason));
            assert!(IssuerKey::for_request(&cr).is_some());
            assert_eq!(cr.metadata.uid.as_deref(), Some("uid-1"));
            assert_eq!(cr.metadata.resource_version.as_deref(), Some("42"));
            assert!(cr.spec.request.0.is_empty() && cr.metadata.annotations.is_none());
            let status = cr.status.as_ref().unwrap();
            assert!(status.certificate.is_none() && status.ca.is_none());
            assert!(status.conditions.iter().all(|c| c.message.is_none()));
        }
    }

    #[test]
    fn other_issuers_requests_never_reach_the_cache() {
        let other = request("cert-manager.io", Some("Issued"));
        let ours = request("ccm-issuer.ccm.com", None);
        assert!(only_ours(Event::InitApply(other.clone())).is_none(), "not listed");
        assert!(
            matches!(only_ours(Event::Apply(other.clone())), Some(Event::Delete(_))),
            "a change is a deletion"
        );
        assert!(matches!(only_ours(Event::Delete(other)), Some(Event::Delete(_))));
        assert!(matches!(
            only_ours(Event::InitApply(ours.clone())),
            Some(Event::InitApply(_))
        ));
        assert!(matches!(only_ours(Event::Apply(ours)), Some(Event::Apply(_))));
        assert!(matches!(only_ours(Event::Init), Some(Event::Init)));
        assert!(matches!(only_ours(Event::InitDone), Some(Event::InitDone)));
    }
}

#[cfg(test)]
mod inputs_seen_tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn request(name: &str, generation: i64) -> CertificateRequest {
        CertificateRequest {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                generation: Some(generation),
                ..Default::default()
            },
            spec: Default::default(),
            status: None,
        }
    }

    #[test]
    fn only_changed_inputs_reach_the_controller() {
        let mut seen = InputsSeen::default();
        assert!(seen.changed(Event::Apply(request("a", 1))).is_some(), "new");
        assert!(
            seen.changed(Event::Apply(request("a", 1))).is_none(),
            "our own write: same inputs"
        );
        assert!(seen.changed(Event::Apply(request("a", 2))).is_some(), "spec changed");
        assert!(seen.changed(Event::Delete(request("a", 2))).is_none());
        assert!(
            seen.changed(Event::Apply(request("a", 2))).is_some(),
            "recreated after deletion"
        );
    }

    /// A restarted controller listed every finished request of ours and reconciled each one
    /// only to find it final (5,000 reconciliations at start in the scale benchmark).
    #[test]
    fn finished_requests_are_not_reconciled_nor_kept() {
        let mut seen = InputsSeen::default();
        let issued = |name: &str| {
            let mut cr = request(name, 1);
            cr.status = Some(CertificateRequestStatus {
                conditions: vec![crate::cert_manager::CertificateRequestCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    reason: Some("Issued".into()),
                    ..Default::default()
                }],
                ..Default::default()
            });
            cr
        };
        assert!(
            seen.changed(Event::InitApply(issued("listed"))).is_none(),
            "listed final"
        );
        assert!(seen.changed(Event::Apply(request("a", 1))).is_some(), "pending");
        assert!(seen.changed(Event::Apply(issued("a"))).is_none(), "became final");
        assert!(seen.hashes.is_empty(), "nothing kept for a finished request");
    }

    #[test]
    fn deleted_requests_are_forgotten_and_the_table_shrinks() {
        let mut seen = InputsSeen::default();
        for i in 0..10_000 {
            seen.changed(Event::Apply(request(&format!("r{i}"), 1)));
        }
        let busy = seen.hashes.capacity();
        for i in 0..9_990 {
            seen.changed(Event::Delete(request(&format!("r{i}"), 1)));
        }
        assert_eq!(seen.hashes.len(), 10);
        assert!(
            seen.hashes.capacity() <= 128,
            "capacity {} after a burst (was {busy})",
            seen.hashes.capacity()
        );
    }

    #[test]
    fn a_relist_forgets_requests_deleted_while_the_watch_was_down() {
        let mut seen = InputsSeen::default();
        seen.changed(Event::Apply(request("kept", 1)));
        seen.changed(Event::Apply(request("gone", 1)));
        seen.changed(Event::Init);
        assert!(
            seen.changed(Event::InitApply(request("kept", 1))).is_none(),
            "unchanged across the relist"
        );
        seen.changed(Event::InitDone);
        assert_eq!(seen.hashes.len(), 1);
        assert!(seen.changed(Event::Apply(request("gone", 1))).is_some());
    }
}
