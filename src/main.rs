//! The `kamal-launcher` binary; everything lives in the library so that fuzzers and benchmarks reach it too.

fn main() -> std::process::ExitCode {
    kamal_launcher::cli::main()
}
