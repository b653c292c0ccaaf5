//! Test-only code of the controllers: an in-memory API server, the in-process mock PCA, shared
//! fixtures, and branch-by-branch scenarios of both reconcilers.

mod context;
mod exactly_once;
mod fairness;
mod fake_api;
mod issuers;
mod leader;
mod mock_pca;
mod requests;

use std::sync::Arc;

use base64::Engine as _;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use self::{
    fake_api::FakeApi,
    mock_pca::{AK, CA_ID, DOMAIN, MockPca, SK, context},
};
use super::{
    Config,
    certificate_request::{act, outcome::Outcome, reconcile},
    tracked::Tracked,
};
use crate::{
    cert_manager::CertificateRequest,
    crd::CCMIssuer,
    pki::{CERT_PEM_TAG, pem::parse_blocks},
};

const NS: &str = "istio-system";
const CR_PATH: &str = "/apis/cert-manager.io/v1/namespaces/istio-system/certificaterequests/req-1";
const ISSUER_PATH: &str = "/apis/ccm-issuer.ccm.com/v1beta1/namespaces/istio-system/ccmissuers/ccmissuer-mesh";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secret(ns: &str, ak: &str, sk: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ccm-secret", "namespace": ns},
           "data": {"ak": b64(ak), "sk": b64(sk)}})
}

fn ready_status(ready: bool) -> Value {
    json!({"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
        "reason": if ready {"Verified"} else {"CANotActive"}, "message": "m",
        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]})
}

fn issuer_json(mock: &MockPca, secret_ns: &str, ready: bool) -> Value {
    json!({"apiVersion": "ccm-issuer.ccm.com/v1beta1", "kind": "CCMIssuer",
        "metadata": {"name": "ccmissuer-mesh", "namespace": NS},
        "spec": {"urn": CA_ID, "region": "cn-north-4", "endpoint": mock.url, "domainId": DOMAIN, "pathLength": 0,
                 "secretRef": {"namespace": secret_ns, "name": "ccm-secret"}},
        "status": ready_status(ready)})
}

struct Csr {
    pem: String,
    spki_sha256: String,
}

fn csr(is_ca: bool, dns: &[&str]) -> Csr {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
    p.distinguished_name
        .push(DnType::CommonName, if is_ca { "mesh-ca" } else { "ingress-server-crt" });
    p.distinguished_name.push(DnType::OrganizationName, "cluster.local");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    if is_ca {
        p.key_usages.push(KeyUsagePurpose::KeyCertSign);
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    }
    let pem = p.serialize_request(&key).expect("csr").pem().expect("pem");
    let spki = parse_blocks(key.public_key_pem().as_bytes(), "PUBLIC KEY")
        .expect("spki")
        .remove(0);
    Csr {
        pem,
        spki_sha256: hex::encode(Sha256::digest(&spki)),
    }
}

fn request_json(csr: &Csr, is_ca: bool, conditions: Value, kind: &str) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "req-1", "namespace": NS},
        "spec": {"request": b64(&csr.pem), "isCA": is_ca, "duration": "2160h0m0s",
                 "usages": if is_ca { json!(["digital signature", "key encipherment", "cert sign"]) } else { json!(["digital signature", "key encipherment", "server auth"]) },
                 "issuerRef": {"group": "ccm-issuer.ccm.com", "kind": kind, "name": "ccmissuer-mesh"}},
        "status": {"conditions": conditions}})
}

/// An approved request with a fixed UID and one annotation: the state an earlier attempt left.
fn request_of_attempt(c: &Csr, is_ca: bool, uid: &str, annotation: &str, value: String) -> Value {
    let mut cr = request_json(c, is_ca, approved(), "CCMIssuer");
    cr["metadata"]["uid"] = json!(uid);
    cr["metadata"]["annotations"] = json!({ annotation: value });
    cr
}

fn approved() -> Value {
    json!([{"type": "Approved", "status": "True", "reason": "cert-manager.io", "message": "approved"}])
}

struct World {
    api: FakeApi,
    mock: MockPca,
    ctx: Arc<super::Context>,
}

async fn world(config: Config) -> World {
    world_with(MockPca::start().await, config)
}

/// A world around a given mock.
fn world_with(mock: MockPca, config: Config) -> World {
    let api = FakeApi::default();
    api.put(secret(NS, AK, SK));
    api.put(issuer_json(&mock, NS, true));
    let ctx = context(&api, config);
    World { api, mock, ctx }
}

impl World {
    fn cr(&self) -> Arc<CertificateRequest> {
        Arc::new(serde_json::from_value(self.api.get(CR_PATH).expect("request stored")).expect("decode"))
    }

    async fn reconcile(&self) {
        reconcile(self.cr(), self.ctx.clone()).await.expect("reconcile");
    }

    /// What the reconciler would conclude (acting on the PCA as it does).
    async fn act(&self) -> Outcome {
        let mut tracked = Tracked::new(&self.ctx.client, &self.cr()).expect("stored request");
        act(&mut tracked, &self.ctx).await.expect("act")
    }

    fn ready(&self) -> (String, String, String) {
        let cr = self.cr();
        let c = cr.condition("Ready").cloned().unwrap_or_default();
        (c.status, c.reason.unwrap_or_default(), c.message.unwrap_or_default())
    }

    async fn issued(&self) -> u64 {
        self.mock.stats().await["issued"]["total"].as_u64().unwrap_or(0)
    }

    async fn calls(&self, op: &str) -> u64 {
        self.mock.stats().await["operations"][op]["total"].as_u64().unwrap_or(0)
    }
}

fn decoded(field: &Option<k8s_openapi::ByteString>) -> String {
    String::from_utf8(field.as_ref().expect("field set").0.clone()).expect("utf8")
}

/// The Ready condition of an issuer status.
fn ready_of(status: Option<crate::crd::IssuerStatus>) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("ready")
}

/// Runs the issuer check and returns the issuer's Ready condition.
async fn check_issuer(w: &World) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let issuer: CCMIssuer = serde_json::from_value(w.api.get(ISSUER_PATH).expect("issuer")).expect("decode");
    super::issuer::reconcile_namespaced(Arc::new(issuer), w.ctx.clone())
        .await
        .expect("reconcile");
    let issuer: CCMIssuer = serde_json::from_value(w.api.get(ISSUER_PATH).expect("issuer")).expect("decode");
    ready_of(issuer.status)
}
