//! The certificates our requests already hold, so recovery does not export them to rule them
//! out.
//!
//! Recovery must rule out every certificate of the CA in its window that could be the lost
//! one; from the list alone it can only narrow by CA, key algorithm, common name and time, so
//! each look-alike costs an export. Most look-alikes are certificates other requests of ours
//! were issued and hold: one delivered to request X was checked against X's public key when it
//! was delivered, so it is X's, never another request's. (Two requests with the same key are
//! the one case where it could also match: then it is still X's certificate, and the other
//! request must find or get its own.) They are known by issuer, serial and start of validity
//! ([`CertificateIdentity`]), read from the request watch before the cache trims finished
//! requests, at no PCA cost.
//!
//! Likewise the ids our unfinished requests have recorded (`certificate-id`, bound to their
//! UID) but not delivered yet: the PCA answered that id to the request's own issue call, or a
//! recovery handed it over after checking it against that request's CSR (and only when no
//! other request would take it). In the chaos runs about half the certificates waiting to be
//! delivered were such: their leader died between recording the id and the export. A
//! request's own recorded id is never counted against it (`claimed_by_others`): its search
//! may run on a copy of the request older than the watch.

use std::{
    collections::{HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Mutex, MutexGuard},
};

use kube::{ResourceExt, runtime::watcher::Event};

use crate::{
    cert_manager::{CertificateRequest, reason},
    controller::issuance::intent::{CERTIFICATE_ID_ANNOTATION, bound},
    pki::CertificateIdentity,
};

/// The certificate of each request of ours that holds one, keyed by a hash of the request's
/// namespace and name. A collision only drops an entry (recovery then exports that
/// certificate, as it would without this table): it can never rule out a certificate wrongly.
#[derive(Debug, Default)]
pub struct Delivered {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    held: HashMap<u64, CertificateIdentity>,
    /// The certificate id each unfinished request has recorded.
    claimed: HashMap<u64, String>,
    /// Requests seen since a relist began, to forget the rest when it is done.
    relisted: Option<HashSet<u64>>,
}

impl Delivered {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another task panicked mid-update; the table is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows the request watch (our requests only, before trimming).
    pub fn observe(&self, event: &Event<CertificateRequest>) {
        let mut state = self.lock();
        match event {
            Event::Apply(cr) => state.note(cr),
            Event::InitApply(cr) => {
                let key = key(cr);
                if let Some(seen) = &mut state.relisted {
                    seen.insert(key);
                }
                state.note(cr);
            }
            Event::Delete(cr) => {
                state.held.remove(&key(cr));
                state.claimed.remove(&key(cr));
                state.shrink();
            }
            Event::Init => state.relisted = Some(HashSet::new()),
            Event::InitDone => {
                if let Some(seen) = state.relisted.take() {
                    state.held.retain(|k, _| seen.contains(k));
                    state.claimed.retain(|k, _| seen.contains(k));
                    state.shrink();
                }
            }
        }
    }

    /// The certificates delivered, for one recovery pass.
    pub fn identities(&self) -> HashSet<CertificateIdentity> {
        self.lock().held.values().copied().collect()
    }

    /// The certificate ids our unfinished requests other than `cr` have recorded, for one
    /// recovery pass of `cr`.
    pub fn claimed_by_others(&self, cr: &CertificateRequest) -> HashSet<String> {
        let own = key(cr);
        self.lock()
            .claimed
            .iter()
            .filter(|(k, _)| **k != own)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

impl State {
    fn note(&mut self, cr: &CertificateRequest) {
        match delivered(cr) {
            Some(identity) => self.held.insert(key(cr), identity),
            None => self.held.remove(&key(cr)),
        };
        match claimed(cr) {
            Some(id) => self.claimed.insert(key(cr), id.to_owned()),
            None => self.claimed.remove(&key(cr)),
        };
    }

    /// Gives back the table's memory once it is mostly empty.
    fn shrink(&mut self) {
        if self.held.capacity() > 64 && self.held.len() * 4 < self.held.capacity() {
            self.held.shrink_to(self.held.len() * 2);
        }
        if self.claimed.capacity() > 64 && self.claimed.len() * 4 < self.claimed.capacity() {
            self.claimed.shrink_to(self.claimed.len() * 2);
        }
    }
}

fn key(cr: &CertificateRequest) -> u64 {
    let mut h = DefaultHasher::new();
    (cr.namespace(), cr.name_any()).hash(&mut h);
    h.finish()
}

/// The certificate id an unfinished request has recorded (bound to its UID).
fn claimed(cr: &CertificateRequest) -> Option<&str> {
    if cr.is_final() {
        return None;
    }
    bound(cr, CERTIFICATE_ID_ANNOTATION, cr.metadata.uid.as_deref()?)
}

/// The identity of the certificate an `Issued` request holds.
fn delivered(cr: &CertificateRequest) -> Option<CertificateIdentity> {
    if cr.ready_reason() != Some(reason::ISSUED) {
        return None;
    }
    let pem = cr.status.as_ref()?.certificate.as_ref()?;
    CertificateIdentity::of_certificate_pem(&pem.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request of ours named `name`: `Issued` with a certificate of serial `serial` (and its
    /// identity), or pending.
    fn request(name: &str, serial: Option<&[u8]>) -> (CertificateRequest, Option<CertificateIdentity>) {
        let mut cr: CertificateRequest = serde_json::from_value(serde_json::json!({
            "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"request": "", "issuerRef": {"name": "pca", "kind": "CCMIssuer", "group": "ccm-issuer.ccm.com"}},
        }))
        .expect("request");
        let Some(serial) = serial else {
            return (cr, None);
        };
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec![format!("{name}.example")]).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, "Mesh CA");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        let pem = params.self_signed(&key).expect("certificate").pem();
        cr.status = serde_json::from_value(serde_json::json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Issued"}],
            "certificate": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &pem),
        }))
        .expect("status");
        (cr, CertificateIdentity::of_certificate_pem(pem.as_bytes()))
    }

    #[test]
    fn issued_requests_are_recorded_and_forgotten_when_deleted() {
        let d = Delivered::default();
        let (pending, none) = request("a", None);
        assert!(none.is_none());
        d.observe(&Event::Apply(pending));
        assert!(d.identities().is_empty(), "a pending request holds nothing");
        let (a, a_id) = request("a", Some(&[0x11, 0x22]));
        let (b, b_id) = request("b", Some(&[0x33]));
        d.observe(&Event::Apply(a.clone()));
        d.observe(&Event::Apply(b));
        assert_eq!(d.identities(), [a_id, b_id].into_iter().flatten().collect());
        d.observe(&Event::Delete(a));
        assert_eq!(d.identities(), [b_id].into_iter().flatten().collect());
    }

    /// A request's own recorded id (a hand-over the searching process has seen through its
    /// watch but not yet in the copy of the request it holds) is never ruled out as another's;
    /// a finished or deleted request claims nothing.
    #[test]
    fn recorded_ids_are_claimed_by_unfinished_requests_for_the_others_only() {
        let d = Delivered::default();
        let (mut own, _) = request("a", None);
        own.metadata.annotations = Some([(CERTIFICATE_ID_ANNOTATION.to_owned(), "uid-a/own-id".to_owned())].into());
        d.observe(&Event::Apply(own.clone()));
        let (other, _) = request("b", None);
        assert!(d.claimed_by_others(&own).is_empty());
        assert_eq!(d.claimed_by_others(&other), ["own-id".to_owned()].into());
        let mut stale = own.clone();
        stale.metadata.uid = Some("uid-a-recreated".into());
        d.observe(&Event::Apply(stale));
        assert!(d.claimed_by_others(&other).is_empty(), "bound to another UID: no claim");
        let (mut issued, _) = request("a", Some(&[0x01]));
        issued.metadata.annotations = own.metadata.annotations.clone();
        d.observe(&Event::Apply(issued));
        assert!(
            d.claimed_by_others(&other).is_empty(),
            "a finished request claims nothing"
        );
        d.observe(&Event::Apply(own.clone()));
        d.observe(&Event::Delete(own));
        assert!(
            d.claimed_by_others(&other).is_empty(),
            "a deleted request claims nothing"
        );
    }

    #[test]
    fn a_relist_forgets_requests_deleted_while_the_watch_was_down() {
        let d = Delivered::default();
        let (a, _) = request("a", Some(&[0x01]));
        let (b, b_id) = request("b", Some(&[0x02]));
        d.observe(&Event::Apply(a));
        d.observe(&Event::Apply(b.clone()));
        d.observe(&Event::Init);
        d.observe(&Event::InitApply(b));
        d.observe(&Event::InitDone);
        assert_eq!(d.identities(), [b_id].into_iter().flatten().collect());
    }

    #[test]
    fn the_table_shrinks_after_a_burst() {
        let d = Delivered::default();
        for i in 0..200u32 {
            d.observe(&Event::Apply(request(&format!("r{i}"), Some(&i.to_be_bytes())).0));
        }
        let full = d.lock().held.capacity();
        for i in 0..195u32 {
            d.observe(&Event::Delete(request(&format!("r{i}"), None).0));
        }
        let state = d.lock();
        assert_eq!(state.held.len(), 5);
        assert!(
            state.held.capacity() * 3 < full,
            "capacity {} after the burst, {full} during it",
            state.held.capacity()
        );
    }
}
