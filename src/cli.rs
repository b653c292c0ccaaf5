//! Command-line interface: `controller`, `pca describe-ca`, `pca sign`, `crds`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// cert-manager external issuer for Huawei Cloud CCM Private CA.
#[derive(Debug, Parser)]
#[command(name = "ccm-issuer", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print (or write) the CustomResourceDefinitions generated from the Rust types.
    Crds {
        /// Write one file per CRD into each of these directories instead of printing.
        #[arg(long)]
        out_dir: Vec<PathBuf>,
    },
}

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Crds { out_dir } => crds(&out_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn crds(out_dirs: &[PathBuf]) -> anyhow::Result<()> {
    let docs = crate::crd::crd_documents()?;
    if out_dirs.is_empty() {
        for (_, yaml) in docs {
            print!("{yaml}");
        }
        return Ok(());
    }
    for dir in out_dirs {
        std::fs::create_dir_all(dir)?;
        for (name, yaml) in &docs {
            std::fs::write(dir.join(name), yaml)?;
        }
    }
    Ok(())
}
