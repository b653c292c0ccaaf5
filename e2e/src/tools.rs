//! Locating the binaries built by `e2e-tools/build.sh`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// Environment variable naming the tools key directory (what `e2e-tools/build.sh` prints).
pub const TOOLS_ENV: &str = "CCM_E2E_TOOLS";

/// Environment variable naming the Istio tools key directory (what `e2e-tools/build.sh istio`
/// prints).
pub const ISTIO_TOOLS_ENV: &str = "CCM_E2E_ISTIO";

/// The self-built control-plane binaries and cert-manager's CRDs.
///
/// Layout of the key directory (outside the repository):
/// `bin/{etcd,kube-apiserver,cm-controller,helm}`, the node's
/// `bin/{kubelet,kube-scheduler,kube-controller-manager,pause}`, `crds/*.yaml`, `env`.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The key directory, e.g. `~/.cache/ccm-issuer/e2e-tools/k8s-v1.34.4_…`.
    pub root: PathBuf,
    /// Directory holding the binaries.
    pub bin_dir: PathBuf,
    /// Directory holding cert-manager's CRD YAML files (copied from the Go module cache).
    pub cert_manager_crds_dir: PathBuf,
    /// Versions recorded by build.sh in `<root>/env` (`CCM_E2E_K8S_VERSION`, …); may be empty.
    pub versions: BTreeMap<String, String>,
}

impl Tools {
    /// Uses `$CCM_E2E_TOOLS` if set; otherwise runs `e2e-tools/build.sh` from the workspace root
    /// (a no-op taking about a second when the binaries are cached, a long cold build
    /// otherwise; its progress goes to stderr).
    pub fn discover() -> Result<Tools> {
        match std::env::var_os(TOOLS_ENV) {
            Some(dir) if !dir.is_empty() => {
                Tools::from_dir(Path::new(&dir)).with_context(|| format!("{TOOLS_ENV}={}", Path::new(&dir).display()))
            }
            _ => {
                let dir = run_build_script(TOOLS_ENV, None)?;
                Tools::from_dir(&dir)
            }
        }
    }

    /// Uses an explicit key directory.
    pub fn from_dir(root: &Path) -> Result<Tools> {
        let tools = Tools {
            root: root.to_path_buf(),
            bin_dir: root.join("bin"),
            cert_manager_crds_dir: root.join("crds"),
            versions: read_env_file(&root.join("env")),
        };
        for bin in [
            tools.etcd(),
            tools.kube_apiserver(),
            tools.cert_manager_runner(),
            tools.helm(),
        ] {
            if !bin.is_file() {
                bail!(
                    "missing {} (run e2e-tools/build.sh to build the e2e tools)",
                    bin.display()
                );
            }
        }
        if tools.cert_manager_crd_files()?.is_empty() {
            bail!("no CRD files in {}", tools.cert_manager_crds_dir.display());
        }
        Ok(tools)
    }

    /// Path of the `etcd` binary.
    pub fn etcd(&self) -> PathBuf {
        self.bin_dir.join("etcd")
    }

    /// Path of the `kube-apiserver` binary.
    pub fn kube_apiserver(&self) -> PathBuf {
        self.bin_dir.join("kube-apiserver")
    }

    /// Path of our cert-manager controller runner (`cm-controller`).
    pub fn cert_manager_runner(&self) -> PathBuf {
        self.bin_dir.join("cm-controller")
    }

    /// Path of the `helm` (v3) binary.
    pub fn helm(&self) -> PathBuf {
        self.bin_dir.join("helm")
    }

    /// Path of the `kubelet` binary (the node).
    pub fn kubelet(&self) -> PathBuf {
        self.bin_dir.join("kubelet")
    }

    /// Path of the `kube-scheduler` binary (the node).
    pub fn kube_scheduler(&self) -> PathBuf {
        self.bin_dir.join("kube-scheduler")
    }

    /// Path of the `kube-controller-manager` binary (the node).
    pub fn kube_controller_manager(&self) -> PathBuf {
        self.bin_dir.join("kube-controller-manager")
    }

    /// Path of our pod sandbox binary (`e2e-tools/pause`; the node's pause image).
    pub fn pause(&self) -> PathBuf {
        self.bin_dir.join("pause")
    }

    /// The Kubernetes version the apiserver was built as (e.g. `v1.34.4`), if recorded.
    pub fn k8s_version(&self) -> Option<&str> {
        self.versions.get("CCM_E2E_K8S_VERSION").map(String::as_str)
    }

    /// cert-manager's CRD files, sorted.
    pub fn cert_manager_crd_files(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        let dir = &self.cert_manager_crds_dir;
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }
}

fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// `<workspace>/e2e-tools/build.sh`, found relative to this crate's manifest directory.
pub fn build_script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("e2e-tools")
        .join("build.sh")
}

/// Runs `e2e-tools/build.sh [component]` (cached: a no-op when built) and returns the key
/// directory it prints last.
fn run_build_script(env: &str, component: Option<&str>) -> Result<PathBuf> {
    let script = build_script_path();
    if !script.is_file() {
        bail!("{env} is not set and {} does not exist", script.display());
    }
    eprintln!(
        "[ccm-e2e] {env} not set; running {} {} (a cold build takes many minutes)",
        script.display(),
        component.unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg(&script)
        .args(component)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed: {}", script.display(), out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::trim)
        .with_context(|| format!("{} printed no directory", script.display()))?;
    Ok(PathBuf::from(dir))
}

/// istiod and our workload-certificate client, built from the pinned `istio.io/istio` module
/// by `e2e-tools/build.sh istio`, and Istio's CRDs copied from the same module.
///
/// Layout of the key directory: `bin/{pilot-discovery,istio-workload-cert}`,
/// `crds/crd-all.gen.yaml`, `env`.
#[derive(Debug, Clone)]
pub struct IstioTools {
    /// The key directory, e.g. `~/.cache/ccm-issuer/e2e-tools/istio-v0.0.0-…`.
    pub root: PathBuf,
    /// Versions recorded by build.sh in `<root>/env`.
    pub versions: BTreeMap<String, String>,
}

impl IstioTools {
    /// Uses `$CCM_E2E_ISTIO` if set; otherwise runs `e2e-tools/build.sh istio` (a no-op when
    /// cached, a cold build of istiod otherwise).
    pub fn discover() -> Result<IstioTools> {
        match std::env::var_os(ISTIO_TOOLS_ENV) {
            Some(dir) if !dir.is_empty() => IstioTools::from_dir(Path::new(&dir))
                .with_context(|| format!("{ISTIO_TOOLS_ENV}={}", Path::new(&dir).display())),
            _ => IstioTools::from_dir(&run_build_script(ISTIO_TOOLS_ENV, Some("istio"))?),
        }
    }

    /// Uses an explicit key directory.
    pub fn from_dir(root: &Path) -> Result<IstioTools> {
        let tools = IstioTools {
            root: root.to_path_buf(),
            versions: read_env_file(&root.join("env")),
        };
        for bin in [tools.pilot_discovery(), tools.workload_cert_client()] {
            if !bin.is_file() {
                bail!(
                    "missing {} (run `e2e-tools/build.sh istio` to build istiod)",
                    bin.display()
                );
            }
        }
        if !tools.crd_file().is_file() {
            bail!("missing {}", tools.crd_file().display());
        }
        Ok(tools)
    }

    /// Path of `pilot-discovery` (istiod).
    pub fn pilot_discovery(&self) -> PathBuf {
        self.root.join("bin").join("pilot-discovery")
    }

    /// Path of `istio-workload-cert`, our client that asks istiod for a workload certificate
    /// with the sidecar agent's own code (see `e2e-tools/istio/workloadcert`).
    pub fn workload_cert_client(&self) -> PathBuf {
        self.root.join("bin").join("istio-workload-cert")
    }

    /// Istio's CRDs (one multi-document YAML from the same `istio.io/istio` module).
    pub fn crd_file(&self) -> PathBuf {
        self.root.join("crds").join("crd-all.gen.yaml")
    }

    /// istiod's version as its build reports it (e.g. `1.31-dev`), if recorded.
    pub fn istio_version(&self) -> Option<&str> {
        self.versions.get("CCM_E2E_ISTIO_VERSION").map(String::as_str)
    }

    /// The `istio.io/istio` module version it was built from (a pseudo-version), if recorded.
    pub fn module_version(&self) -> Option<&str> {
        self.versions.get("CCM_E2E_ISTIO_MODULE_VERSION").map(String::as_str)
    }
}
