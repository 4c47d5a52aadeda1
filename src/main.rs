use std::process::ExitCode;

use clap::Parser;

use video_status::cli::{self, Cli};

/// mimalloc instead of glibc's malloc: the service allocates and frees small buffers on every
/// thread for every webhook, where glibc's arenas spent a tenth of the CPU (consolidating and
/// locking). docs/benchmarks.md has the figures of both.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    video_status::allocator::return_freed_memory_promptly();
    run_cli()
}

#[tokio::main]
async fn run_cli() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
