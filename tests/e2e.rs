//! End-to-end scenarios on a real kube-apiserver + etcd + cert-manager with the mock PCA over
//! HTTPS and the real controller binary (issue #4 §3). One control plane for the whole binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test and benchmark code

mod support;

use std::{process::Command, sync::Arc, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use base64::Engine as _;
use ccm_e2e::Signal;
use ccm_issuer::{
    cert_manager::CertificateRequest,
    controller::{
        issuance::intent::{CERTIFICATE_ID_ANNOTATION, INTENT_ANNOTATION},
        tracked::{Tracked, Write},
    },
    crd::CCMClusterIssuer,
    pki::{CERT_PEM_TAG, pem::parse_blocks},
};
use ccm_mock_pca::faults::FaultPlan;
use kube::{Api, ResourceExt, api::DeleteParams};
use rustls::pki_types::ServerName;
use support::*;
use x509_parser::prelude::FromDer;

fn main() -> std::process::ExitCode {
    main_with(
        StackOptions::default(),
        vec![
            ("crd_schema_rejects_bad_issuers", crd_validation),
            ("seed_mesh_ca_into_cacerts_then_istiod_style_mtls", seed_mesh_ca),
            ("seed_ingress_certificate_serves_https_to_curl", seed_ingress),
            ("seed_ca_issuer_practice_for_comparison", seed_ca_issuer),
            (
                "cluster_issuer_two_namespaces_and_foreign_secret_refused",
                cluster_issuer,
            ),
            (
                "namespaced_endpoint_override_needs_the_administrator",
                endpoint_not_allowed,
            ),
            ("renewal_signs_each_request_once", renewal),
            ("wrong_credentials_then_fixed_without_restart", wrong_credentials),
            ("pca_outage_keeps_requests_pending", pca_outage),
            ("crash_after_issue_before_status_yields_one_certificate", crash_safety),
            ("restart_lists_every_page_once", restart_lists_every_page_once),
            ("stale_writes_are_refused_by_the_apiserver", stale_writes_refused),
            ("health_metrics_and_graceful_shutdown", health_and_shutdown),
            ("secret_key_never_in_controller_logs", no_secret_in_logs),
        ],
    )
}

fn pem_certs(pem: &str) -> Result<Vec<Vec<u8>>> {
    Ok(parse_blocks(pem.as_bytes(), CERT_PEM_TAG)?)
}

fn subject(der: &[u8]) -> Result<String> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)?;
    Ok(cert.subject().to_string())
}

fn serial(pem: &str) -> Result<String> {
    let ders = pem_certs(pem)?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(ders.first().context("no cert")?)?;
    Ok(cert.raw_serial_as_string())
}

// --- CRD schema validation on the real apiserver --------------------------------------------

fn crd_validation(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "validation";
        stack.cp.create_namespace(ns).await?;
        let issuer = |spec: &str| format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: v}}\nspec: {spec}\n");
        let refused = [
            ("{urn: not-a-uuid, region: cn-north-4, secretRef: {name: s}}", "spec.urn"),
            (&format!("{{urn: \"{SEED_URN}\", region: Mars_North, secretRef: {{name: s}}}}") as &str, "spec.region"),
            (&format!("{{urn: \"{SEED_URN}\", region: cn-north-4}}"), "secretRef"),
            (&format!("{{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: s}}, pathLength: 9}}"), "pathLength"),
            (&format!("{{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: s}}, endpoint: \"ftp://x\"}}"), "endpoint"),
        ];
        for (spec, field) in refused {
            let err = stack.apply_in(ns, &issuer(spec)).await.err().with_context(|| format!("accepted: {spec}"))?;
            let text = format!("{err:#}");
            ensure!(text.contains(field), "the refusal of {spec} names {field}: {text}");
        }
        // Any well-formed region id is fine with an explicit endpoint.
        stack
            .apply_in(ns, &issuer(&format!("{{urn: \"{SEED_URN}\", region: mars-north-1, endpoint: \"https://ccm.example.com\", secretRef: {{name: s}}}}")))
            .await?;
        // And without one: the schema accepts it (the controller may have --pca-endpoint for
        // it); this controller has none, so the issuer says so.
        stack.credentials_secret(ns, "s", SK).await?;
        let unknown = issuer(&format!("{{urn: \"{SEED_URN}\", region: mars-north-1, secretRef: {{name: s}}}}")).replace("name: v}", "name: unknown-region}");
        stack.apply_in(ns, &unknown).await?;
        let (status, message) = issuer_condition(stack, ns, "unknown-region", "UnknownRegion").await?;
        ensure!(status == "False" && message.contains("--pca-endpoint mars-north-1=URL"), "says how to fix it: {message}");
        Ok(())
    })
}

// --- Scenario 1: the talk's first practice, verbatim ---------------------------------------

fn seed_mesh_ca(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "istio-system";
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        stack.apply_in(ns, &example("mesh-ca/02-ccmissuer.yaml")?).await?;
        issuer_condition(stack, ns, "ccmissuer-mesh", "Verified").await?;
        stack.apply_in(ns, &example("mesh-ca/03-certificate-mesh-ca.yaml")?).await?;
        let client = stack.client().await?;
        certificate_ready(&client, ns, "mesh-ca").await?;

        let tls_crt = secret_text(&client, ns, "cacerts", "tls.crt").await?;
        let tls_key = secret_text(&client, ns, "cacerts", "tls.key").await?;
        let ca_crt = secret_text(&client, ns, "cacerts", "ca.crt").await?;
        let chain = pem_certs(&tls_crt)?;
        let root = pem_certs(&ca_crt)?;
        ensure!(chain.len() == 2, "tls.crt = intermediate + PCA sub-CA, got {} certificates", chain.len());
        ensure!(root.len() == 1, "ca.crt = the root alone");
        let leaf_subject = subject(&chain[0])?;
        ensure!(leaf_subject.contains("CN=mesh-ca") && leaf_subject.contains("O=cluster.local"), "{leaf_subject}");
        ensure!(subject(&chain[1])?.contains("Sub CA"), "second is the PCA subordinate CA");
        ensure!(subject(&root[0])?.contains("Root CA"), "ca.crt is the PCA root");

        let dir = write_files(stack, "mesh-ca", &[("tls.crt", &tls_crt), ("tls.key", &tls_key), ("ca.crt", &ca_crt)])?;
        let verify = run(Command::new("openssl").args(["verify", "-CAfile", &p(&dir, "ca.crt"), "-untrusted", &p(&dir, "tls.crt"), &p(&dir, "tls.crt")]))?;
        ensure!(verify.contains(": OK"), "openssl verify: {verify}");
        let text = run(Command::new("openssl").args(["x509", "-noout", "-text", "-in", &p(&dir, "tls.crt")]))?;
        ensure!(text.contains("CA:TRUE") && text.contains("Certificate Sign"), "intermediate is a CA with keyCertSign:\n{text}");

        // Use it as istiod would: sign two workload certificates with tls.key/tls.crt ...
        for w in ["a", "b"] {
            std::fs::write(
                dir.join(format!("{w}.ext")),
                format!(
                    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:spiffe://cluster.local/ns/default/sa/{w},DNS:workload-{w}.default.svc\n"
                ),
            )?;
            run(Command::new("openssl").args(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=cluster.local", "-keyout", &p(&dir, &format!("{w}.key")), "-out", &p(&dir, &format!("{w}.csr"))]))?;
            run(Command::new("openssl").args(["x509", "-req", "-days", "1", "-in", &p(&dir, &format!("{w}.csr")), "-CA", &p(&dir, "tls.crt"), "-CAkey", &p(&dir, "tls.key"), "-CAcreateserial", "-extfile", &p(&dir, &format!("{w}.ext")), "-out", &p(&dir, &format!("{w}.crt"))]))?;
        }
        let read = |f: &str| std::fs::read_to_string(dir.join(f));
        // ... and complete a mutual-TLS handshake between two endpoints that trust only ca.crt.
        let server_chain = format!("{}{}", read("a.crt")?, tls_crt);
        let client_chain = format!("{}{}", read("b.crt")?, tls_crt);
        mtls(&server_chain, &read("a.key")?, Some((&client_chain, &read("b.key")?)), &ca_crt, "workload-a.default.svc").await?;
        // A client whose certificate does not chain to ca.crt is refused.
        let stranger = rcgen::generate_simple_self_signed(vec!["stranger".to_string()])?;
        let refused = mtls(&server_chain, &read("a.key")?, Some((&stranger.cert.pem(), &stranger.signing_key.serialize_pem())), &ca_crt, "workload-a.default.svc").await;
        ensure!(refused.is_err(), "an untrusted client certificate must be refused");

        // The Pending → Issued trail of the request, for the record.
        let cr = requests_of(&client, ns, "mesh-ca").await?.pop().context("request")?;
        let ready = cr.condition("Ready").context("Ready")?;
        eprintln!("[e2e] {}: Ready={} reason={} message={}", cr.name_any(), ready.status, ready.reason.clone().unwrap_or_default(), ready.message.clone().unwrap_or_default());
        ensure!(issued_for(stack, &request_key_hash(&cr)?).await == 1, "one PCA certificate for the request");
        Ok(())
    })
}

/// A TLS handshake (mutual when `client` is given) over loopback; both sides must succeed.
async fn mtls(
    server_chain: &str,
    server_key: &str,
    client: Option<(&str, &str)>,
    root: &str,
    name: &str,
) -> Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_of(root)? {
        roots.add(c)?;
    }
    let roots = Arc::new(roots);
    let verifier = rustls::server::WebPkiClientVerifier::builder(roots.clone()).build()?;
    let server_cfg = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs_of(server_chain)?, key_of(server_key)?)?;
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let client_cfg = match client {
        Some((chain, key)) => builder.with_client_auth_cert(certs_of(chain)?, key_of(key)?)?,
        None => builder.with_no_client_auth(),
    };
    tls_ping_pong(server_cfg, client_cfg, ServerName::try_from(name.to_owned())?, |_| {
        Ok(())
    })
    .await
}

// --- Scenario 2: the talk's second practice, signed by the PCA ----------------------------

fn seed_ingress(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "istio-system";
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        stack
            .apply_in(ns, &example("ingress-gateway/01-ccmissuer-ingress.yaml")?)
            .await?;
        stack
            .apply_in(ns, &example("ingress-gateway/02-certificate-ingress-server-crt.yaml")?)
            .await?;
        let client = stack.client().await?;
        certificate_ready(&client, ns, "ingress-server-crt").await?;
        let crt = secret_text(&client, ns, "ingress-server-crt", "tls.crt").await?;
        let key = secret_text(&client, ns, "ingress-server-crt", "tls.key").await?;
        let ca = secret_text(&client, ns, "ingress-server-crt", "ca.crt").await?;
        let dir = write_files(stack, "ingress", &[("ca.crt", &ca)])?;
        let (port, server) = ccm_e2e::https_server(&crt, &key, "hello from the ingress gateway\n").await?;
        let curl = |host: &'static str| {
            let cacert = p(&dir, "ca.crt");
            tokio::task::spawn_blocking(move || {
                Command::new("curl")
                    .args([
                        "-sS",
                        "--max-time",
                        "10",
                        "--cacert",
                        &cacert,
                        "--resolve",
                        &format!("{host}:{port}:127.0.0.1"),
                        &format!("https://{host}:{port}/"),
                    ])
                    .output()
            })
        };
        let ok = curl("cert-test.com").await??;
        ensure!(
            ok.status.success(),
            "curl cert-test.com failed: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        ensure!(String::from_utf8_lossy(&ok.stdout).contains("hello from the ingress gateway"));
        let wrong = curl("other-host.com").await??;
        ensure!(!wrong.status.success(), "another host name must fail verification");
        let err = String::from_utf8_lossy(&wrong.stderr);
        ensure!(
            err.contains("other-host.com") || err.contains("subject"),
            "curl said: {err}"
        );
        server.abort();
        Ok(())
    })
}

fn seed_ca_issuer(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "istio-system";
        // The talk's CA issuer needs a CA key pair in root-ingress-certs: make one with
        // cert-manager's selfsigned issuer, then apply the talk's YAML verbatim.
        stack
            .apply_in(
                ns,
                "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: selfsigned}\nspec: {selfSigned: {}}\n---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: root-ingress-certs}\nspec: {isCA: true, commonName: root-ingress-certs, secretName: root-ingress-certs, issuerRef: {name: selfsigned, kind: Issuer, group: cert-manager.io}}\n",
            )
            .await?;
        let client = stack.client().await?;
        certificate_ready(&client, ns, "root-ingress-certs").await?;
        let before = calls(stack, "CreateCertificateByCsr").await;
        stack.apply_in(ns, &example("ingress-gateway/04-seed-ca-issuer.yaml")?).await?;
        certificate_ready(&client, ns, "ingress-server-crt-ca-issuer").await?;
        ensure!(calls(stack, "CreateCertificateByCsr").await == before, "cert-manager's own issuer did not touch the PCA");
        Ok(())
    })
}

// --- Scenario 3: a cluster issuer for two namespaces ---------------------------------------

fn cluster_issuer(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        for ns in ["team-a", "team-b"] {
            stack.cp.create_namespace(ns).await?;
        }
        // The example verbatim (region ap-southeast-3 → the mock via --pca-endpoint), then the
        // mock's credentials in place of its placeholders.
        stack.apply_in(CLUSTER_RESOURCE_NAMESPACE, &example("cluster-issuer/01-ccmclusterissuer.yaml")?).await?;
        stack.credentials_secret(CLUSTER_RESOURCE_NAMESPACE, "ccm-cluster-secret", SK).await?;
        // Per-issuer endpoint and caBundle (base64), instead of the controller-wide override.
        let ca_b64 = base64::engine::general_purpose::STANDARD.encode(&stack.mock_ca_pem);
        stack
            .apply_in(
                "",
                &format!(
                    "apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMClusterIssuer\nmetadata: {{name: ccm-pca}}\nspec: {{urn: \"{SEED_URN}\", region: ap-southeast-3, endpoint: \"{}\", caBundle: \"{ca_b64}\", secretRef: {{name: ccm-cluster-secret}}}}\n",
                    stack.mock_url
                ),
            )
            .await?;
        let api: Api<CCMClusterIssuer> = Api::all(stack.client().await?);
        eventually("CCMClusterIssuer ccm-pca Ready", Duration::from_secs(60), async || {
            let i = api.get("ccm-pca").await?;
            Ok(i.status.and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready" && c.status == "True")))
        })
        .await?;
        stack.apply_in("", &example("cluster-issuer/02-certificates.yaml")?).await?;
        let client = stack.client().await?;
        certificate_ready(&client, "team-a", "web").await?;
        certificate_ready(&client, "team-b", "api").await?;
        // A namespaced issuer naming another namespace's Secret is refused, and never reads it.
        stack
            .apply_in(
                "team-a",
                &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: borrower}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{namespace: {CLUSTER_RESOURCE_NAMESPACE}, name: ccm-cluster-secret}}}}\n"),
            )
            .await?;
        let (status, message) = issuer_condition(stack, "team-a", "borrower", "SecretNamespaceNotAllowed").await?;
        ensure!(status == "False" && message.contains("own namespace"), "{message}");
        Ok(())
    })
}

// --- Scenario 4: renewal --------------------------------------------------------------------

fn renewal(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "renewal";
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        stack
            .apply_in(ns, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n"))
            .await?;
        issuer_condition(stack, ns, "pca", "Verified").await?;
        // 1h certificates renewed 59m30s before expiry: cert-manager renews 30s after issuance.
        stack
            .apply_in(ns, "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: short}\nspec: {secretName: short-tls, commonName: short.renewal.example, dnsNames: [short.renewal.example], duration: 1h, renewBefore: 59m30s, issuerRef: {group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}}\n")
            .await?;
        let client = stack.client().await?;
        certificate_ready(&client, ns, "short").await?;
        let first_serial = serial(&secret_text(&client, ns, "short-tls", "tls.crt").await?)?;
        // cert-manager keeps one old revision at most: note the first request now.
        let first = requests_of(&client, ns, "short").await?.pop().context("first request")?;
        let renewed = eventually("a renewed certificate with a new serial", Duration::from_secs(120), async || {
            let s = serial(&secret_text(&client, ns, "short-tls", "tls.crt").await?)?;
            Ok((s != first_serial).then_some(s))
        })
        .await?;
        certificates(&client, ns).delete("short", &DeleteParams::default()).await?;
        let second = eventually("the second request Issued", Duration::from_secs(30), async || {
            Ok(requests_of(&client, ns, "short")
                .await?
                .into_iter()
                .find(|cr| cr.uid() != first.uid() && cr.ready_reason() == Some("Issued")))
        })
        .await?;
        for cr in [&first, &second] {
            ensure!(cr.ready_reason() == Some("Issued"), "{} is {:?}", cr.name_any(), cr.ready_reason());
            let uid = cr.uid().unwrap_or_default();
            // A leaf's id is found again by listing, so it is not written as an annotation; the
            // request is tied to its certificate by the intent bound to its UID and by the id in
            // its Ready message.
            ensure!(cr.annotations().get(INTENT_ANNOTATION).is_some_and(|v| v.starts_with(&uid)), "{} has its issuance intent", cr.name_any());
            ensure!(!cr.annotations().contains_key(CERTIFICATE_ID_ANNOTATION), "{}: a leaf's id needs no extra write", cr.name_any());
            let message = cr.condition("Ready").and_then(|c| c.message.clone()).unwrap_or_default();
            ensure!(message.contains("certificate id "), "{} names its certificate id: {message}", cr.name_any());
            let n = issued_for(stack, &request_key_hash(cr)?).await;
            ensure!(n == 1, "{} was signed {n} times", cr.name_any());
        }
        eprintln!("[e2e] renewal: serial {first_serial} → {renewed}");
        Ok(())
    })
}

// --- Endpoint overrides on namespaced issuers ----------------------------------------------

/// A tenant's CCMIssuer cannot point the controller at an address the administrator did not
/// allow (here the cloud metadata address): the issuer says so, and its requests wait.
fn endpoint_not_allowed(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "tenant-ssrf";
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        stack
            .apply_in(ns, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, endpoint: \"https://169.254.169.254\", secretRef: {{name: ccm-secret}}}}\n"))
            .await?;
        let (status, message) = issuer_condition(stack, ns, "pca", "EndpointNotAllowed").await?;
        ensure!(status == "False" && message.contains("--namespaced-issuer-endpoint"), "says how to allow it: {message}");
        Ok(())
    })
}

// --- Scenario 6: wrong AK/SK, fixed without a restart ----------------------------------------

fn wrong_credentials(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "wrong-creds";
        stack.credentials_secret(ns, "ccm-secret", "this-is-the-WRONG-secret-key").await?;
        // Per-issuer endpoint with a plain PEM caBundle.
        let bundle = stack.mock_ca_pem.replace('\n', "\\n");
        stack
            .apply_in(ns, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, endpoint: \"{}\", caBundle: \"{bundle}\", secretRef: {{name: ccm-secret}}}}\n", stack.mock_url))
            .await?;
        let (status, message) = issuer_condition(stack, ns, "pca", "PCAAuthenticationFailed").await?;
        ensure!(status == "False" && message.contains("APIGW.0301"), "says why: {message}");
        stack
            .apply_in(ns, "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: waiting}\nspec: {secretName: waiting-tls, commonName: waiting.example, dnsNames: [waiting.example], issuerRef: {group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}}\n")
            .await?;
        let client = stack.client().await?;
        let pending = eventually("the request to wait for the issuer", Duration::from_secs(60), async || {
            let crs = requests_of(&client, ns, "waiting").await?;
            Ok(crs.into_iter().find(|cr| cr.ready_reason() == Some("Pending")))
        })
        .await?;
        let msg = pending.condition("Ready").and_then(|c| c.message.clone()).unwrap_or_default();
        ensure!(msg.contains("ready"), "waits for the issuer: {msg}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        ensure!(requests_of(&client, ns, "waiting").await?.iter().all(|cr| cr.ready_reason() != Some("Failed")), "never Failed");
        // Fix the Secret: the issuer is re-checked at once (its Secret is watched) — well
        // before the 1m re-check interval — and the waiting request is issued. No restart.
        let fixed_at = std::time::Instant::now();
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        issuer_condition(stack, ns, "pca", "Verified").await?;
        let took = fixed_at.elapsed();
        ensure!(took < Duration::from_secs(45), "re-checked on the Secret change, not by the periodic re-check ({took:?})");
        certificate_ready(&client, ns, "waiting").await?;
        ensure!(stack.controller_running(), "same controller process");
        print_events(&client, ns, &pending.name_any()).await?;
        Ok(())
    })
}

/// Prints a request's events, oldest first, as `kubectl describe` would list them.
async fn print_events(client: &kube::Client, ns: &str, name: &str) -> Result<()> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let mut events: Vec<_> = api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    eprintln!("[e2e] events of CertificateRequest {ns}/{name}:");
    for e in events {
        eprintln!(
            "[e2e]   {:<7} {:<16} {}",
            e.type_.unwrap_or_default(),
            e.reason.unwrap_or_default(),
            e.note.unwrap_or_default()
        );
    }
    Ok(())
}

// --- Scenario 7: PCA outage --------------------------------------------------------------------

fn pca_outage(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "outage";
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        stack
            .apply_in(ns, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n"))
            .await?;
        issuer_condition(stack, ns, "pca", "Verified").await?;
        stack.mock.lock().await.pause().await;
        for name in ["during-outage-1", "during-outage-2"] {
            stack
                .apply_in(ns, &format!("apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}}}\nspec: {{secretName: {name}-tls, commonName: {name}.example, dnsNames: [{name}.example], issuerRef: {{group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}}}}\n"))
                .await?;
        }
        let client = stack.client().await?;
        eventually("both requests Pending during the outage", Duration::from_secs(60), async || {
            let mut pending = 0;
            for name in ["during-outage-1", "during-outage-2"] {
                pending += requests_of(&client, ns, name).await?.iter().filter(|cr| cr.ready_reason() == Some("Pending")).count();
            }
            Ok((pending == 2).then_some(()))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        for name in ["during-outage-1", "during-outage-2"] {
            for cr in requests_of(&client, ns, name).await? {
                ensure!(cr.ready_reason() == Some("Pending"), "{} is {:?} during the outage", cr.name_any(), cr.ready_reason());
            }
        }
        stack.mock.lock().await.resume().await?;
        for name in ["during-outage-1", "during-outage-2"] {
            certificate_ready(&client, ns, name).await?;
        }
        Ok(())
    })
}

// --- Scenario 8: kill -9 between issuance and status ---------------------------------------------

fn crash_safety(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "crash";
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        stack
            .apply_in(ns, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n"))
            .await?;
        issuer_condition(stack, ns, "pca", "Verified").await?;
        let issued_before = stack.mock.lock().await.stats().issued.total;
        // The PCA issues, then holds its answer: the controller has an issued certificate it has
        // not recorded yet when it is killed.
        stack.mock.lock().await.set_faults(FaultPlan { hang_after_issue_ms: 20_000, ..Default::default() }).map_err(anyhow::Error::msg)?;
        stack
            .apply_in(ns, "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: crash}\nspec: {secretName: crash-tls, commonName: crash.example, dnsNames: [crash.example], issuerRef: {group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}}\n")
            .await?;
        eventually("the PCA to issue", Duration::from_secs(60), async || {
            Ok((stack.mock.lock().await.stats().issued.total > issued_before).then_some(()))
        })
        .await?;
        let status = stack.stop_controller(Signal::Kill).await?;
        ensure!(!status.success(), "killed: {status}");
        stack.mock.lock().await.set_faults(FaultPlan::default()).map_err(anyhow::Error::msg)?;
        let client = stack.client().await?;
        let cr = requests_of(&client, ns, "crash").await?.pop().context("request")?;
        ensure!(cr.condition("Ready").is_none_or(|c| c.status != "True"), "status was not written before the kill");
        stack.start_controller().await?;
        certificate_ready(&client, ns, "crash").await?;
        let cr = requests_of(&client, ns, "crash").await?.pop().context("request")?;
        let n = issued_for(stack, &request_key_hash(&cr)?).await;
        ensure!(n == 1, "exactly one PCA certificate for the request, got {n}");
        ensure!(stack.mock.lock().await.stats().issued.total == issued_before + 1, "no other issuance");
        let metrics = stack.metrics().await?;
        ensure!(metrics.contains(r#"ccm_issuer_duplicates_avoided_total{reason="Recovered"} 1"#), "the restarted controller recovered it:\n{metrics}");
        Ok(())
    })
}

// --- A restart in a cluster of more requests than one page ------------------------------------

/// The request watch lists 250 requests a page (`REQUEST_PAGE` in the controller's runtime).
/// On the real API server, a restarted controller in a cluster of several pages gets every
/// page (ours are on the third or later), asks for each once (a refused continuation would make the
/// watcher list again), and is ready only then.
fn restart_lists_every_page_once(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "paged";
        issuer_in(stack, ns).await?;
        stack.stop_controller(Signal::Term).await?;
        // 600 requests for an issuer nobody serves (never approved, never signed), then two of
        // ours, after them in the list's order (namespace, name): on the third page or later.
        let nobodys = serde_json::json!({"group": "other.example.com", "kind": "OtherIssuer", "name": "x"});
        let ours = serde_json::json!({"group": "ccm-issuer.ccm.com", "kind": "CCMIssuer", "name": "pca"});
        create_requests(stack, ns, "a-", 600, &nobodys).await?;
        create_requests(stack, ns, "z-", 2, &ours).await?;
        let client = stack.client().await?;
        let all: Api<CertificateRequest> = Api::all(client.clone());
        let listed = all.list(&Default::default()).await?.items;
        let pages = listed.len().div_ceil(250);
        let first_of_ours = listed
            .iter()
            .position(|cr| {
                cr.metadata.namespace.as_deref() == Some(ns) && cr.metadata.name.as_deref() == Some("z-00000")
            })
            .context("ours listed")?;
        ensure!(first_of_ours >= 500, "ours at {first_of_ours}, before the third page");

        let before = apiserver_requests(stack).await?;
        stack.start_controller().await?;
        let delta = request_delta(&before, &apiserver_requests(stack).await?);
        let lists = delta
            .get(&("LIST".to_owned(), "certificaterequests".to_owned(), String::new()))
            .copied()
            .unwrap_or(0);
        // Besides the pages, start-up makes two one-request lists: the CRD check and the
        // field-selector probe.
        ensure!(
            lists == pages as u64 + 2,
            "{lists} LIST calls for {pages} pages: {delta:?}"
        );

        let api: Api<CertificateRequest> = Api::namespaced(client, ns);
        eventually(
            "ours, on the third page or later, signed",
            Duration::from_secs(60),
            async || {
                let mut ready = 0;
                for name in ["z-00000", "z-00001"] {
                    let cr = api.get(name).await?;
                    ready += usize::from(cr.condition("Ready").is_some_and(|c| c.status == "True"));
                }
                Ok((ready == 2).then_some(()))
            },
        )
        .await?;
        // Later restarts in this binary need not list them.
        api.delete_collection(&DeleteParams::default(), &Default::default())
            .await?;
        Ok(())
    })
}

// --- Process behaviour -----------------------------------------------------------------------

// --- Conditional writes on the real apiserver --------------------------------------------------

/// The controller's writes (status apply, annotation patch) carry the resourceVersion and UID
/// of the view they were decided on; the real apiserver must refuse them when either is stale.
fn stale_writes_refused(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "stale-writes";
        stack.cp.create_namespace(ns).await?;
        let client = stack.client().await?;
        let api: Api<CertificateRequest> = Api::namespaced(client.clone(), ns);
        // A request for another issuer, so the running controller leaves it alone.
        let yaml = "apiVersion: cert-manager.io/v1\nkind: CertificateRequest\nmetadata: {name: probe}\nspec: {request: LS0tLQ==, issuerRef: {group: example.com, kind: Other, name: x}}\n";
        stack.apply_in(ns, yaml).await?;
        let seen = api.get("probe").await?;
        let mut tracked = Tracked::new(&client, &seen).context("tracked")?;
        // Someone else writes after our read.
        let mut other = Tracked::new(&client, &seen).context("tracked")?;
        ensure!(other.annotate(&[("example.com/other", Some("1".into()))]).await? == Write::Written);
        let pending = serde_json::json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Pending", "message": "stale"}]});
        ensure!(tracked.apply_status(pending.clone()).await? == Write::Conflict, "a status apply on an old resourceVersion is refused");
        ensure!(tracked.annotate(&[("example.com/mine", Some("1".into()))]).await? == Write::Conflict, "an annotation patch on an old resourceVersion is refused");
        ensure!(tracked.refresh().await? == Write::Written);
        ensure!(tracked.apply_status(pending.clone()).await? == Write::Written, "the same write on the current version lands");
        ensure!(tracked.annotate(&[("example.com/mine", Some("1".into()))]).await? == Write::Written);
        // Deleted and re-created under the same name: the old view's UID no longer matches.
        api.delete("probe", &DeleteParams::default()).await?;
        stack.apply_in(ns, yaml).await?;
        let replaced = api.get("probe").await?;
        ensure!(tracked.apply_status(pending).await? != Write::Written, "no write to the replacement");
        ensure!(tracked.annotate(&[("example.com/mine", Some("2".into()))]).await? != Write::Written);
        // An annotation patch is refused on the UID alone (the replacement's current version with
        // the old UID). A status apply is not (the apiserver ignores metadata.uid in an apply
        // body); it is the resourceVersion, unique across objects, that keeps it off replacements.
        let mut forged = replaced.clone();
        forged.metadata.uid = seen.uid();
        let mut by_uid = Tracked::new(&client, &forged).context("tracked")?;
        let patch = by_uid.annotate(&[("example.com/mine", Some("3".into()))]).await?;
        ensure!(patch != Write::Written, "annotation patch with the old UID: {patch:?}");
        let after = api.get("probe").await?;
        ensure!(after.condition("Ready").is_none() && after.annotations().get("example.com/mine").is_none(), "the replacement is untouched: {:?}", after.status);
        ensure!(replaced.uid() == after.uid());
        Ok(())
    })
}

fn health_and_shutdown(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "metrics";
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        stack
            .apply_in(ns, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: m}}\nspec: {{secretName: m-tls, commonName: m.example, dnsNames: [m.example], issuerRef: {{group: ccm-issuer.ccm.com, kind: CCMIssuer, name: pca}}}}\n"))
            .await?;
        certificate_ready(&stack.client().await?, ns, "m").await?;
        let base = format!("http://127.0.0.1:{}", stack.health_port);
        for path in ["/livez", "/readyz"] {
            let r = reqwest::get(format!("{base}{path}")).await?;
            ensure!(r.status().is_success(), "{path}: {}", r.status());
        }
        let metrics = stack.metrics().await?;
        for needle in [
            "ccm_issuer_certificates_issued_total{type=\"leaf\"}",
            "ccm_issuer_pca_requests_total{operation=\"CreateCertificateByCsr\",status_class=\"2xx\"}",
            "ccm_issuer_pca_request_duration_seconds_bucket",
            "ccm_issuer_reconciles_total{controller=\"certificaterequest\",result=\"issued\"}",
            "ccm_issuer_issuers_ready{kind=\"CCMIssuer\"}",
        ] {
            ensure!(metrics.contains(needle), "metrics lack {needle}");
        }
        let status = stack.stop_controller(Signal::Term).await?;
        ensure!(status.success(), "SIGTERM is a clean exit: {status}");
        stack.start_controller().await
    })
}

fn no_secret_in_logs(stack: &Stack) -> Result<()> {
    const WRONG: &str = "this-is-the-WRONG-secret-key";
    stack.rt.block_on(async {
        // Make sure the controller has handled both keys, whatever ran before.
        let ns = "log-check";
        stack.credentials_secret(ns, "ccm-secret", WRONG).await?;
        stack
            .apply_in(ns, &format!("apiVersion: ccm-issuer.ccm.com/v1beta1\nkind: CCMIssuer\nmetadata: {{name: pca}}\nspec: {{urn: \"{SEED_URN}\", region: cn-north-4, secretRef: {{name: ccm-secret}}}}\n"))
            .await?;
        issuer_condition(stack, ns, "pca", "PCAAuthenticationFailed").await?;
        stack.credentials_secret(ns, "ccm-secret", SK).await?;
        issuer_condition(stack, ns, "pca", "Verified").await?;
        anyhow::Ok(())
    })?;
    let logs = stack.cp.logs(1_000_000);
    // The search means something only if the controller logged its PCA calls at debug level,
    // including the refused ones.
    if !logs.contains("ccm_issuer::pca::client") || !logs.contains("APIGW.0301") {
        bail!("the controller's debug logs of PCA calls (with the refused key) were not captured");
    }
    for secret in [SK, WRONG] {
        ensure!(!logs.contains(secret), "a secret key appeared in the logs");
    }
    Ok(())
}
