//! Account-level answers: IAM `GET /v3/auth/domains` (KeystoneListAuthDomains) and STS
//! `GET /v5/caller-identity` (GetCallerIdentity), which the SDKs use to discover the
//! account id, and the PCA console's feature flags.

use serde_json::{Value, json};

use super::dispatch::Reply;
use crate::auth::AuthContext;

/// Keystone shape; the SDKs read `domains[0].id`. With `no_domain` the list is empty (an
/// IAM user without IAM permissions sees this), and the SDKs fall back to STS.
pub(super) fn list_auth_domains(ctx: &AuthContext, host: &str, no_domain: bool) -> Reply {
    let base = format!("https://{host}/v3");
    let domains = if no_domain {
        json!([])
    } else {
        json!([{
            "id": ctx.domain_id,
            "name": account_name(ctx),
            "enabled": true,
            "description": "",
            "links": {"self": format!("{base}/domains/{}", ctx.domain_id)}
        }])
    };
    Reply::Json(json!({
        "domains": domains,
        "links": {"self": format!("{base}/auth/domains"), "previous": null, "next": null}
    }))
}

/// STS GetCallerIdentity. The Go SDK decodes the body into a map of strings and reads
/// `account_id`, so every value is a string; the other fields are the mock's reading of
/// the IAM v5 identity [unconfirmed].
pub(super) fn caller_identity(ctx: &AuthContext) -> Reply {
    Reply::Json(json!({
        "account_id": ctx.domain_id,
        "principal_id": format!("mock-user-{}", short(&ctx.ak)),
        "principal_urn": format!("iam::{}:user:mock-user", ctx.domain_id),
        "principal_name": "mock-user",
        "principal_type": "User",
    }))
}

fn account_name(ctx: &AuthContext) -> String {
    format!("mock-account-{}", short(&ctx.domain_id))
}

/// The first 8 characters (ids are ASCII; `chars` keeps this safe for any string).
fn short(s: &str) -> String {
    s.chars().take(8).collect()
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
