//! Account-level answers: IAM `GET /v3/auth/domains` (KeystoneListAuthDomains), which the
//! SDKs use to discover the account id, and the PCA console's feature flags.

use serde_json::{Value, json};

use super::dispatch::Reply;
use crate::auth::AuthContext;

/// Keystone shape; the SDKs read `domains[0].id`.
pub(super) fn list_auth_domains(ctx: &AuthContext, host: &str) -> Reply {
    let base = format!("https://{host}/v3");
    Reply::Json(json!({
        "domains": [{
            "id": ctx.domain_id,
            "name": format!("mock-account-{}", &ctx.domain_id[..ctx.domain_id.len().min(8)]),
            "enabled": true,
            "description": "",
            "links": {"self": format!("{base}/domains/{}", ctx.domain_id)}
        }],
        "links": {"self": format!("{base}/auth/domains"), "previous": null, "next": null}
    }))
}

/// ShowConsoleConfig: the international site's flags (no SM2, no EPS, no dedicated HSM).
pub(super) fn console_config() -> Reply {
    Reply::Json(console_flags())
}

fn console_flags() -> Value {
    json!({
        "is_support_eps": false,
        "is_support_sm2": false,
        "is_support_dhsm": false,
        "dhsm_regions": [],
        "is_support_yearly_monthly_ca": false,
        "is_support_iam5": false,
        "is_support_ocsp": false
    })
}

#[cfg(test)]
mod tests;
