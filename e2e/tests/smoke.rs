//! Smoke test of the e2e harness: ONE real control plane (etcd + kube-apiserver +
//! cert-manager) serves every test of this binary (custom harness via libtest-mimic).
//!
//! Needs the tools from `e2e-tools/build.sh` (`CCM_E2E_TOOLS`, or the script is run).
//! Run: `cargo test -p ccm-e2e --test smoke`.

use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ccm_e2e::{ControlPlane, ControlPlaneOptions, Signal, StaticToken};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject};
use libtest_mimic::{Arguments, Failed, Trial};
use tokio::runtime::Runtime;

struct Ctx {
    rt: Runtime,
    cp: ControlPlane,
    /// A static token without any RBAC binding.
    nobody: StaticToken,
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // The last test tears the shared control plane down, so the tests run in order.
    args.test_threads = Some(1);

    if args.list {
        return libtest_mimic::run(&args, trials(None)).exit_code();
    }

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smoke: cannot build the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let nobody = StaticToken::random("e2e-nobody", &["e2e-group"]);
    let opts = ControlPlaneOptions {
        tokens: vec![nobody.clone()],
        ..ControlPlaneOptions::default()
    };
    // On failure `start` has already printed the component logs and stopped everything.
    let cp = match rt.block_on(ControlPlane::start(opts)) {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!("smoke: control plane setup failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "smoke: control plane bring-up took {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let ctx = Arc::new(Ctx { rt, cp, nobody });
    let conclusion = libtest_mimic::run(&args, trials(Some(&ctx)));

    // Idempotent: a no-op when the teardown test already ran.
    if let Err(e) = ctx.rt.block_on(ctx.cp.shutdown()) {
        eprintln!("smoke: shutdown failed: {e:#}");
        return ExitCode::FAILURE;
    }
    conclusion.exit_code()
}

/// Wraps a test body: runs it on the shared runtime and dumps component logs on failure.
fn trial<F>(name: &str, ctx: Option<&Arc<Ctx>>, body: F) -> Trial
where
    F: Fn(&Ctx) -> Result<()> + Send + 'static,
{
    let ctx = ctx.cloned();
    Trial::test(name, move || {
        let Some(ctx) = &ctx else {
            return Err(Failed::from("no control plane"));
        };
        body(ctx).map_err(|e| {
            ctx.cp.dump_logs();
            Failed::from(format!("{e:#}"))
        })
    })
}

fn trials(ctx: Option<&Arc<Ctx>>) -> Vec<Trial> {
    vec![
        trial("apiserver_reports_version", ctx, |c| {
            c.rt.block_on(apiserver_reports_version(&c.cp))
        }),
        trial("static_token_is_subject_to_rbac", ctx, |c| {
            c.rt.block_on(static_token_is_subject_to_rbac(&c.cp, &c.nobody))
        }),
        trial("cert_manager_ca_issuer_issues_leaf", ctx, |c| {
            c.rt.block_on(cert_manager_ca_issuer_issues_leaf(&c.cp))
        }),
        trial("spawned_process_lifecycle", ctx, |c| {
            c.rt.block_on(spawned_process_lifecycle(&c.cp))
        }),
        trial("teardown_leaves_no_process_or_port", ctx, |c| {
            c.rt.block_on(teardown_leaves_no_process_or_port(&c.cp))
        }),
    ]
}

async fn apiserver_reports_version(cp: &ControlPlane) -> Result<()> {
    let info = cp.client().await?.apiserver_version().await?;
    let expected = cp.tools().k8s_version().unwrap_or("v1.34.4");
    if info.git_version != expected {
        bail!("apiserver reports {}, expected {expected}", info.git_version);
    }
    if info.major != "1" || info.minor != "34" {
        bail!("apiserver reports major={} minor={}", info.major, info.minor);
    }
    Ok(())
}

async fn static_token_is_subject_to_rbac(cp: &ControlPlane, nobody: &StaticToken) -> Result<()> {
    let client = cp.client_for_token("nobody", &nobody.token).await?;
    let api: Api<Namespace> = Api::all(client);
    match api.get("default").await {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => bail!("expected 403 Forbidden for an unbound user, got {other:?}"),
    }
    // The admin token works.
    let admin: Api<Namespace> = Api::all(cp.client().await?);
    admin.get("default").await?;
    Ok(())
}

fn certificate_resource() -> ApiResource {
    ApiResource {
        group: "cert-manager.io".into(),
        version: "v1".into(),
        api_version: "cert-manager.io/v1".into(),
        kind: "Certificate".into(),
        plural: "certificates".into(),
    }
}

fn is_ready(obj: &DynamicObject) -> bool {
    obj.data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(|t| t.as_str()) == Some("Ready")
                    && c.get("status").and_then(|s| s.as_str()) == Some("True")
            })
        })
}

async fn wait_certificate_ready(api: &Api<DynamicObject>, name: &str, timeout: Duration) -> Result<DynamicObject> {
    let deadline = Instant::now() + timeout;
    loop {
        let cert = api.get(name).await?;
        if is_ready(&cert) {
            return Ok(cert);
        }
        if Instant::now() >= deadline {
            bail!(
                "Certificate {name} not Ready after {timeout:?}; status: {}",
                cert.data.get("status").cloned().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn cert_manager_ca_issuer_issues_leaf(cp: &ControlPlane) -> Result<()> {
    let ns = "smoke-ca";
    cp.create_namespace(ns).await?;
    cp.apply_yaml(&format!(
        r#"
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {{name: selfsigned, namespace: {ns}}}
spec:
  selfSigned: {{}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {{name: root-ca, namespace: {ns}}}
spec:
  isCA: true
  commonName: smoke-root-ca
  secretName: root-ca
  privateKey: {{algorithm: ECDSA, size: 256}}
  issuerRef: {{name: selfsigned, kind: Issuer, group: cert-manager.io}}
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {{name: ca, namespace: {ns}}}
spec:
  ca: {{secretName: root-ca}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {{name: leaf, namespace: {ns}}}
spec:
  secretName: leaf-tls
  dnsNames: [leaf.smoke.example]
  privateKey: {{algorithm: ECDSA, size: 256}}
  issuerRef: {{name: ca, kind: Issuer, group: cert-manager.io}}
"#
    ))
    .await?;

    let client = cp.client().await?;
    let certs: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &certificate_resource());
    wait_certificate_ready(&certs, "root-ca", Duration::from_secs(60)).await?;
    wait_certificate_ready(&certs, "leaf", Duration::from_secs(60)).await?;

    let secrets: Api<Secret> = Api::namespaced(client, ns);
    let secret = secrets.get("leaf-tls").await.context("reading leaf-tls")?;
    let data = secret.data.unwrap_or_default();
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        match data.get(key) {
            Some(v) if !v.0.is_empty() => {}
            _ => bail!(
                "secret leaf-tls lacks {key} (has {:?})",
                data.keys().collect::<Vec<_>>()
            ),
        }
    }
    let crt = String::from_utf8_lossy(&data["tls.crt"].0).into_owned();
    if !crt.contains("BEGIN CERTIFICATE") {
        bail!("tls.crt is not PEM");
    }
    Ok(())
}

async fn spawned_process_lifecycle(cp: &ControlPlane) -> Result<()> {
    // Prints a URL first (like our binaries do), then runs until signalled.
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "echo http://127.0.0.1:12345; echo to-stderr >&2; exec sleep 600"]);
    let p = cp.spawn("sleeper", cmd)?;
    let line = p.first_stdout_line(Duration::from_secs(10)).await?;
    if line != "http://127.0.0.1:12345" {
        bail!("unexpected first stdout line {line:?}");
    }
    if !p.is_running() {
        bail!("sleeper is not running");
    }
    p.signal(Signal::Term)?;
    let status = tokio::time::timeout(Duration::from_secs(10), p.wait()).await??;
    if status.success() {
        bail!("sleeper exited successfully after SIGTERM?");
    }
    if !cp.logs(20).contains("to-stderr") {
        bail!("stderr of the spawned process is not in the log dump");
    }

    // Left running on purpose, with a grandchild (no `exec`): teardown must stop both.
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "sleep 600; echo done"]);
    let p = cp.spawn("left-running", cmd)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_members(p.pid()).len() < 2 {
        if Instant::now() >= deadline {
            bail!("left-running did not fork its sleep");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Whether `pid` exists and is not a zombie. (A killed grandchild is reparented and stays a
/// zombie until init reaps it; it is dead all the same.)
fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace().next().map(|state| state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Pids of all processes whose process group is `pgid` (from /proc/<pid>/stat).
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // Fields after the command name "(...)": state ppid pgrp ...
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(2)?.parse::<u32>().ok()
                })
                == Some(pgid)
        })
        .collect()
}

async fn teardown_leaves_no_process_or_port(cp: &ControlPlane) -> Result<()> {
    let pids = cp.child_pids();
    for name in ["etcd", "kube-apiserver", "cert-manager"] {
        if !pids.iter().any(|(n, _)| n == name) {
            bail!("no {name} among the children {pids:?}");
        }
    }
    let api_addr = cp.api_addr();
    let etcd_url = cp.etcd_url();
    if TcpStream::connect_timeout(&api_addr, Duration::from_secs(2)).is_err() {
        bail!("apiserver port {api_addr} is not open before teardown");
    }
    let workdir = cp.workdir().to_path_buf();
    let group_pids: Vec<u32> = pids.iter().flat_map(|(_, p)| group_members(*p)).collect();

    cp.shutdown().await?;

    for pid in &group_pids {
        if is_alive(*pid) {
            bail!("pid {pid} (in a child's process group) is still alive after teardown");
        }
    }
    for (name, pid) in &pids {
        // Direct children are reaped by the harness, so they must be gone entirely.
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            bail!("{name} (pid {pid}) still exists after teardown");
        }
    }
    match TcpStream::connect_timeout(&api_addr, Duration::from_secs(2)) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        Err(e) => bail!("apiserver port {api_addr}: expected connection refused, got {e}"),
        Ok(_) => bail!("apiserver port {api_addr} still accepts connections"),
    }
    let etcd_addr = etcd_url.trim_start_matches("http://");
    let etcd_addr: std::net::SocketAddr = etcd_addr.parse()?;
    if TcpStream::connect_timeout(&etcd_addr, Duration::from_secs(2)).is_ok() {
        bail!("etcd port {etcd_addr} still accepts connections");
    }
    let keep = std::env::var("CCM_E2E_KEEP").is_ok_and(|v| v == "1");
    if !keep && workdir.exists() {
        bail!("work dir {} still exists", workdir.display());
    }
    Ok(())
}
