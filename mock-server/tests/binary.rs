//! Integration tests against the real `ccm-mock-pca` binary on 127.0.0.1:0.
//!
//! Every spawned process is owned by a [`MockProcess`] guard that kills it on drop, so it
//! is stopped also when an assertion panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const AK: &str = "ITESTAK00000000000001";
const SK: &str = "itest-secret-key-0000000000000000000001";
const DOMAIN: &str = "0123456789abcdef0123456789abcdef";
const CA_ID: &str = "11111111-2222-4333-8444-555555555555";

struct MockProcess {
    child: Option<Child>,
    url: String,
    addr: SocketAddr,
}

impl MockProcess {
    fn start(args: &[&str]) -> Self {
        Self::start_reading(args, 1).0
    }

    /// Start and read `lines` stdout lines (the PCA URL, then the IAM URL with
    /// `--iam-listen`).
    fn start_reading(args: &[&str], lines: usize) -> (Self, Vec<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ccm-mock-pca"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ccm-mock-pca");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            for _ in 0..lines {
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = tx.send(line);
            }
        });
        let mut guard = Self {
            child: Some(child),
            url: String::new(),
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let printed: Vec<String> = (0..lines)
            .map(|_| {
                rx.recv_timeout(Duration::from_secs(120))
                    .expect("mock printed no URL")
                    .trim()
                    .to_owned()
            })
            .collect();
        let url = printed[0].clone();
        let hostport = url.split("://").nth(1).expect("URL has a scheme");
        guard.addr = hostport.parse().expect("URL authority is an address");
        guard.url = url;
        (guard, printed)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM and wait (bounded) for a clean exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mock did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// --- a minimal client-side signer (test code, independent of the crate's verifier) ---

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn hmac_hex(sk: &str, msg: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(sk.as_bytes()).unwrap();
    mac.update(msg.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn sdk_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil-from-days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn signature(
    sk: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    date: &str,
) -> String {
    let ch: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let names: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let uri = if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    let cr = format!(
        "{method}\n{uri}\n{query}\n{ch}\n{}\n{}",
        names.join(";"),
        hex::encode(Sha256::digest(body))
    );
    hmac_hex(
        sk,
        &format!(
            "SDK-HMAC-SHA256\n{date}\n{}",
            hex::encode(Sha256::digest(cr.as_bytes()))
        ),
    )
}

#[test]
fn test_signer_matches_official_vector() {
    let sig = signature(
        "SecretKey",
        "GET",
        "/path",
        "limit=1",
        &[("x-sdk-date", "20060102T150405Z")],
        b"",
        "20060102T150405Z",
    );
    assert_eq!(sig, "5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624");
    assert_eq!(
        sdk_date(UNIX_EPOCH + Duration::from_secs(1_136_214_245)),
        "20060102T150405Z"
    );
}

/// Build an HTTP/1.1 request signed like the Python SDK does (all headers signed).
fn signed_request(host: &str, method: &str, path: &str, query: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut q: Vec<(String, String)> = query.iter().map(|(k, v)| (enc(k), enc(v))).collect();
    q.sort();
    let cq = q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let date = sdk_date(SystemTime::now());
    let hs = [
        ("content-type", "application/json"),
        ("host", host),
        ("x-domain-id", DOMAIN),
        ("x-sdk-date", date.as_str()),
    ];
    let sig = signature(SK, method, path, &cq, &hs, body, &date);
    let target = if cq.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{cq}")
    };
    let mut s = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in hs {
        s += &format!("{k}: {v}\r\n");
    }
    s += &format!(
        "authorization: SDK-HMAC-SHA256 Access={AK}, SignedHeaders=content-type;host;x-domain-id;x-sdk-date, Signature={sig}\r\n"
    );
    s += &format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len());
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

fn plain_request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
        .into_bytes()
}

/// Write a request, read to EOF; `None` if the server closed without a response.
fn exchange(addr: SocketAddr, req: &[u8]) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(req).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse(&buf)
}

fn parse(buf: &[u8]) -> Option<(u16, Value)> {
    if buf.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap()
        },
    ))
}

fn csr_pem(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec![cn.to_owned()]).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.serialize_request(&key).unwrap().pem().unwrap()
}

fn issue(m: &MockProcess, cn: &str) -> Option<(u16, Value)> {
    let host = m.addr.to_string();
    let body =
        serde_json::to_vec(&json!({"issuer_id": CA_ID, "csr": csr_pem(cn), "validity": {"type": "DAY", "value": 7}}))
            .unwrap();
    exchange(
        m.addr,
        &signed_request(&host, "POST", "/v1/private-certificates/csr", &[], &body),
    )
}

#[test]
fn serves_persists_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let args = [
        "--credential",
        &format!("{AK}:{SK}:{DOMAIN}"),
        "--ca",
        CA_ID,
        "--state",
        state.to_str().unwrap(),
    ];
    let m = MockProcess::start(&args);
    assert!(m.url.starts_with("http://127.0.0.1:"), "{}", m.url);
    assert!(m.pid() > 0);
    let (st, health) = exchange(m.addr, &plain_request("GET", "/_mock/health", "")).unwrap();
    assert_eq!((st, health["status"].as_str()), (200, Some("ok")));

    let (st, issued) = issue(&m, "bin.example").unwrap();
    assert_eq!(st, 200, "{issued}");
    let cert_id = issued["certificate_id"].as_str().unwrap().to_owned();
    let host = m.addr.to_string();
    let (st, ca1) = exchange(
        m.addr,
        &signed_request(
            &host,
            "POST",
            &format!("/v1/private-certificate-authorities/{CA_ID}/export"),
            &[],
            b"",
        ),
    )
    .unwrap();
    assert_eq!(st, 200);
    let (st, listed) = exchange(
        m.addr,
        &signed_request(
            &host,
            "GET",
            "/v1/private-certificates",
            &[("name", "bin.example"), ("limit", "5")],
            b"",
        ),
    )
    .unwrap();
    assert_eq!((st, listed["total"].as_i64()), (200, Some(1)));

    let status = m.terminate();
    assert!(status.success(), "{status:?}");
    assert!(state.exists());

    // Restart on the same state: same CA certificate, certificate still there.
    let m = MockProcess::start(&args);
    let host = m.addr.to_string();
    let (st, ca2) = exchange(
        m.addr,
        &signed_request(
            &host,
            "POST",
            &format!("/v1/private-certificate-authorities/{CA_ID}/export"),
            &[],
            b"",
        ),
    )
    .unwrap();
    assert_eq!(st, 200);
    assert_eq!(ca1["certificate"], ca2["certificate"]);
    let (st, show) = exchange(
        m.addr,
        &signed_request(&host, "GET", &format!("/v1/private-certificates/{cert_id}"), &[], b""),
    )
    .unwrap();
    assert_eq!((st, show["status"].as_str()), (200, Some("ISSUED")));
    let (st, _) = issue(&m, "after-restart.example").unwrap();
    assert_eq!(st, 200);
}

#[test]
fn drop_after_issue_closes_connection_and_stats_count_it() {
    let m = MockProcess::start(&["--credential", &format!("{AK}:{SK}:{DOMAIN}"), "--ca", CA_ID]);
    let (st, plan) = exchange(
        m.addr,
        &plain_request("POST", "/_mock/faults", r#"{"drop_after_issue":1}"#),
    )
    .unwrap();
    assert_eq!((st, plan["drop_after_issue"].as_i64()), (200, Some(1)));
    assert!(
        issue(&m, "dropped.example").is_none(),
        "expected the connection to close without a response"
    );
    let (st, _) = issue(&m, "second.example").unwrap();
    assert_eq!(st, 200);
    let (_, stats) = exchange(m.addr, &plain_request("GET", "/_mock/stats", "")).unwrap();
    assert_eq!(stats["issued"]["total"], 2);
    assert_eq!(stats["operations"]["CreateCertificateByCsr"]["by_status"]["dropped"], 1);
    assert_eq!(stats["operations"]["CreateCertificateByCsr"]["by_status"]["200"], 1);
    let (st, _) = exchange(m.addr, &plain_request("POST", "/_mock/stats/reset", "")).unwrap();
    assert_eq!(st, 204);
    let (_, stats) = exchange(m.addr, &plain_request("GET", "/_mock/stats", "")).unwrap();
    assert_eq!(stats["issued"]["total"], 0);
}

#[test]
fn tls_uses_generated_ca_with_loopback_and_extra_sans() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let ca_out = dir.path().join("ca.pem");
    let m = MockProcess::start(&[
        "--tls",
        "--tls-ca-out",
        ca_out.to_str().unwrap(),
        "--tls-san",
        "mock.internal.test",
        "--credential",
        &format!("{AK}:{SK}"),
    ]);
    assert!(m.url.starts_with("https://127.0.0.1:"), "{}", m.url);
    for name in ["127.0.0.1", "localhost", "mock.internal.test"] {
        let (st, health) = tls_get(&ca_out, m.addr, name, "/_mock/health");
        assert_eq!(st, 200, "{name}");
        assert_eq!(health["status"], "ok");
    }
}

fn tls_get(ca_pem: &Path, addr: SocketAddr, server_name: &str, path: &str) -> (u16, Value) {
    let mut roots = rustls::RootCertStore::empty();
    for p in pem::parse_many(std::fs::read(ca_pem).unwrap()).unwrap() {
        roots
            .add(rustls::pki_types::CertificateDer::from(p.into_contents()))
            .unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(&plain_request("GET", path, "")).unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    parse(&buf).unwrap()
}

#[test]
fn invalid_flags_fail_fast() {
    for args in [
        vec!["--ca", "not-a-uuid"],
        vec!["--ca-path-length", "0"],
        vec!["--ca-key-algorithm", "RSA1024"],
        vec!["--credential", "only-ak"],
        vec!["--tls-ca-out", "/tmp/x.pem"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ccm-mock-pca"))
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "{args:?} printed a URL");
    }
}

/// `--iam-listen` prints a second URL that serves IAM and STS (and the PCA URL does not);
/// `--iam-no-domain` empties the domain list; `--csr-ca`/`--frozen-ca` seed CAs that look
/// ACTIVED but cannot issue; `--ca-signature-algorithm` signs the CA certificates.
#[test]
fn separate_iam_listener_and_ca_kinds_from_flags() {
    const CSR_CA: &str = "22222222-3333-4444-8555-666666666666";
    let (m, lines) = MockProcess::start_reading(
        &[
            "--credential",
            &format!("{AK}:{SK}:{DOMAIN}"),
            "--ca",
            CA_ID,
            "--csr-ca",
            CSR_CA,
            "--iam-listen",
            "127.0.0.1:0",
            "--iam-no-domain",
            "--ca-signature-algorithm",
            "SHA512",
        ],
        2,
    );
    let iam: SocketAddr = lines[1].trim_start_matches("http://").parse().unwrap();
    assert_ne!(iam, m.addr);
    let host = iam.to_string();
    let (status, domains) = exchange(iam, &signed_request(&host, "GET", "/v3/auth/domains", &[], b"")).unwrap();
    assert_eq!((status, domains["domains"].clone()), (200, json!([])));
    let (status, who) = exchange(iam, &signed_request(&host, "GET", "/v5/caller-identity", &[], b"")).unwrap();
    assert_eq!((status, who["account_id"].clone()), (200, json!(DOMAIN)));
    let pca_host = m.addr.to_string();
    let on_pca = exchange(m.addr, &signed_request(&pca_host, "GET", "/v3/auth/domains", &[], b"")).unwrap();
    assert_eq!((on_pca.0, on_pca.1["error_code"].clone()), (404, json!("APIGW.0101")));
    let path = format!("/v1/private-certificate-authorities/{CSR_CA}");
    let (status, show) = exchange(m.addr, &signed_request(&pca_host, "GET", &path, &[], b"")).unwrap();
    assert_eq!(
        (status, show["gen_mode"].clone(), show["signature_algorithm"].clone()),
        (200, json!("CSR"), json!("SHA512"))
    );
    assert_eq!(issue(&m, "ok.example").unwrap().0, 200, "the --ca one issues");
}
