//! `ccm-mock-pca`: an offline stand-in for Huawei Cloud CCM Private CA.

pub mod auth;
pub mod ca;
pub mod errors;
pub mod timeutil;
