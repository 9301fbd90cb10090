//! `bourse-bench`: the load generator's command line (see [`bourse_bench::cli`]).

fn main() -> std::process::ExitCode {
    bourse_bench::cli::main()
}
