//! One path from a validated CSR to a verified certificate, shared by the controller and
//! `ccm-issuer pca sign`: the issue body, the export of an issued id (the CA export for CA
//! certificates, the certificate export for leaves), chain normalisation and verification
//! against the request. The controller adds the exactly-once protocol around the issue call
//! (`controller::issuance`); everything after "we have an id" is this module.

use crate::{
    pca::{
        PcaClient, PcaError,
        types::{CertificateType, ExportedPem, IssueFromCsr, Validity},
    },
    pki::{CERT_PEM_TAG, Chain, CsrInfo, Expectation, IssuedFacts, PkiError, check_certificate, pem::first_block},
};

/// What kind of certificate is issued; decides the issue type and the export endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An end-entity certificate (`ENTITY_CERT`, certificate export, listable).
    Leaf,
    /// A CA certificate (`INTERMEDIATE_CA`, CA export, not listable at the PCA).
    Ca {
        /// Path length constraint requested.
        path_length: u32,
    },
}

impl Kind {
    /// `Ca` when `is_ca`, with `path_length`.
    pub fn new(is_ca: bool, path_length: u32) -> Self {
        if is_ca { Kind::Ca { path_length } } else { Kind::Leaf }
    }

    /// Whether a CA certificate is requested.
    pub fn is_ca(self) -> bool {
        matches!(self, Kind::Ca { .. })
    }

    /// The path length for CA certificates.
    pub fn path_length(self) -> Option<u32> {
        match self {
            Kind::Ca { path_length } => Some(path_length),
            Kind::Leaf => None,
        }
    }

    /// `leaf` or `ca`, for metrics.
    pub fn label(self) -> &'static str {
        if self.is_ca() { "ca" } else { "leaf" }
    }
}

/// One certificate to issue from a CSR.
#[derive(Debug, Clone)]
pub struct SignRequest<'a> {
    /// Id of the issuing PCA CA.
    pub ca_id: &'a str,
    /// The validated CSR.
    pub csr: &'a CsrInfo,
    /// Leaf or CA.
    pub kind: Kind,
    /// Validity sent to the PCA.
    pub validity: Validity,
    /// Enterprise project of the certificate.
    pub enterprise_project_id: Option<String>,
}

impl SignRequest<'_> {
    /// The body of `CreateCertificateByCsr`.
    pub fn issue_body(&self) -> IssueFromCsr {
        IssueFromCsr {
            issuer_id: self.ca_id.to_owned(),
            csr: self.csr.pem.clone(),
            validity: self.validity,
            cert_type: if self.kind.is_ca() {
                CertificateType::IntermediateCa
            } else {
                CertificateType::EntityCert
            },
            path_length: self.kind.path_length(),
            enterprise_project_id: self.enterprise_project_id.clone(),
        }
    }

    /// What the issued certificate must be, at `now` (seconds since the epoch).
    pub fn expectation(&self, now: i64) -> Expectation<'_> {
        Expectation {
            csr: self.csr,
            is_ca: self.kind.is_ca(),
            path_length: self.kind.path_length(),
            now,
        }
    }
}

/// A verified certificate and its chain.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Leaf first, up to the root when the PCA sent it.
    pub chain: Chain,
    /// Serial and validity of the leaf.
    pub facts: IssuedFacts,
}

/// Why an issued id did not become a verified certificate.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The export call failed.
    #[error(transparent)]
    Pca(#[from] PcaError),
    /// The PCA's answer is not the certificate that was asked for.
    #[error("PCA certificate {id} was not written: {source}")]
    Mismatch {
        /// The certificate id.
        id: String,
        /// What is wrong.
        source: PkiError,
    },
}

/// Exports an issued id through the endpoint its kind needs. The CA export is never called for
/// a leaf id (nor the reverse).
pub async fn export(client: &PcaClient, id: &str, kind: Kind) -> Result<ExportedPem, PcaError> {
    match kind {
        Kind::Ca { .. } => client.export_ca(id).await,
        Kind::Leaf => client.export_certificate(id).await,
    }
}

/// Exports `id`, normalises the chain and verifies it against the request: the public key is
/// the CSR's, every requested SAN and usage is present, CA-ness is as requested, the exported
/// certificate is the chain's leaf, and every link is signed by the next.
pub async fn export_verified(client: &PcaClient, id: &str, request: &SignRequest<'_>) -> Result<Verified, SignError> {
    let exported = export(client, id, request.kind).await?;
    verify_exported(id, exported, request).await
}

/// The verification half of [`export_verified`], for an answer already in hand.
pub async fn verify_exported(
    id: &str,
    exported: ExportedPem,
    request: &SignRequest<'_>,
) -> Result<Verified, SignError> {
    let mismatch = |source| SignError::Mismatch {
        id: id.to_owned(),
        source,
    };
    let certificate = exported.certificate;
    let chain_pem = exported.certificate_chain;
    // Signature checks are CPU work proportional to what the PCA sent: off the async workers,
    // so a hostile answer cannot stall lease renewal or the health endpoints.
    let chain = tokio::task::spawn_blocking(move || crate::pki::normalize_export(&certificate, &chain_pem))
        .await
        .map_err(|e| mismatch(PkiError::Mismatch(format!("chain verification did not finish: {e}"))))?
        .map_err(mismatch)?;
    let now = jiff::Timestamp::now().as_second();
    let facts = crate::pki::verify_issued(&chain, &request.expectation(now)).map_err(mismatch)?;
    Ok(Verified { chain, facts })
}

/// The certificate exported for `id`, as DER, with the whole answer (recovery of an attempt
/// whose answer was lost: the answer of the one found is verified and delivered without a
/// second export): `None` when the answer holds no readable certificate.
pub async fn exported_certificate(
    client: &PcaClient,
    id: &str,
    kind: Kind,
) -> Result<Option<(Vec<u8>, ExportedPem)>, PcaError> {
    let exported = export(client, id, kind).await?;
    Ok(first_block(exported.certificate.as_bytes(), CERT_PEM_TAG)
        .ok()
        .map(|der| (der, exported)))
}

/// Whether the certificate `der` was issued for this request.
pub fn issued_for(der: &[u8], request: &SignRequest<'_>) -> bool {
    let now = jiff::Timestamp::now().as_second();
    check_certificate(der, &request.expectation(now)).is_ok()
}
