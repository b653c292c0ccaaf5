#![allow(clippy::unwrap_used, clippy::expect_used)] // test and benchmark code
fn main() {}
