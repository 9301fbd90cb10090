//! The `bourse` binary: see [`bourse::cli`].

use clap::Parser;

/// jemalloc, backed by transparent huge pages (`.cargo/config.toml` sets its
/// `malloc_conf`): the engine's order records, `cl_id` tables and account
/// histories grow into fresh memory, a page fault per 4 KiB page with the
/// system allocator (measured in BENCHMARKS.md, "Engine microbenchmarks").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    bourse::cli::run(bourse::cli::Cli::parse())
}
