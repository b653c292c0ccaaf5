//! Test-only certificates made with the `openssl` command (an implementation independent of the
//! verifier under test), for the algorithms rcgen cannot produce: RSA keys of a given size,
//! ECDSA with a hash other than the curve's own, SHA-512 signatures and SM2 with SM3.

use std::process::Command;

use tempfile::TempDir;

/// Key types the PCA offers for CAs (and SM2, which it offers on the China site).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySpec {
    Rsa2048,
    Rsa4096,
    Ec256,
    Ec384,
    Sm2,
}

impl KeySpec {
    /// `openssl genpkey` arguments.
    fn genpkey_args(self) -> &'static [&'static str] {
        match self {
            KeySpec::Rsa2048 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            KeySpec::Rsa4096 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
            KeySpec::Ec256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeySpec::Ec384 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            KeySpec::Sm2 => &["-algorithm", "SM2"],
        }
    }
}

/// Digests a CA can sign with (the PCA's `signature_algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Digest {
    Sha256,
    Sha384,
    Sha512,
    Sm3,
}

impl Digest {
    fn flag(self) -> &'static str {
        match self {
            Digest::Sha256 => "-sha256",
            Digest::Sha384 => "-sha384",
            Digest::Sha512 => "-sha512",
            Digest::Sm3 => "-sm3",
        }
    }
}

/// A scratch directory of keys and certificates, removed on drop.
pub(crate) struct Openssl {
    dir: TempDir,
    serial: u32,
}

/// A root CA and a leaf it issued, as PEM.
pub(crate) struct RootAndLeaf {
    pub root: String,
    pub leaf: String,
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("openssl must be installed for these tests");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Openssl {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
            serial: 0,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Generates a private key named `name`.
    pub(crate) fn key(&self, name: &str, spec: KeySpec) {
        run(Command::new("openssl")
            .args(["genpkey", "-quiet"])
            .args(spec.genpkey_args())
            .args(["-out", &self.path(name)]));
    }

    /// A self-signed CA certificate for key `key`, signed with `digest`.
    pub(crate) fn root(&mut self, key: &str, cn: &str, digest: Digest) -> String {
        self.serial += 1;
        let out = self.path(&format!("{key}-{}.crt", self.serial));
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-new",
                "-days",
                "1",
                "-key",
                &self.path(key),
                digest.flag(),
            ])
            .args(["-subj", &format!("/CN={cn}"), "-set_serial", &self.serial.to_string()])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .args(["-out", &out]));
        std::fs::read_to_string(out).expect("written by openssl")
    }

    /// A certificate for key `subject_key` (`ca` makes it a CA), issued by `issuer_cert` /
    /// `issuer_key` with `digest`.
    pub(crate) fn issue(
        &mut self,
        subject_key: &str,
        cn: &str,
        ca: bool,
        issuer_cert: &str,
        issuer_key: &str,
        digest: Digest,
    ) -> String {
        self.serial += 1;
        let csr = self.path(&format!("{subject_key}-{}.csr", self.serial));
        run(Command::new("openssl")
            .args(["req", "-new", "-key", &self.path(subject_key)])
            .args(["-subj", &format!("/CN={cn}"), "-out", &csr]));
        let ext = self.path(&format!("ext-{}", self.serial));
        let ext_text = if ca {
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        } else {
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectAltName=DNS:leaf.example\n"
        };
        std::fs::write(&ext, ext_text).expect("scratch file");
        let ca_file = self.path(&format!("issuer-{}.crt", self.serial));
        std::fs::write(&ca_file, issuer_cert).expect("scratch file");
        let out = self.path(&format!("{subject_key}-{}.crt", self.serial));
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "1", "-in", &csr, digest.flag()])
            .args(["-CA", &ca_file, "-CAkey", &self.path(issuer_key)])
            .args(["-set_serial", &self.serial.to_string(), "-extfile", &ext, "-out", &out]));
        std::fs::read_to_string(out).expect("written by openssl")
    }

    /// A root for key `ca_key` and a leaf for `leaf_key`, both signed with `digest`.
    pub(crate) fn root_and_leaf(&mut self, ca_key: &str, leaf_key: &str, digest: Digest) -> RootAndLeaf {
        let root = self.root(ca_key, "Matrix Root", digest);
        let leaf = self.issue(leaf_key, "leaf.example", false, &root, ca_key, digest);
        RootAndLeaf { root, leaf }
    }

    /// A CSR for key `key`, self-signed with `digest`.
    pub(crate) fn csr(&self, key: &str, digest: Digest) -> String {
        self.csr_with(key, &[digest.flag()])
    }

    /// A CSR for key `key`, with extra `openssl req` arguments (digest, `-sigopt`).
    pub(crate) fn csr_with(&self, key: &str, args: &[&str]) -> String {
        String::from_utf8_lossy(&run(Command::new("openssl")
            .args(["req", "-new", "-key", &self.path(key), "-subj", "/CN=openssl"])
            .args(args)))
        .into_owned()
    }
}

/// Property-test settings for the parsers: 64 cases by default so CI stays fast, or
/// `PROPTEST_CASES` when set (e.g. `PROPTEST_CASES=5000` for a longer local run).
pub(crate) fn proptest_config() -> proptest::test_runner::Config {
    let from_env = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok());
    proptest::test_runner::Config {
        cases: from_env.unwrap_or(64),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
