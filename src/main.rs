//! `ccm-issuer`: the controller and the operator CLI. All logic lives in the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    ccm_issuer::cli::main(ccm_issuer::cli::Cli::parse())
}
