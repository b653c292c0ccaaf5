//! Hostile inputs through the controller on the real control plane: CSRs a tenant could put in
//! a CertificateRequest, and answers a broken or hostile PCA (or something in between) could
//! give. Each ends with a clear reason naming the problem — no panic, no stall, never a second
//! issue call.

mod support;

use std::{process::ExitCode, time::Duration};

use anyhow::{Context as _, Result, ensure};
use base64::Engine as _;
use ccm_issuer::cert_manager::CertificateRequest;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams},
};
use serde_json::json;
use support::*;

fn main() -> ExitCode {
    main_with(
        StackOptions {
            // Unusable answers are retried within the budget, then reported: keep it short.
            controller_args: vec!["--max-retry-duration=6s".into()],
            ..StackOptions::default()
        },
        vec![
            ("hostile CSRs fail naming the problem, with no PCA call", hostile_csrs),
            (
                "hostile export answers fail naming the problem after one issue",
                hostile_exports,
            ),
            (
                "hostile issue answers are recovered, never issued twice",
                hostile_issue_answers,
            ),
            (
                "hostile list answers keep recovery waiting, never issue twice",
                hostile_lists,
            ),
        ],
    )
}

const NS: &str = "hostile";

async fn setup(stack: &Stack) -> Result<()> {
    if issuer_condition(stack, NS, "pca", "Verified").await.is_ok() {
        return Ok(());
    }
    stack.credentials_secret(NS, "ccm-secret", SK).await?;
    stack
        .apply_in(NS, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n"))
        .await?;
    issuer_condition(stack, NS, "pca", "Verified").await.map(|_| ())
}

fn requests(client: &kube::Client) -> Api<CertificateRequest> {
    Api::namespaced(client.clone(), NS)
}

/// The controller is alive and says so.
async fn alive(stack: &Stack) -> Result<()> {
    ensure!(stack.controller_running(), "the controller exited");
    let livez = reqwest::get(format!("http://127.0.0.1:{}/livez", stack.health_port)).await?;
    ensure!(livez.status().is_success(), "/livez: {}", livez.text().await?);
    Ok(())
}

/// Waits until a request's Ready condition has `reason`; returns the message.
async fn ends(client: &kube::Client, name: &str, reason: &str, timeout: Duration) -> Result<String> {
    let api = requests(client);
    eventually(&format!("{name} {reason}"), timeout, async || {
        let cr = api.get(name).await?;
        Ok(cr
            .condition("Ready")
            .filter(|c| c.reason.as_deref() == Some(reason))
            .map(|c| c.message.clone().unwrap_or_default()))
    })
    .await
}

fn hostile_csrs(stack: &Stack) -> Result<()> {
    let cases = ccm_e2e::hostile::csrs()?;
    ensure!(cases.len() >= 30, "{} hostile CSRs", cases.len());
    stack.rt.block_on(async {
        setup(stack).await?;
        let client = stack.client().await?;
        let issues_before = calls(stack, "CreateCertificateByCsr").await;
        let mut refused_by_apiserver = Vec::new();
        for case in &cases {
            let request = base64::engine::general_purpose::STANDARD.encode(&case.request);
            let cr = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                "metadata": {"name": format!("csr-{}", case.name), "namespace": NS},
                "spec": {"request": request, "isCA": false, "usages": ["digital signature", "key encipherment"],
                         "issuerRef": {"group": "ccm-issuer.ccm.com", "kind": "CCMIssuer", "name": "pca"}}});
            // Some inputs never get past the apiserver's own schema (e.g. an empty request).
            if let Err(e) = stack.apply_in(NS, &serde_json::to_string(&cr)?).await {
                let message = format!("{e:#}");
                ensure!(
                    message.contains("spec.request"),
                    "{}: refused for another reason: {message}",
                    case.name
                );
                eprintln!("[hostile] {:<28} refused by the apiserver: spec.request", case.name);
                refused_by_apiserver.push(case.name);
            }
        }
        ensure!(
            refused_by_apiserver.len() <= 2,
            "the apiserver refused {refused_by_apiserver:?}"
        );
        for case in cases.iter().filter(|c| !refused_by_apiserver.contains(&c.name)) {
            let name = format!("csr-{}", case.name);
            let message = ends(&client, &name, "Failed", Duration::from_secs(60)).await?;
            ensure!(
                message.contains(case.problem),
                "{name}: {message:?} does not name {:?}",
                case.problem
            );
            let cr = requests(&client).get(&name).await?;
            ensure!(cr.is_true("InvalidRequest"), "{name}: InvalidRequest=True");
            eprintln!(
                "[hostile] {:<28} Failed: {}",
                case.name,
                message.chars().take(150).collect::<String>()
            );
        }
        ensure!(
            calls(stack, "CreateCertificateByCsr").await == issues_before,
            "no hostile CSR reached the PCA"
        );
        alive(stack).await
    })
}

/// One hostile answer: a fault plan, a Certificate, the outcome its request must reach.
struct AnswerCase {
    name: &'static str,
    hostile: serde_json::Value,
    is_ca: bool,
    outcome: &'static str,
    names: &'static [&'static str],
}

fn answer_cases() -> Vec<AnswerCase> {
    let export = |mode: &str| json!({"mode": mode, "operations": ["ExportCertificate"]});
    let export_ca = |mode: &str| json!({"mode": mode, "operations": ["ExportCertificateAuthorityCertificate"]});
    vec![
        AnswerCase {
            name: "export-wrong-key",
            hostile: export("wrong_key"),
            is_ca: false,
            outcome: "Failed",
            names: &["public key is not the CSR's"],
        },
        AnswerCase {
            name: "export-unlinked-chain",
            hostile: export("unlinked_chain"),
            is_ca: false,
            outcome: "Failed",
            names: &["chain"],
        },
        AnswerCase {
            name: "export-chain-loop",
            hostile: export("chain_loop"),
            is_ca: false,
            outcome: "Failed",
            names: &["chain"],
        },
        AnswerCase {
            name: "export-100-certificates",
            hostile: json!({"mode": "huge_chain", "count": 100, "operations": ["ExportCertificate"]}),
            is_ca: false,
            outcome: "Failed",
            names: &["too many"],
        },
        AnswerCase {
            name: "export-10000-certificates",
            hostile: export("huge_chain"),
            is_ca: false,
            outcome: "Failed",
            names: &["larger than"],
        },
        AnswerCase {
            name: "export-not-utf8",
            hostile: export("non_utf8"),
            is_ca: false,
            outcome: "Failed",
            names: &["cannot be used"],
        },
        AnswerCase {
            name: "export-nulls",
            hostile: export("nulls"),
            is_ca: false,
            outcome: "Failed",
            names: &["certificate"],
        },
        AnswerCase {
            name: "export-wrong-types",
            hostile: export("wrong_types"),
            is_ca: false,
            outcome: "Failed",
            names: &["cannot be used"],
        },
        AnswerCase {
            name: "export-4mib-body",
            hostile: export("huge_body"),
            is_ca: false,
            outcome: "Failed",
            names: &["larger than"],
        },
        AnswerCase {
            name: "export-redirect",
            hostile: export("redirect"),
            is_ca: false,
            outcome: "Failed",
            names: &["302"],
        },
        AnswerCase {
            name: "ca-export-wrong-key",
            hostile: export_ca("wrong_key"),
            is_ca: true,
            outcome: "Failed",
            names: &["public key is not the CSR's"],
        },
        AnswerCase {
            name: "ca-export-10000-certificates",
            hostile: export_ca("huge_chain"),
            is_ca: true,
            outcome: "Failed",
            names: &["larger than"],
        },
        AnswerCase {
            name: "ca-export-chain-loop",
            hostile: export_ca("chain_loop"),
            is_ca: true,
            outcome: "Failed",
            names: &["chain"],
        },
        AnswerCase {
            name: "ca-export-nulls",
            hostile: export_ca("nulls"),
            is_ca: true,
            outcome: "Failed",
            names: &["certificate"],
        },
    ]
}

fn certificate_yaml(name: &str, is_ca: bool) -> String {
    if is_ca {
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}}}\nspec: {{secretName: {name}, isCA: true, commonName: {name}, issuerRef: {{group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}}}}\n"
        )
    } else {
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}}}\nspec: {{secretName: {name}, commonName: {name}.hostile.example, dnsNames: [{name}.hostile.example], issuerRef: {{group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}}}}\n"
        )
    }
}

/// The request cert-manager made for a Certificate.
async fn request_of(client: &kube::Client, certificate: &str) -> Result<String> {
    let found = eventually(
        &format!("a request for {certificate}"),
        Duration::from_secs(30),
        async || Ok(requests_of(client, NS, certificate).await?.pop()),
    )
    .await?;
    Ok(found.name_any())
}

/// Creates a CertificateRequest named `name` for a fresh key, directly rather than through a
/// Certificate: for a Certificate, cert-manager's trigger controller can see the Secret still
/// missing just after the first request was issued and make a second one, then garbage-collect
/// the first (seen: `issue-not-utf8-2` created 10 ms after `-1` was Issued), which these
/// scenarios would count as a second issue call although the issuer made one per request.
async fn leaf_request(stack: &Stack, name: &str) -> Result<String> {
    let issuer = json!({"group": "ccm-issuer.ccm.com", "kind": "CCMIssuer", "name": "pca"});
    stack
        .apply_in(NS, &certificate_request_json(name, &issuer, false)?)
        .await?;
    Ok(name.to_owned())
}

async fn set_faults(stack: &Stack, plan: serde_json::Value) -> Result<()> {
    stack
        .mock
        .lock()
        .await
        .set_faults(serde_json::from_value(plan)?)
        .map_err(anyhow::Error::msg)
}

async fn run_case(stack: &Stack, name: &str, hostile: serde_json::Value, is_ca: bool, outcome: &str) -> Result<String> {
    let client = stack.client().await?;
    let issues_before = calls(stack, "CreateCertificateByCsr").await;
    set_faults(stack, json!({"hostile": hostile})).await?;
    stack.apply_in(NS, &certificate_yaml(name, is_ca)).await?;
    let request = request_of(&client, name).await?;
    let message = ends(&client, &request, outcome, Duration::from_secs(90)).await;
    set_faults(stack, json!({})).await?;
    let message = message?;
    let issues = calls(stack, "CreateCertificateByCsr").await - issues_before;
    ensure!(issues == 1, "{name}: {issues} issue calls");
    certificates(&client, NS).delete(name, &DeleteParams::default()).await?;
    alive(stack).await?;
    Ok(message)
}

fn hostile_exports(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        setup(stack).await?;
        for case in answer_cases() {
            let message = run_case(stack, case.name, case.hostile.clone(), case.is_ca, case.outcome).await?;
            for needle in case.names {
                ensure!(
                    message.contains(needle),
                    "{}: {message:?} does not name {needle:?}",
                    case.name
                );
            }
            eprintln!(
                "[hostile] {:<30} {}: {}",
                case.name,
                case.outcome,
                message.chars().take(160).collect::<String>()
            );
        }
        Ok(())
    })
}

/// The issue call's answer is unusable after the PCA issued: the outcome is unknown, recovery
/// finds the certificate by listing, and nothing is issued twice.
fn hostile_issue_answers(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        setup(stack).await?;
        for (name, mode) in [
            ("issue-huge-id", "huge_certificate_id"),
            ("issue-not-utf8", "non_utf8"),
            ("issue-nulls", "nulls"),
            ("issue-wrong-types", "wrong_types"),
            ("issue-redirect", "redirect"),
        ] {
            let client = stack.client().await?;
            let issues_before = calls(stack, "CreateCertificateByCsr").await;
            set_faults(
                stack,
                json!({"hostile": {"mode": mode, "operations": ["CreateCertificateByCsr"]}}),
            )
            .await?;
            let request = leaf_request(stack, name).await?;
            // The first answer was unusable: the request waits for the outcome; the fault ends.
            let pending = ends(&client, &request, "Pending", Duration::from_secs(30)).await?;
            set_faults(stack, json!({})).await?;
            ensure!(pending.contains("unknown"), "{name}: {pending:?}");
            let done = ends(&client, &request, "Issued", Duration::from_secs(120)).await?;
            let issues = calls(stack, "CreateCertificateByCsr").await - issues_before;
            let cr = requests(&client).get(&request).await?;
            let key = request_key_hash(&cr)?;
            ensure!(
                issues == 1 && issued_for(stack, &key).await == 1,
                "{name}: {issues} issue calls"
            );
            requests(&client).delete(&request, &DeleteParams::default()).await?;
            alive(stack).await?;
            eprintln!(
                "[hostile] {name:<30} Pending ({}) → Issued once: {}",
                pending.chars().take(90).collect::<String>(),
                done.chars().take(80).collect::<String>()
            );
        }
        Ok(())
    })
}

/// Recovery's list answers are unusable: the request keeps waiting with a message naming the
/// problem (the outcome cannot be decided), and is issued once the list answers again.
fn hostile_lists(stack: &Stack) -> Result<()> {
    stack
        .rt
        .block_on(async {
            setup(stack).await?;
            for (name, mode) in [
                ("list-nulls", "nulls"),
                ("list-4mib-body", "huge_body"),
                ("list-not-utf8", "non_utf8"),
            ] {
                let client = stack.client().await?;
                let issues_before = calls(stack, "CreateCertificateByCsr").await;
                set_faults(
                    stack,
                    json!({"drop_after_issue": 1, "hostile": {"mode": mode, "operations": ["ListCertificate"]}}),
                )
                .await?;
                let request = leaf_request(stack, name).await?;
                // Never decided on a broken list, however long the budget has run.
                let waiting = eventually(
                    &format!("{name} waiting on the list"),
                    Duration::from_secs(60),
                    async || {
                        let cr = requests(&client).get(&request).await?;
                        Ok(cr
                            .condition("Ready")
                            .and_then(|c| c.message.clone())
                            .filter(|m| m.contains("ListCertificate")))
                    },
                )
                .await?;
                tokio::time::sleep(Duration::from_secs(10)).await;
                let cr = requests(&client).get(&request).await?;
                ensure!(cr.ready_reason() == Some("Pending"), "{name}: {:?}", cr.ready_reason());
                set_faults(stack, json!({})).await?;
                ends(&client, &request, "Issued", Duration::from_secs(120)).await?;
                let issues = calls(stack, "CreateCertificateByCsr").await - issues_before;
                ensure!(issues == 1, "{name}: {issues} issue calls");
                requests(&client).delete(&request, &DeleteParams::default()).await?;
                alive(stack).await?;
                eprintln!(
                    "[hostile] {name:<30} Pending: {}",
                    waiting.chars().take(150).collect::<String>()
                );
            }
            let all = requests(&stack.client().await?).list(&ListParams::default()).await?;
            eprintln!("[hostile] {} requests in the namespace", all.items.len());
            Ok(())
        })
        .context("hostile list answers")
}
