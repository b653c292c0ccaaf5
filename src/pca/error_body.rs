//! Error bodies, read the way the official SDKs read them (Go `core/sdkerr/errors.go`
//! `processServiceResponseError`, Python `huaweicloudsdkcore` `DefaultExceptionHandler`):
//!
//! 1. `{"error_code": …, "error_msg": …}` — PCA and the API gateway (the gateway adds `request_id`);
//! 2. `{"errorCode": …, "errorMsg": …}` — Python only;
//! 3. `{"code": …, "message": …}`;
//! 4. none of these at the top: the first nested object that has one, at any depth, e.g. IAM's
//!    `{"error": {"code": 401, "message": …, "title": …}}` (the SDKs walk every nested object; we
//!    take the first in key order so the result does not depend on map order);
//! 5. `encoded_authorization_message` next to them — what an IAM policy denial carries;
//! 6. `details: [ {…}, … ]`, each read by the same rules (Go only);
//! 7. anything else (not JSON, not an object, no pair found): no code, and the body text is the
//!    message.
//!
//! Codes may be strings or numbers (IAM answers `"code": 401`; Python keeps it, Go drops it).

use serde_json::{Map, Value};

/// How deep nested error objects are searched.
const MAX_DEPTH: usize = 8;
/// How many `details` entries are kept.
const MAX_DETAILS: usize = 5;

/// What an error body says. Texts are raw here; [`PcaError`](super::PcaError) scrubs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceError {
    /// `error_code` / `errorCode` / `code`.
    pub code: Option<String>,
    /// `error_msg` / `errorMsg` / `message`.
    pub message: Option<String>,
    /// IAM's encoded explanation of a policy denial (decode it with IAM to see what is missing).
    pub encoded_authorization_message: Option<String>,
    /// `details[]`, each read by the same rules.
    pub details: Vec<ServiceError>,
    /// The gateway repeats the request id in its bodies.
    pub request_id: Option<String>,
}

impl ServiceError {
    /// Reads a body; never fails (an unreadable body yields an empty value).
    pub fn parse(body: &[u8]) -> Self {
        let mut out = Self::default();
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            out.request_id = map.get("request_id").and_then(Value::as_str).map(str::to_owned);
            out.fill(&map, 0);
        }
        out
    }

    /// Whether a code was found.
    pub fn has_code(&self) -> bool {
        self.code.is_some()
    }

    fn fill(&mut self, map: &Map<String, Value>, depth: usize) {
        if self.encoded_authorization_message.is_none()
            && let Some(m) = map.get("encoded_authorization_message").and_then(Value::as_str)
        {
            self.encoded_authorization_message = Some(m.to_owned());
        }
        if depth == 0
            && let Some(Value::Array(details)) = map.get("details")
        {
            self.details = details
                .iter()
                .filter_map(Value::as_object)
                .take(MAX_DETAILS)
                .map(|d| {
                    let mut e = ServiceError::default();
                    e.fill(d, 1);
                    e
                })
                .collect();
        }
        for (code_key, message_key) in [
            ("error_code", "error_msg"),
            ("errorCode", "errorMsg"),
            ("code", "message"),
        ] {
            if let (Some(code), Some(message)) = (
                map.get(code_key).and_then(code_text),
                map.get(message_key).and_then(message_text),
            ) {
                self.code = Some(code);
                self.message = Some(message);
                return;
            }
        }
        if depth >= MAX_DEPTH {
            return;
        }
        for nested in map.values().filter_map(Value::as_object) {
            self.fill(nested, depth + 1);
            if self.has_code() {
                return;
            }
        }
    }
}

fn code_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn message_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> ServiceError {
        ServiceError::parse(body.as_bytes())
    }

    fn pair(e: &ServiceError) -> (Option<&str>, Option<&str>) {
        (e.code.as_deref(), e.message.as_deref())
    }

    #[test]
    fn service_and_gateway_shape() {
        let e = parse(
            r#"{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information","request_id":"r-1"}"#,
        );
        assert_eq!(
            pair(&e),
            (Some("APIGW.0301"), Some("Incorrect IAM authentication information"))
        );
        assert_eq!(e.request_id.as_deref(), Some("r-1"));
    }

    #[test]
    fn camel_case_and_code_message_shapes() {
        assert_eq!(
            pair(&parse(r#"{"errorCode":"PCA.1","errorMsg":"m"}"#)),
            (Some("PCA.1"), Some("m"))
        );
        assert_eq!(
            pair(&parse(r#"{"code":"PCA.2","message":"m2"}"#)),
            (Some("PCA.2"), Some("m2"))
        );
        // error_code/error_msg win over code/message when both are present.
        assert_eq!(
            pair(&parse(
                r#"{"code":"X","message":"x","error_code":"PCA.3","error_msg":"m3"}"#
            )),
            (Some("PCA.3"), Some("m3"))
        );
    }

    #[test]
    fn nested_objects_at_any_depth() {
        let e = parse(
            r#"{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}"#,
        );
        assert_eq!(
            pair(&e),
            (Some("401"), Some("The request you have made requires authentication."))
        );
        let e = parse(r#"{"outer":{"inner":{"error_code":"IAM.0002","error_msg":"deep"}}}"#);
        assert_eq!(pair(&e), (Some("IAM.0002"), Some("deep")));
    }

    #[test]
    fn encoded_authorization_message_and_details() {
        let e = parse(
            r#"{"error_code":"PCA.403","error_msg":"Policy doesn't allow pca:cert:issue to be performed.","encoded_authorization_message":"ZW5jb2RlZA","details":[{"error_code":"D.1","error_msg":"first"},{"code":"D.2","message":"second"},"ignored"]}"#,
        );
        assert_eq!(e.encoded_authorization_message.as_deref(), Some("ZW5jb2RlZA"));
        let details: Vec<_> = e.details.iter().map(pair).collect();
        assert_eq!(
            details,
            vec![(Some("D.1"), Some("first")), (Some("D.2"), Some("second"))]
        );
        // Also when it is nested with the code.
        let e = parse(r#"{"error":{"code":"X","message":"m","encoded_authorization_message":"abc"}}"#);
        assert_eq!(e.encoded_authorization_message.as_deref(), Some("abc"));
    }

    #[test]
    fn unreadable_bodies_give_nothing() {
        for body in [
            "",
            "<html>bad gateway</html>",
            "[1,2]",
            "\"text\"",
            r#"{"error_code":"","error_msg":"m"}"#,
            r#"{"error_code":"C"}"#,
            r#"{"error_code":null,"error_msg":"m"}"#,
        ] {
            assert!(!parse(body).has_code(), "{body}");
        }
    }

    #[test]
    fn hostile_nesting_is_bounded() {
        let deep = format!("{}{}", "{\"a\":".repeat(100), "1".to_owned() + &"}".repeat(100));
        assert!(!parse(&deep).has_code());
        let many = format!(
            r#"{{"details":[{}]}}"#,
            vec![r#"{"code":"c","message":"m"}"#; 1000].join(",")
        );
        assert_eq!(parse(&many).details.len(), MAX_DETAILS);
    }
}
