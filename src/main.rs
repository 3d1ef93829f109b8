fn main() -> std::process::ExitCode {
    miulink::cli::main()
}
