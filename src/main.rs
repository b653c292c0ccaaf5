//! `ccm-issuer`: the controller and the operator CLI. All logic lives in the library.

use clap::Parser;

/// jemalloc instead of glibc's allocator: the controller's memory comes in bursts (a restart
/// lists every CertificateRequest in the cluster, pages of 500 full objects of which it keeps
/// a trimmed few), and glibc kept such a burst's memory for good, between the long-lived cache
/// entries allocated in between; jemalloc gives it back (figures in `docs/benchmarks.md`,
/// "Allocator" and "Scale").
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at start (`_RJEM_MALLOC_CONF` still overrides them). Its
/// background thread returns unused pages on their decay even while the process is idle;
/// without it they are returned only while the process allocates, and a restarted controller
/// held 45–47 MiB ten seconds after its first listing instead of 30–33 MiB (`cargo bench
/// --bench scale`).
#[cfg(target_os = "linux")]
// jemalloc reads this C string (`const char *`) by name; exporting a symbol is `unsafe`.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 23] = b"background_thread:true\0";

fn main() -> std::process::ExitCode {
    ccm_issuer::cli::main(ccm_issuer::cli::Cli::parse())
}
