//! Serial numbers of the certificates our requests already hold, so recovery does not export
//! them to rule them out.
//!
//! Recovery must rule out every certificate of the CA in its window that could be the lost
//! one; from the list alone it can only narrow by CA, key algorithm, common name and time, so
//! each look-alike costs an export. Most look-alikes are certificates other requests of ours
//! were issued and hold: one delivered to request X was checked against X's public key when it
//! was delivered, so it is X's, never another request's. (Two requests with the same key are
//! the one case where it could also match: then it is still X's certificate, and the other
//! request must find or get its own.) Their serials come from the request watch, before the
//! cache trims finished requests, at no PCA cost.

use std::{
    collections::{HashMap, HashSet},
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Mutex, MutexGuard},
};

use kube::{ResourceExt, runtime::watcher::Event};

use crate::{
    cert_manager::{CertificateRequest, reason},
    pki::Serial,
};

/// The serial of each request of ours that holds a certificate, keyed by a hash of the
/// request's namespace and name. A collision only drops a serial (recovery then exports that
/// certificate, as it would without this table): it can never rule out a certificate wrongly.
#[derive(Debug, Default)]
pub struct Delivered {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    serials: HashMap<u64, Serial>,
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
                state.serials.remove(&key(cr));
                state.shrink();
            }
            Event::Init => state.relisted = Some(HashSet::new()),
            Event::InitDone => {
                if let Some(seen) = state.relisted.take() {
                    state.serials.retain(|k, _| seen.contains(k));
                    state.shrink();
                }
            }
        }
    }

    /// The serials delivered, for one recovery pass.
    pub fn serials(&self) -> HashSet<Serial> {
        self.lock().serials.values().copied().collect()
    }
}

impl State {
    fn note(&mut self, cr: &CertificateRequest) {
        match delivered_serial(cr) {
            Some(serial) => self.serials.insert(key(cr), serial),
            None => self.serials.remove(&key(cr)),
        };
    }

    /// Gives back the table's memory once it is mostly empty.
    fn shrink(&mut self) {
        if self.serials.capacity() > 64 && self.serials.len() * 4 < self.serials.capacity() {
            self.serials.shrink_to(self.serials.len() * 2);
        }
    }
}

fn key(cr: &CertificateRequest) -> u64 {
    let mut h = DefaultHasher::new();
    (cr.namespace(), cr.name_any()).hash(&mut h);
    h.finish()
}

/// The serial of the certificate an `Issued` request holds.
fn delivered_serial(cr: &CertificateRequest) -> Option<Serial> {
    if cr.ready_reason() != Some(reason::ISSUED) {
        return None;
    }
    let pem = cr.status.as_ref()?.certificate.as_ref()?;
    Serial::of_certificate_pem(&pem.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request of ours named `name`: `Issued` with a certificate of serial `serial`, or pending.
    fn request(name: &str, serial: Option<&[u8]>) -> CertificateRequest {
        let mut cr: CertificateRequest = serde_json::from_value(serde_json::json!({
            "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
            "spec": {"request": "", "issuerRef": {"name": "pca", "kind": "CCMIssuer", "group": "ccm-issuer.ccm.com"}},
        }))
        .expect("request");
        if let Some(serial) = serial {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::new(vec![format!("{name}.example")]).expect("params");
            params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
            let pem = params.self_signed(&key).expect("certificate").pem();
            cr.status = serde_json::from_value(serde_json::json!({
                "conditions": [{"type": "Ready", "status": "True", "reason": "Issued"}],
                "certificate": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem),
            }))
            .expect("status");
        }
        cr
    }

    fn serials(d: &Delivered) -> HashSet<Serial> {
        d.serials()
    }

    fn serial(bytes: &[u8]) -> Serial {
        Serial::from_bytes(bytes).expect("serial")
    }

    #[test]
    fn issued_requests_are_recorded_and_forgotten_when_deleted() {
        let d = Delivered::default();
        d.observe(&Event::Apply(request("a", None)));
        assert!(serials(&d).is_empty(), "a pending request holds nothing");
        d.observe(&Event::Apply(request("a", Some(&[0x11, 0x22]))));
        d.observe(&Event::Apply(request("b", Some(&[0x33]))));
        assert_eq!(serials(&d), HashSet::from([serial(&[0x11, 0x22]), serial(&[0x33])]));
        d.observe(&Event::Delete(request("a", Some(&[0x11, 0x22]))));
        assert_eq!(serials(&d), HashSet::from([serial(&[0x33])]));
    }

    #[test]
    fn a_relist_forgets_requests_deleted_while_the_watch_was_down() {
        let d = Delivered::default();
        d.observe(&Event::Apply(request("a", Some(&[0x01]))));
        d.observe(&Event::Apply(request("b", Some(&[0x02]))));
        d.observe(&Event::Init);
        d.observe(&Event::InitApply(request("b", Some(&[0x02]))));
        d.observe(&Event::InitDone);
        assert_eq!(serials(&d), HashSet::from([serial(&[0x02])]));
    }

    #[test]
    fn the_table_shrinks_after_a_burst() {
        let d = Delivered::default();
        for i in 0..200u32 {
            d.observe(&Event::Apply(request(&format!("r{i}"), Some(&i.to_be_bytes()))));
        }
        let full = d.lock().serials.capacity();
        for i in 0..195u32 {
            d.observe(&Event::Delete(request(&format!("r{i}"), None)));
        }
        let state = d.lock();
        assert_eq!(state.serials.len(), 5);
        assert!(
            state.serials.capacity() * 3 < full,
            "capacity {} after the burst, {full} during it",
            state.serials.capacity()
        );
    }
}
