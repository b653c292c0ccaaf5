//! Practice 1 with the real istiod (issue #12): the talk's `examples/mesh-ca/` YAML issues
//! `cacerts` through ccm-issuer and the mock PCA; istiod (`pilot-discovery`, built from the
//! pinned `istio.io/istio` module by `e2e-tools/build.sh istio`) runs out of cluster against
//! the test apiserver with `cacerts` projected into its CA directory as a Secret volume; a
//! workload certificate is requested the way a sidecar does, and its chain, a mutual-TLS
//! handshake, a renewal and a `cacerts` created after istiod started are checked.
//!
//! One control plane for the binary; scenarios run one after the other, each with its own
//! istiod (stopped at the end of the scenario, also when it fails).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod support;

use std::{
    collections::BTreeSet,
    path::Path,
    process::Command,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use ccm_e2e::{
    IstioTools, Istiod, IstiodOptions, SecretVolume, WorkloadCertificate,
    istiod::{ISTIO_CA_AUDIENCE, ROOT_CERT_CONFIGMAP, ROOT_CERT_KEY, TRUST_DOMAIN, service_account_token},
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, api::DeleteParams};
use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use support::*;
use x509_parser::{extensions::GeneralName, prelude::FromDer};

/// The istiod build (discovered once in `main`).
static ISTIO: OnceLock<IstioTools> = OnceLock::new();

/// istiod logs these when it starts with the plug-in CA from `tls.crt`/`tls.key`/`ca.crt`.
const LOG_TLS_LAYOUT: &str = "Using kubernetes.io/tls secret type for signing ca files";
const LOG_PLUGGED_CA: &str = "Use local CA certificate";
/// ... and this with its own self-signed CA (no `cacerts` files).
const LOG_SELF_SIGNED_CA: &str = "Use self-signed certificate as the CA certificate";
/// ... these when it reloads the CA directory after a change.
const LOG_CACERTS_EVENT: &str = "Update Istiod cacerts";
const LOG_NEW_INTERMEDIATE: &str = "Istiod has detected the newly added intermediate CA";

/// How long the late-`cacerts` scenario watches istiod after the files appeared.
const LATE_OBSERVATION: Duration = Duration::from_secs(10);

fn main() -> std::process::ExitCode {
    let scenarios: Vec<Scenario> = vec![
        ("practice1_istiod_signs_workloads_with_the_pca_intermediate", practice1),
        (
            "cacerts_created_after_istiod_started_needs_a_restart",
            cacerts_after_start,
        ),
        ("renewed_mesh_ca_is_used_by_istiod_without_restart", renewal),
    ];
    if libtest_mimic::Arguments::from_args().list {
        return main_with(StackOptions::default(), scenarios);
    }
    let istio = match IstioTools::discover() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("[e2e-istio] istiod is not available: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!(
        "[e2e-istio] istiod {} (istio.io/istio {}) from {}",
        istio.istio_version().unwrap_or("?"),
        istio.module_version().unwrap_or("?"),
        istio.root.display()
    );
    let options = StackOptions {
        extra_crd_files: vec![istio.crd_file()],
        ..StackOptions::default()
    };
    let _ = ISTIO.set(istio);
    main_with(options, scenarios)
}

fn istio() -> &'static IstioTools {
    ISTIO.get().expect("discovered in main")
}

// --- certificates ------------------------------------------------------------------------------

/// What the checks need to know of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cert {
    der: Vec<u8>,
    subject: String,
    issuer: String,
    serial: String,
    uris: Vec<String>,
    is_ca: bool,
}

fn parse_cert(der: &[u8]) -> Result<Cert> {
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(der)?;
    let uris = c
        .subject_alternative_name()?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Cert {
        der: der.to_vec(),
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        serial: c.raw_serial_as_string(),
        uris,
        is_ca: c.is_ca(),
    })
}

fn parse_pem(pem: &str) -> Result<Vec<Cert>> {
    certs_of(pem)?.iter().map(|d| parse_cert(d)).collect()
}

/// The mesh CA as cert-manager wrote it into a `cacerts` Secret.
struct MeshCa {
    /// `tls.crt`: the mesh-ca intermediate, then the PCA subordinate CA.
    chain: Vec<Cert>,
    /// `ca.crt`: the PCA root.
    root: Cert,
    root_pem: String,
}

impl MeshCa {
    async fn read(stack: &Stack, ns: &str) -> Result<MeshCa> {
        let client = stack.client().await?;
        let chain = parse_pem(&secret_text(&client, ns, "cacerts", "tls.crt").await?)?;
        let root_pem = secret_text(&client, ns, "cacerts", "ca.crt").await?;
        let mut roots = parse_pem(&root_pem)?;
        ensure!(
            chain.len() == 2,
            "tls.crt = mesh-ca + PCA sub CA, got {} certificates",
            chain.len()
        );
        ensure!(roots.len() == 1, "ca.crt = the PCA root alone, got {}", roots.len());
        ensure!(
            chain[0].subject.contains("CN=mesh-ca") && chain[0].is_ca,
            "tls.crt[0] is mesh-ca: {}",
            chain[0].subject
        );
        ensure!(
            chain[1].subject.contains("Sub CA"),
            "tls.crt[1] is the PCA subordinate: {}",
            chain[1].subject
        );
        Ok(MeshCa {
            chain,
            root: roots.remove(0),
            root_pem,
        })
    }

    fn intermediate_serial(&self) -> &str {
        &self.chain[0].serial
    }
}

/// Checks a workload certificate istiod returned: leaf with the SPIFFE identity → mesh-ca
/// intermediate → PCA subordinate → PCA root (the root may be repeated at the end), and
/// `openssl verify` against the PCA root alone. Prints the chain.
fn check_workload_chain(
    stack: &Stack,
    label: &str,
    w: &WorkloadCertificate,
    identity: &str,
    mesh: &MeshCa,
) -> Result<Vec<Cert>> {
    let certs = w
        .chain
        .iter()
        .map(|pem| parse_pem(pem))
        .collect::<Result<Vec<_>>>()?
        .concat();
    eprintln!(
        "[e2e-istio] {label}: istiod returned {} PEM entries, {} certificates:",
        w.chain.len(),
        certs.len()
    );
    for (i, c) in certs.iter().enumerate() {
        eprintln!(
            "[e2e-istio]   [{i}] subject: {}",
            if c.subject.is_empty() { "(empty)" } else { &c.subject }
        );
        eprintln!(
            "[e2e-istio]       issuer:  {}   serial {}{}",
            c.issuer,
            c.serial,
            if c.uris.is_empty() {
                String::new()
            } else {
                format!("   URI SAN {}", c.uris.join(", "))
            }
        );
    }
    ensure!(
        certs.len() >= 4,
        "leaf, mesh-ca, PCA sub CA and root expected, got {}",
        certs.len()
    );
    let leaf = &certs[0];
    ensure!(!leaf.is_ca, "the workload certificate is not a CA");
    ensure!(
        leaf.uris == [identity.to_owned()],
        "URI SAN is exactly {identity}: {:?}",
        leaf.uris
    );
    ensure!(
        leaf.issuer == mesh.chain[0].subject,
        "the leaf is issued by mesh-ca: {}",
        leaf.issuer
    );
    ensure!(
        certs[1] == mesh.chain[0],
        "[1] is the mesh-ca intermediate of cacerts (serial {} vs {})",
        certs[1].serial,
        mesh.chain[0].serial
    );
    ensure!(certs[2] == mesh.chain[1], "[2] is the PCA subordinate CA");
    ensure!(
        certs[3..].iter().all(|c| *c == mesh.root),
        "everything after the PCA sub CA is the PCA root"
    );

    let dir = write_files(stack, &format!("verify-{label}"), &[])?;
    let pem = |c: &[Cert]| {
        c.iter()
            .map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.der.clone())))
            .collect::<String>()
    };
    std::fs::write(dir.join("leaf.pem"), pem(&certs[..1]))?;
    std::fs::write(dir.join("untrusted.pem"), pem(&certs[1..3]))?;
    std::fs::write(dir.join("pca-root.pem"), &mesh.root_pem)?;
    let out = run(Command::new("openssl").args([
        "verify",
        "-no-CApath",
        "-no-CAstore",
        "-show_chain",
        "-CAfile",
        &p(&dir, "pca-root.pem"),
        "-untrusted",
        &p(&dir, "untrusted.pem"),
        &p(&dir, "leaf.pem"),
    ]))?;
    ensure!(out.contains("leaf.pem: OK"), "openssl verify: {out}");
    eprintln!(
        "[e2e-istio] {label}: openssl verify -CAfile <PCA root only>: {}",
        out.lines().next().unwrap_or_default()
    );
    Ok(certs)
}

fn spiffe_id(ns: &str, sa: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/{sa}")
}

// --- mutual TLS the way two sidecars check each other ------------------------------------------

/// Verifies a server certificate as Envoy does for ISTIO_MUTUAL: the chain to the trusted root,
/// then the peer's SPIFFE identity (workload certificates have no DNS names to check).
#[derive(Debug)]
struct SpiffeVerifier {
    roots: Vec<rustls::pki_types::TrustAnchor<'static>>,
    expected: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SpiffeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|e| rustls::Error::General(e.to_string()))?;
        cert.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| rustls::Error::General(format!("chain: {e}")))?;
        let uris = parse_cert(end_entity)
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .uris;
        if uris != [self.expected.clone()] {
            return Err(rustls::Error::General(format!(
                "peer identity {uris:?}, expected {}",
                self.expected
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The certificates a workload presents: its leaf and intermediates, without the root(s).
fn presented_chain(certs: &[Cert], root: &Cert) -> Vec<CertificateDer<'static>> {
    certs
        .iter()
        .filter(|c| *c != root)
        .map(|c| CertificateDer::from(c.der.clone()))
        .collect()
}

/// A mutual-TLS exchange over loopback between two workloads, each trusting only `root` and
/// checking the other's SPIFFE identity.
async fn spiffe_mtls(
    server: (&[CertificateDer<'static>], &str, &str),
    client: (&[CertificateDer<'static>], &str, &str),
    expected_server_id: &str,
    root: &Cert,
) -> Result<()> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut store = rustls::RootCertStore::empty();
    store.add(CertificateDer::from(root.der.clone()))?;
    let client_verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone()).build()?;
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(server.0.to_vec(), key_of(server.1)?)?;
    let anchor = webpki::anchor_from_trusted_cert(&CertificateDer::from(root.der.clone()))?.to_owned();
    let verifier = SpiffeVerifier {
        roots: vec![anchor],
        expected: expected_server_id.to_owned(),
        provider: provider.clone(),
    };
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(client.0.to_vec(), key_of(client.1)?)?;

    let expected_client_id = client.2.to_owned();
    tls_ping_pong(
        server_cfg,
        client_cfg,
        ServerName::try_from("workload.mesh")?,
        move |conn| {
            let peer = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .context("no client certificate")?;
            let uris = parse_cert(peer)?.uris;
            ensure!(
                uris == [expected_client_id.clone()],
                "client identity {uris:?}, expected {expected_client_id}"
            );
            Ok(())
        },
    )
    .await
}

// --- set-up helpers -----------------------------------------------------------------------------

/// Applies the talk's `examples/mesh-ca/` issuer and Certificate in `ns` (verbatim for
/// istio-system; the namespace and, if given, `duration`/`renewBefore` replaced otherwise) with
/// the mock's credentials, and waits for `cacerts`.
async fn mesh_ca_from_the_talk(stack: &Stack, ns: &str, lifetime: Option<(&str, &str)>) -> Result<MeshCa> {
    let adapt = |file: &str, lifetime: Option<(&str, &str)>| -> Result<String> {
        let text = example(file)?;
        let mut out = text.replace("namespace: istio-system", &format!("namespace: {ns}"));
        ensure!(
            ns == "istio-system" || out != text,
            "{file}: the talk's namespace was not found"
        );
        if let Some((duration, renew_before)) = lifetime {
            let before = out.clone();
            out = out
                .replace("duration: 7200h #300d", &format!("duration: {duration}"))
                .replace("renewBefore: 240h #10d", &format!("renewBefore: {renew_before}"));
            ensure!(
                out.contains(&format!("renewBefore: {renew_before}")) && out != before,
                "{file}: the talk's duration/renewBefore lines were not found"
            );
        }
        Ok(out)
    };
    stack.credentials_secret(ns, "ccm-secret", SK).await?;
    stack.apply_in(ns, &adapt("mesh-ca/02-ccmissuer.yaml", None)?).await?;
    stack
        .apply_in(ns, &adapt("mesh-ca/03-certificate-mesh-ca.yaml", lifetime)?)
        .await?;
    certificate_ready(&stack.client().await?, ns, "mesh-ca").await?;
    MeshCa::read(stack, ns).await
}

/// Runs `body` with an istiod in namespace `ns` reading its CA from `ca_dir`; stops it
/// afterwards, also when `body` fails.
async fn with_istiod<T>(
    stack: &Stack,
    name: &str,
    ns: &str,
    ca_dir: &Path,
    body: impl AsyncFnOnce(&Istiod) -> Result<T>,
) -> Result<T> {
    let istiod = Istiod::start(
        &stack.cp,
        istio(),
        IstiodOptions {
            name: name.to_owned(),
            namespace: ns.to_owned(),
            ca_dir: ca_dir.to_owned(),
        },
    )
    .await?;
    let result = body(&istiod).await;
    let status = istiod.stop().await;
    let result = result?;
    eprintln!("[e2e-istio] {name} stopped: {}", status?);
    Ok(result)
}

/// The root istiod published in `ns`'s `istio-ca-root-cert` ConfigMap, once it is `expected`
/// (any root if `None`).
async fn published_root(stack: &Stack, ns: &str, expected: Option<&Cert>) -> Result<String> {
    let api: Api<ConfigMap> = Api::namespaced(stack.client().await?, ns);
    eventually(
        &format!("{ns}/{ROOT_CERT_CONFIGMAP} with the expected root"),
        Duration::from_secs(90),
        async || {
            let Some(cm) = api.get_opt(ROOT_CERT_CONFIGMAP).await? else {
                return Ok(None);
            };
            let Some(pem) = cm.data.and_then(|mut d| d.remove(ROOT_CERT_KEY)) else {
                return Ok(None);
            };
            let certs = parse_pem(&pem)?;
            Ok(match expected {
                Some(root) if certs != [root.clone()] => None,
                _ => Some(pem),
            })
        },
    )
    .await
}

/// A workload certificate for `ns/sa` from `istiod`, trusting what istiod published in `ns`.
async fn workload_certificate(
    stack: &Stack,
    istiod: &Istiod,
    ns: &str,
    sa: &str,
    root_pem: &str,
) -> Result<WorkloadCertificate> {
    let token = service_account_token(&stack.client().await?, ns, sa, ISTIO_CA_AUDIENCE).await?;
    istiod.request_workload_certificate(root_pem, &token, ns, sa).await
}

// --- Scenario 1: practice 1, verbatim ------------------------------------------------------------

fn practice1(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "istio-system";
        let workloads = "mesh-workloads";
        let mesh = mesh_ca_from_the_talk(stack, ns, None).await?;
        let volume = SecretVolume::start(
            stack.client().await?,
            ns,
            "cacerts",
            &stack.cp.workdir().join("cacerts-istio-system"),
        )
        .await?;
        volume.wait_for_write_after(0, Duration::from_secs(30)).await?;
        stack.cp.create_namespace(workloads).await?;
        with_istiod(stack, "istiod-practice1", ns, volume.dir(), async |istiod| {
            for line in [LOG_TLS_LAYOUT, LOG_PLUGGED_CA] {
                eprintln!(
                    "[e2e-istio] istiod: {}",
                    istiod.wait_for_log(line, Duration::from_secs(10)).await?
                );
            }
            ensure!(
                istiod.log_lines_with(LOG_SELF_SIGNED_CA).is_empty(),
                "istiod must not fall back to its self-signed CA"
            );

            let root_pem = published_root(stack, workloads, Some(&mesh.root)).await?;
            eprintln!(
                "[e2e-istio] {workloads}/{ROOT_CERT_CONFIGMAP} holds the PCA root: {}",
                mesh.root.subject
            );

            let (id_a, id_b) = (spiffe_id(workloads, "workload-a"), spiffe_id(workloads, "workload-b"));
            let a = workload_certificate(stack, istiod, workloads, "workload-a", &root_pem).await?;
            let a_certs = check_workload_chain(stack, "workload-a", &a, &id_a, &mesh)?;
            let b = workload_certificate(stack, istiod, workloads, "workload-b", &root_pem).await?;
            let b_certs = check_workload_chain(stack, "workload-b", &b, &id_b, &mesh)?;

            let (a_chain, b_chain) = (
                presented_chain(&a_certs, &mesh.root),
                presented_chain(&b_certs, &mesh.root),
            );
            spiffe_mtls(
                (&a_chain, &a.key_pem, &id_a),
                (&b_chain, &b.key_pem, &id_b),
                &id_a,
                &mesh.root,
            )
            .await?;
            eprintln!("[e2e-istio] mutual TLS workload-b → workload-a trusting only the PCA root: OK");
            // The checks can fail: a wrong expected identity, and a stranger's certificate.
            let wrong = spiffe_mtls(
                (&a_chain, &a.key_pem, &id_a),
                (&b_chain, &b.key_pem, &id_b),
                &id_b,
                &mesh.root,
            )
            .await;
            ensure!(wrong.is_err(), "a server with another identity must be refused");
            let stranger = rcgen::generate_simple_self_signed(vec!["stranger".to_owned()])?;
            let refused = spiffe_mtls(
                (&a_chain, &a.key_pem, &id_a),
                (
                    &[stranger.cert.der().clone()],
                    &stranger.signing_key.serialize_pem(),
                    &id_b,
                ),
                &id_a,
                &mesh.root,
            )
            .await;
            ensure!(
                refused.is_err(),
                "a client certificate not chaining to the PCA root must be refused"
            );

            // istiod reviews the token: one for another audience is refused.
            let client = stack.client().await?;
            let wrong_audience = service_account_token(&client, workloads, "workload-a", "not-istio-ca").await?;
            let err = istiod
                .request_workload_certificate(&root_pem, &wrong_audience, workloads, "workload-a")
                .await
                .err()
                .context("a token for another audience was accepted")?;
            ensure!(
                format!("{err:#}").contains("Unauthenticated"),
                "refused as unauthenticated: {err:#}"
            );

            // The talk's strict-mTLS YAML is accepted by Istio's own CRDs.
            stack.cp.create_namespace("accesslog").await?;
            let applied = stack
                .apply_in("accesslog", &example("mesh-ca/04-istio-mtls.yaml")?)
                .await?;
            ensure!(applied.len() == 2, "PeerAuthentication and DestinationRule applied");
            Ok(())
        })
        .await
    })
}

// --- Scenario 2: cacerts appears after istiod started -------------------------------------------

fn cacerts_after_start(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "istio-late";
        let workloads = "late-workloads";
        stack.cp.create_namespace(ns).await?;
        stack.cp.create_namespace(workloads).await?;
        // Like an optional Secret volume: the directory exists, empty, before the Secret.
        let volume = SecretVolume::start(stack.client().await?, ns, "cacerts", &stack.cp.workdir().join("cacerts-istio-late")).await?;
        ensure!(volume.writes() == 0 && std::fs::read_dir(volume.dir())?.next().is_none(), "the CA directory starts empty");
        let mesh = with_istiod(stack, "istiod-late", ns, volume.dir(), async |istiod| {
            istiod.wait_for_log(LOG_SELF_SIGNED_CA, Duration::from_secs(10)).await?;
            let self_root_pem = published_root(stack, workloads, None).await?;
            let self_root = parse_pem(&self_root_pem)?.remove(0);
            let kept = secret_text(&stack.client().await?, ns, "istio-ca-secret", "ca-cert.pem").await?;
            ensure!(parse_pem(&kept)? == [self_root.clone()], "the self-signed root is the one istiod keeps in {ns}/istio-ca-secret");
            eprintln!("[e2e-istio] without cacerts istiod uses its self-signed root (kept in {ns}/istio-ca-secret): {}", self_root.subject);
            let before = workload_certificate(stack, istiod, workloads, "late", &self_root_pem).await?;
            ensure!(parse_pem(before.chain.last().context("empty chain")?)? == [self_root.clone()], "signed by the self-signed root");

            let started = Instant::now();
            let mesh = mesh_ca_from_the_talk(stack, ns, None).await?;
            volume.wait_for_write_after(0, Duration::from_secs(30)).await?;
            eprintln!("[e2e-istio] cacerts issued and in istiod's CA directory {:.1}s later; watching istiod for {LATE_OBSERVATION:?}", started.elapsed().as_secs_f64());
            tokio::time::sleep(LATE_OBSERVATION).await;

            ensure!(istiod.log_lines_with(LOG_CACERTS_EVENT).is_empty() && istiod.log_lines_with(LOG_PLUGGED_CA).is_empty(), "istiod noticed the late cacerts (update README)");
            let after = workload_certificate(stack, istiod, workloads, "late", &self_root_pem).await?;
            let after_certs = after.chain.iter().map(|p| parse_pem(p)).collect::<Result<Vec<_>>>()?.concat();
            ensure!(after_certs.last() == Some(&self_root) && !after_certs.contains(&mesh.chain[0]), "still the self-signed CA after the late cacerts");
            ensure!(published_root(stack, workloads, Some(&self_root)).await? == self_root_pem, "the published root is unchanged");
            eprintln!("[e2e-istio] {LATE_OBSERVATION:?} after cacerts appeared, istiod still signs with its self-signed root and logged nothing about it");
            Ok(mesh)
        })
        .await?;
        // A restart (a new pod in a cluster) picks the plug-in CA up.
        with_istiod(stack, "istiod-late-restarted", ns, volume.dir(), async |istiod| {
            istiod.wait_for_log(LOG_PLUGGED_CA, Duration::from_secs(10)).await?;
            let root_pem = published_root(stack, workloads, Some(&mesh.root)).await?;
            let w = workload_certificate(stack, istiod, workloads, "late", &root_pem).await?;
            check_workload_chain(stack, "late-after-restart", &w, &spiffe_id(workloads, "late"), &mesh)?;
            eprintln!("[e2e-istio] after a restart istiod signs with the PCA intermediate and publishes the PCA root");
            Ok(())
        })
        .await
    })
}

// --- Scenario 3: renewal ----------------------------------------------------------------------------

fn renewal(stack: &Stack) -> Result<()> {
    stack.rt.block_on(async {
        let ns = "istio-renewal";
        let workloads = "renewal-workloads";
        // 1h intermediates renewed 59m before they expire: cert-manager renews about a minute
        // after each issuance (the PCA's shortest validity is an hour).
        let first = mesh_ca_from_the_talk(stack, ns, Some(("1h", "59m"))).await?;
        let issued_at = Instant::now();
        let volume = SecretVolume::start(stack.client().await?, ns, "cacerts", &stack.cp.workdir().join("cacerts-istio-renewal")).await?;
        let writes = volume.wait_for_write_after(0, Duration::from_secs(30)).await?;
        stack.cp.create_namespace(workloads).await?;
        let id = spiffe_id(workloads, "renewed");
        let result = with_istiod(stack, "istiod-renewal", ns, volume.dir(), async |istiod| {
            istiod.wait_for_log(LOG_PLUGGED_CA, Duration::from_secs(10)).await?;
            let pid = istiod.process().pid();
            let root_pem = published_root(stack, workloads, Some(&first.root)).await?;
            let before = workload_certificate(stack, istiod, workloads, "renewed", &root_pem).await?;
            ensure!(MeshCa::read(stack, ns).await?.intermediate_serial() == first.intermediate_serial(), "mesh-ca was renewed before the first workload certificate; the test needs a longer renewBefore margin");
            check_workload_chain(stack, "before-renewal", &before, &id, &first)?;

            let second = eventually("a renewed mesh-ca in cacerts", Duration::from_secs(180), async || {
                let now = MeshCa::read(stack, ns).await?;
                Ok((now.intermediate_serial() != first.intermediate_serial()).then_some(now))
            })
            .await?;
            volume.wait_for_write_after(writes, Duration::from_secs(30)).await?;
            let written = volume.last_write_at().context("written")?;
            let line = istiod.wait_for_log(LOG_NEW_INTERMEDIATE, Duration::from_secs(30)).await?;
            eprintln!(
                "[e2e-istio] mesh-ca renewed ({} → {}) {:.0}s after the first issuance; istiod reloaded {:.1}s after the new files: {line}",
                first.intermediate_serial(),
                second.intermediate_serial(),
                issued_at.elapsed().as_secs_f64(),
                written.elapsed().as_secs_f64()
            );
            ensure!(second.root == first.root, "same PCA root");
            ensure!(istiod.process().is_running() && istiod.process().pid() == pid, "same istiod process, no restart");

            let after = workload_certificate(stack, istiod, workloads, "renewed", &root_pem).await?;
            // cert-manager renews about every minute: accept the intermediate current before or
            // right after this request, never the first one.
            let third = MeshCa::read(stack, ns).await?;
            let current: BTreeSet<&str> = [second.intermediate_serial(), third.intermediate_serial()].into();
            let used = parse_pem(&after.chain[1])?.remove(0).serial;
            ensure!(used != first.intermediate_serial() && current.contains(used.as_str()), "the workload certificate after the renewal is signed by the new intermediate ({used}, current {current:?})");
            let mesh = if used == second.intermediate_serial() { second } else { third };
            check_workload_chain(stack, "after-renewal", &after, &id, &mesh)?;
            Ok(())
        })
        .await;
        // Stop cert-manager's renewals every minute, for whatever runs next.
        certificates(&stack.client().await?, ns).delete("mesh-ca", &DeleteParams::default()).await?;
        result
    })
}
