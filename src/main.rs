use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use video_status::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // Successful requests are not logged one by one by default: at webhook volume that
            // line is noise. Failed requests (4xx/5xx) still are.
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,warp::filters::trace=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
