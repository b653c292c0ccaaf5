//! Private PID, mount and network namespaces for a process that runs a [node](crate::node).
//!
//! A node is not a set of loopback processes: containerd's shims outlive containerd, pods
//! get network namespaces, the kubelet mounts tmpfs volumes and writes kernel tunables. So a
//! program that starts one first calls [`enter`] at the top of `main`, which re-runs the
//! program as PID 1 of a new PID namespace, in a new mount namespace (private propagation, a
//! fresh `/proc`) and a new network namespace with only its own loopback. Then
//!
//! * nothing of the node outlives the program: when PID 1 exits or is killed, the kernel
//!   kills every process of the namespace (shims and containers included), and its mounts
//!   disappear with the mount namespace;
//! * all traffic — to the apiserver, the mock PCA, between pods — stays inside a network
//!   namespace the program made: the pod network ([`crate::node::NODE_IP`]'s bridge) has no
//!   route to anything else;
//! * the machine's mount table and network are left as they were.
//!
//! The outer process only waits: it forwards SIGINT/SIGTERM to the inner one (SIGKILL if it
//! has not exited 10 s later) and exits with its status.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::thread::UnshareFlags;

/// Set in the inner process's environment.
const SANDBOX_ENV: &str = "CCM_E2E_SANDBOX";
/// How long a forwarded SIGINT/SIGTERM may take before the inner process is killed.
const FORWARD_GRACE: Duration = Duration::from_secs(10);
/// How often the outer process checks whether the inner one has exited.
const POLL: Duration = Duration::from_millis(50);

/// Whether this process is the inner process of [`enter`].
pub fn inside() -> bool {
    std::env::var_os(SANDBOX_ENV).is_some() && rustix::process::getpid().is_init()
}

/// Call first thing in `main`, while the process has one thread.
///
/// Outside: runs this program again inside the namespaces and returns `Some(exit code)` to
/// return from `main`. Inside: finishes the set-up (private mounts, `/proc`, loopback up)
/// and returns `None`: go on.
pub fn enter() -> Result<Option<ExitCode>> {
    if std::env::var_os(SANDBOX_ENV).is_none() {
        return run_outer().map(Some);
    }
    if !rustix::process::getpid().is_init() {
        bail!("{SANDBOX_ENV} is set but this process is not PID 1 of its own PID namespace");
    }
    unshare(UnshareFlags::NEWNS | UnshareFlags::NEWNET).context("unshare(mount, network)")?;
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .context("making / private in the new mount namespace")?;
    rustix::mount::mount(
        "proc",
        "/proc",
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .context("mounting /proc for the new PID namespace")?;
    run_ip(&["link", "set", "lo", "up"])?;
    Ok(None)
}

/// `unshare(2)` of namespaces only (never `CLONE_FILES`, the unsafe part).
#[allow(unsafe_code)]
fn unshare(flags: UnshareFlags) -> Result<()> {
    debug_assert!(!flags.contains(UnshareFlags::FILES));
    // SAFETY: `unshare_unsafe` is unsafe only for CLONE_FILES (file descriptors that other
    // threads would no longer share); namespace flags change no memory or descriptor state.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(Into::into)
}

/// Runs `ip ARGS` (iproute2).
pub(crate) fn run_ip(args: &[&str]) -> Result<()> {
    crate::process::command_stdout(Command::new("ip").args(args), "install iproute2").map(drop)
}

fn run_outer() -> Result<ExitCode> {
    // The next child is PID 1 of a new PID namespace; it unshares the rest itself.
    unshare(UnshareFlags::NEWPID).context("unshare(PID namespace): the node needs root")?;
    let exe = std::env::current_exe().context("locating this program")?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).env(SANDBOX_ENV, "1");
    crate::process::set_parent_death_signal(&mut cmd);
    let mut child = cmd.spawn().context("starting the sandboxed process")?;
    let pid = rustix::process::Pid::from_child(&child);
    eprintln!(
        "[ccm-e2e] sandbox: running as pid {} in private PID, mount and network namespaces (`nsenter --target {} --net --mount` enters them)",
        child.id(),
        child.id()
    );
    // After unshare(CLONE_NEWPID) this process cannot start threads (clone(CLONE_THREAD)
    // fails with EINVAL): a current-thread runtime, and the child is polled, not waited on
    // by a blocking thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let status = runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let forward = |sig: rustix::process::Signal| {
            let _ = rustix::process::kill_process(pid, sig);
        };
        let mut kill_at = None;
        loop {
            if let Some(status) = child.try_wait()? {
                return std::io::Result::Ok(status);
            }
            if kill_at.is_some_and(|t| tokio::time::Instant::now() >= t) {
                forward(rustix::process::Signal::KILL);
            }
            tokio::select! {
                _ = int.recv() => forward(rustix::process::Signal::INT),
                _ = term.recv() => forward(rustix::process::Signal::TERM),
                () = tokio::time::sleep(POLL) => continue,
            }
            kill_at.get_or_insert(tokio::time::Instant::now() + FORWARD_GRACE);
        }
    })?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)),
        (None, None) => ExitCode::FAILURE,
    })
}
