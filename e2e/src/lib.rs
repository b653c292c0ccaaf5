//! `ccm-e2e`: a real etcd + kube-apiserver + cert-manager on loopback for ccm-issuer's
//! end-to-end tests.
//!
//! The binaries are built from Go modules by `e2e-tools/build.sh` into a cache outside the
//! repository; [`Tools::discover`] finds them through `$CCM_E2E_TOOLS` or runs the script.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ccm_e2e::{ControlPlane, ControlPlaneOptions};
//! let cp = ControlPlane::start(ControlPlaneOptions::default()).await?;
//! let client = cp.client().await?;
//! cp.create_namespace("t1").await?;
//! cp.apply_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: t1}\n").await?;
//! # drop(client);
//! cp.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! One control plane per test binary is the intended use (bring-up takes seconds and about
//! half a GiB of memory): use a custom harness (`harness = false`, e.g. `libtest-mimic`),
//! start it in `main`, run the tests, then shut it down. Teardown also happens on `Drop`
//! (including unwinding), and children carry `PR_SET_PDEATHSIG=SIGKILL`, so even a killed
//! test process leaves no orphan behind (see [`process`]).
//!
//! Environment: `CCM_E2E_TOOLS` (tools key directory), `CCM_E2E_ISTIO` (istiod key directory,
//! see [`IstioTools`]), `CCM_E2E_KEEP=1` (keep the work directory with logs, PKI and
//! kubeconfigs after teardown).
//!
//! Missing compared with a real cluster unless a [node](node) is asked for: no
//! kube-controller-manager (no garbage collection, namespaces never finish deleting, no
//! ServiceAccounts or token Secrets created for you; the TokenRequest API works), no
//! scheduler, no kubelet (Secret volumes: [`SecretVolume`]). Always missing: the cert-manager
//! webhook (no validation/identity mutation/approval check), kube-proxy and cluster DNS.

mod control_plane;
pub mod hostile;
pub mod istiod;
pub mod node;
mod pki;
pub mod process;
pub mod sandbox;
pub mod secret_volume;
mod tools;
pub mod waiting;
mod yaml;

pub use control_plane::{
    CERT_MANAGER_APPROVER, CertManagerOptions, ControlPlane, ControlPlaneOptions, DEFAULT_CERT_MANAGER_CONTROLLERS,
    FIELD_MANAGER, StaticToken,
};
pub use istiod::{Istiod, IstiodOptions, WorkloadCertificate};
pub use node::NodeOptions;
pub use process::{ManagedProcess, Signal};
pub use secret_volume::SecretVolume;
pub use tools::{ISTIO_TOOLS_ENV, IstioTools, TOOLS_ENV, Tools, build_script_path};
pub use waiting::{certificate_ready, certificates, condition, eventually, https_server};
pub use yaml::documents as yaml_documents;
