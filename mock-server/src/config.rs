//! Command-line configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::auth::Credential;
use crate::ca::{CnRule, HashAlg, KeyAlgorithm};

/// Offline stand-in for Huawei Cloud CCM Private CA (PCA).
///
/// Prints the base URL it bound as the first line of stdout, logs to stderr, and exits
/// cleanly on SIGTERM/SIGINT.
#[derive(Debug, Clone, Parser)]
#[command(name = "ccm-mock-pca", version)]
pub struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Serve HTTPS with a self-signed CA (SANs: 127.0.0.1, ::1, localhost, --tls-san).
    #[arg(long)]
    pub tls: bool,

    /// Extra server-certificate SAN (IP literal or DNS name); repeatable.
    #[arg(long = "tls-san", value_name = "NAME")]
    pub tls_sans: Vec<String>,

    /// Write the TLS CA certificate (PEM) to this file.
    #[arg(long = "tls-ca-out", value_name = "FILE")]
    pub tls_ca_out: Option<PathBuf>,

    /// Permanent credential AK:SK[:DOMAIN_ID]; repeatable.
    #[arg(long = "credential", value_name = "AK:SK[:DOMAIN_ID]", value_parser = Credential::parse_permanent)]
    pub credentials: Vec<Credential>,

    /// Temporary credential AK:SK:SECURITY_TOKEN[:DOMAIN_ID]; requests must carry the
    /// token as a signed X-Security-Token header. Repeatable.
    #[arg(long = "temporary-credential", value_name = "AK:SK:TOKEN[:DOMAIN_ID]", value_parser = Credential::parse_temporary)]
    pub temporary_credentials: Vec<Credential>,

    /// Create an ACTIVED root and, under it, an ACTIVED subordinate CA with exactly this
    /// id (a lowercase UUID); repeatable. Existing CAs in --state are reused.
    #[arg(long = "ca", value_name = "ID")]
    pub cas: Vec<String>,

    /// path_length of the --ca subordinate CAs (≥ 1, so they can issue sub-CAs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=6))]
    pub ca_path_length: u32,

    /// Key algorithm of the seeded CAs: RSA2048, RSA4096, EC256 or EC384.
    #[arg(long, default_value = "EC256")]
    pub ca_key_algorithm: KeyAlgorithm,

    /// Signature algorithm of the seeded CAs' certificates: SHA256, SHA384 or SHA512.
    #[arg(long, default_value = "SHA384")]
    pub ca_signature_algorithm: HashAlg,

    /// Like --ca, but the subordinate has gen_mode CSR (its key is on the user's side):
    /// ACTIVED, yet it cannot issue. Repeatable.
    #[arg(long = "csr-ca", value_name = "ID")]
    pub csr_cas: Vec<String>,

    /// Like --ca, but the subordinate is frozen (freeze_flag 1): ACTIVED, yet it cannot
    /// issue. Repeatable.
    #[arg(long = "frozen-ca", value_name = "ID")]
    pub frozen_cas: Vec<String>,

    /// Serve IAM (/v3/auth/domains) and STS (/v5/caller-identity) on this second address
    /// (its base URL is the second stdout line); the PCA address then answers them 404.
    #[arg(long, value_name = "ADDR")]
    pub iam_listen: Option<SocketAddr>,

    /// IAM lists no domain, so clients must fall back to STS GetCallerIdentity.
    #[arg(long)]
    pub iam_no_domain: bool,

    /// Common-name rule for CSRs: strict (a CN is required) or lenient (SAN-only CSRs are
    /// accepted). The real service's rule is unconfirmed.
    #[arg(long, value_enum, default_value_t = CnRule::Strict)]
    pub csr_cn_rule: CnRule,

    /// Keep CAs (with keys) and certificates in this JSON file across restarts.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Answer 429 APIGW.0308 above this many requests per second.
    #[arg(long, value_name = "N")]
    pub max_tps: Option<u64>,

    /// CA quota reported and enforced (documented default 100).
    #[arg(long, default_value_t = 100)]
    pub ca_quota: u64,

    /// Private-certificate quota reported and enforced (documented default 100000).
    #[arg(long, default_value_t = 100_000)]
    pub cert_quota: u64,
}

impl Cli {
    /// Every CA pair to seed: --ca, --csr-ca, --frozen-ca.
    pub fn seeds(&self) -> Vec<crate::seed::SeedCa> {
        use crate::seed::{SeedCa, SeedKind};
        let kinds = [
            (&self.cas, SeedKind::Hosted),
            (&self.csr_cas, SeedKind::CsrSubordinate),
            (&self.frozen_cas, SeedKind::Frozen),
        ];
        kinds
            .into_iter()
            .flat_map(|(ids, kind)| {
                ids.iter().map(move |id| SeedCa {
                    id: id.clone(),
                    key_algorithm: self.ca_key_algorithm,
                    signature_algorithm: self.ca_signature_algorithm,
                    path_length: self.ca_path_length,
                    kind,
                })
            })
            .collect()
    }

    /// All credentials, permanent and temporary.
    pub fn all_credentials(&self) -> Vec<Credential> {
        self.credentials
            .iter()
            .chain(&self.temporary_credentials)
            .cloned()
            .collect()
    }
}
