//! Runs the gateway with the system allocator, for heap profilers that see
//! only malloc (valgrind's massif and DHAT, heaptrack): the `trustgate`
//! binary's mimalloc maps its memory itself.
//!
//! `cargo build --release --example heap_gateway`, then for example
//! `valgrind --tool=massif ./target/release/examples/heap_gateway CONFIG`
//! with idle connections open (`benches/README.md`, idle memory).

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "config.toml".into());
    let config = trustgate::config::Config::load(std::path::Path::new(&path))
        .map_err(|e| anyhow::anyhow!("{path} has errors:\n{e}"))?;
    trustgate::observe::init_logging(config.log_format, &config.log_level);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = config.server.worker_threads {
        runtime.worker_threads(n);
    }
    runtime
        .build()?
        .block_on(trustgate::lifecycle::run(config))?;
    Ok(())
}
