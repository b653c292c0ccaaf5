//! The route table: which SDK operation a method and raw path name.

use axum::http::Method;

/// One PCA/IAM operation, named as in the official SDKs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    ListCertificateAuthority,
    CreateCertificateAuthority,
    CreateCertificateAuthorityOrder,
    ShowCertificateAuthority(String),
    DeleteCertificateAuthority(String),
    IssueCertificateAuthorityCertificate(String),
    ImportCertificateAuthorityCertificate(String),
    ExportCertificateAuthorityCsr(String),
    ExportCertificateAuthorityCertificate(String),
    EnableCertificateAuthority(String),
    DisableCertificateAuthority(String),
    RestoreCertificateAuthority(String),
    RevokeCertificateAuthority(String),
    EnableCertificateAuthorityCrl(String),
    DisableCertificateAuthorityCrl(String),
    UpdateOcspSwitch(String),
    ShowCertificateAuthorityQuota,
    CreateCertificate,
    CreateCertificateByCsr,
    ParseCertificateSigningRequest,
    ListCertificate,
    ShowCertificate(String),
    ExportCertificate(String),
    RevokeCertificate(String),
    DeleteCertificate(String),
    ShowCertificateQuota,
    ShowConsoleConfig,
    KeystoneListAuthDomains,
    /// STS `GET /v5/caller-identity`: the SDKs' fallback when IAM lists no domain.
    GetCallerIdentity,
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Self::ListCertificateAuthority => "ListCertificateAuthority",
            Self::CreateCertificateAuthority => "CreateCertificateAuthority",
            Self::CreateCertificateAuthorityOrder => "CreateCertificateAuthorityOrder",
            Self::ShowCertificateAuthority(_) => "ShowCertificateAuthority",
            Self::DeleteCertificateAuthority(_) => "DeleteCertificateAuthority",
            Self::IssueCertificateAuthorityCertificate(_) => "IssueCertificateAuthorityCertificate",
            Self::ImportCertificateAuthorityCertificate(_) => "ImportCertificateAuthorityCertificate",
            Self::ExportCertificateAuthorityCsr(_) => "ExportCertificateAuthorityCsr",
            Self::ExportCertificateAuthorityCertificate(_) => "ExportCertificateAuthorityCertificate",
            Self::EnableCertificateAuthority(_) => "EnableCertificateAuthority",
            Self::DisableCertificateAuthority(_) => "DisableCertificateAuthority",
            Self::RestoreCertificateAuthority(_) => "RestoreCertificateAuthority",
            Self::RevokeCertificateAuthority(_) => "RevokeCertificateAuthority",
            Self::EnableCertificateAuthorityCrl(_) => "EnableCertificateAuthorityCrl",
            Self::DisableCertificateAuthorityCrl(_) => "DisableCertificateAuthorityCrl",
            Self::UpdateOcspSwitch(_) => "UpdateOcspSwitch",
            Self::ShowCertificateAuthorityQuota => "ShowCertificateAuthorityQuota",
            Self::CreateCertificate => "CreateCertificate",
            Self::CreateCertificateByCsr => "CreateCertificateByCsr",
            Self::ParseCertificateSigningRequest => "ParseCertificateSigningRequest",
            Self::ListCertificate => "ListCertificate",
            Self::ShowCertificate(_) => "ShowCertificate",
            Self::ExportCertificate(_) => "ExportCertificate",
            Self::RevokeCertificate(_) => "RevokeCertificate",
            Self::DeleteCertificate(_) => "DeleteCertificate",
            Self::ShowCertificateQuota => "ShowCertificateQuota",
            Self::ShowConsoleConfig => "ShowConsoleConfig",
            Self::KeystoneListAuthDomains => "KeystoneListAuthDomains",
            Self::GetCallerIdentity => "GetCallerIdentity",
        }
    }

    /// PCA operations are a global service: `X-Domain-Id` is required.
    pub fn is_pca(&self) -> bool {
        !self.is_iam()
    }

    /// IAM and STS operations (account discovery), served on the IAM listener when there
    /// is a separate one.
    pub fn is_iam(&self) -> bool {
        matches!(self, Self::KeystoneListAuthDomains | Self::GetCallerIdentity)
    }

    /// Match method + raw path. Literal segments win over ids; an unknown path or a
    /// method the path does not have is `None` (gateway 404).
    pub fn route(method: &Method, path: &str) -> Option<Op> {
        let segs: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let m = method;
        let id = |s: &str| s.to_owned();
        Some(match segs.as_slice() {
            ["v1", "private-certificate-authorities"] if m == Method::GET => Self::ListCertificateAuthority,
            ["v1", "private-certificate-authorities"] if m == Method::POST => Self::CreateCertificateAuthority,
            ["v1", "private-certificate-authorities", "quotas"] if m == Method::GET => {
                Self::ShowCertificateAuthorityQuota
            }
            ["v1", "private-certificate-authorities", "quotas"] => return None,
            ["v1", "private-certificate-authorities", "order"] if m == Method::POST => {
                Self::CreateCertificateAuthorityOrder
            }
            ["v1", "private-certificate-authorities", "order"] => return None,
            ["v1", "private-certificate-authorities", ca] if m == Method::GET => Self::ShowCertificateAuthority(id(ca)),
            ["v1", "private-certificate-authorities", ca] if m == Method::DELETE => {
                Self::DeleteCertificateAuthority(id(ca))
            }
            ["v1", "private-certificate-authorities", ca, "csr"] if m == Method::GET => {
                Self::ExportCertificateAuthorityCsr(id(ca))
            }
            ["v1", "private-certificate-authorities", ca, action] if m == Method::POST => match *action {
                "activate" => Self::IssueCertificateAuthorityCertificate(id(ca)),
                "import" => Self::ImportCertificateAuthorityCertificate(id(ca)),
                "export" => Self::ExportCertificateAuthorityCertificate(id(ca)),
                "enable" => Self::EnableCertificateAuthority(id(ca)),
                "disable" => Self::DisableCertificateAuthority(id(ca)),
                "restore" => Self::RestoreCertificateAuthority(id(ca)),
                "revoke" => Self::RevokeCertificateAuthority(id(ca)),
                _ => return None,
            },
            ["v1", "private-certificate-authorities", ca, "crl", "enable"] if m == Method::POST => {
                Self::EnableCertificateAuthorityCrl(id(ca))
            }
            ["v1", "private-certificate-authorities", ca, "crl", "disable"] if m == Method::POST => {
                Self::DisableCertificateAuthorityCrl(id(ca))
            }
            ["v1", "private-certificate-authorities", ca, "ocsp", "switch"] if m == Method::POST => {
                Self::UpdateOcspSwitch(id(ca))
            }
            ["v1", "private-certificates"] if m == Method::GET => Self::ListCertificate,
            ["v1", "private-certificates"] if m == Method::POST => Self::CreateCertificate,
            ["v1", "private-certificates", "csr"] if m == Method::POST => Self::CreateCertificateByCsr,
            ["v1", "private-certificates", "csr"] => return None,
            ["v1", "private-certificates", "csr", "parse"] if m == Method::POST => Self::ParseCertificateSigningRequest,
            ["v1", "private-certificates", "quotas"] if m == Method::GET => Self::ShowCertificateQuota,
            ["v1", "private-certificates", "quotas"] => return None,
            ["v1", "private-certificates", c] if m == Method::GET => Self::ShowCertificate(id(c)),
            ["v1", "private-certificates", c] if m == Method::DELETE => Self::DeleteCertificate(id(c)),
            ["v1", "private-certificates", c, "export"] if m == Method::POST => Self::ExportCertificate(id(c)),
            ["v1", "private-certificates", c, "revoke"] if m == Method::POST => Self::RevokeCertificate(id(c)),
            ["v1", "pca", "config", "console"] if m == Method::GET => Self::ShowConsoleConfig,
            ["v3", "auth", "domains"] if m == Method::GET => Self::KeystoneListAuthDomains,
            ["v5", "caller-identity"] if m == Method::GET => Self::GetCallerIdentity,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests;
