//! Ingest benchmark (issue 3, "Performance"), all from one `cargo bench` run, in this order:
//! (e) the memory of one live video actor, on a fresh server;
//! (a) a bare warp route and (b) the full pipeline on the same bodies at concurrency 64, with
//! (c) commits per appended event during (b);
//! (d) RSS after 100k distinct videos were touched and passivated, in a child process (this
//! binary again, `--passivation-only`) so that nothing else it did inflates the figure.
//!
//! ```text
//! cargo bench --bench ingest                  # defaults: about a minute of load on 2 cores
//! cargo bench --bench ingest -- --quick       # a smoke run of a few seconds
//! cargo bench --bench ingest -- --help        # sizes and concurrency
//! ```
//!
//! The load generator (`video_status::cli::simulate::drive`, the same code as
//! `video-status simulate`) runs in the server's process: both share the machine's cores, so
//! throughput figures are a floor for the server alone, and the bare route's figure is mostly the
//! generator's own ceiling. Both sides are driven by the same generator, bodies and concurrency,
//! which is what the ratio compares.

/// The allocator the service binary ships with (`src/main.rs`), so the figures are the shipped
/// build's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/child.rs"]
mod child;
#[path = "support/machine.rs"]
mod machine;
#[path = "support/summary.rs"]
mod summary;

use machine::{load_average, megabytes, ms, proc_status_kib, Machine};
use std::time::{Duration, Instant};
use summary::Row;

use anyhow::{bail, Context};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::Filter;

use video_status::app::{AppState, Application};
use video_status::cli::simulate::{self, Delivery, Report, SimulateArgs, Target};
use video_status::config::{Config, Overrides};
use video_status::store::EventStore;

/// Sizes of one run; `--quick` shrinks them for a smoke test.
#[derive(Debug, Clone)]
struct Sizes {
    /// Requests in flight at once (the issue fixes 64).
    concurrency: usize,
    /// Videos played through a whole lifecycle in the throughput comparison.
    videos: usize,
    /// Distinct videos kept alive at once to weigh one active actor.
    alive: usize,
    /// Distinct videos touched, then passivated, before RSS is read (the target is for 100k).
    touch: usize,
    /// The bare route is driven with the lifecycle bodies repeated up to at least this many
    /// requests: it is several times faster, and a run under a second measures mostly noise.
    baseline_requests: usize,
    quick: bool,
    /// Internal: run only phase (d), as the child process the main run starts for it.
    passivation_only: bool,
}

impl Sizes {
    const DEFAULT: Sizes = Sizes {
        concurrency: 64,
        videos: 8_000,
        alive: 20_000,
        touch: 100_000,
        baseline_requests: 100_000,
        quick: false,
        passivation_only: false,
    };
    const QUICK: Sizes = Sizes {
        concurrency: 64,
        videos: 300,
        alive: 2_000,
        touch: 5_000,
        baseline_requests: 10_000,
        quick: true,
        passivation_only: false,
    };

    fn from_args() -> anyhow::Result<Sizes> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut sizes = if args.iter().any(|a| a == "--quick") {
            Sizes::QUICK
        } else {
            Sizes::DEFAULT
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> anyhow::Result<usize> {
                let value = args
                    .next()
                    .with_context(|| format!("{name} needs a number"))?;
                match value.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => bail!("{name} needs a positive whole number, not {value:?}"),
                }
            };
            match arg.as_str() {
                "--concurrency" => sizes.concurrency = number("--concurrency")?,
                "--videos" => sizes.videos = number("--videos")?,
                "--alive" => sizes.alive = number("--alive")?,
                "--touch" => sizes.touch = number("--touch")?,
                // `cargo bench` passes `--bench` to every harness-less benchmark.
                "--quick" | "--bench" => {}
                "--passivation-only" => sizes.passivation_only = true,
                "--help" | "-h" => {
                    println!(
                        "cargo bench --bench ingest -- [--quick] [--concurrency N] [--videos N] \
                         [--alive N] [--touch N]\n\
                         defaults: --concurrency {} --videos {} --alive {} --touch {}\n\
                         --quick:  --videos {} --alive {} --touch {}",
                        Sizes::DEFAULT.concurrency,
                        Sizes::DEFAULT.videos,
                        Sizes::DEFAULT.alive,
                        Sizes::DEFAULT.touch,
                        Sizes::QUICK.videos,
                        Sizes::QUICK.alive,
                        Sizes::QUICK.touch,
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (try --help)"),
            }
        }
        Ok(sizes)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As the service binary does (src/main.rs).
    video_status::allocator::return_freed_memory_promptly();
    let sizes = Sizes::from_args()?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    if sizes.passivation_only {
        return passivation_child(&dir, &sizes).await;
    }
    let machine = Machine::read();
    println!("video-status ingest benchmark");
    println!("machine: {machine}");
    println!(
        "load:    {} (load average over 1, 5, 15 min at start, a build that just finished \
         included: other work skews every figure)",
        load_average()
    );
    println!(
        "sizes:   concurrency {}, {} lifecycle videos, {} alive, {} touched{}",
        sizes.concurrency,
        sizes.videos,
        sizes.alive,
        sizes.touch,
        if sizes.quick { " (--quick)" } else { "" }
    );
    println!(
        "note:    the load generator runs in the server's process and shares the {} core(s) \
         with it",
        machine.cores
    );
    if cfg!(debug_assertions) {
        println!("warning: debug build; run `cargo bench` for figures worth keeping");
    }
    let mut figures = Figures::default();

    // (e) first: it divides a growth of RSS, and memory freed by earlier phases would be reused
    // without growing it.
    actor_memory(&dir, &sizes, &mut figures).await?;

    // The same bodies go to both sides of the comparison: lifecycles of distinct videos,
    // shuffled, no redeliveries (so every acknowledgement of the pipeline is one appended event).
    let lifecycles = SimulateArgs {
        videos: sizes.videos,
        duplicates: 0.0,
        seed: Some(1),
        prefix: Some("bench".into()),
        ..SimulateArgs::default()
    };
    let warmup = simulate::plan(&SimulateArgs {
        videos: (sizes.videos / 10).max(50),
        prefix: Some("warmup".into()),
        ..lifecycles.clone()
    });
    let plan = simulate::plan(&lifecycles);
    baseline(&sizes, &warmup, &plan, &mut figures).await?;
    pipeline(&dir, &sizes, warmup, plan, &mut figures).await?;

    // (d) in a fresh process: it reads an absolute RSS, which whatever this process allocated
    // before would inflate.
    passivation(&sizes, &mut figures)?;

    println!();
    figures.print(&sizes, &machine);
    Ok(())
}

/// (e) Warms a fresh server up, then adds `sizes.alive` live actors (default idle timeout, so
/// none passivates) and divides the RSS growth by their number. The growth also holds the
/// store's cache and the allocator's slack, so this is an upper bound.
async fn actor_memory(
    dir: &tempfile::TempDir,
    sizes: &Sizes,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let app = App::start(dir, "actors.db", None).await?;
    // One-time allocations (connections, runtime, store, registry) happen before the baseline.
    let warmup = simulate::plan_uploads("warm", 0..500, chrono::Utc::now());
    drive(&app.url, warmup, sizes.concurrency).await?;
    // Planned before the first reading, so the generator's bodies are not counted.
    let uploads = simulate::plan_uploads("alive", 0..sizes.alive, chrono::Utc::now());
    let actors_before = app.state.videos.active_actors();
    let rss_before = rss_bytes()?;
    let report = drive(&app.url, uploads, sizes.concurrency).await?;
    let rss_after = rss_bytes()?;
    let actors_after = app.state.videos.active_actors();
    print_phase("(e) live actors", &report);
    let added = actors_after.saturating_sub(actors_before);
    println!(
        "    {added} more live actors ({actors_before} → {actors_after}), RSS {} → {}",
        megabytes(rss_before),
        megabytes(rss_after)
    );
    figures.bytes_per_actor =
        (added > 0).then(|| rss_after.saturating_sub(rss_before) as f64 / added as f64);
    app.stop().await
}

/// (a) The bare route: what HTTP, JSON and the load generator cost on their own.
async fn baseline(
    sizes: &Sizes,
    warmup: &[Delivery],
    plan: &[Delivery],
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let (url, server) = serve_baseline().await?;
    drive(&url, warmup.to_vec(), sizes.concurrency).await?;
    let mut bodies = plan.to_vec();
    while bodies.len() < sizes.baseline_requests {
        bodies.extend_from_slice(plan);
    }
    let report = drive(&url, bodies, sizes.concurrency).await?;
    print_phase("(a) bare warp route", &report);
    figures.baseline = Some(report);
    server.abort();
    Ok(())
}

/// (b) The full pipeline on the same bodies, and (c) how many commits its appends took.
async fn pipeline(
    dir: &tempfile::TempDir,
    sizes: &Sizes,
    warmup: Vec<Delivery>,
    plan: Vec<Delivery>,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let app = App::start(dir, "pipeline.db", None).await?;
    drive(&app.url, warmup, sizes.concurrency).await?;
    let before = app.state.store.stats();
    let report = drive(&app.url, plan, sizes.concurrency).await?;
    let after = app.state.store.stats();
    print_phase("(b) full pipeline", &report);
    let appended = after.appended - before.appended;
    let commits = after.commits - before.commits;
    println!(
        "    (c) {commits} commits for {appended} appended events ({} acknowledged)",
        report.acknowledged()
    );
    figures.pipeline = Some(report);
    figures.commits_per_append = (appended > 0).then(|| commits as f64 / appended as f64);
    app.stop().await
}

/// The line a `--passivation-only` child ends with, for its parent to read.
const RESULT_PREFIX: &str = "passivation result:";

/// (d) Runs this benchmark again as a child with `--passivation-only`, passes its report
/// through and keeps its figures.
fn passivation(sizes: &Sizes, figures: &mut Figures) -> anyhow::Result<()> {
    let touch = sizes.touch.to_string();
    let concurrency = sizes.concurrency.to_string();
    let result = child::run(
        [
            "--passivation-only",
            "--touch",
            &touch,
            "--concurrency",
            &concurrency,
        ],
        RESULT_PREFIX,
        "the passivation phase",
    )?;
    let field = |name: &str| result.field::<u64>(name);
    figures.touched = field("touched")?;
    figures.passivated = field("passivated")? == 1;
    figures.rss_after_passivation = Some(field("rss")?);
    Ok(())
}

/// The child of (d): touches `sizes.touch` distinct videos with a 1 s idle timeout, waits until
/// every actor has passivated, then reads what the process still holds.
async fn passivation_child(dir: &tempfile::TempDir, sizes: &Sizes) -> anyhow::Result<()> {
    let rss_at_start = rss_bytes()?;
    let app = App::start(dir, "passivation.db", Some(1)).await?;
    let mut touched = Report::default();
    // In chunks, so the generator never holds more than one chunk of bodies.
    const CHUNK: usize = 10_000;
    for first in (0..sizes.touch).step_by(CHUNK) {
        let last = (first + CHUNK).min(sizes.touch);
        let uploads = simulate::plan_uploads("touch", first..last, chrono::Utc::now());
        touched.absorb(drive(&app.url, uploads, sizes.concurrency).await?);
    }
    print_phase(
        "(d) distinct videos touched, idle timeout 1 s (fresh process)",
        &touched,
    );
    let live_at_end = app.state.videos.active_actors();
    let waited = Instant::now();
    let passivated = eventually(Duration::from_secs(120), || {
        app.state.videos.active_actors() == 0
    })
    .await;
    let rss = rss_bytes()?;
    println!(
        "    {live_at_end} actors live when the load ended; {} {:.1} s later; \
         RSS {} → {} (peak {})",
        if passivated {
            "all passivated".to_string()
        } else {
            format!("{} still live", app.state.videos.active_actors())
        },
        waited.elapsed().as_secs_f64(),
        megabytes(rss_at_start),
        megabytes(rss),
        megabytes(peak_rss_bytes()?),
    );
    println!(
        "{RESULT_PREFIX} touched={} passivated={} rss={rss}",
        touched.accepted,
        u8::from(passivated)
    );
    app.stop().await
}

/// Drives `plan` at the demo provider of the server at `url`.
async fn drive(url: &str, plan: Vec<Delivery>, concurrency: usize) -> anyhow::Result<Report> {
    simulate::drive(&Target::demo(url), plan, concurrency).await
}

fn print_phase(name: &str, report: &Report) {
    println!("{name}:");
    for line in report.to_string().lines() {
        println!("    {line}");
    }
}

/// `POST /webhooks/:provider` → 200 `{"status":"accepted"}` after reading the body: HTTP and the
/// generator, nothing else.
async fn serve_baseline() -> anyhow::Result<(String, JoinHandle<()>)> {
    let route = warp::post()
        .and(warp::path!("webhooks" / String))
        .and(warp::body::bytes())
        .map(|_provider: String, _body: bytes::Bytes| {
            warp::reply::json(&json!({ "status": "accepted" }))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((
        url,
        tokio::spawn(warp::serve(route).incoming(listener).run()),
    ))
}

/// The real application on port 0 with the demo provider and its own SQLite file.
struct App {
    url: String,
    state: AppState,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
}

impl App {
    async fn start(
        dir: &tempfile::TempDir,
        file: &str,
        idle_timeout_secs: Option<u64>,
    ) -> anyhow::Result<App> {
        let mut config = Config::load(
            None,
            &Overrides {
                listen: Some("127.0.0.1:0".parse()?),
                store: Some(format!("sqlite://{}", dir.path().join(file).display())),
            },
        )?
        .with_demo_provider();
        if let Some(secs) = idle_timeout_secs {
            config.actors.idle_timeout_secs = secs;
        }
        let app = Application::build(config).await?;
        let url = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Ok(App {
            url,
            state,
            stop,
            server,
        })
    }

    /// Graceful shutdown: drains in-flight webhooks and stops the actors.
    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await.context("the server task panicked")?;
        Ok(())
    }
}

/// Polls `done` every 50 ms until it holds or `limit` passes; answers whether it held.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Everything the run measured; `None` where a phase produced nothing to divide by.
#[derive(Default)]
struct Figures {
    baseline: Option<Report>,
    pipeline: Option<Report>,
    commits_per_append: Option<f64>,
    bytes_per_actor: Option<f64>,
    rss_after_passivation: Option<u64>,
    touched: u64,
    passivated: bool,
}

impl Figures {
    fn rows(&self, sizes: &Sizes) -> Vec<Row> {
        let mut rows = Vec::new();
        let c = sizes.concurrency;
        if let Some(base) = &self.baseline {
            rows.push(Row::new(
                format!("bare route throughput, c={c}"),
                format!("{:.0} req/s", base.throughput_per_sec),
                "reference",
                None,
            ));
            rows.push(Row::new(
                "bare route p50 / p99",
                format!("{} / {}", ms(base.latency.p50), ms(base.latency.p99)),
                "reference",
                None,
            ));
        }
        if let Some(pipe) = &self.pipeline {
            let clean = pipe.failures() == 0;
            rows.push(Row::new(
                format!("pipeline throughput, c={c}"),
                format!("{:.0} webhooks/s", pipe.throughput_per_sec),
                "reference",
                None,
            ));
            if let Some(base) = &self.baseline {
                let ratio = pipe.throughput_per_sec / base.throughput_per_sec;
                rows.push(Row::new(
                    "pipeline / bare route",
                    format!("{ratio:.2}"),
                    "≥ 0.5",
                    Some(ratio >= 0.5),
                ));
            }
            rows.push(Row::new(
                "pipeline p50",
                ms(pipe.latency.p50),
                "reference",
                None,
            ));
            rows.push(Row::new(
                "pipeline p99",
                ms(pipe.latency.p99),
                "< 20 ms",
                Some(pipe.latency.p99 < Duration::from_millis(20)),
            ));
            rows.push(Row::new(
                "pipeline errors",
                format!("{} of {}", pipe.failures(), pipe.sent),
                "0",
                Some(clean),
            ));
        }
        rows.push(Row::new(
            format!("commits per acknowledged webhook, c={c}"),
            self.commits_per_append
                .map_or("n/a".into(), |r| format!("{r:.3}")),
            "≤ 0.1",
            self.commits_per_append.map(|r| r <= 0.1),
        ));
        // The target is stated for 100k videos; a smaller run is shown but not judged.
        let judged = self.touched >= 100_000 && self.passivated;
        rows.push(Row::new(
            format!(
                "RSS after {}k videos touched and passivated",
                self.touched / 1000
            ),
            self.rss_after_passivation.map_or("n/a".into(), megabytes),
            "< 300 MB",
            self.rss_after_passivation
                .filter(|_| judged)
                .map(|rss| rss < 300 * 1_000_000),
        ));
        rows.push(Row::new(
            "memory per active actor (upper bound)",
            self.bytes_per_actor
                .map_or("n/a".into(), |b| format!("{:.1} KiB", b / 1024.0)),
            "reference",
            None,
        ));
        rows
    }

    fn print(&self, sizes: &Sizes, machine: &Machine) {
        let notes: &[&str] = if self.passivated {
            &[]
        } else {
            &["not every actor passivated within the wait; the RSS figure is not judged"]
        };
        let label = format!("{machine}; load generator in the same process");
        summary::print(&self.rows(sizes), notes, &label);
    }
}

/// Resident set size of this process (server and generator together).
fn rss_bytes() -> anyhow::Result<u64> {
    proc_status_kib("self", "VmRSS:").map(|kib| kib * 1024)
}

/// Highest resident set size this process reached.
fn peak_rss_bytes() -> anyhow::Result<u64> {
    proc_status_kib("self", "VmHWM:").map(|kib| kib * 1024)
}
