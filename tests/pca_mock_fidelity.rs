//! The PCA client against the mock's fidelity features: IAM and STS on their own listener (the PCA
//! address answers IAM paths with the gateway's 404), IAM listing no domain, `null` fields,
//! hostile answers, and CAs that look `ACTIVED` but cannot sign.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::{sync::Arc, time::Duration};

use ccm_issuer::{
    controller::issuer::{
        reasons::{CA_FROZEN, CA_KEY_NOT_IN_PCA},
        signing_blocker,
    },
    pca::{
        ClientConfig, Credentials, PcaClient, PcaError, RetryPolicy,
        endpoint::{parse_endpoint, resolve_iam},
        ratelimit::TokenBucket,
        types::{CertificateType, IssueFromCsr, ListCertificates, Validity, ValidityUnit},
    },
};
use ccm_mock_pca::{
    ca::KeyAlgorithm,
    embedded::{Embedded, EmbeddedOptions},
    faults::{FaultPlan, HostileMode, HostilePlan, NullFields},
    seed::{SeedCa, SeedKind},
};
use rcgen::{CertificateParams, DnType, KeyPair};
use secrecy::SecretString;

const AK: &str = "FIDELITYAK0000000001";
const SK: &str = "fidelity-test-secret-key-000000000000001";
const DOMAIN: &str = "99887766554433221100ffeeddccbbaa";
const CA: &str = "6434f74f-2d13-4e6a-89eb-93ee313f1a43";
const CSR_CA: &str = "22222222-3333-4444-8555-666666666666";
const FROZEN_CA: &str = "33333333-4444-4555-8666-777777777777";

async fn mock(iam_lists_no_domain: bool) -> Embedded {
    ccm_issuer::install_crypto_provider();
    let seed = |id: &str, kind| SeedCa {
        kind,
        ..SeedCa::new(id, KeyAlgorithm::Ec256, 1)
    };
    Embedded::start(EmbeddedOptions {
        credentials: vec![format!("{AK}:{SK}:{DOMAIN}").parse().unwrap()],
        seeds: vec![
            seed(CA, SeedKind::Hosted),
            seed(CSR_CA, SeedKind::CsrSubordinate),
            seed(FROZEN_CA, SeedKind::Frozen),
        ],
        iam_listener: true,
        iam_lists_no_domain,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A client for the mock's PCA address with IAM resolved as for `--iam-endpoint iam` (and STS at
/// `sts`), never from the PCA endpoint.
fn client(m: &Embedded, iam: &str, sts: Option<&str>) -> PcaClient {
    let configured = parse_endpoint(iam).unwrap();
    let mut c = ClientConfig::new(
        parse_endpoint(&m.url).unwrap(),
        resolve_iam(None, Some(&configured), "ap-southeast-3").unwrap(),
    );
    c.sts_endpoint = sts.map(|s| parse_endpoint(s).unwrap());
    c.retry = RetryPolicy {
        max_retries: 1,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
    };
    let creds = Credentials::new(AK, &SecretString::from(SK.to_owned()));
    PcaClient::new(c, creds, Arc::new(TokenBucket::new(0.0, 1)), None).unwrap()
}

fn calls(m: &Embedded, op: &str) -> u64 {
    m.stats().operations.get(op).map(|o| o.total).unwrap_or(0)
}

#[tokio::test]
async fn account_discovery_uses_the_iam_listener_and_falls_back_to_sts() {
    let m = mock(false).await;
    let iam = m.iam_url.clone().expect("IAM listener");
    // Control: the PCA address has no IAM API (the gateway's 404), as a CCM host.
    let wrong = client(&m, &m.url, None).domain_id().await.unwrap_err();
    assert!(matches!(wrong, PcaError::Api { status: 404, .. }), "{wrong}");
    let c = client(&m, &iam, None);
    assert_eq!(c.domain_id().await.unwrap(), DOMAIN);
    assert_eq!(c.show_ca(CA).await.unwrap().ca_id.as_deref(), Some(CA));

    let quiet = mock(true).await;
    let iam = quiet.iam_url.clone().unwrap();
    let err = client(&quiet, &iam, None).domain_id().await.unwrap_err();
    assert!(err.to_string().contains("set domainId"), "{err}");
    let c = client(&quiet, &iam, Some(&iam));
    assert_eq!(c.domain_id().await.unwrap(), DOMAIN, "told by STS");
    c.show_ca(CA).await.unwrap();
    assert_eq!(calls(&quiet, "GetCallerIdentity"), 1);
}

#[tokio::test]
async fn cas_that_look_actived_but_cannot_sign_are_recognised() {
    let m = mock(false).await;
    let c = client(&m, m.iam_url.as_deref().unwrap(), None);
    let now = jiff::Timestamp::now().as_millisecond();
    for (id, reason) in [(CSR_CA, CA_KEY_NOT_IN_PCA), (FROZEN_CA, CA_FROZEN)] {
        let ca = c.show_ca(id).await.unwrap();
        assert!(ca.is_active(), "{id} reports ACTIVED");
        let (why, message) = signing_blocker(&ca, id, now).expect("cannot sign");
        assert_eq!(why, reason, "{message}");
    }
    assert_eq!(signing_blocker(&c.show_ca(CA).await.unwrap(), CA, now), None);
}

fn nulls(fields: &[&str], operation: &str) -> FaultPlan {
    FaultPlan {
        null_fields: Some(NullFields {
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            operations: Some(vec![operation.to_owned()]),
        }),
        ..Default::default()
    }
}

/// Every field of a CA answer the issuer does not decide on.
const INFORMATIVE_CA_FIELDS: &[&str] = &[
    "ca_id",
    "path_length",
    "issuer_id",
    "issuer_name",
    "key_algorithm",
    "signature_algorithm",
    "freeze_flag",
    "gen_mode",
    "serial_number",
    "create_time",
    "delete_time",
    "not_before",
    "not_after",
    "common_name",
    "country",
    "state",
    "locality",
    "organization",
    "organizational_unit",
    "crl_configuration",
    "enterprise_project_id",
    "free_quota",
    "charging_mode",
    "cluster_id",
    "domain_id",
];

#[tokio::test]
async fn null_fields_are_read_as_absent_unless_a_decision_needs_them() {
    let m = mock(false).await;
    let c = client(&m, m.iam_url.as_deref().unwrap(), None);
    c.domain_id().await.unwrap();
    m.set_faults(nulls(INFORMATIVE_CA_FIELDS, "ShowCertificateAuthority"))
        .unwrap();
    let ca = c.show_ca(CA).await.unwrap();
    assert!(ca.is_active() && ca.not_after.is_none() && ca.gen_mode.is_none());
    for field in ["status", "type", "distinguished_name"] {
        m.set_faults(nulls(&[field], "ShowCertificateAuthority")).unwrap();
        let err = c.show_ca(CA).await.unwrap_err();
        assert!(
            matches!(err, PcaError::Decode { .. }) && err.to_string().contains(field),
            "{err}"
        );
    }
    issue(&c).await.unwrap();
    for field in ["total", "create_time", "issuer_id", "certificate_id", "status"] {
        m.set_faults(nulls(&[field], "ListCertificate")).unwrap();
        let err = c
            .list_certificates(&ListCertificates::default())
            .await
            .expect_err(field);
        assert!(err.is_retryable() && err.to_string().contains(field), "{err}");
    }
    m.set_faults(nulls(&["*"], "ExportCertificateAuthorityCertificate"))
        .unwrap();
    let err = c.export_ca(CA).await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}

fn csr_pem() -> String {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["fidelity.example".to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "fidelity.example");
    p.serialize_request(&key).unwrap().pem().unwrap()
}

async fn issue(c: &PcaClient) -> Result<String, PcaError> {
    let body = IssueFromCsr {
        issuer_id: CA.into(),
        csr: csr_pem(),
        validity: Validity {
            unit: ValidityUnit::Day,
            value: 1,
            start_from: None,
        },
        cert_type: CertificateType::EntityCert,
        path_length: None,
        enterprise_project_id: None,
    };
    c.issue_from_csr(&body).await.map(|i| i.certificate_id)
}

fn hostile(mode: HostileMode) -> FaultPlan {
    // Bodies beyond the client's 1 MiB limit, and a 100,000-character id.
    let bytes = match mode {
        HostileMode::HugeBody => Some(5 << 20),
        _ => None,
    };
    FaultPlan {
        hostile: Some(HostilePlan {
            mode,
            operations: None,
            count: None,
            bytes,
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn hostile_answers_are_bounded_errors_never_a_panic_or_a_second_issue() {
    let m = mock(false).await;
    let c = client(&m, m.iam_url.as_deref().unwrap(), None);
    let id = issue(&c).await.unwrap();
    for mode in [
        HostileMode::Nulls,
        HostileMode::WrongTypes,
        HostileMode::NonUtf8,
        HostileMode::HugeBody,
        HostileMode::Redirect,
    ] {
        m.set_faults(hostile(mode)).unwrap();
        let errors = [
            c.list_certificates(&ListCertificates::default()).await.map(|_| ()),
            c.export_certificate(&id).await.map(|_| ()),
            c.export_ca(CA).await.map(|_| ()),
        ];
        for err in errors {
            let err = err.expect_err(&format!("{mode:?} accepted"));
            let text = err.to_string();
            assert!(text.chars().count() < 1200, "{mode:?}: {} characters", text.len());
            match mode {
                // Not followed: the client never leaves the endpoint it signed for.
                HostileMode::Redirect => assert!(matches!(err, PcaError::Api { status: 302, .. }), "{err}"),
                _ => assert!(
                    matches!(err, PcaError::Decode { .. }) && err.is_retryable(),
                    "{mode:?}: {err}"
                ),
            }
        }
    }
    assert_eq!(m.stats().redirects_followed, 0);

    m.set_faults(hostile(HostileMode::HugeCertificateId)).unwrap();
    let issued_before = m.stats().issued.total;
    let err = issue(&c).await.unwrap_err();
    assert!(matches!(err, PcaError::Decode { .. }) && err.is_ambiguous(), "{err}");
    assert!(err.to_string().chars().count() < 600, "the id is cut: {err}");
    assert_eq!(m.stats().issued.total, issued_before + 1, "issued once, never repeated");
}
