//! The two error body shapes of the real API (docs/pca-behaviour.md, "Errors").
//!
//! * Gateway (APIG) errors: `{"error_code":"APIGW.xxxx","error_msg":"…","request_id":"…"}`.
//! * Service (PCA) errors:  `{"error_code":"PCA.xxxxxxxx","error_msg":"…"}`.
//!
//! Both carry the request id in the `X-Request-Id` response header.
//!
//! Codes marked "mock-chosen" are not in the part of the official error table that could
//! be read; they are plausible, stable, and listed in mock-server/README.md.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub const APIGW_API_NOT_FOUND: &str = "APIGW.0101";
pub const APIGW_REQUEST_TOO_LARGE: &str = "APIGW.0201";
pub const APIGW_AUTH: &str = "APIGW.0301";
pub const APIGW_THROTTLED: &str = "APIGW.0308";

pub const PCA_BAD_PARAMETER: &str = "PCA.00020001";
pub const PCA_BAD_DN: &str = "PCA.00020101";
pub const PCA_BAD_KEY_ALGORITHM: &str = "PCA.00020102";
pub const PCA_BAD_SIGNATURE_ALGORITHM: &str = "PCA.00020103";
pub const PCA_BAD_VALIDITY: &str = "PCA.00020109";
pub const PCA_BAD_SAN_TYPE: &str = "PCA.00020112";
pub const PCA_BAD_CA_ID: &str = "PCA.00020201";
pub const PCA_BAD_CA_TYPE: &str = "PCA.00020202";
pub const PCA_BAD_PATH_LENGTH: &str = "PCA.00020203";
pub const PCA_NOT_FOUND: &str = "PCA.10010002";
/// Mock-chosen: CA status does not allow the operation (not ACTIVED, not PENDING, …).
pub const PCA_CA_STATUS: &str = "PCA.10010003";
/// Mock-chosen: quota exhausted.
pub const PCA_QUOTA: &str = "PCA.10010004";
/// Mock-chosen: certificate status does not allow the operation.
pub const PCA_CERT_STATUS: &str = "PCA.10010005";
/// Mock-chosen: the operation exists in the real API but not in this mock.
pub const PCA_UNSUPPORTED: &str = "PCA.10010006";
/// Mock-chosen: internal error (also used for injected 5xx faults).
pub const PCA_INTERNAL: &str = "PCA.10010001";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Apig,
    Pca,
}

/// An error response, before the request id is attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {msg}")]
pub struct ApiError {
    pub status: StatusCode,
    pub shape: Shape,
    pub code: &'static str,
    pub msg: String,
}

impl ApiError {
    pub fn pca(status: StatusCode, code: &'static str, msg: impl Into<String>) -> Self {
        Self {
            status,
            shape: Shape::Pca,
            code,
            msg: msg.into(),
        }
    }

    pub fn apig(status: StatusCode, code: &'static str, msg: impl Into<String>) -> Self {
        Self {
            status,
            shape: Shape::Apig,
            code,
            msg: msg.into(),
        }
    }

    /// 400 with a PCA code.
    pub fn bad(code: &'static str, msg: impl Into<String>) -> Self {
        Self::pca(StatusCode::BAD_REQUEST, code, msg)
    }

    pub fn param(msg: impl Into<String>) -> Self {
        Self::bad(PCA_BAD_PARAMETER, format!("Incorrect parameter: {}", msg.into()))
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::bad(PCA_NOT_FOUND, format!("The {what} does not exist: {id}"))
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::pca(StatusCode::INTERNAL_SERVER_ERROR, PCA_INTERNAL, msg)
    }

    pub fn unauthorized(msg: impl Into<String>) -> Self {
        Self::apig(StatusCode::UNAUTHORIZED, APIGW_AUTH, msg)
    }

    pub fn api_not_found() -> Self {
        Self::apig(
            StatusCode::NOT_FOUND,
            APIGW_API_NOT_FOUND,
            "The API does not exist or has not been published in the environment",
        )
    }

    pub fn into_response_with_id(self, request_id: &str) -> Response {
        let body = match self.shape {
            Shape::Apig => json!({"error_code": self.code, "error_msg": self.msg, "request_id": request_id}),
            Shape::Pca => json!({"error_code": self.code, "error_msg": self.msg}),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        resp
    }
}

/// A fresh 32-hex request id, like the gateway's.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
