//! `ccm-issuer pca describe-ca` and `ccm-issuer pca sign` as a user runs them: the real binary,
//! credentials from the Huawei SDK's environment variables, against the mock PCA over HTTPS.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::process::{Command, Output};

use ccm_mock_pca::{
    ca::KeyAlgorithm,
    embedded::{Embedded, EmbeddedOptions},
};

const AK: &str = "CLIACCESSKEY00000001";
const SK: &str = "cli-secret-key-000000000000000000000001";
const DOMAIN: &str = "0123456789abcdef0123456789abcdef";
const CA: &str = "6434f74f-2d13-4e6a-89eb-93ee313f1a43";

struct Fixture {
    mock: Embedded,
    dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    ccm_issuer::install_crypto_provider();
    let mock = Embedded::start(EmbeddedOptions {
        credentials: vec![format!("{AK}:{SK}:{DOMAIN}").parse().unwrap()],
        cas: vec![(CA.to_owned(), KeyAlgorithm::Ec256, 1)],
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mock-ca.pem"), mock.tls_ca_pem.as_deref().unwrap()).unwrap();
    Fixture { mock, dir }
}

impl Fixture {
    /// `ccm-issuer pca <args>` against the mock for CA `urn`, IAM included, with the SDK's
    /// variables cleared.
    fn command(&self, urn: &str, sk: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccm-issuer"));
        cmd.arg("pca")
            .args(args)
            .args(["--urn", urn, "--endpoint", &self.mock.url, "--ca-bundle"])
            .arg(self.dir.path().join("mock-ca.pem"))
            .env("HUAWEICLOUD_SDK_AK", AK)
            .env("HUAWEICLOUD_SDK_SK", sk)
            .env_remove("HUAWEICLOUD_SDK_DOMAIN_ID")
            .env_remove("HUAWEICLOUD_SDK_IAM_ENDPOINT")
            .env_remove("HUAWEICLOUD_SDK_STS_ENDPOINT")
            .env_remove("HTTPS_PROXY");
        cmd
    }

    /// Runs `ccm-issuer pca <args>` off the async runtime (the mock serves on it meanwhile), with
    /// IAM at the mock too.
    async fn pca(&self, sk: &str, args: &[&str]) -> Output {
        let mut cmd = self.command(CA, sk, args);
        cmd.args(["--iam-endpoint", &self.mock.url]);
        run(cmd).await
    }

    fn csr(&self, name: &str, keyspec: &[&str]) -> String {
        let key = self.dir.path().join(format!("{name}.key"));
        let csr = self.dir.path().join(format!("{name}.csr"));
        let ok = Command::new("openssl")
            .args([
                "req",
                "-new",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                &format!("subjectAltName=DNS:{name}.example"),
            ])
            .args(keyspec)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .output()
            .unwrap();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        csr.display().to_string()
    }
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_ca_checks_credentials_and_urn() {
    let f = fixture().await;
    let out = f.pca(SK, &["describe-ca"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("status:         ACTIVED"), "{stdout}");
    assert!(
        stdout.contains(&format!("account:        {DOMAIN}")),
        "discovered through IAM: {stdout}"
    );
    assert!(stdout.contains("OK, this CA can issue"), "{stdout}");

    let out = f.pca("wrong-secret", &["describe-ca"]).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("APIGW.0301") && stderr.contains("HUAWEICLOUD_SDK_SK"),
        "says what to fix: {stderr}"
    );
    assert!(!stderr.contains("wrong-secret"), "{stderr}");

    f.mock
        .mock
        .store
        .update_ca(CA, |ca| {
            ca.status = ccm_mock_pca::state::CaStatus::Disabled;
            Ok(())
        })
        .unwrap();
    let out = f.pca(SK, &["describe-ca"]).await;
    assert_eq!(out.status.code(), Some(1), "a CA that cannot issue is a failure");
    assert!(text(&out).0.contains("cannot issue"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_prints_chain_and_writes_root() {
    let f = fixture().await;
    let csr = f.csr("leaf", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let root = f.dir.path().join("root.pem");
    let out = f
        .pca(
            SK,
            &[
                "sign",
                "--csr",
                &csr,
                "--duration",
                "720h",
                "--ca-out",
                root.to_str().unwrap(),
            ],
        )
        .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf + PCA sub-CA:\n{stdout}"
    );
    let root_pem = std::fs::read_to_string(&root).unwrap();
    assert_eq!(root_pem.matches("BEGIN CERTIFICATE").count(), 1);
    std::fs::write(f.dir.path().join("chain.pem"), &stdout).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&root)
        .arg("-untrusted")
        .arg(f.dir.path().join("chain.pem"))
        .arg(f.dir.path().join("chain.pem"))
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    assert_eq!(f.mock.stats().issued.total, 1);

    // A CA certificate for an Istio intermediate.
    let ca_csr = f.csr("mesh-ca", &["-newkey", "rsa:2048"]);
    let out = f
        .pca(SK, &["sign", "--csr", &ca_csr, "--ca", "--path-length", "0"])
        .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    std::fs::write(f.dir.path().join("ca.pem"), &stdout).unwrap();
    let x509 = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(f.dir.path().join("ca.pem"))
        .output()
        .unwrap();
    let x509 = String::from_utf8_lossy(&x509.stdout);
    assert!(x509.contains("CA:TRUE, pathlen:0"), "{x509}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_refuses_bad_input_before_calling_the_pca() {
    let f = fixture().await;
    let rsa3072 = f.csr("big", &["-newkey", "rsa:3072"]);
    let out = f.pca(SK, &["sign", "--csr", &rsa3072]).await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("RSA 3072-bit"), "{}", text(&out).1);
    let garbage = f.dir.path().join("garbage.csr");
    std::fs::write(&garbage, "not a csr").unwrap();
    let out = f.pca(SK, &["sign", "--csr", garbage.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("is not a usable CSR"), "{}", text(&out).1);
    assert!(
        !f.mock.stats().operations.contains_key("CreateCertificateByCsr"),
        "no issue call"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ccm-issuer"))
        .args(["pca", "describe-ca", "--urn", CA, "--endpoint", &f.mock.url])
        .env_remove("HUAWEICLOUD_SDK_AK")
        .env_remove("HUAWEICLOUD_SDK_SK")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("set HUAWEICLOUD_SDK_AK"), "{}", text(&out).1);
}

/// Every numeric controller flag is checked before anything starts: a clear message naming
/// the flag and the allowed range, exit status 2, never a panic.
#[test]
fn controller_flags_out_of_range_are_refused_with_a_message() {
    for (flag, value, says) in [
        ("--pca-qps", "NaN", "finite number"),
        ("--pca-qps", "inf", "finite number"),
        ("--pca-qps", "-1", "finite number"),
        ("--pca-burst", "0", "from 1"),
        ("--max-concurrent-reconciles", "0", "from 1"),
        ("--max-concurrent-per-issuer", "70000", "not a whole number"),
        ("--pca-timeout", "0s", "outside the allowed range"),
        ("--max-retry-duration", "800h", "outside the allowed range"),
        ("--issuer-recheck-interval", "1s", "outside the allowed range"),
        ("--leader-election-lease-duration", "1s", "outside the allowed range"),
        ("--namespaced-issuer-endpoint", "ftp://x", "http(s) URL"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ccm-issuer"))
            .args(["controller", "--kubeconfig", "/nonexistent", &format!("{flag}={value}")])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}={value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{flag}={value}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_ca_asks_iam_where_told_never_at_the_pca_endpoint() {
    let f = fixture().await;
    // A second mock with the same credentials plays IAM; trust both mocks' TLS CAs.
    let iam = Embedded::start(EmbeddedOptions {
        credentials: vec![format!("{AK}:{SK}:{DOMAIN}").parse().unwrap()],
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let both = format!(
        "{}{}",
        f.mock.tls_ca_pem.as_deref().unwrap(),
        iam.tls_ca_pem.as_deref().unwrap()
    );
    std::fs::write(f.dir.path().join("mock-ca.pem"), both).unwrap();
    let iam_calls = |m: &Embedded| {
        m.stats()
            .operations
            .get("KeystoneListAuthDomains")
            .map(|o| o.total)
            .unwrap_or(0)
    };

    let mut flag = f.command(CA, SK, &["describe-ca"]);
    flag.args(["--iam-endpoint", &iam.url]);
    let out = run(flag).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("IAM endpoint:   {}", iam.url)), "{stdout}");
    assert!(stdout.contains(&format!("account:        {DOMAIN}")), "{stdout}");

    // The Huawei SDK's variable, without the flag; a value without scheme means https.
    let mut env = f.command(CA, SK, &["describe-ca"]);
    env.env("HUAWEICLOUD_SDK_IAM_ENDPOINT", iam.url.trim_start_matches("https://"));
    let out = run(env).await;
    assert!(out.status.success(), "{}{}", text(&out).0, text(&out).1);

    assert_eq!(iam_calls(&iam), 2, "each run discovered the account at the IAM mock");
    assert_eq!(iam_calls(&f.mock), 0, "the PCA endpoint was never asked for IAM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_ca_and_sign_refuse_a_ca_whose_key_is_not_in_the_pca() {
    let f = fixture().await;
    // `pca sign --ca` makes a subordinate CA from a CSR: gen_mode CSR, key on our side.
    let csr = f.csr(
        "sub-from-csr",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let out = f.pca(SK, &["sign", "--csr", &csr, "--ca", "--path-length", "0"]).await;
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("issued certificate id "))
        .expect("the id is printed")
        .trim()
        .to_owned();

    let mut describe = f.command(&id, SK, &["describe-ca"]);
    describe.args(["--iam-endpoint", &f.mock.url]);
    let out = run(describe).await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("generated by:   CSR"), "{stdout}");
    assert!(
        stdout.contains("cannot issue (CAKeyNotInPCA)") && stdout.contains("gen_mode CSR"),
        "{stdout}"
    );

    let leaf = f.csr(
        "leaf-of-csr-ca",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let issued_before = f.mock.stats().issued.total;
    let mut sign = f.command(&id, SK, &["sign", "--csr", &leaf]);
    sign.args(["--iam-endpoint", &f.mock.url]);
    let out = run(sign).await;
    assert!(!out.status.success());
    assert!(text(&out).1.contains("CAKeyNotInPCA"), "{}", text(&out).1);
    assert_eq!(f.mock.stats().issued.total, issued_before, "no issue call");
}
