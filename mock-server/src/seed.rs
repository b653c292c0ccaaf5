//! CAs created at start-up (`--ca`, `--csr-ca`, `--frozen-ca`, `EmbeddedOptions::seeds`):
//! each an ACTIVED root and, under it, a subordinate with a chosen id, key algorithm,
//! signature algorithm and kind.

use std::sync::Arc;

use crate::ca::{self, CaCertSpec, CaKey, Dn, HashAlg, IssuerMaterial, KeyAlgorithm};
use crate::state::{CaRecord, CaStatus, CaType, CrlConfig, GenMode};
use crate::{Mock, routes, timeutil};

/// What the seeded subordinate is like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeedKind {
    /// Key hosted by the mock: it issues.
    #[default]
    Hosted,
    /// `gen_mode` `CSR`: its key is on the user's side, so it is ACTIVED but cannot issue.
    /// (The real service creates such CAs from a CSR and does not list them; the seeded one
    /// is listed so list answers can show it.)
    CsrSubordinate,
    /// Key hosted, but `freeze_flag` 1: ACTIVED and frozen, so it cannot issue.
    Frozen,
}

/// One CA pair to create.
#[derive(Debug, Clone)]
pub struct SeedCa {
    /// The subordinate's id (a lowercase UUID); the root gets a random one.
    pub id: String,
    pub key_algorithm: KeyAlgorithm,
    /// Signs both CA certificates (the root's self-signature and the subordinate's).
    pub signature_algorithm: HashAlg,
    /// The subordinate's path length, ≥ 1.
    pub path_length: u32,
    pub kind: SeedKind,
}

impl SeedCa {
    /// A hosted pair with SHA-384 signatures (what `--ca` makes by default).
    pub fn new(id: impl Into<String>, key_algorithm: KeyAlgorithm, path_length: u32) -> Self {
        Self {
            id: id.into(),
            key_algorithm,
            signature_algorithm: HashAlg::Sha384,
            path_length,
            kind: SeedKind::Hosted,
        }
    }
}

const CA_USAGES: [rcgen::KeyUsagePurpose; 3] = [
    rcgen::KeyUsagePurpose::DigitalSignature,
    rcgen::KeyUsagePurpose::KeyCertSign,
    rcgen::KeyUsagePurpose::CrlSign,
];

/// One CA certificate and what its record needs.
struct Made {
    id: String,
    dn: Dn,
    key: Arc<CaKey>,
    serial: Vec<u8>,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
    der: Vec<u8>,
}

impl Mock {
    /// Create an ACTIVED root and an ACTIVED subordinate CA whose id is `sub_id` (no-op
    /// if `sub_id` already exists). Blocking (key generation): call at start-up.
    pub fn seed_ca(&self, sub_id: &str, alg: KeyAlgorithm, path_length: u32) -> anyhow::Result<()> {
        self.seed(&SeedCa::new(sub_id, alg, path_length))
    }

    /// Create the CA pair `spec` describes (no-op if its id already exists). Blocking.
    pub fn seed(&self, spec: &SeedCa) -> anyhow::Result<()> {
        let sub_id = spec.id.as_str();
        if !routes::params::is_uuid(sub_id) {
            anyhow::bail!(
                "CA id {sub_id:?} is not a lowercase UUID ([0-9a-f]{{8}}(-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}})"
            );
        }
        if !(1..=6).contains(&spec.path_length) {
            anyhow::bail!("the seeded CA's path length must be within 1..6");
        }
        if let Some(existing) = self.store.get_ca(sub_id) {
            tracing::info!(
                ca_id = sub_id,
                status = existing.status.as_str(),
                "CA already present in state; reusing it"
            );
            return Ok(());
        }
        let short = &sub_id[..8];
        let now = timeutil::ms_to_datetime(timeutil::now_ms()).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        // Backdate CA validity a little so clients with a slightly slow clock accept them.
        let start = now - time::Duration::minutes(5);
        let hash = spec.signature_algorithm;
        let root = make(
            uuid::Uuid::new_v4().to_string(),
            mock_dn(&format!("ccm-mock-pca Root CA {short}")),
            spec.key_algorithm,
            (start, 20 * 12),
            None,
            hash,
            None,
        )?;
        let sub = make(
            sub_id.to_owned(),
            mock_dn(&format!("ccm-mock-pca Sub CA {short}")),
            spec.key_algorithm,
            (start, 10 * 12),
            Some(u8::try_from(spec.path_length)?),
            hash,
            Some(&root),
        )?;
        let domain = self.default_domain();
        let root_record = record(&root, CaType::Root, 7, None, hash, &domain);
        let mut sub_record = record(&sub, CaType::Subordinate, spec.path_length, Some(&root), hash, &domain);
        match spec.kind {
            SeedKind::Hosted => {}
            SeedKind::CsrSubordinate => {
                sub_record.gen_mode = GenMode::Csr;
                sub_record.key = None;
                sub_record.key_pkcs8 = None;
            }
            SeedKind::Frozen => sub_record.freeze_flag = 1,
        }
        self.store.insert_ca(root_record);
        self.store.insert_ca(sub_record);
        tracing::info!(
            ca_id = sub_id,
            root_id = root.id,
            key_algorithm = spec.key_algorithm.as_str(),
            signature_algorithm = hash.as_str(),
            path_length = spec.path_length,
            kind = ?spec.kind,
            "created CA pair"
        );
        Ok(())
    }
}

/// Generate a key and its CA certificate, valid `months` from `start`: self-signed when
/// `parent` is `None`.
fn make(
    id: String,
    dn: Dn,
    alg: KeyAlgorithm,
    (start, months): (time::OffsetDateTime, i64),
    path_length: Option<u8>,
    hash: HashAlg,
    parent: Option<&Made>,
) -> anyhow::Result<Made> {
    let key = Arc::new(CaKey::generate(alg)?);
    let serial = ca::random_serial();
    let not_after = timeutil::add_months(start, months).ok_or_else(|| anyhow::anyhow!("date overflow"))?;
    let parent_kid = parent.map(|p| p.key.key_id());
    let issuer = match (parent, &parent_kid) {
        (Some(p), Some(kid)) => Some(IssuerMaterial {
            dn: &p.dn,
            key_id: kid,
            key: &p.key,
        }),
        _ => None,
    };
    let der = ca::make_ca_cert(
        &CaCertSpec {
            dn: &dn,
            key: &key,
            path_length,
            key_usages: CA_USAGES.to_vec(),
            not_before: start,
            not_after,
            serial: &serial,
            hash,
        },
        issuer.as_ref(),
    )?;
    Ok(Made {
        id,
        dn,
        key,
        serial,
        not_before: start,
        not_after,
        der,
    })
}

fn record(
    made: &Made,
    ca_type: CaType,
    path_length: u32,
    parent: Option<&Made>,
    hash: HashAlg,
    domain: &str,
) -> CaRecord {
    CaRecord {
        ca_id: made.id.clone(),
        ca_type,
        status: CaStatus::Actived,
        path_length,
        issuer_id: parent.map(|p| p.id.clone()),
        issuer_name: parent.map(|p| p.dn.cn().to_owned()),
        key_algorithm: made.key.alg,
        signature_algorithm: hash,
        gen_mode: GenMode::Generate,
        freeze_flag: 0,
        serial_number: ca::serial_hex(&made.serial),
        create_time: timeutil::now_ms(),
        delete_time: 0,
        not_before: timeutil::datetime_to_ms(made.not_before),
        not_after: timeutil::datetime_to_ms(made.not_after),
        dn: made.dn.clone(),
        crl: CrlConfig::default(),
        enterprise_project_id: "0".to_owned(),
        hidden: false,
        domain_id: domain.to_owned(),
        cert_der: Some(made.der.clone().into()),
        key_pkcs8: Some(made.key.pkcs8_der().into()),
        key_id: made.key.key_id(),
        key: Some(made.key.clone()),
        revoke_reason: None,
    }
}

fn mock_dn(cn: &str) -> Dn {
    Dn {
        common_name: Some(cn.to_owned()),
        country: Some("CN".to_owned()),
        state: Some("Guangdong".to_owned()),
        locality: Some("Shenzhen".to_owned()),
        organization: Some("ccm-mock-pca".to_owned()),
        organizational_unit: Some("Private CA".to_owned()),
    }
}

#[cfg(test)]
mod tests;
