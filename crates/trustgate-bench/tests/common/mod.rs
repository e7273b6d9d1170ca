//! What the harness's tests share.

/// The gateway binary: `cargo test` at the workspace root builds it beside
/// this package's `trustgate-bench` (one target folder).
pub fn gateway_bin() -> std::path::PathBuf {
    let bin =
        std::path::Path::new(env!("CARGO_BIN_EXE_trustgate-bench")).with_file_name("trustgate");
    assert!(
        bin.is_file(),
        "{} is missing: run the tests from the workspace root, or `cargo build --bin trustgate` first",
        bin.display()
    );
    bin
}
