//! A Secret projected into a directory the way the kubelet mounts a Secret volume, for
//! programs that run outside the cluster but read their Secret from files (istiod's `cacerts`).
//!
//! The layout and the update are the kubelet's atomic writer: the payload lives in a
//! timestamped directory `..<time>`, the symlink `..data` points to it, and every key is a
//! symlink `<key> -> ..data/<key>`. An update writes a new timestamped directory, points a new
//! symlink `..data_tmp` at it and renames that over `..data` (one atomic step, so a reader
//! never sees a mix of old and new files), then fixes the key links and removes the old
//! directory. Like an `optional: true` volume, the directory exists (empty) before the Secret
//! does.
//!
//! Difference from the kubelet: the Secret is watched and written at once, where the kubelet
//! notices a change at its next periodic sync (up to about a minute plus its cache TTL).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};

/// Name of the symlink that points at the current payload directory.
const DATA_LINK: &str = "..data";
/// Name of the symlink that is renamed over [`DATA_LINK`].
const DATA_TMP_LINK: &str = "..data_tmp";

/// A Secret kept in sync with a directory until dropped.
#[derive(Debug)]
pub struct SecretVolume {
    dir: PathBuf,
    /// Payloads written so far, and when the last one was.
    writes: tokio::sync::watch::Receiver<(u64, Option<Instant>)>,
    task: tokio::task::JoinHandle<()>,
}

impl SecretVolume {
    /// Creates `dir` (empty) and starts projecting Secret `namespace/name` into it: now if it
    /// exists, and on every change of its data later.
    pub async fn start(client: Client, namespace: &str, name: &str, dir: &Path) -> Result<SecretVolume> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let (tx, writes) = tokio::sync::watch::channel((0u64, None));
        let target = dir.to_path_buf();
        let what = format!("Secret {namespace}/{name}");
        let task = tokio::spawn(async move {
            let mut secrets = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
            while let Some(event) = secrets.next().await {
                let secret = match event {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("[ccm-e2e] watching {what}: {e}");
                        continue;
                    }
                };
                let payload: BTreeMap<String, Vec<u8>> = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                match write_atomically(&target, &payload) {
                    Ok(true) => tx.send_modify(|(n, at)| (*n, *at) = (*n + 1, Some(Instant::now()))),
                    Ok(false) => {}
                    Err(e) => eprintln!("[ccm-e2e] projecting {what} into {}: {e}", target.display()),
                }
            }
        });
        Ok(SecretVolume {
            dir: dir.to_path_buf(),
            writes,
            task,
        })
    }

    /// The directory the Secret is projected into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many payloads have been written so far (0: the Secret has not been seen yet).
    pub fn writes(&self) -> u64 {
        self.writes.borrow().0
    }

    /// When the last payload was written (`None` before the first).
    pub fn last_write_at(&self) -> Option<Instant> {
        self.writes.borrow().1
    }

    /// Waits until more than `seen` payloads have been written; returns the new count.
    pub async fn wait_for_write_after(&self, seen: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.writes.clone();
        loop {
            let n = rx.borrow_and_update().0;
            if n > seen {
                return Ok(n);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no new payload in {} within {timeout:?}", self.dir.display());
            }
            // A closed channel means the watch task ended: report it as a time-out below.
            let _ = tokio::time::timeout(left, rx.changed()).await;
        }
    }
}

impl Drop for SecretVolume {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes `payload` into `dir` with the kubelet's atomic-writer layout (see the module docs).
/// Returns `false` (and writes nothing) when the current payload is the same.
pub fn write_atomically(dir: &Path, payload: &BTreeMap<String, Vec<u8>>) -> io::Result<bool> {
    for key in payload.keys() {
        if !valid_key(key) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid Secret key {key:?} for a volume"),
            ));
        }
    }
    let data_link = dir.join(DATA_LINK);
    let old = std::fs::read_link(&data_link).ok();
    if old.is_some() && read_payload(&data_link)? == *payload {
        return Ok(false);
    }

    let stamp = payload_dir_name();
    let payload_dir = dir.join(&stamp);
    std::fs::create_dir(&payload_dir)?;
    for (key, value) in payload {
        std::fs::write(payload_dir.join(key), value)?;
    }
    let tmp_link = dir.join(DATA_TMP_LINK);
    match std::fs::remove_file(&tmp_link) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::os::unix::fs::symlink(&stamp, &tmp_link)?;
    std::fs::rename(&tmp_link, &data_link)?;

    for key in payload.keys() {
        let link = dir.join(key);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_LINK).join(key), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !payload.contains_key(&name) && entry.file_type()?.is_symlink() {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old.filter(|o| *o != Path::new(&stamp)) {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(true)
}

/// The kubelet accepts the same keys as the API: `[-._a-zA-Z0-9]+`, not `.` or `..`; ours
/// must also not start with `..` (the writer's own names).
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with("..")
        && key != "."
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

fn read_payload(data_dir: &Path) -> io::Result<BTreeMap<String, Vec<u8>>> {
    let mut payload = BTreeMap::new();
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        payload.insert(
            entry.file_name().to_string_lossy().into_owned(),
            std::fs::read(entry.path())?,
        );
    }
    Ok(payload)
}

/// `..<seconds>_<nanoseconds>`: unique per write, like the kubelet's `..2006_01_02_15_04_05.<n>`.
fn payload_dir_name() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("..{}_{:09}", now.as_secs(), now.subsec_nanos())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn payload(items: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn first_write_has_the_kubelet_layout() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomically(dir.path(), &payload(&[("tls.crt", "C1"), ("tls.key", "K1")])).unwrap());
        let target = std::fs::read_link(dir.path().join("..data")).unwrap();
        assert!(target.to_string_lossy().starts_with(".."), "{target:?}");
        assert_eq!(
            std::fs::read_link(dir.path().join("tls.crt")).unwrap(),
            Path::new("..data/tls.crt")
        );
        assert_eq!(std::fs::read_to_string(dir.path().join("tls.key")).unwrap(), "K1");
        let listed = names(dir.path());
        assert_eq!(listed.len(), 4, "{listed:?}");
    }

    #[test]
    fn update_swaps_data_and_removes_the_old_payload_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), &payload(&[("a", "1"), ("old", "x")])).unwrap();
        let first = std::fs::read_link(dir.path().join("..data")).unwrap();
        assert!(write_atomically(dir.path(), &payload(&[("a", "2"), ("b", "3")])).unwrap());
        let second = std::fs::read_link(dir.path().join("..data")).unwrap();
        assert_ne!(first, second);
        assert!(!dir.path().join(&first).exists(), "old payload removed");
        assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "2");
        assert_eq!(std::fs::read_to_string(dir.path().join("b")).unwrap(), "3");
        assert!(
            std::fs::symlink_metadata(dir.path().join("old")).is_err(),
            "stale key link removed"
        );
        assert!(!dir.path().join("..data_tmp").exists());
    }

    #[test]
    fn same_payload_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = payload(&[("a", "1")]);
        assert!(write_atomically(dir.path(), &p).unwrap());
        let before = std::fs::read_link(dir.path().join("..data")).unwrap();
        assert!(!write_atomically(dir.path(), &p).unwrap());
        assert_eq!(std::fs::read_link(dir.path().join("..data")).unwrap(), before);
    }

    #[test]
    fn keys_that_would_escape_or_clash_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for key in ["../x", "a/b", "..data", ".", ""] {
            let err = write_atomically(dir.path(), &payload(&[(key, "v")])).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{key:?}");
        }
        assert!(names(dir.path()).is_empty(), "nothing written");
    }
}
