use std::process::ExitCode;

use clap::Parser;

use video_status::cli::{self, Cli};

/// mimalloc instead of glibc's malloc: the service allocates and frees small buffers on every
/// thread for every webhook, where glibc's arenas spent a tenth of the CPU (consolidating and
/// locking). docs/benchmarks.md has the figures of both.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server runs for months through bursts of videos, and its memory should come back
    // after each. The other commands run once and exit: `rebuild` holds a bounded working set
    // that it frees and reuses page after page, and returning it to the system at once cost it
    // 6-10% of its throughput (docs/benchmarks.md).
    if matches!(cli.command, cli::Command::Serve(_)) {
        video_status::allocator::return_freed_memory_promptly();
    }
    run_cli(cli)
}

#[tokio::main]
async fn run_cli(cli: Cli) -> ExitCode {
    match cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", video_status::cli::describe(&error));
            ExitCode::FAILURE
        }
    }
}
