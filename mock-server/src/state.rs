//! In-memory CA and certificate store, with optional persistence to a JSON file.
//!
//! Every critical section is short: records are `Arc`s, so lookups clone a pointer and
//! updates copy one record (`Arc::make_mut`). Signing never happens under this lock.
//! Persistence writes a full snapshot to `FILE.tmp` and renames it over `FILE`; writes
//! are coalesced by a background task so a burst of issuance costs one write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::ca::{CaKey, Dn, HashAlg, KeyAlgorithm};
use crate::errors::ApiError;
use crate::timeutil;

pub type Der = Arc<[u8]>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaType {
    Root,
    Subordinate,
}

impl CaType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Root => "ROOT",
            Self::Subordinate => "SUBORDINATE",
        }
    }
}

/// CA status. `EXPIRED` is never stored: it is derived from `not_after` when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaStatus {
    Pending,
    Actived,
    Disabled,
    Deleted,
    Expired,
}

impl CaStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Actived => "ACTIVED",
            Self::Disabled => "DISABLED",
            Self::Deleted => "DELETED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => Self::Pending,
            "ACTIVED" => Self::Actived,
            "DISABLED" => Self::Disabled,
            "DELETED" => Self::Deleted,
            "EXPIRED" => Self::Expired,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GenMode {
    Generate,
    Import,
    Csr,
}

impl GenMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generate => "GENERATE",
            Self::Import => "IMPORT",
            Self::Csr => "CSR",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertStatus {
    Issued,
    Revoked,
    Expired,
}

impl CertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "ISSUED",
            Self::Revoked => "REVOKED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ISSUED" => Self::Issued,
            "REVOKED" => Self::Revoked,
            "EXPIRED" => Self::Expired,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlConfig {
    pub enabled: bool,
    #[serde(default)]
    pub crl_name: String,
    #[serde(default)]
    pub obs_bucket_name: String,
    #[serde(default)]
    pub valid_days: i64,
    #[serde(default)]
    pub crl_dis_point: String,
}

mod b64 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Der>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Der>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(Der::from)
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaRecord {
    pub ca_id: String,
    pub ca_type: CaType,
    pub status: CaStatus,
    pub path_length: u32,
    pub issuer_id: Option<String>,
    pub issuer_name: Option<String>,
    pub key_algorithm: KeyAlgorithm,
    pub signature_algorithm: HashAlg,
    pub gen_mode: GenMode,
    /// 0 = not frozen; any other value = frozen (the SDK: "other values reserved").
    #[serde(default)]
    pub freeze_flag: i32,
    pub serial_number: String,
    pub create_time: i64,
    pub delete_time: i64,
    pub not_before: i64,
    pub not_after: i64,
    pub dn: Dn,
    pub crl: CrlConfig,
    pub enterprise_project_id: String,
    /// CSR-issued intermediate: not listed, no CA quota, key held by the user.
    pub hidden: bool,
    pub domain_id: String,
    #[serde(with = "b64", default)]
    pub cert_der: Option<Der>,
    /// PKCS#8 DER of the CA key (PCA-hosted CAs only).
    #[serde(with = "b64", default)]
    pub key_pkcs8: Option<Der>,
    /// Subject key identifier of the CA key (PCA-hosted CAs only).
    #[serde(default)]
    pub key_id: Vec<u8>,
    #[serde(skip)]
    pub key: Option<Arc<CaKey>>,
    /// Validity requested at creation for a PENDING sub-CA activated later.
    #[serde(default)]
    pub revoke_reason: Option<String>,
}

impl CaRecord {
    /// Status as seen now (ACTIVED past `not_after` reads as EXPIRED).
    pub fn effective_status(&self, now_ms: i64) -> CaStatus {
        if self.status == CaStatus::Actived && self.not_after > 0 && self.not_after < now_ms {
            CaStatus::Expired
        } else {
            self.status
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertRecord {
    pub certificate_id: String,
    pub status: CertStatus,
    pub issuer_id: String,
    pub issuer_name: String,
    pub key_algorithm: KeyAlgorithm,
    pub signature_algorithm: HashAlg,
    pub gen_mode: GenMode,
    pub serial_number: String,
    pub create_time: i64,
    pub delete_time: i64,
    pub not_before: i64,
    pub not_after: i64,
    pub dn: Dn,
    pub enterprise_project_id: String,
    pub domain_id: String,
    #[serde(with = "b64")]
    pub cert_der: Option<Der>,
    pub revoke_reason: Option<String>,
    pub spki_sha256: String,
}

impl CertRecord {
    pub fn effective_status(&self, now_ms: i64) -> CertStatus {
        if self.status == CertStatus::Issued && self.not_after < now_ms {
            CertStatus::Expired
        } else {
            self.status
        }
    }
}

#[derive(Default)]
struct Inner {
    cas: HashMap<String, Arc<CaRecord>>,
    certs: HashMap<String, Arc<CertRecord>>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    cas: Vec<Arc<CaRecord>>,
    certs: Vec<Arc<CertRecord>>,
}

const SNAPSHOT_FORMAT: u32 = 1;

/// The shared store.
pub struct Store {
    inner: Mutex<Inner>,
    persist_path: Option<PathBuf>,
    dirty: tokio::sync::Notify,
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("persist_path", &self.persist_path)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading state file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("parsing state file {0}: {1}")]
    Parse(PathBuf, serde_json::Error),
    #[error("state file {0} has unsupported format {1}")]
    Format(PathBuf, u32),
    #[error("loading key of CA {0}: {1}")]
    Key(String, String),
    #[error("writing state file {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

impl Store {
    /// An empty, in-memory store.
    pub fn in_memory() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            persist_path: None,
            dirty: tokio::sync::Notify::new(),
            write_lock: Mutex::new(()),
        }
    }

    /// A store backed by `path`, loaded from it if it exists.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let mut inner = Inner::default();
        match std::fs::read(path) {
            Ok(bytes) => {
                let snap: Snapshot =
                    serde_json::from_slice(&bytes).map_err(|e| StateError::Parse(path.to_owned(), e))?;
                if snap.format != SNAPSHOT_FORMAT {
                    return Err(StateError::Format(path.to_owned(), snap.format));
                }
                for ca in snap.cas {
                    let mut ca = Arc::unwrap_or_clone(ca);
                    if let Some(der) = &ca.key_pkcs8 {
                        let key = CaKey::from_pkcs8(ca.key_algorithm, der)
                            .map_err(|e| StateError::Key(ca.ca_id.clone(), e.to_string()))?;
                        ca.key = Some(Arc::new(key));
                    }
                    inner.cas.insert(ca.ca_id.clone(), Arc::new(ca));
                }
                for c in snap.certs {
                    inner.certs.insert(c.certificate_id.clone(), c);
                }
                tracing::info!(
                    path = %path.display(),
                    cas = inner.cas.len(),
                    certificates = inner.certs.len(),
                    "loaded state"
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::Read(path.to_owned(), e)),
        }
        Ok(Self {
            inner: Mutex::new(inner),
            persist_path: Some(path.to_owned()),
            dirty: tokio::sync::Notify::new(),
            write_lock: Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn changed(&self) {
        if self.persist_path.is_some() {
            self.dirty.notify_one();
        }
    }

    pub fn get_ca(&self, id: &str) -> Option<Arc<CaRecord>> {
        self.lock().cas.get(id).cloned()
    }

    pub fn insert_ca(&self, rec: CaRecord) {
        self.lock().cas.insert(rec.ca_id.clone(), Arc::new(rec));
        self.changed();
    }

    /// Insert a CA unless the (visible) CA quota is exhausted.
    pub fn insert_ca_checked(&self, rec: CaRecord, quota: u64) -> Result<(), ApiError> {
        {
            let mut g = self.lock();
            if !rec.hidden {
                let used = g.cas.values().filter(|c| counts_for_quota(c)).count() as u64;
                if used >= quota {
                    return Err(ApiError::bad(
                        crate::errors::PCA_QUOTA,
                        format!("The CA quota ({quota}) has been used up"),
                    ));
                }
            }
            g.cas.insert(rec.ca_id.clone(), Arc::new(rec));
        }
        self.changed();
        Ok(())
    }

    /// Apply `f` to a CA record; errors leave it unchanged.
    pub fn update_ca<T>(&self, id: &str, f: impl FnOnce(&mut CaRecord) -> Result<T, ApiError>) -> Result<T, ApiError> {
        let out = update_record(&mut self.lock().cas, id, "CA", f)?;
        self.changed();
        Ok(out)
    }

    pub fn remove_ca(&self, id: &str) -> Option<Arc<CaRecord>> {
        let r = self.lock().cas.remove(id);
        if r.is_some() {
            self.changed();
        }
        r
    }

    /// All CAs (for listing). O(#CAs), bounded by the CA quota.
    pub fn all_cas(&self) -> Vec<Arc<CaRecord>> {
        self.lock().cas.values().cloned().collect()
    }

    /// Certificates above `issuer_id`, nearest first, up to the root (inclusive).
    pub fn chain_from(&self, issuer_id: &str) -> Result<Vec<Der>, ApiError> {
        let g = self.lock();
        let mut out = Vec::new();
        let mut next = Some(issuer_id.to_owned());
        while let Some(id) = next {
            if out.len() > 16 {
                return Err(ApiError::internal("CA chain too long or cyclic"));
            }
            let ca = g
                .cas
                .get(&id)
                .ok_or_else(|| ApiError::internal(format!("CA {id} missing from chain")))?;
            let der = ca
                .cert_der
                .clone()
                .ok_or_else(|| ApiError::internal(format!("CA {id} has no certificate")))?;
            out.push(der);
            next = ca.issuer_id.clone();
        }
        Ok(out)
    }

    pub fn ca_counts(&self) -> u64 {
        self.lock().cas.values().filter(|c| counts_for_quota(c)).count() as u64
    }

    pub fn get_cert(&self, id: &str) -> Option<Arc<CertRecord>> {
        self.lock().certs.get(id).cloned()
    }

    /// Insert a certificate unless the certificate quota is exhausted.
    pub fn insert_cert_checked(&self, rec: CertRecord, quota: u64) -> Result<(), ApiError> {
        {
            let mut g = self.lock();
            if g.certs.len() as u64 >= quota {
                return Err(ApiError::bad(
                    crate::errors::PCA_QUOTA,
                    format!("The private certificate quota ({quota}) has been used up"),
                ));
            }
            g.certs.insert(rec.certificate_id.clone(), Arc::new(rec));
        }
        self.changed();
        Ok(())
    }

    pub fn cert_count(&self) -> u64 {
        self.lock().certs.len() as u64
    }

    pub fn update_cert<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut CertRecord) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let out = update_record(&mut self.lock().certs, id, "certificate", f)?;
        self.changed();
        Ok(out)
    }

    pub fn remove_cert(&self, id: &str) -> Option<Arc<CertRecord>> {
        let r = self.lock().certs.remove(id);
        if r.is_some() {
            self.changed();
        }
        r
    }

    /// All certificates (for listing; O(n) by nature of filtering + sorting).
    pub fn all_certs(&self) -> Vec<Arc<CertRecord>> {
        self.lock().certs.values().cloned().collect()
    }

    /// Write the snapshot now (used at shutdown and by the background writer).
    pub fn flush(&self) -> Result<(), StateError> {
        let Some(path) = &self.persist_path else {
            return Ok(());
        };
        let _w = match self.write_lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let snap = {
            let g = self.lock();
            Snapshot {
                format: SNAPSHOT_FORMAT,
                cas: g.cas.values().cloned().collect(),
                certs: g.certs.values().cloned().collect(),
            }
        };
        let bytes = serde_json::to_vec(&snap).map_err(|e| StateError::Write(path.clone(), std::io::Error::other(e)))?;
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| StateError::Write(path.clone(), e))
    }

    /// Background writer: coalesces changes; waits at least 200 ms and at least 4× the
    /// duration of the previous write between writes, so persistence cannot dominate.
    pub async fn run_writer(self: Arc<Self>) {
        if self.persist_path.is_none() {
            return;
        }
        let mut last_cost = Duration::ZERO;
        loop {
            self.dirty.notified().await;
            tokio::time::sleep(Duration::from_millis(200).max(last_cost * 4)).await;
            let me = self.clone();
            let started = Instant::now();
            match tokio::task::spawn_blocking(move || me.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "persisting state failed"),
                Err(e) => tracing::error!(error = %e, "state writer task failed"),
            }
            last_cost = started.elapsed();
        }
    }
}

fn counts_for_quota(c: &CaRecord) -> bool {
    !c.hidden
}

/// Milliseconds now (re-exported for handlers).
/// Copy-on-write update of one record: `f` edits a copy, which replaces the record only if
/// `f` succeeds (readers holding the old `Arc` are unaffected).
fn update_record<R: Clone, T>(
    map: &mut HashMap<String, Arc<R>>,
    id: &str,
    what: &str,
    f: impl FnOnce(&mut R) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let rec = map.get_mut(id).ok_or_else(|| ApiError::not_found(what, id))?;
    let mut copy = R::clone(rec);
    let out = f(&mut copy)?;
    *rec = Arc::new(copy);
    Ok(out)
}

pub fn now_ms() -> i64 {
    timeutil::now_ms()
}
