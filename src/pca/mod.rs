//! Huawei Cloud CCM Private CA: request signing, wire types and the typed client.

pub mod client;
pub mod endpoint;
pub mod error;
pub mod error_body;
pub mod ratelimit;
pub mod scrub;
pub mod signer;
mod tls;
pub mod types;

pub use client::{CallOutcome, ClientConfig, PcaClient, PcaObserver, RetryPolicy, Turn};
pub use error::{ErrorClass, Operation, PcaError};
pub use scrub::scrub;
pub use signer::Credentials;
