//! `ccm-issuer`: the controller and the operator CLI. All logic lives in the library.

use clap::Parser;

/// jemalloc instead of glibc's allocator: the controller's memory comes in bursts (a restart
/// lists every CertificateRequest in the cluster, pages of 500 full objects of which it keeps
/// a trimmed few), and glibc kept such a burst's memory for good, between the long-lived cache
/// entries allocated in between; jemalloc gives it back on its decay, while the process keeps
/// allocating (figures in `docs/benchmarks.md`, "Allocator"; the restart figures of "Scale"
/// show it holding 3–5 MiB more than glibc 10 s after the first listing — not settled yet).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    ccm_issuer::cli::main(ccm_issuer::cli::Cli::parse())
}
