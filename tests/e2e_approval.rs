//! Approval on the real control plane, with cert-manager's auto-approver switched off so the
//! test itself decides (issue #4 scenario 5): an unapproved request is never sent to the PCA,
//! a denied one ends Ready=False/Denied with no PCA call, an approved one is issued.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ccm_e2e::CertManagerOptions;
use ccm_issuer::cert_manager::CertificateRequest;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;
use support::*;

fn main() -> std::process::ExitCode {
    main_with(
        StackOptions {
            cert_manager: CertManagerOptions::without_approver(),
            ..StackOptions::default()
        },
        vec![
            (
                "unapproved_request_is_not_sent_until_approved",
                unapproved_then_approved,
            ),
            ("denied_request_ends_denied_without_pca_call", denied),
        ],
    )
}

async fn setup(stack: &Stack, ns: &str, certificate: &str) -> Result<CertificateRequest> {
    stack.credentials_secret(ns, "ccm-secret", SK).await?;
    stack
        .apply_in(
            ns,
            &format!(
                "apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {certificate}}}\nspec: {{secretName: {certificate}-tls, commonName: {certificate}.example, dnsNames: [{certificate}.example], issuerRef: {{group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}}}}\n"
            ),
        )
        .await?;
    let client = stack.client().await?;
    eventually("the issuer to be ready", Duration::from_secs(60), async || {
        let api: Api<ccm_issuer::crd::CCMIssuer> = Api::namespaced(client.clone(), ns);
        let issuer = api.get("pca").await?;
        Ok(issuer.status.and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")
        }))
    })
    .await?;
    eventually(
        "cert-manager to create the request",
        Duration::from_secs(60),
        async || Ok(requests_of(&client, ns, certificate).await?.pop()),
    )
    .await
}

async fn decide(stack: &Stack, ns: &str, cr: &CertificateRequest, type_: &str) -> Result<()> {
    let api: Api<CertificateRequest> = Api::namespaced(stack.client().await?, ns);
    let body = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": cr.name_any(), "namespace": ns},
        "status": {"conditions": [{"type": type_, "status": "True", "reason": "E2ETest",
            "message": format!("{type_} by the end-to-end test"),
            "lastTransitionTime": ccm_issuer::controller::now_rfc3339()}]},
    });
    api.patch_status(
        &cr.name_any(),
        &PatchParams::apply("e2e-approver").force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

fn unapproved_then_approved(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "approval";
        let cr = setup(stack, ns, "needs-approval").await?;
        let key = request_key_hash(&cr)?;
        tokio::time::sleep(Duration::from_secs(8)).await;
        let client = stack.client().await?;
        let now = requests_of(&client, ns, "needs-approval")
            .await?
            .pop()
            .context("request")?;
        ensure!(!now.is_true("Approved"), "nobody approved it");
        ensure!(
            now.condition("Ready").is_none(),
            "an unapproved request is left alone: {:?}",
            now.condition("Ready")
        );
        ensure!(issued_for(stack, &key).await == 0, "not sent to the PCA");
        decide(stack, ns, &cr, "Approved").await?;
        certificate_ready(&client, ns, "needs-approval").await?;
        ensure!(issued_for(stack, &key).await == 1, "issued once after approval");
        Ok(())
    })
}

fn denied(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "denial";
        let cr = setup(stack, ns, "will-be-denied").await?;
        let key = request_key_hash(&cr)?;
        let issue_calls = calls(stack, "CreateCertificateByCsr").await;
        decide(stack, ns, &cr, "Denied").await?;
        let client = stack.client().await?;
        let done = eventually("Ready=False/Denied", Duration::from_secs(60), async || {
            let now = requests_of(&client, ns, "will-be-denied")
                .await?
                .pop()
                .context("request")?;
            Ok((now.ready_reason() == Some("Denied")).then_some(now))
        })
        .await?;
        let ready = done.condition("Ready").context("Ready")?;
        ensure!(ready.status == "False", "Ready is False");
        ensure!(
            done.status.as_ref().and_then(|s| s.failure_time.as_ref()).is_some(),
            "failureTime is set"
        );
        ensure!(
            issued_for(stack, &key).await == 0,
            "no certificate for a denied request"
        );
        ensure!(
            calls(stack, "CreateCertificateByCsr").await == issue_calls,
            "no PCA issue call at all"
        );
        Ok(())
    })
}
