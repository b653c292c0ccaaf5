//! Child processes owned by a [`ControlPlane`](crate::ControlPlane).
//!
//! Every child is started by one dedicated, long-lived *spawner thread* per control plane,
//! with `PR_SET_PDEATHSIG=SIGKILL`. Linux delivers that signal when the *thread* that forked
//! the child exits, so the children die
//! * when the control plane is torn down (the spawner thread ends last, after the children
//!   were stopped), and
//! * when the test process dies for any reason (panic with `panic=abort`, SIGKILL, OOM, …).
//!
//! Because all forks happen on the spawner thread, it does not matter which thread creates
//! the [`ControlPlane`](crate::ControlPlane) or calls [`ControlPlane::spawn`](crate::ControlPlane::spawn):
//! a test worker thread that ends does not take the children with it. (Were children forked
//! directly from a short-lived thread, they would be SIGKILLed when that thread exits; that is
//! why the spawner thread exists.)
//!
//! stdout is captured line by line into `<workdir>/logs/<name>.stdout.log` (and kept in memory
//! for [`ManagedProcess::first_stdout_line`]); stderr goes straight into
//! `<workdir>/logs/<name>.stderr.log`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};

/// A signal that can be sent to a [`ManagedProcess`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `SIGTERM`: ask the process to shut down gracefully.
    Term,
    /// `SIGKILL`: kill the process immediately.
    Kill,
    /// `SIGINT`.
    Int,
    /// `SIGHUP`.
    Hup,
    /// `SIGSTOP`: freeze the process (e.g. to simulate a hung component).
    Stop,
    /// `SIGCONT`: resume a stopped process.
    Cont,
}

impl Signal {
    fn to_rustix(self) -> rustix::process::Signal {
        use rustix::process::Signal as S;
        match self {
            Signal::Term => S::TERM,
            Signal::Kill => S::KILL,
            Signal::Int => S::INT,
            Signal::Hup => S::HUP,
            Signal::Stop => S::STOP,
            Signal::Cont => S::CONT,
        }
    }
}

/// Makes the kernel SIGKILL the child when the thread that spawned it exits.
///
/// This and [`crate::sandbox`]'s `unshare` are the only `unsafe` code of the crate.
#[allow(unsafe_code)]
pub(crate) fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // Read in the parent, before fork: the pid the child expects as its parent.
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec. It only performs two raw
    // syscalls (prctl, getppid) and, on failure, `_exit`: all async-signal-safe. It does not
    // allocate, lock, or touch any state shared with other threads of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then no signal would ever come.
            // (A child that is PID 1 of a new PID namespace sees parent pid 0.)
            let ppid = libc::getppid() as u32;
            if ppid != parent && ppid != 0 {
                libc::_exit(137);
            }
            Ok(())
        });
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// The long-lived thread that forks every child of one control plane (see module docs).
pub(crate) struct Spawner {
    tx: Option<mpsc::Sender<SpawnRequest>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Spawner {
    pub(crate) fn new() -> Result<Self> {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let thread = thread::Builder::new()
            .name("ccm-e2e-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    set_parent_death_signal(&mut cmd);
                    let _ = reply.send(cmd.spawn());
                }
            })
            .context("starting the spawner thread")?;
        Ok(Spawner {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn spawn(&self, cmd: Command) -> Result<Child> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| anyhow!("the control plane was shut down"))?;
        let (reply_tx, reply_rx) = mpsc::channel();
        tx.send((cmd, reply_tx))
            .map_err(|_| anyhow!("the spawner thread is gone"))?;
        reply_rx
            .recv()
            .map_err(|_| anyhow!("the spawner thread is gone"))?
            .map_err(Into::into)
    }

    /// Ends the spawner thread. Call only after every child has been reaped: any child still
    /// alive gets SIGKILL from the kernel at this point.
    pub(crate) fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Default)]
struct StdoutState {
    lines: Vec<String>,
    eof: bool,
}

pub(crate) struct ProcessInner {
    name: String,
    pid: u32,
    child: Mutex<Child>,
    status: Mutex<Option<ExitStatus>>,
    stdout: Arc<Mutex<StdoutState>>,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ProcessInner {
    pub(crate) fn start(spawner: &Spawner, log_dir: &Path, name: &str, mut cmd: Command) -> Result<Arc<Self>> {
        let stdout_log = log_dir.join(format!("{name}.stdout.log"));
        let stderr_log = log_dir.join(format!("{name}.stderr.log"));
        let stderr_file = File::create(&stderr_log).with_context(|| format!("creating {}", stderr_log.display()))?;
        let mut stdout_file =
            File::create(&stdout_log).with_context(|| format!("creating {}", stdout_log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file));
        // Own process group (pgid = pid): signals reach helpers the child forks (e.g. a shell
        // wrapper), and a terminal's Ctrl-C reaches only the test process, whose death then
        // takes the children down through PDEATHSIG.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = spawner
            .spawn(cmd)
            .with_context(|| format!("starting {name} ({program})"))?;
        let pid = child.id();
        let stdout = Arc::new(Mutex::new(StdoutState::default()));
        if let Some(pipe) = child.stdout.take() {
            let state = Arc::clone(&stdout);
            thread::Builder::new()
                .name(format!("ccm-e2e-{name}-stdout"))
                .spawn(move || {
                    let mut reader = BufReader::new(pipe);
                    let mut buf = Vec::new();
                    loop {
                        buf.clear();
                        match reader.read_until(b'\n', &mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {
                                let _ = stdout_file.write_all(&buf);
                                let line = String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_owned();
                                lock(&state).lines.push(line);
                            }
                        }
                    }
                    let _ = stdout_file.flush();
                    lock(&state).eof = true;
                })
                .context("starting a stdout reader thread")?;
        }
        Ok(Arc::new(ProcessInner {
            name: name.to_owned(),
            pid,
            child: Mutex::new(child),
            status: Mutex::new(None),
            stdout,
            stdout_log,
            stderr_log,
        }))
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn try_wait(&self) -> Result<Option<ExitStatus>> {
        let mut status = lock(&self.status);
        if status.is_none() {
            *status = lock(&self.child)
                .try_wait()
                .with_context(|| format!("waiting for {}", self.name))?;
        }
        Ok(*status)
    }

    pub(crate) fn signal(&self, sig: Signal) -> Result<()> {
        if self.try_wait()?.is_some() {
            bail!("{} (pid {}) has already exited", self.name, self.pid);
        }
        self.signal_group(sig)
            .with_context(|| format!("sending {sig:?} to {} (pid {})", self.name, self.pid))
    }

    /// Signals the child's process group (whose id is the child's pid), falling back to the
    /// pid alone if the group is gone.
    fn signal_group(&self, sig: Signal) -> std::io::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.pid as i32)
            .ok_or_else(|| std::io::Error::other(format!("invalid pid {}", self.pid)))?;
        rustix::process::kill_process_group(pid, sig.to_rustix())
            .or_else(|_| rustix::process::kill_process(pid, sig.to_rustix()))
            .map_err(Into::into)
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL and reap. Never fails; returns the status if known.
    pub(crate) fn terminate_blocking(&self, grace: Duration) -> Option<ExitStatus> {
        let status = match self.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                let _ = self.signal(Signal::Term);
                self.wait_blocking(grace).or_else(|| self.kill_blocking())
            }
        };
        // Leftover helpers in the child's process group (normally none).
        let _ = self.signal_group(Signal::Kill);
        status
    }

    fn wait_blocking(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_wait() {
                Ok(Some(s)) => return Some(s),
                Err(_) => return None,
                Ok(None) if Instant::now() >= deadline => return None,
                Ok(None) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn kill_blocking(&self) -> Option<ExitStatus> {
        if let Ok(Some(s)) = self.try_wait() {
            return Some(s);
        }
        // Lock order everywhere: `status` before `child`.
        let mut status = lock(&self.status);
        if status.is_none() {
            let mut child = lock(&self.child);
            let _ = self.signal_group(Signal::Kill);
            let _ = child.kill();
            *status = child.wait().ok();
        }
        *status
    }

    /// Last `n` lines of the stderr log (and of stdout if it has anything).
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let mut out = String::new();
        for (what, path) in [("stderr", &self.stderr_log), ("stdout", &self.stdout_log)] {
            let tail = match tail_lines(path, n) {
                Some(t) => t,
                None if what == "stderr" => "(log file gone: work dir already removed)".to_owned(),
                None => continue,
            };
            if what == "stdout" && tail.is_empty() {
                continue;
            }
            out.push_str(&format!(
                "----- {} {what} ({}), last {n} lines -----\n",
                self.name,
                path.display()
            ));
            out.push_str(&tail);
            if !tail.is_empty() && !tail.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }
}

fn tail_lines(path: &Path, n: usize) -> Option<String> {
    let mut bytes = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: VecDeque<&str> = VecDeque::with_capacity(n + 1);
    for l in text.lines() {
        if lines.len() == n {
            lines.pop_front();
        }
        lines.push_back(l);
    }
    Some(lines.into_iter().collect::<Vec<_>>().join("\n"))
}

/// A child process started through [`ControlPlane::spawn`](crate::ControlPlane::spawn) (or one
/// of the control plane's own components).
///
/// Cloning gives another handle to the same process. The control plane keeps its own
/// reference: teardown stops the process and [`ControlPlane::dump_logs`](crate::ControlPlane::dump_logs)
/// includes its logs, whether or not handles are still around.
#[derive(Clone)]
pub struct ManagedProcess {
    pub(crate) inner: Arc<ProcessInner>,
}

impl std::fmt::Debug for ManagedProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedProcess")
            .field("name", &self.inner.name)
            .field("pid", &self.inner.pid)
            .finish()
    }
}

impl ManagedProcess {
    /// The component name given at spawn time (also the log file prefix).
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// OS process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// Path of the captured stdout log.
    pub fn stdout_log_path(&self) -> &Path {
        &self.inner.stdout_log
    }

    /// Path of the captured stderr log.
    pub fn stderr_log_path(&self) -> &Path {
        &self.inner.stderr_log
    }

    /// All stdout lines received so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.inner.stdout).lines.clone()
    }

    /// Waits for the first stdout line (e.g. a bound URL printed by the process).
    ///
    /// Fails if the process closes stdout or exits first, or after `timeout`; the error
    /// contains the tail of its stderr.
    pub async fn first_stdout_line(&self, timeout: Duration) -> Result<String> {
        self.wait_for_stdout_line(|_| true, timeout).await
    }

    /// Waits for the first stdout line (seen so far or arriving later) for which `pred` is true.
    pub async fn wait_for_stdout_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let state = lock(&self.inner.stdout);
                if let Some(l) = state.lines.iter().find(|l| pred(l)) {
                    return Ok(l.clone());
                }
                if state.eof {
                    let status = self.inner.wait_blocking(Duration::from_millis(500));
                    bail!(
                        "{} closed stdout without the expected line ({}):\n{}",
                        self.inner.name,
                        status.map_or_else(|| "still running".to_owned(), |s| format!("{s}")),
                        self.inner.log_tail(40)
                    );
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} printed no expected stdout line within {timeout:?}:\n{}",
                    self.inner.name,
                    self.inner.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends a signal to the process (to its process group: every child runs in its own group,
    /// so helpers it forked get the signal too). Fails if the process has already exited.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        self.inner.signal(sig)
    }

    /// The exit status if the process has exited, without blocking.
    pub fn try_wait(&self) -> Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }

    /// Whether the process is still running (not yet exited).
    pub fn is_running(&self) -> bool {
        matches!(self.inner.try_wait(), Ok(None))
    }

    /// Waits (asynchronously) until the process exits.
    pub async fn wait(&self) -> Result<ExitStatus> {
        loop {
            if let Some(s) = self.inner.try_wait()? {
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; waits until the process is gone.
    pub async fn terminate(&self, grace: Duration) -> Result<ExitStatus> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.terminate_blocking(grace))
            .await
            .context("terminate task")?
            .ok_or_else(|| anyhow!("could not reap {}", self.inner.name))
    }

    /// Last `n` lines of this process's logs.
    pub fn log_tail(&self, n: usize) -> String {
        self.inner.log_tail(n)
    }
}

/// Runs a short command to completion; its stdout, or an error with its stderr. `hint` says
/// where the program comes from when it cannot be started.
pub(crate) fn command_stdout(cmd: &mut Command, hint: &str) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().with_context(|| format!("running {program} ({hint})"))?;
    if !out.status.success() {
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
