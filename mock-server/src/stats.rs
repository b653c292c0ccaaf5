//! Per-operation request counters and issuance counters for `GET /_mock/stats`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct OpStats {
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct IssuedStats {
    pub total: u64,
    /// Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER → certificates issued for it.
    pub by_public_key: HashMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub operations: BTreeMap<String, OpStats>,
    pub issued: IssuedStats,
}

#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, StatsSnapshot> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Count one finished request. `status` is an HTTP status code, or a word such as
    /// `dropped` for a connection closed without a response.
    pub fn record(&self, operation: &str, status: &str) {
        let mut g = self.lock();
        let op = match g.operations.get_mut(operation) {
            Some(op) => op,
            None => g.operations.entry(operation.to_owned()).or_default(),
        };
        op.total += 1;
        match op.by_status.get_mut(status) {
            Some(n) => *n += 1,
            None => {
                op.by_status.insert(status.to_owned(), 1);
            }
        }
    }

    /// Count one issued certificate for a public key.
    pub fn record_issued(&self, spki_sha256: &str) {
        let mut g = self.lock();
        g.issued.total += 1;
        *g.issued.by_public_key.entry(spki_sha256.to_owned()).or_default() += 1;
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.lock().clone()
    }

    pub fn reset(&self) {
        *self.lock() = StatsSnapshot::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let s = Stats::default();
        s.record("CreateCertificateByCsr", "200");
        s.record("CreateCertificateByCsr", "200");
        s.record("CreateCertificateByCsr", "429");
        s.record_issued("aa");
        s.record_issued("aa");
        let snap = s.snapshot();
        let op = &snap.operations["CreateCertificateByCsr"];
        assert_eq!(op.total, 3);
        assert_eq!(op.by_status["200"], 2);
        assert_eq!(op.by_status["429"], 1);
        assert_eq!(snap.issued.total, 2);
        assert_eq!(snap.issued.by_public_key["aa"], 2);
        let v = serde_json::to_value(&snap).unwrap();
        assert_eq!(v["operations"]["CreateCertificateByCsr"]["by_status"]["200"], 2);
        assert_eq!(v["issued"]["by_public_key"]["aa"], 2);
        s.reset();
        assert_eq!(s.snapshot(), StatsSnapshot::default());
    }
}
