//! The Helm chart (issue #5): static checks (appVersion, CRDs, `helm lint --strict`,
//! `helm template`, schema rejections), every rendered manifest of every value set accepted
//! by the real kube-apiserver (server-side dry run; Pods under PodSecurity `restricted`), and
//! the RBAC proof: the real controller authenticated as the chart's ServiceAccount (a
//! TokenRequest token) with only the chart's RBAC, on a real apiserver in RBAC mode.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test and benchmark code

mod support;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use ccm_e2e::Signal;
use ccm_issuer::{
    controller::issuance::intent::CERTIFICATE_ID_ANNOTATION,
    crd::{CCMClusterIssuer, CCMIssuer},
};
use k8s_openapi::api::{
    authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec},
    authorization::v1::SubjectAccessReview,
    coordination::v1::Lease,
    core::v1::{Pod, Secret, ServiceAccount},
    events::v1::Event,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DynamicObject, ListParams, Patch, PatchParams, PostParams, ValidationDirective},
    core::GroupVersionKind,
    discovery::{Discovery, Scope},
};
use serde_json::{Value, json};
use support::*;

/// Release name and namespace of every render (the namespace is the fixture's cluster
/// resource namespace, so the controller started by the fixture matches the chart).
const RELEASE: &str = "ccm-issuer";
const NAMESPACE: &str = CLUSTER_RESOURCE_NAMESPACE;

fn main() -> std::process::ExitCode {
    main_with(
        StackOptions {
            start_controller: false,
            ..StackOptions::default()
        },
        vec![
            ("chart_app_version_is_the_cargo_version", app_version),
            ("chart_crds_identical_to_repository_crds", crds_identical),
            ("helm_lint_strict_every_value_set", lint),
            ("helm_template_every_value_set", template_value_sets),
            ("bad_values_rejected_with_a_clear_message", bad_values),
            ("every_rendered_manifest_accepted_by_apiserver_dry_run", dry_run),
            ("helm_install_dry_run_prints_next_steps", install_notes),
            ("rbac_proof_controller_as_chart_service_account", rbac_proof),
            ("rbac_proof_leader_election_with_rendered_args", leader_election),
        ],
    )
}

// --- helpers ---------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    repo().join("charts/ccm-issuer")
}

/// `charts/ccm-issuer/ci/*-values.yaml`, sorted.
fn value_sets() -> Result<Vec<PathBuf>> {
    let mut sets: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("-values.yaml"))
        })
        .collect();
    sets.sort();
    ensure!(
        sets.len() >= 5,
        "expected at least 5 value sets in ci/, found {}",
        sets.len()
    );
    Ok(sets)
}

fn set_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .trim_end_matches("-values.yaml")
        .to_owned()
}

/// helm with its cache/config/data homes inside the control plane's work directory.
fn helm(stack: &Stack) -> Command {
    let home = stack.cp.workdir().join("helm-home");
    let mut cmd = Command::new(stack.cp.tools().helm());
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// Runs a command and returns (success, stdout, stderr).
fn output(cmd: &mut Command) -> Result<(bool, String, String)> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `helm template` of the chart (CRDs included) with value files and `--set` values.
fn render_with(stack: &Stack, values: &[&Path], sets: &[&str]) -> Result<(bool, String, String)> {
    let mut cmd = helm(stack);
    cmd.args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE, "--include-crds"]);
    if let Some(v) = stack.cp.tools().k8s_version() {
        cmd.args(["--kube-version", v]);
    }
    for f in values {
        cmd.arg("--values").arg(f);
    }
    for s in sets {
        cmd.args(["--set", s]);
    }
    output(&mut cmd)
}

fn render(stack: &Stack, values: &[&Path], sets: &[&str]) -> Result<Vec<Value>> {
    let (ok, stdout, stderr) = render_with(stack, values, sets)?;
    ensure!(ok, "helm template failed: {stderr}");
    ccm_e2e::yaml_documents(&stdout)
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn deployment(docs: &[Value]) -> Result<&Value> {
    let d = of_kind(docs, "Deployment");
    ensure!(d.len() == 1, "one Deployment expected, got {}", d.len());
    Ok(d[0])
}

fn container(deploy: &Value) -> &Value {
    &deploy["spec"]["template"]["spec"]["containers"][0]
}

fn args_of(deploy: &Value) -> Vec<String> {
    container(deploy)["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn to_yaml_stream(docs: &[&Value]) -> Result<String> {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string(d)?);
        out.push('\n');
    }
    Ok(out)
}

fn is_rbac_or_sa(doc: &Value) -> bool {
    matches!(
        kind(doc),
        "ServiceAccount" | "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
    )
}

/// A user and its groups, as RBAC sees them.
type Subject = (String, Vec<String>);

/// (what, who, verb, group, resource[/subresource], namespace, name, expected answer).
type SarCheck<'a> = (
    &'a str,
    &'a Subject,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    bool,
);

fn sa_user(namespace: &str, name: &str) -> Subject {
    (
        format!("system:serviceaccount:{namespace}:{name}"),
        vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".into(),
        ],
    )
}

/// SubjectAccessReview: may `user` do `verb` on `resource` (group, namespace, name)?
async fn may(
    admin: &Client,
    (user, groups): &Subject,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<bool> {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (resource, None),
    };
    let sar: SubjectAccessReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": groups,
            "resourceAttributes": {
                "verb": verb, "group": group, "resource": resource, "subresource": subresource,
                "namespace": namespace, "name": name,
            },
        },
    }))?;
    let answer = Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &sar)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// A token for a ServiceAccount through the TokenRequest API (what the kubelet mounts).
async fn service_account_token(admin: &Client, namespace: &str, name: &str) -> Result<String> {
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    let answer = api
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for {namespace}/{name}"))?;
    answer
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .context("empty token")
}

/// Applies namespaces (with labels) for real.
async fn namespaces(stack: &Stack, names: &[&str], labels: &[(&str, &str)]) -> Result<()> {
    for n in names {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let doc = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": labels}});
        stack.cp.apply_yaml(&serde_json::to_string(&doc)?).await?;
    }
    Ok(())
}

/// Lines of our controllers' logs where the API server refused something, except the
/// expected refusals (the Secret of the CCMIssuer in team-c, outside rbac.secretNamespaces).
fn unexpected_forbidden(stack: &Stack) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(stack.cp.workdir().join("logs"))? {
        let path = entry?.path();
        let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if !file.starts_with("ccm-issuer-") {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            if (line.contains("forbidden") || line.contains("code: 403")) && !line.contains("team-c") {
                lines.push(format!("{file}: {line}"));
            }
        }
    }
    Ok(lines)
}

async fn issuer_reason(stack: &Stack, namespace: &str, name: &str, want: &str) -> Result<(String, String)> {
    let api: Api<CCMIssuer> = Api::namespaced(stack.client().await?, namespace);
    eventually(
        &format!("CCMIssuer {namespace}/{name} reason {want}"),
        Duration::from_secs(60),
        async || {
            Ok(api
                .get(name)
                .await?
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
                .filter(|c| c.reason == want)
                .map(|c| (c.status, c.message)))
        },
    )
    .await
}

// --- static checks ---------------------------------------------------------------------------

fn app_version(_: &Stack) -> Result<()> {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml"))?;
    let chart: Value = serde_saphyr::from_str(&text)?;
    let cargo = env!("CARGO_PKG_VERSION");
    ensure!(
        chart["appVersion"].as_str() == Some(cargo),
        "Chart.yaml appVersion {} must equal the Cargo.toml version {cargo} (release hygiene: bump both)",
        chart["appVersion"]
    );
    ensure!(
        chart["version"].as_str().is_some_and(|v| !v.is_empty()),
        "Chart.yaml version"
    );
    ensure!(
        chart["kubeVersion"].as_str() == Some(">=1.29.0-0"),
        "kubeVersion {}",
        chart["kubeVersion"]
    );
    Ok(())
}

fn crds_identical(_: &Stack) -> Result<()> {
    let list = |dir: &Path| -> Result<BTreeMap<String, Vec<u8>>> {
        let mut m = BTreeMap::new();
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            m.insert(
                p.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                std::fs::read(&p)?,
            );
        }
        Ok(m)
    };
    let repo_crds = list(&repo().join("crds"))?;
    let chart_crds = list(&chart_dir().join("crds"))?;
    ensure!(
        repo_crds.keys().eq(chart_crds.keys()),
        "same CRD files: crds/ {:?} vs chart {:?}",
        repo_crds.keys(),
        chart_crds.keys()
    );
    for (file, bytes) in &repo_crds {
        ensure!(
            chart_crds.get(file) == Some(bytes),
            "charts/ccm-issuer/crds/{file} differs from crds/{file}: run `cargo run -- crds --out-dir crds --out-dir charts/ccm-issuer/crds`"
        );
    }
    ensure!(repo_crds.len() == 2, "two CRDs");
    Ok(())
}

fn lint(stack: &Stack) -> Result<()> {
    for set in value_sets()? {
        let mut cmd = helm(stack);
        cmd.args(["lint", "--strict", "--namespace", NAMESPACE])
            .arg(chart_dir())
            .arg("--values")
            .arg(&set);
        let (ok, stdout, stderr) = output(&mut cmd)?;
        ensure!(ok, "helm lint --strict {}:\n{stdout}{stderr}", set_name(&set));
        ensure!(stdout.contains("0 chart(s) failed"), "{stdout}");
        eprintln!("[chart] helm lint --strict {}: ok", set_name(&set));
    }
    Ok(())
}

/// Renders every value set and checks what the chart promises, then runs the rendered
/// controller command line through the real binary's argument parser.
fn template_value_sets(stack: &Stack) -> Result<()> {
    for set in value_sets()? {
        let n = set_name(&set);
        let docs = render(stack, &[&set], &[]).with_context(|| n.clone())?;
        let values: Value = serde_saphyr::from_str(&std::fs::read_to_string(&set)?)?;
        check_rendered(&docs, &values).with_context(|| format!("value set {n}"))?;
        check_args_parse(stack, &args_of(deployment(&docs)?)).with_context(|| format!("value set {n}"))?;
        let kinds: Vec<String> = docs.iter().map(|d| format!("{}/{}", kind(d), name(d))).collect();
        eprintln!(
            "[chart] helm template {n}: {} objects: {}",
            docs.len(),
            kinds.join(", ")
        );
    }
    Ok(())
}

fn check_rendered(docs: &[Value], values: &Value) -> Result<()> {
    let deploy = deployment(docs)?;
    let pod = &deploy["spec"]["template"]["spec"];
    let c = container(deploy);
    let args = args_of(deploy);
    let has = |a: &str| args.iter().any(|x| x == a);
    // Restricted security context.
    ensure!(
        pod["securityContext"]["runAsNonRoot"] == true && pod["securityContext"]["runAsUser"] == 65532,
        "pod runs as 65532"
    );
    ensure!(
        pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault",
        "seccomp RuntimeDefault"
    );
    let sc = &c["securityContext"];
    ensure!(
        sc["readOnlyRootFilesystem"] == true && sc["allowPrivilegeEscalation"] == false,
        "read-only, no escalation"
    );
    ensure!(sc["capabilities"]["drop"] == json!(["ALL"]), "drop ALL");
    // Probes and resources.
    ensure!(
        c["livenessProbe"]["httpGet"]["path"] == "/livez" && c["readinessProbe"]["httpGet"]["path"] == "/readyz",
        "probes"
    );
    ensure!(
        c["livenessProbe"]["httpGet"]["port"] == "http-metrics",
        "probes on the health port"
    );
    ensure!(
        c["resources"]["limits"]["memory"].is_string() && c["resources"]["requests"]["memory"].is_string(),
        "memory request and limit"
    );
    // Downward API.
    let env = c["env"].as_array().context("env")?;
    for (var, path) in [("POD_NAMESPACE", "metadata.namespace"), ("POD_NAME", "metadata.name")] {
        ensure!(
            env.iter()
                .any(|e| e["name"] == var && e["valueFrom"]["fieldRef"]["fieldPath"] == path),
            "{var} from {path}"
        );
    }
    // Image by tag (appVersion by default) or digest.
    let image = c["image"].as_str().unwrap_or_default();
    match values.pointer("/image/digest").and_then(Value::as_str) {
        Some(d) => ensure!(image.ends_with(&format!("@{d}")), "image by digest: {image}"),
        None => ensure!(
            image == format!("ccm-issuer:{}", env!("CARGO_PKG_VERSION")),
            "image {image}"
        ),
    }
    // Cluster resource namespace defaults to the release namespace.
    let crn = values
        .pointer("/clusterResourceNamespace")
        .and_then(Value::as_str)
        .unwrap_or(NAMESPACE);
    ensure!(
        has(&format!("--cluster-resource-namespace={crn}")),
        "cluster resource namespace {crn}: {args:?}"
    );
    ensure!(
        args.first().map(String::as_str) == Some("controller"),
        "subcommand first"
    );
    // Leader election, its Role and the PDB follow replicas > 1 or the toggles.
    let replicas = values.pointer("/replicaCount").and_then(Value::as_u64).unwrap_or(1);
    // On by default: only an explicit `leaderElection.enabled=false` with one replica turns it off.
    let le = replicas > 1 || values.pointer("/leaderElection/enabled") != Some(&Value::Bool(false));
    ensure!(has("--leader-elect") == le, "leader election {le}: {args:?}");
    let lease_roles: Vec<_> = of_kind(docs, "Role")
        .into_iter()
        .filter(|r| r["rules"][0]["resources"] == json!(["leases"]))
        .collect();
    ensure!(lease_roles.len() == usize::from(le), "a Lease Role iff leader election");
    let leases = of_kind(docs, "Lease");
    ensure!(
        leases.len() == usize::from(le),
        "the Lease is part of the release iff leader election"
    );
    for l in &leases {
        ensure!(
            l["metadata"]["namespace"] == NAMESPACE && l["spec"].as_object().is_some_and(|s| s.is_empty()),
            "the Lease: release namespace, no holder set by the chart: {l}"
        );
    }
    for r in &lease_roles {
        ensure!(
            r["metadata"]["namespace"] == NAMESPACE,
            "Lease Role in the release namespace only"
        );
    }
    let pdb = replicas > 1 || values.pointer("/podDisruptionBudget/enabled") == Some(&Value::Bool(true));
    ensure!(
        of_kind(docs, "PodDisruptionBudget").len() == usize::from(pdb),
        "PDB iff replicas > 1 or enabled"
    );
    if replicas > 1 && values.pointer("/topologySpreadConstraints").is_none() {
        ensure!(
            pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname",
            "default spread by hostname"
        );
    }
    // Secrets: a ClusterRole only with secretsClusterWide, else Roles in the listed namespaces.
    let wide = values.pointer("/rbac/secretsClusterWide") == Some(&Value::Bool(true));
    let secret_rule = |r: &&Value| {
        r["rules"].as_array().is_some_and(|rules| {
            rules.iter().any(|rule| {
                rule["resources"]
                    .as_array()
                    .is_some_and(|res| res.iter().any(|x| x == "secrets"))
            })
        })
    };
    let cluster_secret_roles = of_kind(docs, "ClusterRole").into_iter().filter(secret_rule).count();
    ensure!(
        cluster_secret_roles == usize::from(wide),
        "cluster-wide Secret access iff rbac.secretsClusterWide"
    );
    let secret_role_namespaces: Vec<&str> = of_kind(docs, "Role")
        .into_iter()
        .filter(secret_rule)
        .filter_map(|r| r["metadata"]["namespace"].as_str())
        .collect();
    if !wide {
        ensure!(
            secret_role_namespaces.contains(&crn),
            "Secrets readable in the cluster resource namespace"
        );
        let listed: Vec<&str> = match values.pointer("/rbac/secretNamespaces") {
            Some(v) => v
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        for ns in &listed {
            ensure!(secret_role_namespaces.contains(ns), "Secrets readable in {ns}");
        }
        ensure!(
            secret_role_namespaces
                .iter()
                .all(|ns| *ns == crn || listed.contains(ns)),
            "no other namespace: {secret_role_namespaces:?}"
        );
    } else {
        ensure!(
            secret_role_namespaces.is_empty(),
            "no per-namespace Secret Roles with the ClusterRole"
        );
    }
    // Approver role and its subjects.
    let approver_on = values.pointer("/approver/enabled") != Some(&Value::Bool(false));
    let approver: Vec<_> = of_kind(docs, "ClusterRole")
        .into_iter()
        .filter(|r| r["rules"][0]["resources"] == json!(["signers"]))
        .collect();
    ensure!(
        approver.len() == usize::from(approver_on),
        "approver ClusterRole iff approver.enabled"
    );
    if let Some(role) = approver.first() {
        ensure!(role["rules"][0]["verbs"] == json!(["approve"]), "approve only");
        ensure!(
            role["rules"][0]["resourceNames"]
                == json!([
                    "ccmissuers.ccm-issuer.ccm.com/*",
                    "ccmclusterissuers.ccm-issuer.ccm.com/*"
                ]),
            "our signer names"
        );
    }
    // The controller's own rules never create/update/delete, and only patch what it must.
    for role in of_kind(docs, "ClusterRole").into_iter().chain(of_kind(docs, "Role")) {
        for rule in role["rules"].as_array().into_iter().flatten() {
            for verb in rule["verbs"].as_array().into_iter().flatten() {
                ensure!(
                    !matches!(
                        verb.as_str(),
                        Some("*" | "delete" | "deletecollection" | "update" | "escalate" | "bind" | "impersonate")
                    ),
                    "{} grants {verb}",
                    name(role)
                );
            }
            ensure!(
                rule["resources"].as_array().is_some_and(|r| r.iter().all(|x| x != "*")),
                "no wildcard resource in {}",
                name(role)
            );
        }
    }
    // ServiceMonitor only when asked.
    let sm = values.pointer("/metrics/serviceMonitor/enabled") == Some(&Value::Bool(true));
    ensure!(
        of_kind(docs, "ServiceMonitor").len() == usize::from(sm),
        "ServiceMonitor iff enabled"
    );
    // ServiceAccount.
    let sa_create = values.pointer("/serviceAccount/create") != Some(&Value::Bool(false));
    ensure!(
        of_kind(docs, "ServiceAccount").len() == usize::from(sa_create),
        "ServiceAccount iff serviceAccount.create"
    );
    ensure!(of_kind(docs, "CustomResourceDefinition").len() == 2, "both CRDs");
    Ok(())
}

/// The rendered command line must pass the real binary's argument parser: it gets as far as
/// reading the (missing) kubeconfig, never a usage error (exit 2).
fn check_args_parse(stack: &Stack, args: &[String]) -> Result<()> {
    let missing = stack.cp.workdir().join("no-such-kubeconfig");
    let out = Command::new(env!("CARGO_BIN_EXE_ccm-issuer"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&missing)
        .env_remove("KUBECONFIG")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(1) && stderr.contains("cannot read") && stderr.contains("no-such-kubeconfig"),
        "the controller rejected the chart's arguments {args:?} ({}): {stderr}",
        out.status
    );
    Ok(())
}

/// Bad values and the part of the message that must name the field.
const BAD_VALUES: &[(&str, &str, &str)] = &[
    ("zero-replicas", "replicaCount: 0\n", "'/replicaCount': minimum"),
    (
        "misspelt-key",
        "replicas: 2\n",
        "additional properties 'replicas' not allowed",
    ),
    ("short-digest", "image:\n  digest: sha256:abc\n", "'/image/digest'"),
    (
        "tag-in-repository",
        "image:\n  repository: ccm-issuer:latest\n",
        "'/image/repository'",
    ),
    (
        "pull-policy",
        "image:\n  pullPolicy: Sometimes\n",
        "'/image/pullPolicy': value must be one of",
    ),
    (
        "log-format",
        "controller:\n  logFormat: xml\n",
        "'/controller/logFormat': value must be one of 'text', 'json'",
    ),
    (
        "duration",
        "controller:\n  pcaTimeout: 30 seconds\n",
        "'/controller/pcaTimeout'",
    ),
    (
        "negative-qps",
        "controller:\n  pcaQPS: -1\n",
        "'/controller/pcaQPS': minimum",
    ),
    (
        "endpoint-scheme",
        "controller:\n  pcaEndpoints:\n    cn-north-4: ftp://pca.example\n",
        "'/controller/pcaEndpoints/cn-north-4'",
    ),
    (
        "secret-namespace",
        "rbac:\n  secretNamespaces: [Istio_System]\n",
        "'/rbac/secretNamespaces/0'",
    ),
    (
        "cluster-wide-type",
        "rbac:\n  secretsClusterWide: \"yes\"\n",
        "'/rbac/secretsClusterWide'",
    ),
    (
        "subject-without-namespace",
        "approver:\n  subjects:\n    - kind: ServiceAccount\n      name: cert-manager\n",
        "'/approver/subjects/0': missing property 'namespace'",
    ),
    (
        "subject-kind",
        "approver:\n  subjects:\n    - kind: Robot\n      name: r2\n",
        "'/approver/subjects/0/kind'",
    ),
    (
        "approver-without-subjects",
        "approver:\n  subjects: []\n",
        "'/approver/subjects': minItems",
    ),
    ("privileged-port", "healthPort: 80\n", "'/healthPort': minimum"),
    (
        "pdb-string",
        "podDisruptionBudget:\n  maxUnavailable: one\n",
        "'/podDisruptionBudget/maxUnavailable'",
    ),
    ("extra-arg-shape", "extraArgs: [\"-v\"]\n", "'/extraArgs/0'"),
    (
        "extra-arg-managed",
        "extraArgs: [\"--log-format=json\"]\n",
        "extraArgs: --log-format is set by the chart; use the value controller.logFormat",
    ),
    (
        "extra-arg-leader",
        "extraArgs: [\"--leader-elect\"]\n",
        "extraArgs: --leader-elect is set by the chart; use the value leaderElection.enabled",
    ),
    (
        "two-ca-bundles",
        "caBundle:\n  secretName: a\n  configMapName: b\n",
        "set caBundle.secretName or caBundle.configMapName, not both",
    ),
    (
        "no-service-account",
        "serviceAccount:\n  create: false\n",
        "serviceAccount.name is required when serviceAccount.create is false",
    ),
];

fn bad_values(stack: &Stack) -> Result<()> {
    let dir = stack.cp.workdir().join("bad-values");
    std::fs::create_dir_all(&dir)?;
    let mut failures = Vec::new();
    for (label, yaml, expect) in BAD_VALUES {
        let file = dir.join(format!("{label}.yaml"));
        std::fs::write(&file, yaml)?;
        let (ok, _, stderr) = render_with(stack, &[&file], &[])?;
        let message = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("--debug"))
            .collect::<Vec<_>>()
            .join(" | ");
        if ok {
            failures.push(format!("{label}: accepted"));
        } else if !stderr.contains(expect) {
            failures.push(format!("{label}: message lacks {expect:?}: {message}"));
        } else {
            eprintln!("[chart] rejected {label}: {message}");
        }
    }
    ensure!(failures.is_empty(), "bad values:\n{}", failures.join("\n"));
    Ok(())
}

// --- server-side dry run -----------------------------------------------------------------------

/// The Prometheus Operator's ServiceMonitor CRD is not part of the control plane: install a
/// minimal stand-in that declares exactly the fields the chart uses, with the operator's
/// names and types, and no `x-kubernetes-preserve-unknown-fields` — so a misspelt field is
/// still rejected by the strict server-side apply.
const SERVICE_MONITOR_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          spec:
            type: object
            required: [selector]
            properties:
              jobLabel: {type: string}
              namespaceSelector:
                type: object
                properties:
                  any: {type: boolean}
                  matchNames: {type: array, items: {type: string}}
              selector:
                type: object
                properties:
                  matchLabels: {type: object, additionalProperties: {type: string}}
              endpoints:
                type: array
                items:
                  type: object
                  properties:
                    port: {type: string}
                    path: {type: string}
                    interval: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                    scrapeTimeout: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                    honorLabels: {type: boolean}
"#;

async fn discovery_with(client: &Client, gvks: &[GroupVersionKind]) -> Result<Discovery> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = Discovery::new(client.clone()).run_aggregated().await?;
        if gvks.iter().all(|g| d.resolve_gvk(g).is_some()) {
            return Ok(d);
        }
        if Instant::now() > deadline {
            bail!("the apiserver does not serve {gvks:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Server-side apply with `dryRun=All` and strict field validation.
async fn dry_run_apply(client: &Client, discovery: &Discovery, doc: &Value) -> Result<()> {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind(doc));
    let (ar, caps) = discovery
        .resolve_gvk(&gvk)
        .with_context(|| format!("{gvk:?} not served"))?;
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Cluster => Api::all_with(client.clone(), &ar),
        Scope::Namespaced => {
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .with_context(|| format!("{} {} has no namespace", kind(doc), name(doc)))?;
            Api::namespaced_with(client.clone(), ns, &ar)
        }
    };
    let pp = PatchParams::apply("ccm-issuer-chart-check")
        .force()
        .dry_run()
        .validation(ValidationDirective::Strict);
    api.patch(name(doc), &pp, &Patch::Apply(doc)).await?;
    Ok(())
}

/// The Deployment's pod template as a Pod (what the ReplicaSet would create).
fn pod_of(deploy: &Value) -> Result<Pod> {
    let template = &deploy["spec"]["template"];
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{}-dry-run", name(deploy)),
            "namespace": deploy["metadata"]["namespace"],
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
        },
        "spec": template["spec"],
    }))?)
}

fn dry_run(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let admin = stack.client().await?;
        // Preconditions created for real: the namespaces the value sets name (the release
        // namespace enforcing PodSecurity "restricted"), the PriorityClass of custom-values,
        // and the ServiceMonitor stand-in CRD.
        namespaces(stack, &[NAMESPACE], &[("pod-security.kubernetes.io/enforce", "restricted"), ("pod-security.kubernetes.io/enforce-version", "latest")]).await?;
        namespaces(stack, &["istio-system", "team-a", "team-b", "pca-credentials"], &[]).await?;
        stack
            .cp
            .apply_yaml("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: ccm-issuer-critical}\nvalue: 1000000\ndescription: ccm-issuer chart check\n")
            .await?;
        stack.cp.apply_yaml(SERVICE_MONITOR_CRD).await?;
        let discovery = discovery_with(&admin, &[GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor")]).await?;

        // Negative control: PodSecurity really enforces "restricted" in the release namespace.
        let pods: Api<Pod> = Api::namespaced(admin.clone(), NAMESPACE);
        let dry = PostParams { dry_run: true, field_manager: None };
        let plain: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))?;
        match pods.create(&dry, &plain).await {
            Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("PodSecurity") => {}
            other => bail!("PodSecurity restricted must refuse a plain pod, got {other:?}"),
        }

        for set in value_sets()? {
            let n = set_name(&set);
            let docs = render(stack, &[&set], &[])?;
            let mut failures = Vec::new();
            for doc in &docs {
                if let Err(e) = dry_run_apply(&admin, &discovery, doc).await {
                    failures.push(format!("{} {}: {e:#}", kind(doc), name(doc)));
                }
            }
            // The pod the Deployment would create, under PodSecurity "restricted".
            let pod = pod_of(deployment(&docs)?)?;
            if let Err(e) = pods.create(&dry, &pod).await {
                failures.push(format!("Pod from the Deployment template: {e:#}"));
            }
            ensure!(failures.is_empty(), "value set {n}: the apiserver refused:\n{}", failures.join("\n"));
            eprintln!("[chart] dry run {n}: {} manifests + the Deployment's Pod (PodSecurity restricted) accepted", docs.len());
        }
        Ok(())
    })
}

/// `helm install --dry-run=server` against the control plane: Helm's own install path
/// (discovery, schema validation) and the NOTES the user reads after installing.
fn install_notes(stack: &Stack) -> Result<()> {
    for set in value_sets()? {
        let n = set_name(&set);
        let values: Value = serde_saphyr::from_str(&std::fs::read_to_string(&set)?)?;
        let mut cmd = helm(stack);
        cmd.args(["install", RELEASE])
            .arg(chart_dir())
            .args(["--namespace", NAMESPACE, "--dry-run=server", "--kubeconfig"])
            .arg(stack.cp.kubeconfig_path())
            .arg("--values")
            .arg(&set);
        let (ok, stdout, stderr) = output(&mut cmd)?;
        ensure!(ok, "helm install --dry-run=server {n}: {stderr}");
        let notes = stdout
            .split("NOTES:")
            .nth(1)
            .with_context(|| format!("{n}: no NOTES"))?;
        let crn = values
            .pointer("/clusterResourceNamespace")
            .and_then(Value::as_str)
            .unwrap_or(NAMESPACE);
        for needle in [
            format!("kubectl -n {crn} create secret generic ccm-secret"),
            "kind: CCMClusterIssuer".to_owned(),
            "kind: Certificate".to_owned(),
            "kubectl get ccmclusterissuers,ccmissuers -A".to_owned(),
            "ccm-issuer pca describe-ca".to_owned(),
        ] {
            ensure!(notes.contains(&needle), "{n}: NOTES lack {needle:?}:\n{notes}");
        }
        let approver_off = values.pointer("/approver/enabled") == Some(&Value::Bool(false));
        ensure!(
            notes.contains("WARNING: approver.enabled=false") == approver_off,
            "{n}: approver warning"
        );
        if n == "defaults" {
            eprintln!("[chart] NOTES (defaults):{notes}");
        } else {
            eprintln!("[chart] helm install --dry-run=server {n}: ok, NOTES checked");
        }
    }
    Ok(())
}

// --- RBAC proof ------------------------------------------------------------------------------

/// Applies the ServiceAccount and RBAC objects of a render for real; returns the
/// ServiceAccount name the Deployment uses.
async fn apply_chart_rbac(stack: &Stack, docs: &[Value]) -> Result<String> {
    let rbac: Vec<&Value> = docs.iter().filter(|d| is_rbac_or_sa(d)).collect();
    stack.cp.apply_yaml(&to_yaml_stream(&rbac)?).await?;
    let sa = deployment(docs)?["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .context("serviceAccountName")?
        .to_owned();
    eprintln!(
        "[chart] applied the chart's RBAC: {}",
        rbac.iter()
            .map(|d| match d["metadata"]["namespace"].as_str() {
                Some(ns) => format!("{} {ns}/{}", kind(d), name(d)),
                None => format!("{} {}", kind(d), name(d)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(sa)
}

fn rbac_proof(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let admin = stack.client().await?;
        namespaces(stack, &["istio-system", "team-a", "team-b", "team-c", "unrelated"], &[]).await?;
        // The chart as the README installs it (defaults + istio-system for the Istio practice),
        // released into the cluster resource namespace.
        let docs = render(stack, &[], &["rbac.secretNamespaces={istio-system}"])?;
        let args = args_of(deployment(&docs)?);
        ensure!(
            args.contains(&format!("--cluster-resource-namespace={CLUSTER_RESOURCE_NAMESPACE}")),
            "the fixture runs the controller with the chart's --cluster-resource-namespace: {args:?}"
        );
        let sa = apply_chart_rbac(stack, &docs).await?;

        // A token for the chart's ServiceAccount from the TokenRequest API, as in a pod.
        let token = service_account_token(&admin, NAMESPACE, &sa).await?;
        let kubeconfig = stack.cp.kubeconfig_for_token("chart-service-account", &token)?;
        let sa_client = stack.cp.client_for_token("chart-service-account-direct", &token).await?;
        let review = Api::<SelfSubjectReview>::all(sa_client.clone())
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await?;
        let username = review.status.and_then(|s| s.user_info).and_then(|u| u.username).unwrap_or_default();
        ensure!(username == format!("system:serviceaccount:{NAMESPACE}:{sa}"), "token identity {username}");
        eprintln!("[chart] controller identity: {username}");

        stack.use_controller_kubeconfig(kubeconfig);
        stack.start_controller().await.context("the controller with only the chart's RBAC")?;
        let client = admin.clone();

        // 1. Namespaced CCMIssuer + Secret in istio-system (the talk's mesh CA), verbatim.
        let ns = "istio-system";
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        stack.apply_in(ns, &example("mesh-ca/02-ccmissuer.yaml")?).await?;
        issuer_reason(stack, ns, "ccmissuer-mesh", "Verified").await?;
        stack.apply_in(ns, &example("mesh-ca/03-certificate-mesh-ca.yaml")?).await?;
        certificate_ready(&client, ns, "mesh-ca").await?;
        let cr = requests_of(&client, ns, "mesh-ca").await?.pop().context("request")?;
        ensure!(cr.ready_reason() == Some("Issued"), "status patched: {:?}", cr.ready_reason());
        ensure!(cr.annotations().contains_key(CERTIFICATE_ID_ANNOTATION), "PCA certificate id annotation patched on the request");
        let events: Api<Event> = Api::namespaced(client.clone(), ns);
        let ours = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.reporting_controller.as_deref() == Some("ccm-issuer"))
            .count();
        ensure!(ours > 0, "the controller recorded events with the chart's RBAC");
        eprintln!("[chart] CCMIssuer istio-system/ccmissuer-mesh issued mesh-ca ({ours} events recorded)");

        // 2. CCMClusterIssuer, Secret in the cluster resource namespace, two other namespaces.
        // The example's Secret has placeholder keys first: the issuer fails, then the real
        // keys are picked up through the Secret watch (list/watch by name under the Role).
        stack.apply_in(CLUSTER_RESOURCE_NAMESPACE, &example("cluster-issuer/01-ccmclusterissuer.yaml")?).await?;
        let issuers: Api<CCMClusterIssuer> = Api::all(client.clone());
        let ready = async |want: &str| {
            eventually(&format!("CCMClusterIssuer ccm-pca Ready={want}"), Duration::from_secs(60), async || {
                let i = issuers.get("ccm-pca").await?;
                Ok(i.status.and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready" && c.status == want)))
            })
            .await
        };
        let failing = ready("False").await?;
        eprintln!("[chart] ccm-pca with placeholder keys: {} ({})", failing.reason, failing.message);
        let fixed_at = Instant::now();
        stack.credentials_secret(CLUSTER_RESOURCE_NAMESPACE, "ccm-cluster-secret", SK).await?;
        ready("True").await?;
        let took = fixed_at.elapsed();
        ensure!(took < Duration::from_secs(45), "re-checked through the Secret watch, not the 1m periodic re-check ({took:?})");
        stack.apply_in("", &example("cluster-issuer/02-certificates.yaml")?).await?;
        certificate_ready(&client, "team-a", "web").await?;
        certificate_ready(&client, "team-b", "api").await?;
        eprintln!("[chart] CCMClusterIssuer ccm-pca issued team-a/web and team-b/api (fixed keys seen after {took:.1?})");

        // 3. The controller's identity cannot read Secrets elsewhere.
        stack.credentials_secret("unrelated", "not-yours", "unrelated-secret-value").await?;
        let forbidden = |r: Result<_, kube::Error>| matches!(r, Err(kube::Error::Api(e)) if e.code == 403);
        ensure!(forbidden(Api::<Secret>::namespaced(sa_client.clone(), "unrelated").get("not-yours").await.map(|_| ())), "GET unrelated/not-yours must be 403");
        ensure!(forbidden(Api::<Secret>::namespaced(sa_client.clone(), "unrelated").list(&ListParams::default()).await.map(|_| ())), "LIST in unrelated must be 403");
        ensure!(forbidden(Api::<Secret>::all(sa_client.clone()).list(&ListParams::default()).await.map(|_| ())), "cluster-wide LIST must be 403");
        ensure!(forbidden(Api::<Secret>::namespaced(sa_client.clone(), "kube-system").list(&ListParams::default()).await.map(|_| ())), "LIST in kube-system must be 403");
        Api::<Secret>::namespaced(sa_client.clone(), "istio-system").get("ccm-secret").await.context("positive control: the Role in istio-system")?;
        eprintln!("[chart] as {username}: GET unrelated/not-yours → 403, LIST secrets (unrelated, kube-system, all) → 403, GET istio-system/ccm-secret → 200");

        // 4. A namespaced CCMIssuer outside rbac.secretNamespaces: SecretForbidden.
        stack.credentials_secret("team-c", "ccm-secret", SK).await?;
        stack
            .apply_in("team-c", &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n"))
            .await?;
        let (status, message) = issuer_reason(stack, "team-c", "pca", "SecretForbidden").await?;
        ensure!(status == "False" && message.contains("rbac.secretNamespaces"), "{message}");
        eprintln!("[chart] CCMIssuer team-c/pca: Ready=False SecretForbidden: {message}");

        // 5. SubjectAccessReviews: cert-manager may approve our signers (and only ours); the
        // controller may not approve itself, and has nothing it does not use.
        let cert_manager = sa_user("cert-manager", "cert-manager");
        let controller = sa_user(NAMESPACE, &sa);
        let cm = "cert-manager.io";
        let checks: Vec<SarCheck> = vec![
            ("cert-manager approves CCMIssuer signers", &cert_manager, "approve", cm, "signers", None, Some("ccmissuers.ccm-issuer.ccm.com/*"), true),
            ("cert-manager approves CCMClusterIssuer signers", &cert_manager, "approve", cm, "signers", None, Some("ccmclusterissuers.ccm-issuer.ccm.com/*"), true),
            ("cert-manager may not approve another group's signers", &cert_manager, "approve", cm, "signers", None, Some("awspcaissuers.awspca.cert-manager.io/*"), false),
            ("cert-manager may not approve cert-manager's own signers through us", &cert_manager, "approve", cm, "signers", None, Some("issuers.cert-manager.io/*"), false),
            ("controller may not approve (no self-approval)", &controller, "approve", cm, "signers", None, Some("ccmissuers.ccm-issuer.ccm.com/*"), false),
            ("controller patches requests (annotations)", &controller, "patch", cm, "certificaterequests", Some("team-a"), None, true),
            ("controller patches request status", &controller, "patch", cm, "certificaterequests/status", Some("team-a"), None, true),
            ("controller may not create requests", &controller, "create", cm, "certificaterequests", Some("team-a"), None, false),
            ("controller may not update requests", &controller, "update", cm, "certificaterequests", Some("team-a"), None, false),
            ("controller may not delete requests", &controller, "delete", cm, "certificaterequests", Some("team-a"), None, false),
            ("controller may not change issuer specs", &controller, "patch", "ccm-issuer.ccm.com", "ccmissuers", Some("team-a"), None, false),
            ("controller creates events", &controller, "create", "events.k8s.io", "events", Some("team-a"), None, true),
            ("controller reads Secrets in istio-system", &controller, "get", "", "secrets", Some("istio-system"), None, true),
            ("controller watches Secrets in the cluster resource namespace", &controller, "watch", "", "secrets", Some(NAMESPACE), None, true),
            ("controller may not write Secrets", &controller, "update", "", "secrets", Some("istio-system"), None, false),
            ("controller may not create Secrets", &controller, "create", "", "secrets", Some(NAMESPACE), None, false),
            ("controller may not read Secrets in team-c", &controller, "get", "", "secrets", Some("team-c"), None, false),
            ("controller may not list Secrets cluster-wide", &controller, "list", "", "secrets", None, None, false),
            ("no Lease access without leader election", &controller, "get", "coordination.k8s.io", "leases", Some(NAMESPACE), None, false),
        ];
        let mut wrong = Vec::new();
        for (what, who, verb, group, resource, namespace, name, want) in &checks {
            let got = may(&admin, who, verb, group, resource, *namespace, *name).await?;
            eprintln!("[chart] SAR {what}: {}", if got { "allowed" } else { "denied" });
            if got != *want {
                wrong.push(format!("{what}: expected {}, got {}", if *want { "allowed" } else { "denied" }, if got { "allowed" } else { "denied" }));
            }
        }
        ensure!(wrong.is_empty(), "SubjectAccessReviews:\n{}", wrong.join("\n"));
        let refused = unexpected_forbidden(stack)?;
        ensure!(refused.is_empty(), "the controller was refused something else:\n{}", refused.join("\n"));
        Ok(())
    })
}

/// Leader election with the chart's rendered command line, verbatim but for the loopback
/// health address, the kubeconfig and the mock's endpoints: the Lease Role is enough.
fn leader_election(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let admin = stack.client().await?;
        let docs = render(stack, &[], &["leaderElection.enabled=true"])?;
        let sa = apply_chart_rbac(stack, &docs).await?;
        let deploy = deployment(&docs)?;
        let rendered = args_of(deploy);
        let lease_name = "ccm-issuer-leader";
        ensure!(rendered.iter().any(|a| a == "--leader-elect"), "{rendered:?}");
        ensure!(rendered.contains(&format!("--leader-election-namespace={NAMESPACE}")) && rendered.contains(&format!("--leader-election-id={lease_name}")), "{rendered:?}");
        let rust_log = container(deploy)["env"]
            .as_array()
            .and_then(|env| env.iter().find(|e| e["name"] == "RUST_LOG"))
            .and_then(|e| e["value"].as_str())
            .unwrap_or("info")
            .to_owned();

        // Only one controller at a time: stop the fixture's.
        if stack.controller_running() {
            let status = stack.stop_controller(Signal::Term).await?;
            ensure!(status.success(), "fixture controller stopped cleanly: {status}");
        }
        let token = service_account_token(&admin, NAMESPACE, &sa).await?;
        let kubeconfig = stack.cp.kubeconfig_for_token("chart-service-account-le", &token)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let pod_name = "ccm-issuer-5d9c7b-rbac0";
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccm-issuer"));
        cmd.args(rendered.iter().filter(|a| !a.starts_with("--health-bind-address=")))
            .arg(format!("--health-bind-address=127.0.0.1:{port}"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--pca-endpoint", &format!("cn-north-4={}", stack.mock_url)])
            .args(["--pca-endpoint", &format!("ap-southeast-3={}", stack.mock_url)])
            // IAM is not moved by --pca-endpoint (as in the Huawei SDKs): point it at the mock too.
            .args(["--iam-endpoint", &stack.mock_url])
            .arg("--ca-bundle")
            .arg(&stack.mock_ca_file)
            .env("POD_NAMESPACE", NAMESPACE)
            .env("POD_NAME", pod_name)
            .env("RUST_LOG", rust_log)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy");
        let process = stack.cp.spawn("ccm-issuer-chart-args", cmd)?;
        let leases: Api<Lease> = Api::namespaced(admin.clone(), NAMESPACE);
        let result = async {
            let holder = eventually("the Lease held by the pod", Duration::from_secs(60), async || {
                ensure!(process.is_running(), "the controller exited:\n{}", process.log_tail(40));
                Ok(leases
                    .get_opt(lease_name)
                    .await?
                    .and_then(|l| l.spec)
                    .and_then(|s| s.holder_identity)
                    .filter(|h| h == pod_name))
            })
            .await?;
            eprintln!("[chart] Lease {NAMESPACE}/{lease_name} held by {holder}");
            stack
                .apply_in("team-a", "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: after-election}\nspec: {secretName: after-election-tls, commonName: after-election.team-a.example, dnsNames: [after-election.team-a.example], issuerRef: {group: ccm-issuer.ccm.com, kind: CCMClusterIssuer, name: ccm-pca}}\n")
                .await?;
            certificate_ready(&admin, "team-a", "after-election").await?;
            let controller = sa_user(NAMESPACE, &sa);
            for (verb, name, want) in [("get", Some(lease_name), true), ("patch", Some(lease_name), true), ("update", Some(lease_name), false), ("create", None, true), ("get", Some("someone-elses-lease"), false), ("delete", Some(lease_name), false), ("list", None, false)] {
                let got = may(&admin, &controller, verb, "coordination.k8s.io", "leases", Some(NAMESPACE), name).await?;
                ensure!(got == want, "lease {verb} {name:?}: expected {want}, got {got}");
            }
            ensure!(!may(&admin, &controller, "get", "coordination.k8s.io", "leases", Some("kube-system"), Some(lease_name)).await?, "no Lease access outside the release namespace");
            anyhow::Ok(())
        }
        .await;
        let status = process.terminate(Duration::from_secs(10)).await?;
        result?;
        ensure!(status.success(), "SIGTERM is a clean exit: {status}");
        let refused = unexpected_forbidden(stack)?;
        ensure!(refused.is_empty(), "the controller was refused something else:\n{}", refused.join("\n"));
        eprintln!("[chart] the rendered command line ran as leader and issued team-a/after-election");
        Ok(())
    })
}
