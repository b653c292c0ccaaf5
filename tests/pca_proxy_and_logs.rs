//! Process-global settings, so in their own test binary: the client goes through an HTTPS proxy
//! named by `HTTPS_PROXY`, and with every log target at TRACE neither the secret key nor the
//! security token ever appears in the logs.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test and benchmark code

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use ccm_issuer::pca::{
    ClientConfig, Credentials, PcaClient,
    endpoint::parse_endpoint,
    ratelimit::TokenBucket,
    types::{CertificateType, IssueFromCsr, Validity, ValidityUnit},
};
use ccm_mock_pca::{
    auth::Credential,
    ca::KeyAlgorithm,
    embedded::{Embedded, EmbeddedOptions},
};
use secrecy::SecretString;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, copy_bidirectional},
    net::{TcpListener, TcpStream},
};

const AK: &str = "LOGTESTAK00000000001";
const SK: &str = "log-test-SECRET-KEY-must-never-be-logged-01";
const TEMP_AK: &str = "LOGTESTTEMPAK0000001";
const TEMP_SK: &str = "log-test-TEMP-SECRET-must-never-be-logged";
const TOKEN: &str = "log-test-SECURITY-TOKEN-must-never-be-logged";
const DOMAIN: &str = "0123456789abcdef0123456789abcdef";
const CA: &str = "6434f74f-2d13-4e6a-89eb-93ee313f1a43";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A CONNECT-only HTTP proxy on 127.0.0.1:0 that records the targets it tunnels to.
async fn connect_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let target = text.split_whitespace().nth(1).unwrap_or_default().to_owned();
                log.lock()
                    .expect("lock")
                    .push(text.lines().next().unwrap_or_default().to_owned());
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn csr() -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut p = rcgen::CertificateParams::new(vec!["logs.example".to_string()]).expect("params");
    p.distinguished_name.push(rcgen::DnType::CommonName, "logs");
    p.serialize_request(&key).expect("csr").pem().expect("pem")
}

#[test]
fn proxy_from_environment_and_no_secrets_in_trace_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (proxy_url, seen) = runtime.block_on(connect_proxy());
    // SAFETY: single-threaded at this point (current-thread runtime, no other test in this binary).
    unsafe {
        std::env::set_var("HTTPS_PROXY", &proxy_url);
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    runtime.block_on(async {
        ccm_issuer::install_crypto_provider();
        let mock = Embedded::start(EmbeddedOptions {
            credentials: vec![
                format!("{AK}:{SK}:{DOMAIN}").parse().expect("permanent"),
                Credential::parse_temporary(&format!("{TEMP_AK}:{TEMP_SK}:{TOKEN}:{DOMAIN}")).expect("temporary"),
            ],
            cas: vec![(CA.to_owned(), KeyAlgorithm::Ec256, 1)],
            tls: true,
            ..Default::default()
        })
        .await
        .expect("mock");
        let url = parse_endpoint(&mock.url).expect("url");
        let config = || {
            let mut c = ClientConfig::new(url.clone(), url.clone());
            c.ca_bundle_pem = mock.tls_ca_pem.clone().map(String::into_bytes);
            c.request_timeout = Duration::from_secs(5);
            c.retry.max_retries = 0;
            c
        };
        let bucket = || Arc::new(TokenBucket::new(0.0, 1));

        let permanent = PcaClient::new(config(), Credentials::new(AK, &SecretString::from(SK.to_owned())), bucket(), None)
            .expect("client");
        let ca = permanent.show_ca(CA).await.expect("show CA through the proxy");
        assert!(ca.is_active());
        let body = IssueFromCsr {
            issuer_id: CA.into(),
            csr: csr(),
            validity: Validity { unit: ValidityUnit::Day, value: 1, start_from: None },
            cert_type: CertificateType::EntityCert,
            path_length: None,
            enterprise_project_id: None,
        };
        permanent.issue_from_csr(&body).await.expect("issue");

        let temporary = PcaClient::new(
            config(),
            Credentials::with_token(TEMP_AK, &SecretString::from(TEMP_SK.to_owned()), Some(SecretString::from(TOKEN.to_owned()))),
            bucket(),
            None,
        )
        .expect("client");
        temporary.show_ca(CA).await.expect("temporary credentials with a signed X-Security-Token");

        let wrong = PcaClient::new(config(), Credentials::new(AK, &SecretString::from(format!("{SK}-wrong"))), bucket(), None)
            .expect("client");
        let err = wrong.show_ca(CA).await.expect_err("wrong SK");
        assert!(!err.to_string().contains(SK));
        tracing::error!(error = %err, debug = ?err, client = ?wrong, "logging the error and the client as a caller would");
    });
    let tunnels = seen.lock().expect("lock").clone();
    assert!(
        tunnels.iter().any(|l| l.starts_with("CONNECT 127.0.0.1:")),
        "the client used the proxy from HTTPS_PROXY: {tunnels:?}"
    );
    let logs = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    assert!(
        logs.len() > 1000,
        "trace logging captured output ({} bytes)",
        logs.len()
    );
    for secret in [SK, TEMP_SK, TOKEN] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
