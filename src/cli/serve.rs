//! `video-status serve`.

use std::process::ExitCode;

use tracing::{info, warn};

use super::ServeArgs;
use crate::app::{shutdown_signal, Application};
use crate::config::{DEMO_PROVIDERS, DEMO_SECRET};
use crate::telemetry::Telemetry;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.store.load(args.listen)?;
    let telemetry = Telemetry::install(&config.telemetry)?;
    let demo = config.providers.is_empty();
    let config = config.with_demo_provider();
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    // Scripts and tests read this first line to learn the port (`--listen 127.0.0.1:0`).
    announce(&format!("video-status listening on http://{addr}"));
    if demo {
        warn!("no provider configured: running the `demo` provider with its public dev secret");
        announce(&format!(
            "demo provider: POST http://{addr}/webhooks/demo (Standard Webhooks)"
        ));
        announce(&format!("demo dev secret: {DEMO_SECRET}"));
        announce(&format!("try: video-status simulate --url http://{addr}"));
        let others: Vec<&str> = DEMO_PROVIDERS.iter().map(|demo| demo.name).collect();
        announce(&format!(
            "also: {} (their own payloads and signatures, public dev keys): \
             video-status simulate --url http://{addr} --provider {}",
            others.join(", "),
            others[0]
        ));
    }
    info!(%addr, store = %app.state().config.store, "serving");
    app.run_until_stopped(shutdown_signal()).await;
    info!("stopped");
    telemetry.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Prints a line for the operator; a closed stdout must never take the service down.
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
