//! Starts a control plane for manual poking and keeps it up until Ctrl-C / SIGTERM.
//!
//! ```sh
//! export CCM_E2E_TOOLS=$(e2e-tools/build.sh)
//! cargo run -p ccm-e2e --example control-plane -- [--no-cert-manager] [--without-approver] [--crd FILE]...
//! # then, in another shell: KUBECONFIG=<printed path> kubectl get crds
//! ```

use std::path::PathBuf;

use anyhow::{Result, bail};
use ccm_e2e::{CertManagerOptions, ControlPlane, ControlPlaneOptions};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> Result<()> {
    let mut opts = ControlPlaneOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-cert-manager" => opts.cert_manager = None,
            "--without-approver" => opts.cert_manager = Some(CertManagerOptions::without_approver()),
            "--crd" => match args.next() {
                Some(f) => opts.extra_crd_files.push(PathBuf::from(f)),
                None => bail!("--crd needs a file"),
            },
            other => bail!("unknown argument {other:?}"),
        }
    }

    let cp = ControlPlane::start(opts).await?;
    println!("KUBECONFIG={}", cp.kubeconfig_path().display());
    println!("API={}", cp.api_url());
    for (name, pid) in cp.child_pids() {
        println!("PID {name}={pid}");
    }
    eprintln!("control plane is up; Ctrl-C or SIGTERM to stop");

    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    cp.shutdown().await
}
