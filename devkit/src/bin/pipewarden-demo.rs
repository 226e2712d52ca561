//! `make demo` (scripts/demo.sh): one release of the reference Flask app breaks and its fix ships,
//! through the real functions; see devkit/src/demo.rs. Exits non-zero when an expectation is unmet.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let bin = match std::env::current_exe() {
        Ok(exe) => exe.parent().map(|p| p.to_path_buf()).unwrap_or_default(),
        Err(e) => {
            eprintln!("pipewarden-demo: {e}");
            return ExitCode::from(2);
        }
    };
    let messages = std::env::var_os("PIPEWARDEN_DEMO_MESSAGES").map(std::path::PathBuf::from);
    match pipewarden_devkit::demo::run(&bin, messages).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nTHE DEMO FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
