//! The `bourse` binary: see [`bourse::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    bourse::cli::run(bourse::cli::Cli::parse())
}
