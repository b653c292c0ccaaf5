//! A real node for the control plane (opt-in through [`ControlPlaneOptions::node`]):
//! kube-controller-manager and kube-scheduler (built from the same `k8s.io/kubernetes` module
//! as the apiserver), containerd with runc and the CNI plugins from Debian, and a kubelet
//! registering node [`NODE_NAME`]. Pods run for real: images come from local archives
//! imported into containerd (no registry), including the pod sandbox image, built here from
//! our own `pause` binary.
//!
//! Networking: everything runs in the private network namespace of [`crate::sandbox`].
//! Pods get their own network namespaces on a CNI `bridge` ([`BRIDGE`], [`POD_SUBNET`],
//! host-local IPAM), whose gateway [`NODE_IP`] is the node's address; the apiserver listens
//! on every address of the private namespace, port 443, and the `kubernetes` Service's IP
//! ([`KUBERNETES_SERVICE_IP`]) is an address of that namespace too, so a pod's in-cluster
//! configuration (`KUBERNETES_SERVICE_HOST`/`PORT`, injected by the kubelet) reaches the
//! apiserver without kube-proxy. There is no kube-proxy: other Service IPs do not route,
//! and there is no cluster DNS. All addresses are in 198.18.0.0/15 (reserved for network
//! tests) and exist only inside the private namespace.
//!
//! The kubelet sets six kernel tunables at start (`vm.overcommit_memory`, `kernel.panic`, …),
//! most of them global to the machine. They are pinned to the values it wants by bind mounts
//! over `/proc/sys` inside the private mount namespace, so the machine's settings are never
//! changed; no scenario depends on them.
//!
//! [`ControlPlaneOptions::node`]: crate::ControlPlaneOptions::node

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::Node as NodeObject;
use kube::Api;

use crate::control_plane::{ControlPlane, log, random_hex};
use crate::process::{ManagedProcess, command_stdout};

/// The node's name (`kubernetes.io/hostname`).
pub const NODE_NAME: &str = "ccm-e2e-node";
/// The node's address: the pod bridge's gateway.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Pod addresses (host-local IPAM on the bridge).
pub const POD_SUBNET: &str = "198.18.0.0/24";
/// The apiserver's `--service-cluster-ip-range` when a node runs.
pub const SERVICE_CIDR: &str = "198.18.1.0/24";
/// The `kubernetes` Service's IP (the first of [`SERVICE_CIDR`]).
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The apiserver's port when a node runs (what the `kubernetes` Service announces).
pub const APISERVER_PORT: u16 = 443;
/// The pod bridge.
pub const BRIDGE: &str = "ccm0";
/// The pod sandbox image containerd runs for every pod.
pub const PAUSE_IMAGE: &str = "localhost/ccm-e2e-pause:1";

const CONTAINERD_TIMEOUT: Duration = Duration::from_secs(30);
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The kubelet's wanted kernel tunables (`pkg/kubelet/cm` `setupKernelTunables`).
const KERNEL_TUNABLES: &[(&str, &str)] = &[
    ("vm/overcommit_memory", "1"),
    ("vm/panic_on_oom", "0"),
    ("kernel/panic", "10"),
    ("kernel/panic_on_oops", "1"),
    ("kernel/keys/root_maxkeys", "1000000"),
    ("kernel/keys/root_maxbytes", "25000000"),
];

/// What the node loads and how.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Image archives (docker-archive or OCI layout tar) imported into containerd before
    /// the kubelet starts, e.g. the controller image from `scripts/image.sh`.
    pub image_archives: Vec<PathBuf>,
}

/// Set-up done before the apiserver starts: the pod network and the kubelet's identity.
pub(crate) struct NodePlan {
    pub(crate) kubelet_token: String,
}

impl NodePlan {
    /// Checks the sandbox and creates the pod bridge and the Service address.
    pub(crate) fn prepare() -> Result<NodePlan> {
        if !crate::sandbox::inside() {
            bail!(
                "a node needs the private namespaces of ccm_e2e::sandbox: call ccm_e2e::sandbox::enter() first in main"
            );
        }
        let node_ip = format!("{NODE_IP}/24");
        let service_ip = format!("{KUBERNETES_SERVICE_IP}/32");
        for args in [
            &["link", "add", BRIDGE, "type", "bridge"][..],
            &["addr", "add", &node_ip, "dev", BRIDGE],
            &["link", "set", BRIDGE, "up"],
            &["addr", "add", &service_ip, "dev", "lo"],
        ] {
            crate::sandbox::run_ip(args)?;
        }
        Ok(NodePlan {
            kubelet_token: random_hex(24),
        })
    }

    /// The kubelet's line in the apiserver's static token file.
    pub(crate) fn token_line(&self) -> String {
        format!(
            "{},system:node:{NODE_NAME},system:node:{NODE_NAME},\"system:nodes\"\n",
            self.kubelet_token
        )
    }

    /// Apiserver flags that differ with a node. The Node authorizer and NodeRestriction
    /// limit the kubelet to its own node's objects; the ServiceAccount admission plugin adds
    /// the projected token volume to pods.
    pub(crate) fn apiserver_args() -> Vec<String> {
        vec![
            "--bind-address=0.0.0.0".into(),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        ]
    }

    /// Extra IP SANs of the apiserver's serving certificate.
    pub(crate) fn serving_ips() -> Vec<Ipv4Addr> {
        vec![NODE_IP, KUBERNETES_SERVICE_IP]
    }
}

/// A running node (kubelet and containerd; the scheduler and controller-manager are
/// ordinary control plane processes).
pub(crate) struct Node {
    dir: PathBuf,
    socket: PathBuf,
    cgroup_root: String,
    kubelet: ManagedProcess,
    containerd: ManagedProcess,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("dir", &self.dir)
            .field("cgroup_root", &self.cgroup_root)
            .finish_non_exhaustive()
    }
}

/// Paths of the control plane's PKI the node components use.
pub(crate) struct NodePki<'a> {
    pub(crate) ca_cert: &'a Path,
    pub(crate) sa_key: &'a Path,
}

impl Node {
    /// Starts the controller-manager, the scheduler, containerd (with the images) and the
    /// kubelet, and waits until the Node is Ready.
    pub(crate) async fn start(
        cp: &ControlPlane,
        plan: &NodePlan,
        pki: &NodePki<'_>,
        opts: &NodeOptions,
    ) -> Result<Node> {
        let dir = cp.workdir().join("node");
        for sub in [
            "containerd",
            "cni/net.d",
            "cni/ipam",
            "kubelet",
            "pod-logs",
            "sysctl",
            "images",
        ] {
            std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        pin_kernel_tunables(&dir.join("sysctl"))?;

        let t = Instant::now();
        let kcm = cp.spawn("kube-controller-manager", controller_manager_command(cp, pki))?;
        let scheduler = cp.spawn("kube-scheduler", scheduler_command(cp))?;
        log(format!(
            "kube-controller-manager (pid {}) and kube-scheduler (pid {}) started",
            kcm.pid(),
            scheduler.pid()
        ));

        let cgroup_root = format!("/ccm-e2e-{}", random_hex(4));
        create_cgroup_root(&cgroup_root)?;
        let socket = dir.join("containerd/containerd.sock");
        let config = dir.join("containerd/config.toml");
        std::fs::write(&config, containerd_config(&dir, &socket)).context("writing containerd's config")?;
        std::fs::write(dir.join("cni/net.d/10-ccm-e2e.conflist"), cni_config(&dir))
            .context("writing the CNI config")?;
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(&config);
        let containerd = cp.spawn("containerd", cmd)?;
        let node = Node {
            dir: dir.clone(),
            socket: socket.clone(),
            cgroup_root,
            kubelet: containerd.clone(),
            containerd,
        };
        // From here on a failure must stop containerd's containers too: `node` does that.
        let started = node.start_rest(cp, plan, opts).await;
        match started {
            Ok(kubelet) => {
                log(format!("node {NODE_NAME} Ready in {:.1}s", t.elapsed().as_secs_f64()));
                Ok(Node { kubelet, ..node })
            }
            Err(e) => {
                node.stop();
                Err(e)
            }
        }
    }

    async fn start_rest(&self, cp: &ControlPlane, plan: &NodePlan, opts: &NodeOptions) -> Result<ManagedProcess> {
        let t = Instant::now();
        let deadline = Instant::now() + CONTAINERD_TIMEOUT;
        while self.ctr(&["version"]).is_err() {
            if let Some(status) = self.containerd.try_wait()? {
                bail!("containerd exited ({status}):\n{}", self.containerd.log_tail(30));
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd not serving after {CONTAINERD_TIMEOUT:?}:\n{}",
                    self.containerd.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        log(format!("containerd ready in {:.1}s", t.elapsed().as_secs_f64()));

        let t = Instant::now();
        let pause = build_pause_image(&cp.tools().pause(), &self.dir.join("images"))?;
        for archive in std::iter::once(&pause).chain(&opts.image_archives) {
            self.ctr(&["images", "import", &archive.display().to_string()])
                .with_context(|| format!("importing {} into containerd", archive.display()))?;
        }
        let images = self.ctr(&["images", "list", "--quiet"])?;
        log(format!(
            "images loaded in {:.1}s: {}",
            t.elapsed().as_secs_f64(),
            images
                .lines()
                .filter(|l| !l.starts_with("sha256:"))
                .collect::<Vec<_>>()
                .join(", ")
        ));

        let t = Instant::now();
        let kubeconfig = cp.kubeconfig_for_token("kubelet", &plan.kubelet_token)?;
        let config = self.dir.join("kubelet/config.json");
        let kubelet_config = kubelet_config(&self.dir, &self.socket, &self.cgroup_root)?;
        std::fs::write(&config, kubelet_config).context("writing the kubelet config")?;
        let mut cmd = Command::new(cp.tools().kubelet());
        cmd.arg(format!("--config={}", config.display()))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--root-dir={}", self.dir.join("kubelet").display()))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!("--node-ip={NODE_IP}"))
            .arg("--v=1");
        let kubelet = cp.spawn("kubelet", cmd)?;
        match wait_node_ready(cp, &kubelet).await {
            Ok(()) => {
                log(format!(
                    "kubelet registered {NODE_NAME} Ready in {:.1}s",
                    t.elapsed().as_secs_f64()
                ));
                Ok(kubelet)
            }
            Err(e) => {
                let _ = kubelet.terminate(STOP_GRACE).await;
                Err(e)
            }
        }
    }

    /// `ctr --address <socket> --namespace k8s.io ARGS` (the CRI plugin's namespace).
    pub(crate) fn ctr(&self, args: &[&str]) -> Result<String> {
        command_stdout(
            Command::new("ctr")
                .arg("--address")
                .arg(&self.socket)
                .args(["--namespace", "k8s.io"])
                .args(args),
            "containerd's client, scripts/setup-node.sh installs it",
        )
    }

    /// Pid (in this PID namespace) of a running container's main process.
    pub(crate) fn container_pid(&self, container_id: &str) -> Result<u32> {
        let tasks = self.ctr(&["tasks", "list"])?;
        tasks
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?, f.next()?, f.next()?))
            })
            .find(|(id, _, status)| *id == container_id && *status == "RUNNING")
            .and_then(|(_, pid, _)| pid.parse().ok())
            .with_context(|| format!("no running task {container_id} in containerd:\n{tasks}"))
    }

    /// The kubelet's pod log directory.
    pub(crate) fn pod_logs_dir(&self) -> PathBuf {
        self.dir.join("pod-logs")
    }

    /// Stops the kubelet, kills every container (the processes in the node's cgroups), stops
    /// containerd and its shims, unmounts what they mounted and removes the cgroups.
    /// Never fails; problems are logged.
    pub(crate) fn stop(&self) {
        let t = Instant::now();
        self.kubelet.inner.terminate_blocking(STOP_GRACE);
        let killed = kill_cgroup_processes(&self.cgroup_root);
        self.containerd.inner.terminate_blocking(STOP_GRACE);
        // Shims survive containerd by design; their containers are gone now.
        let shims = kill_processes_named("containerd-shim");
        let unmounted = unmount_under(&self.dir);
        let removed = remove_cgroup_root(&self.cgroup_root);
        log(format!(
            "node stopped in {:.1}s: {killed} container processes and {shims} shims killed, {unmounted} mounts removed, cgroups {}",
            t.elapsed().as_secs_f64(),
            if removed { "removed" } else { "left behind (see above)" }
        ));
    }
}

/// Polls the Node object until its Ready condition is True.
async fn wait_node_ready(cp: &ControlPlane, kubelet: &ManagedProcess) -> Result<()> {
    let nodes: Api<NodeObject> = Api::all(cp.client().await?);
    let deadline = Instant::now() + NODE_READY_TIMEOUT;
    loop {
        let ready = nodes.get_opt(NODE_NAME).await.ok().flatten().is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready {
            return Ok(());
        }
        if let Some(status) = kubelet.try_wait()? {
            bail!("kubelet exited ({status}):\n{}", kubelet.log_tail(40));
        }
        if Instant::now() > deadline {
            bail!(
                "node {NODE_NAME} not Ready after {NODE_READY_TIMEOUT:?}:\n{}",
                kubelet.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn controller_manager_command(cp: &ControlPlane, pki: &NodePki<'_>) -> Command {
    let mut cmd = Command::new(cp.tools().kube_controller_manager());
    cmd.arg(format!("--kubeconfig={}", cp.kubeconfig_path().display()))
        .arg("--leader-elect=false")
        .arg("--secure-port=0")
        // The root CA published in every namespace's kube-root-ca.crt (a pod's ca.crt).
        .arg(format!("--root-ca-file={}", pki.ca_cert.display()))
        .arg(format!("--service-account-private-key-file={}", pki.sa_key.display()))
        .arg("--use-service-account-credentials=false")
        // Everything a Deployment and a namespace need; no cloud, no node IPAM.
        .arg("--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller")
        .arg("--concurrent-deployment-syncs=2")
        .arg("--v=1");
    cmd
}

fn scheduler_command(cp: &ControlPlane) -> Command {
    let mut cmd = Command::new(cp.tools().kube_scheduler());
    cmd.arg(format!("--kubeconfig={}", cp.kubeconfig_path().display()))
        .arg(format!(
            "--authentication-kubeconfig={}",
            cp.kubeconfig_path().display()
        ))
        .arg(format!("--authorization-kubeconfig={}", cp.kubeconfig_path().display()))
        .arg("--leader-elect=false")
        .arg("--bind-address=127.0.0.1")
        .arg("--secure-port=0")
        .arg("--v=1");
    cmd
}

/// containerd (Debian's 1.6): state under the node directory, runc from Debian, overlayfs,
/// our pause image as sandbox, CNI plugins from Debian with our config directory, OOM scores
/// no lower than containerd's own (see the comment in the file).
fn containerd_config(dir: &Path, socket: &Path) -> String {
    let d = |p: &str| dir.join(p).display().to_string();
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{socket}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # This machine's root has no CAP_SYS_RESOURCE: pod sandboxes' oom_score_adj -998 would be
  # refused by the kernel (runc: "failed to update /proc/self/oom_score_adj"), so scores are
  # kept at or above containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{net_d}"
"#,
        root = d("containerd/root"),
        state = d("containerd/state"),
        opt = d("containerd/opt"),
        socket = socket.display(),
        net_d = d("cni/net.d"),
    )
}

/// The pod network: Debian's `bridge` plugin on [`BRIDGE`] with host-local addresses from
/// [`POD_SUBNET`] and [`NODE_IP`] as gateway (no masquerading: nothing leaves the namespace).
fn cni_config(dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "ccm-e2e",
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            // The gateway is also the pods' default route: the apiserver's Service address
            // is outside the pod subnet.
            "isDefaultGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP.to_string()}]],
                "dataDir": dir.join("cni/ipam").display().to_string(),
            },
        }],
    })
    .to_string()
}

/// The kubelet's configuration: cgroupfs driver (no systemd here) under our own cgroup root,
/// containerd's socket, everything it writes under the node directory, its servers on
/// loopback, no eviction of the test's pods for disk or memory.
fn kubelet_config(dir: &Path, socket: &Path, cgroup_root: &str) -> Result<String> {
    let [port, healthz] = free_loopback_ports()?;
    let endpoint = format!("unix://{}", socket.display());
    Ok(serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "authentication": {"anonymous": {"enabled": false}, "webhook": {"enabled": false}},
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "failSwapOn": false,
        "failCgroupV1": false,
        "containerRuntimeEndpoint": endpoint,
        "imageServiceEndpoint": endpoint,
        "podLogsDir": dir.join("pod-logs").display().to_string(),
        "resolvConf": "/etc/resolv.conf",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "serializeImagePulls": false,
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
    })
    .to_string())
}

fn free_loopback_ports() -> Result<[u16; 2]> {
    let a = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let b = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok([a.local_addr()?.port(), b.local_addr()?.port()])
}

/// Builds the pod sandbox image from our `pause` binary with buildah and writes it as a
/// docker-archive (a few seconds; the image is rebuilt each time, nothing is cached).
fn build_pause_image(pause: &Path, dir: &Path) -> Result<PathBuf> {
    let buildah = |args: &[&str]| -> Result<String> {
        let out = command_stdout(Command::new("buildah").args(args), "scripts/setup-node.sh installs it")?;
        Ok(out.trim().to_owned())
    };
    let container = buildah(&["from", "scratch"])?;
    let built = (|| {
        buildah(&["copy", &container, &pause.display().to_string(), "/pause"])?;
        buildah(&[
            "config",
            "--entrypoint",
            r#"["/pause"]"#,
            "--user",
            "65535:65535",
            &container,
        ])?;
        buildah(&["commit", "--quiet", &container, PAUSE_IMAGE])
    })();
    let _ = buildah(&["rm", &container]);
    built?;
    let archive = dir.join("pause.tar");
    let _ = std::fs::remove_file(&archive);
    buildah(&[
        "push",
        "--quiet",
        PAUSE_IMAGE,
        &format!("docker-archive:{}:{PAUSE_IMAGE}", archive.display()),
    ])?;
    Ok(archive)
}

/// Bind-mounts files holding the kubelet's wanted values over its kernel tunables, in this
/// process's private mount namespace only.
fn pin_kernel_tunables(dir: &Path) -> Result<()> {
    for (name, value) in KERNEL_TUNABLES {
        let file = dir.join(name.replace('/', "."));
        std::fs::write(&file, format!("{value}\n")).with_context(|| format!("writing {}", file.display()))?;
        let target = Path::new("/proc/sys").join(name);
        rustix::mount::mount_bind(&file, &target)
            .with_context(|| format!("bind-mounting {} over {}", file.display(), target.display()))?;
    }
    Ok(())
}

/// Mount points of the cgroup hierarchies (v1 controllers and the v2 tree).
fn cgroup_mounts() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mount_point = left.split_whitespace().nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .collect()
}

/// Creates the kubelet's `cgroupRoot` in every hierarchy (the kubelet requires it to exist);
/// a new cpuset cgroup starts without CPUs and memory nodes, so the parent's are copied.
fn create_cgroup_root(root: &str) -> Result<()> {
    for mount in cgroup_mounts() {
        let dir = mount.join(root.trim_start_matches('/'));
        std::fs::create_dir(&dir).with_context(|| format!("creating cgroup {}", dir.display()))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(value) = std::fs::read_to_string(mount.join(file)) {
                std::fs::write(dir.join(file), value.trim())
                    .with_context(|| format!("setting {}", dir.join(file).display()))?;
            }
        }
    }
    Ok(())
}

/// Every cgroup directory under `root` in every hierarchy, deepest first.
fn cgroup_dirs(root: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(dir.to_path_buf());
    }
    let mut out = Vec::new();
    for mount in cgroup_mounts() {
        let dir = mount.join(root.trim_start_matches('/'));
        if dir.is_dir() {
            walk(&dir, &mut out);
        }
    }
    out
}

/// SIGKILLs every process in the cgroups under `root`; returns how many.
fn kill_cgroup_processes(root: &str) -> usize {
    let mut pids = std::collections::BTreeSet::new();
    for dir in cgroup_dirs(root) {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    pids.into_iter().filter(|pid| kill(*pid)).count()
}

/// SIGKILLs every process whose command name starts with `prefix`; returns how many.
fn kill_processes_named(prefix: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end().starts_with(prefix))
        })
        .filter(|pid| kill(*pid))
        .count()
}

fn kill(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|p| rustix::process::kill_process(p, rustix::process::Signal::KILL).is_ok())
}

/// Unmounts (lazily) everything mounted under `dir`, deepest first; returns how many.
fn unmount_under(dir: &Path) -> usize {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    points
        .iter()
        .filter(|p| rustix::mount::unmount(p.as_path(), rustix::mount::UnmountFlags::DETACH).is_ok())
        .count()
}

/// Removes the cgroups under `root` (they are empty once their processes are gone; the
/// kernel may need a moment to release them).
fn remove_cgroup_root(root: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<PathBuf> = cgroup_dirs(root)
            .into_iter()
            .filter(|d| std::fs::remove_dir(d).is_err())
            .collect();
        if left.is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            let mut msg = String::new();
            for d in &left {
                let _ = write!(msg, " {}", d.display());
            }
            log(format!("could not remove cgroups:{msg}"));
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl ControlPlane {
    /// Whether a node runs (see [`crate::node`]).
    pub fn has_node(&self) -> bool {
        self.node().is_ok()
    }

    /// Pid of a running container's main process, from its id as a Pod's status reports it
    /// (`containerd://<id>` or the bare id). The pid is valid in this process's PID
    /// namespace, so `/proc/<pid>` shows the container's process as the kernel runs it.
    pub fn container_pid(&self, container_id: &str) -> Result<u32> {
        let id = container_id.strip_prefix("containerd://").unwrap_or(container_id);
        self.node()?.container_pid(id)
    }

    /// `ctr ARGS` against the node's containerd, in the CRI namespace `k8s.io`.
    pub fn ctr(&self, args: &[&str]) -> Result<String> {
        self.node()?.ctr(args)
    }

    /// Where the kubelet writes container logs (`<namespace>_<pod>_<uid>/<container>/N.log`).
    pub fn pod_logs_dir(&self) -> Result<PathBuf> {
        Ok(self.node()?.pod_logs_dir())
    }
}
