//! SSE fan-out benchmark (issue 4, "Performance"), all from one `cargo bench` run, in this order:
//! (1) baseline with 0 subscribers: an idle window, a steady open-loop 1,000 webhooks/s and the
//!     closed-loop maximum at concurrency 64;
//! (2) 10,000 idle subscribers attached (9,900 on `GET /videos/{id}/events` over the 1,000
//!     videos, 100 on `GET /events`): server memory per subscriber and the CPU its keep-alives
//!     take over an idle window at the default 15 s interval;
//! (3) with them attached: the same steady 1,000 webhooks/s, measuring for every webhook the time
//!     from its 200 reaching the sender to each subscriber receiving the matching event, then the
//!     closed-loop maximum again;
//! (4) a second, fresh server with `VIDEO_STATUS_SSE__KEEP_ALIVE_SECS=1`: the cost of one
//!     keep-alive, and memory per subscriber again on a server that did nothing else;
//! (5) a third, fresh server holding as many idle plain HTTP/1.1 keep-alive connections: what a
//!     connection costs before any SSE.
//!
//! ```text
//! cargo bench --bench sse                  # defaults: about 2 minutes once built, on 2 cores
//! cargo bench --bench sse -- --quick       # a smoke run with 1,000 subscribers
//! cargo bench --bench sse -- --quickack    # diagnostic: subscribers never delay their ACKs
//! cargo bench --bench sse -- --help        # sizes
//! ```
//!
//! The server is the release binary (`video-status serve`) in a child process, so that its RSS
//! and CPU (`/proc/<pid>/status`, `/proc/<pid>/stat`) are its own; this process holds the load
//! generator and the subscribers (raw TCP, a minimal incremental SSE parser). Both still share
//! the machine's cores. Every time is read from one clock, this process's `Instant`.

/// The allocator the service binary ships with (`src/main.rs`), so the figures are the shipped
/// build's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/machine.rs"]
mod machine;

use machine::{load_average, megabytes, ms, proc_status_kib, Machine};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use video_status::cli::simulate::{self, Delivery, Report, Target};
use video_status::config::{ProviderConfig, SchemeName, Secret, DEMO_SECRET};
use video_status::providers::{Provider, Providers};

/// Sizes of one run; `--quick` shrinks them for a smoke test.
#[derive(Debug, Clone)]
struct Sizes {
    /// Videos the webhooks and the per-video subscribers spread over.
    videos: usize,
    /// Subscribers of `GET /videos/{id}/events`, spread round-robin over the videos.
    video_subscribers: usize,
    /// Subscribers of `GET /events`.
    global_subscribers: usize,
    /// Offered webhooks per second of the open-loop phases.
    rate: usize,
    /// Length of each open-loop phase.
    steady_secs: u64,
    /// Idle window with the subscribers attached (default keep-alive interval).
    idle_secs: u64,
    /// Idle window of the baseline (no subscriber).
    baseline_idle_secs: u64,
    /// Idle window of the 1 s keep-alive probe, (4); 0 skips it.
    probe_secs: u64,
    /// Closed-loop webhooks per video in each maximum-throughput measurement.
    closed_per_video: usize,
    /// Requests in flight of the closed-loop measurement (the issue fixes 64).
    concurrency: usize,
    /// Diagnostic: subscribers set `TCP_QUICKACK` after every read, so their ACKs are never
    /// delayed (shows what Nagle's algorithm on the server's sockets costs).
    quickack: bool,
    quick: bool,
}

impl Sizes {
    const DEFAULT: Sizes = Sizes {
        videos: 1_000,
        video_subscribers: 9_900,
        global_subscribers: 100,
        rate: 1_000,
        steady_secs: 12,
        idle_secs: 30,
        baseline_idle_secs: 10,
        probe_secs: 10,
        closed_per_video: 30,
        concurrency: 64,
        quickack: false,
        quick: false,
    };
    const QUICK: Sizes = Sizes {
        videos: 1_000,
        video_subscribers: 990,
        global_subscribers: 10,
        rate: 1_000,
        steady_secs: 3,
        idle_secs: 5,
        baseline_idle_secs: 3,
        probe_secs: 3,
        closed_per_video: 5,
        concurrency: 64,
        quickack: false,
        quick: true,
    };

    fn subscribers(&self) -> usize {
        self.video_subscribers + self.global_subscribers
    }

    fn from_args() -> anyhow::Result<Sizes> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut sizes = if args.iter().any(|a| a == "--quick") {
            Sizes::QUICK
        } else {
            Sizes::DEFAULT
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut number = |name: &str, zero_ok: bool| -> anyhow::Result<usize> {
                let value = args
                    .next()
                    .with_context(|| format!("{name} needs a number"))?;
                match value.parse::<usize>() {
                    Ok(n) if n > 0 || zero_ok => Ok(n),
                    _ => bail!("{name} needs a positive whole number, not {value:?}"),
                }
            };
            match arg.as_str() {
                "--videos" => sizes.videos = number("--videos", false)?,
                "--subscribers" => {
                    // Split as the issue does: 99% on per-video streams, 1% global.
                    let total = number("--subscribers", false)?;
                    sizes.global_subscribers = (total / 100).max(1);
                    sizes.video_subscribers = total.saturating_sub(sizes.global_subscribers);
                }
                "--global" => sizes.global_subscribers = number("--global", true)?,
                "--rate" => sizes.rate = number("--rate", false)?,
                "--steady-secs" => sizes.steady_secs = number("--steady-secs", false)? as u64,
                "--idle-secs" => sizes.idle_secs = number("--idle-secs", false)? as u64,
                "--probe-secs" => sizes.probe_secs = number("--probe-secs", true)? as u64,
                "--closed-per-video" => {
                    sizes.closed_per_video = number("--closed-per-video", false)?
                }
                "--concurrency" => sizes.concurrency = number("--concurrency", false)?,
                // `cargo bench` passes `--bench` to every harness-less benchmark.
                "--quick" | "--bench" => {}
                "--quickack" => sizes.quickack = true,
                "--help" | "-h" => {
                    let d = Sizes::DEFAULT;
                    let q = Sizes::QUICK;
                    println!(
                        "cargo bench --bench sse -- [--quick] [--subscribers N (1% of them \
                         global)] [--global N (after --subscribers)] [--videos N] [--rate N] \
                         [--steady-secs N] [--idle-secs N] [--probe-secs N (0 skips (4), (5))] \
                         [--closed-per-video N] [--concurrency N] [--quickack (diagnostic)]\n\
                         defaults: --subscribers {} --videos {} --rate {} --steady-secs {} \
                         --idle-secs {} --probe-secs {} --closed-per-video {} --concurrency {}\n\
                         --quick:  --subscribers {} --steady-secs {} --idle-secs {} \
                         --probe-secs {} --closed-per-video {}",
                        d.subscribers(),
                        d.videos,
                        d.rate,
                        d.steady_secs,
                        d.idle_secs,
                        d.probe_secs,
                        d.closed_per_video,
                        d.concurrency,
                        q.subscribers(),
                        q.steady_secs,
                        q.idle_secs,
                        q.probe_secs,
                        q.closed_per_video,
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
    // Subscriber sockets here, and as many on the server's side: it inherits the limit.
    let nofile = raise_nofile(sizes.subscribers() as u64 + 1024)?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let machine = Machine::read();
    let clock_ticks = clock_ticks_per_sec();
    println!("video-status SSE fan-out benchmark");
    println!("machine: {machine}");
    println!(
        "load:    {} (load average over 1, 5, 15 min at start: other work skews every figure)",
        load_average()
    );
    println!("fds:     {nofile}");
    println!(
        "sizes:   {} subscribers ({} per-video over {} videos, {} global), {} webhooks/s offered \
         for {} s, idle window {} s, closed loop {} per video at c={}{}",
        sizes.subscribers(),
        sizes.video_subscribers,
        sizes.videos,
        sizes.global_subscribers,
        sizes.rate,
        sizes.steady_secs,
        sizes.idle_secs,
        sizes.closed_per_video,
        sizes.concurrency,
        match (sizes.quick, sizes.quickack) {
            (false, false) => "",
            (true, false) => " (--quick)",
            (false, true) => " (--quickack: subscribers never delay their ACKs)",
            (true, true) => " (--quick --quickack: subscribers never delay their ACKs)",
        }
    );
    println!(
        "note:    the server is a child process (its RSS and CPU alone); the load generator and \
         the subscribers run here and share the {} core(s) with it",
        machine.cores
    );
    if cfg!(debug_assertions) {
        println!("warning: debug build; run `cargo bench` for figures worth keeping");
    }

    let epoch = Instant::now();
    let signer = demo_signer()?;
    let mut figures = Figures::default();

    // (1)–(3) on one server.
    let server = Server::start(dir.path(), "bench", &[])?;
    println!(
        "server:  {} (pid {}), default keep-alive",
        server.url, server.pid
    );
    let mut videos = Videos::new(sizes.videos);
    let outcome = main_run(
        &server,
        &sizes,
        &mut videos,
        &signer,
        epoch,
        clock_ticks,
        &mut figures,
    )
    .await;
    if let Err(error) = &outcome {
        println!("error: {error:#}");
        server.print_log_tail();
    }
    server.stop()?;
    outcome?;

    // (4) on a fresh server: nothing else happened in it, and a short keep-alive interval.
    if sizes.probe_secs > 0 {
        let probe = Server::start(
            dir.path(),
            "probe",
            &[("VIDEO_STATUS_SSE__KEEP_ALIVE_SECS", "1")],
        )?;
        println!();
        println!(
            "probe server: {} (pid {}), keep-alive 1 s",
            probe.url, probe.pid
        );
        let mut videos = Videos::new(sizes.videos);
        let outcome =
            keep_alive_probe(&probe, &sizes, &mut videos, clock_ticks, &mut figures).await;
        if let Err(error) = &outcome {
            println!("error: {error:#}");
            probe.print_log_tail();
        }
        probe.stop()?;
        outcome?;
    }

    // (5) on a fresh server: the same number of idle plain HTTP/1.1 keep-alive connections,
    // what a connection costs before any SSE.
    if sizes.probe_secs > 0 {
        let plain = Server::start(dir.path(), "plain", &[])?;
        println!();
        println!("plain server: {} (pid {})", plain.url, plain.pid);
        let mut videos = Videos::new(sizes.videos);
        let outcome = plain_connections(&plain, &sizes, &mut videos, &mut figures).await;
        if let Err(error) = &outcome {
            println!("error: {error:#}");
            plain.print_log_tail();
        }
        plain.stop()?;
        outcome?;
    }

    println!();
    figures.print(&sizes, &machine);
    Ok(())
}

/// Phases (1) to (3) on `server`.
async fn main_run(
    server: &Server,
    sizes: &Sizes,
    videos: &mut Videos,
    signer: &Arc<Provider>,
    epoch: Instant,
    clock_ticks: f64,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Every video exists before anything is measured, so a per-video subscriber gets its first
    // status at once; the closed loop also warms connections, the runtime and the store.
    let warmup = videos.closed_loop_plan(1);
    let report = drive(&server.url, warmup, sizes.concurrency).await?;
    print_phase("warm-up: one webhook per video, c=64", &report);
    videos.read_versions(&server.url).await?;

    // (1) Baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = cpu_over(
        server,
        clock_ticks,
        Duration::from_secs(sizes.baseline_idle_secs),
    )
    .await?;
    println!(
        "(1) idle, 0 subscribers, {} s: server CPU {:.2}% of one core",
        sizes.baseline_idle_secs, idle
    );
    figures.idle_cpu_base = Some(idle);

    let steady_base = steady(server, sizes, videos, signer, None, epoch, clock_ticks).await?;
    steady_base.print("(1) steady open loop, 0 subscribers", sizes);
    figures.steady_base = Some(steady_base);

    let plan = videos.closed_loop_plan(sizes.closed_per_video);
    let closed = closed_loop(server, plan, sizes, None, clock_ticks).await?;
    closed.print(
        &format!("(1) closed loop, c={}, 0 subscribers", sizes.concurrency),
        cores,
    );
    figures.closed_base = Some(closed);
    videos.read_versions(&server.url).await?;

    // (2) Attach the subscribers, then leave them idle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = server.rss_bytes()?;
    let clients = Clients::new(epoch, sizes.quickack);
    let attached = attach(server.addr, sizes, &clients).await?;
    println!(
        "(2) attached {} of {} subscribers in {:.1} s ({} failed{})",
        attached.subscribers.len() - clients.failed.load(Ordering::Relaxed),
        sizes.subscribers(),
        attached.took.as_secs_f64(),
        clients.failed.load(Ordering::Relaxed),
        clients
            .first_error
            .lock()
            .unwrap()
            .as_ref()
            .map_or(String::new(), |e| format!("; first: {e}"))
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server.rss_bytes()?;
    let live = clients.live();
    println!(
        "    server RSS {} → {} with {live} idle subscribers: {:.1} KiB each",
        megabytes(rss_before),
        megabytes(rss_after),
        per_subscriber_kib(rss_before, rss_after, live).unwrap_or(f64::NAN)
    );
    figures.rss_before = Some(rss_before);
    figures.rss_attached = Some(rss_after);
    figures.attached = live;
    figures.attach_secs = attached.took.as_secs_f64();

    let comments_before = clients.comments.load(Ordering::Relaxed);
    let idle = cpu_over(server, clock_ticks, Duration::from_secs(sizes.idle_secs)).await?;
    let comments = clients.comments.load(Ordering::Relaxed) - comments_before;
    let cpu_secs =
        (idle - figures.idle_cpu_base.unwrap_or(0.0)).max(0.0) / 100.0 * sizes.idle_secs as f64;
    println!(
        "(2) idle, {live} subscribers, keep-alive 15 s, {} s: server CPU {:.2}% of one core, \
         {comments} keep-alive comments received ({} µs of server CPU each, above the idle \
         baseline)",
        sizes.idle_secs,
        idle,
        if comments > 0 {
            format!("{:.1}", cpu_secs / comments as f64 * 1e6)
        } else {
            "n/a".into()
        }
    );
    figures.idle_cpu_attached = Some(idle);
    figures.idle_comments = comments;

    // (3) Steady load with the subscribers attached; every matching event is logged.
    clients.recording.store(true, Ordering::SeqCst);
    let steady_loaded = steady(
        server,
        sizes,
        videos,
        signer,
        Some(&clients),
        epoch,
        clock_ticks,
    )
    .await?;
    clients.recording.store(false, Ordering::SeqCst);
    steady_loaded.print(
        &format!("(3) steady open loop, {live} subscribers attached"),
        sizes,
    );
    let delivered = analyse(&steady_loaded, &attached.subscribers, sizes.videos);
    delivered.print();
    figures.steady_loaded = Some(steady_loaded);
    figures.delivered = Some(delivered);

    let resets_before = clients.resets.load(Ordering::Relaxed);
    let plan = videos.closed_loop_plan(sizes.closed_per_video);
    let closed = closed_loop(server, plan, sizes, Some(&clients), clock_ticks).await?;
    closed.print(
        &format!(
            "(3) closed loop, c={}, {live} subscribers attached",
            sizes.concurrency
        ),
        cores,
    );
    println!(
        "    {} resets on global streams",
        clients.resets.load(Ordering::Relaxed) - resets_before
    );
    figures.closed_loaded = Some(closed);
    figures.still_live = clients.live();
    figures.resets = clients.resets.load(Ordering::Relaxed);
    let metrics = server_metrics(&server.url).await;
    if !metrics.is_empty() {
        println!("    server /metrics: {metrics}");
    }

    // Hang up every subscriber; the server should notice and free them.
    for subscriber in &attached.subscribers {
        subscriber.task.abort();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_gone = server.rss_bytes()?;
    println!(
        "    all subscribers disconnected: server RSS {} (was {} attached)",
        megabytes(rss_gone),
        megabytes(rss_after)
    );
    figures.rss_disconnected = Some(rss_gone);
    Ok(())
}

/// (4) A fresh server with a 1 s keep-alive: memory per subscriber again, and what one
/// keep-alive costs.
async fn keep_alive_probe(
    server: &Server,
    sizes: &Sizes,
    videos: &mut Videos,
    clock_ticks: f64,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let warmup = videos.closed_loop_plan(1);
    let report = drive(&server.url, warmup, sizes.concurrency).await?;
    print_phase("(4) warm-up: one webhook per video", &report);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = server.rss_bytes()?;
    let clients = Clients::new(Instant::now(), sizes.quickack);
    let attached = attach(server.addr, sizes, &clients).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server.rss_bytes()?;
    let live = clients.live();
    let per = per_subscriber_kib(rss_before, rss_after, live);
    println!(
        "(4) attached {live} subscribers in {:.1} s; server RSS {} → {}: {:.1} KiB each",
        attached.took.as_secs_f64(),
        megabytes(rss_before),
        megabytes(rss_after),
        per.unwrap_or(f64::NAN)
    );
    figures.probe_kib_per_subscriber = per;
    let comments_before = clients.comments.load(Ordering::Relaxed);
    let window = Duration::from_secs(sizes.probe_secs);
    let cpu = cpu_over(server, clock_ticks, window).await?;
    let comments = clients.comments.load(Ordering::Relaxed) - comments_before;
    let cpu_secs = cpu / 100.0 * window.as_secs_f64();
    let per_comment = (comments > 0).then(|| cpu_secs / comments as f64 * 1e6);
    println!(
        "(4) idle, {live} subscribers, keep-alive 1 s, {} s: server CPU {:.2}% of one core, \
         {comments} keep-alive comments received: {} µs of server CPU each",
        sizes.probe_secs,
        cpu,
        per_comment.map_or("n/a".into(), |us| format!("{us:.1}"))
    );
    figures.probe_cpu = Some(cpu);
    figures.probe_us_per_keep_alive = per_comment;
    for subscriber in &attached.subscribers {
        subscriber.task.abort();
    }
    Ok(())
}

/// (5) A fresh server warmed up as (4) was, then as many idle HTTP/1.1 keep-alive connections as
/// there are subscribers, each after one `GET /healthz`: the memory of a bare connection.
async fn plain_connections(
    server: &Server,
    sizes: &Sizes,
    videos: &mut Videos,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let warmup = videos.closed_loop_plan(1);
    drive(&server.url, warmup, sizes.concurrency).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = server.rss_bytes()?;
    let clients = Clients::new(Instant::now(), false);
    let permits = Arc::new(Semaphore::new(256));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..sizes.subscribers() {
        let (clients, permits, addr) = (clients.clone(), permits.clone(), server.addr);
        tasks.spawn(async move {
            let attached = AtomicBool::new(false);
            let result = idle_connection(addr, &clients, &attached, permits).await;
            if attached.load(Ordering::Relaxed) {
                clients.ended.fetch_add(1, Ordering::Relaxed);
            } else {
                clients.failed.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(error) = result {
                clients.error(&error);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while clients.attached.load(Ordering::Relaxed) + clients.failed.load(Ordering::Relaxed)
        < sizes.subscribers()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server.rss_bytes()?;
    let live = clients.live();
    let per = per_subscriber_kib(rss_before, rss_after, live);
    println!(
        "(5) {live} idle HTTP/1.1 keep-alive connections (one GET /healthz each) in {:.1} s; \
         server RSS {} → {}: {:.1} KiB each{}",
        took.as_secs_f64(),
        megabytes(rss_before),
        megabytes(rss_after),
        per.unwrap_or(f64::NAN),
        clients
            .first_error
            .lock()
            .unwrap()
            .as_ref()
            .map_or(String::new(), |e| format!(" (first error: {e})"))
    );
    figures.plain_kib_per_connection = per;
    tasks.abort_all();
    Ok(())
}

/// One plain connection: a `GET /healthz`, its whole answer read, then idle until the server
/// closes it or the task is aborted.
async fn idle_connection(
    addr: SocketAddr,
    clients: &Clients,
    attached: &AtomicBool,
    permits: Arc<Semaphore>,
) -> anyhow::Result<()> {
    const WAIT: Duration = Duration::from_secs(15);
    let permit = permits.acquire_owned().await?;
    let mut socket = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(WAIT, socket.read(&mut buffer))
            .await
            .context("no answer in time")??;
        if n == 0 {
            bail!("the server closed the connection before answering");
        }
        response.extend_from_slice(&buffer[..n]);
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if response.len() >= end + 4 + length {
                break;
            }
        }
        if response.len() > 64 * 1024 {
            bail!("answer to GET /healthz over 64 KiB");
        }
    }
    attached.store(true, Ordering::Relaxed);
    clients.attached.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    if socket.read(&mut buffer).await? == 0 {
        bail!("the server closed an idle keep-alive connection");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The server, a child process

/// `video-status serve` on port 0 with its own SQLite file; its stdout pipe stays open (a thread
/// drains it) for as long as it runs, its log goes to a file.
struct Server {
    child: Child,
    pid: u32,
    url: String,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, name: &str, env: &[(&str, &str)]) -> anyhow::Result<Server> {
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_video-status"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--store"])
            .arg(format!(
                "sqlite://{}",
                dir.join(format!("{name}.db")).display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).context("cannot create the server's log")?);
        // No config of the caller's leaks in: the defaults (demo provider) are what is measured.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("VIDEO_STATUS_") {
                command.env_remove(key);
            }
        }
        command.envs(env.iter().copied());
        let mut child = command
            .spawn()
            .context("cannot start the video-status binary")?;
        let pid = child.id();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (first_line, first) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = first_line.send(line);
            }
            // Read until the server exits: the pipe stays open and never fills.
            for _ in lines.map_while(Result::ok) {}
        });
        let mut server = Server {
            child,
            pid,
            url: String::new(),
            addr: "127.0.0.1:0".parse()?,
            log,
        };
        let line = match first.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                server.print_log_tail();
                bail!("the server printed no address within 60 s");
            }
        };
        let url = line
            .strip_prefix("video-status listening on ")
            .with_context(|| format!("unexpected first line from the server: {line:?}"))?;
        server.addr = url
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("no address in {line:?}"))?;
        server.url = url.to_string();
        Ok(server)
    }

    fn rss_bytes(&self) -> anyhow::Result<u64> {
        proc_status_kib(self.pid, "VmRSS:").map(|kib| kib * 1024)
    }

    fn cpu_ticks(&self) -> anyhow::Result<u64> {
        proc_cpu_ticks(&self.pid.to_string())
    }

    fn print_log_tail(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        println!("server log ({}), last lines:", self.log.display());
        for line in &lines[lines.len().saturating_sub(20)..] {
            println!("    {line}");
        }
    }

    /// SIGTERM (graceful shutdown), then SIGKILL if it has not exited within 30 s.
    fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: `kill` on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    println!("note: the server exited with {status}");
                    self.print_log_tail();
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                println!("note: the server did not stop within 30 s of SIGTERM; killed");
                self.child.kill()?;
                self.child.wait()?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Server CPU over `window` (sleeping meanwhile), as a percentage of one core.
async fn cpu_over(server: &Server, clock_ticks: f64, window: Duration) -> anyhow::Result<f64> {
    let ticks = server.cpu_ticks()?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let used = server.cpu_ticks()? - ticks;
    Ok(cpu_percent(used, clock_ticks, started.elapsed()))
}

fn cpu_percent(ticks: u64, clock_ticks: f64, wall: Duration) -> f64 {
    ticks as f64 / clock_ticks / wall.as_secs_f64().max(f64::EPSILON) * 100.0
}

/// A few counters of the server's `/metrics` (resets, resyncs), or empty.
async fn server_metrics(url: &str) -> String {
    let Ok(client) = http_client(4) else {
        return String::new();
    };
    let Ok(response) = client.get(format!("{url}/metrics")).send().await else {
        return String::new();
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with("sse_") || line.starts_with("video_actors_active"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// The videos of a run and what each has been sent: step `k` of a video is `video.uploaded`
/// (k = 0), `video.processing.started` (1), then `video.processing.progress` with a growing
/// percent, one second of event time apart, so the fold accepts each one as the newest.
struct Videos {
    ids: Vec<String>,
    /// Next step to send, per video.
    next_step: Vec<u32>,
    /// The video's version (its SSE id) as last read from the server.
    version: Vec<u64>,
    start: DateTime<Utc>,
}

impl Videos {
    fn new(count: usize) -> Videos {
        let start = Utc::now() - TimeDelta::hours(6);
        Videos {
            ids: (0..count).map(video_id).collect(),
            next_step: vec![0; count],
            version: vec![0; count],
            start,
        }
    }

    fn delivery(&self, video: usize, step: u32) -> Delivery {
        let video_id = &self.ids[video];
        let event_id = format!("{video_id}-e{step}");
        let at = self.start + TimeDelta::seconds(i64::from(step));
        let (event_type, data) = match step {
            0 => ("video.uploaded", json!({ "videoId": video_id })),
            1 => ("video.processing.started", json!({ "videoId": video_id })),
            _ => (
                "video.processing.progress",
                json!({ "videoId": video_id, "progress": (f64::from(step) * 0.1).min(99.9) }),
            ),
        };
        let body = json!({
            "id": event_id,
            "type": event_type,
            "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": data,
        });
        Delivery {
            video_id: video_id.clone(),
            event_id,
            event_type,
            body: Bytes::from(serde_json::to_vec(&body).expect("a JSON value serializes")),
        }
    }

    /// `per_video` next steps of every video, each video's contiguous and in order, for
    /// `simulate::drive`.
    fn closed_loop_plan(&mut self, per_video: usize) -> Vec<Delivery> {
        let mut plan = Vec::with_capacity(self.ids.len() * per_video);
        for video in 0..self.ids.len() {
            for _ in 0..per_video {
                let step = self.next_step[video];
                plan.push(self.delivery(video, step));
                self.next_step[video] += 1;
            }
        }
        plan
    }

    /// Reads every video's version (`GET /videos/{id}`), so that the webhooks of the next
    /// open-loop phase know which SSE id their event will carry.
    async fn read_versions(&mut self, url: &str) -> anyhow::Result<()> {
        let client = http_client(16)?;
        let reads = futures_util::stream::iter(self.ids.iter().enumerate().map(|(i, id)| {
            let client = client.clone();
            let url = format!("{url}/videos/{id}");
            async move {
                let body = client
                    .get(&url)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                let status: serde_json::Value = serde_json::from_slice(&body)?;
                let version = status["version"]
                    .as_u64()
                    .with_context(|| format!("no version in {url}"))?;
                anyhow::Ok((i, version))
            }
        }))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
        for read in reads {
            let (i, version) = read?;
            self.version[i] = version;
        }
        Ok(())
    }
}

fn video_id(index: usize) -> String {
    format!("fanout-v{index:05}")
}

/// The index back from a video id of this run.
fn video_index(id: &str) -> Option<u32> {
    id.strip_prefix("fanout-v")?.parse().ok()
}

/// The `demo` provider as the server configures it, to sign with.
fn demo_signer() -> anyhow::Result<Arc<Provider>> {
    let config = ProviderConfig::new("demo", SchemeName::Standard, vec![Secret::new(DEMO_SECRET)]);
    Providers::from_config(&[config])?
        .get("demo")
        .context("the demo provider is registered under its name")
}

fn http_client(pool: usize) -> anyhow::Result<reqwest::Client> {
    video_status::http_client::client_builder()
        .http1_only()
        .no_proxy()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client")
}

async fn drive(url: &str, plan: Vec<Delivery>, concurrency: usize) -> anyhow::Result<Report> {
    simulate::drive(&Target::demo(url), plan, concurrency).await
}

/// The closed-loop maximum: `simulate::drive` at the configured concurrency, with what the
/// server and this process used meanwhile (and, with subscribers, what they received until the
/// last event arrived).
async fn closed_loop(
    server: &Server,
    plan: Vec<Delivery>,
    sizes: &Sizes,
    clients: Option<&Clients>,
    clock_ticks: f64,
) -> anyhow::Result<Closed> {
    let before = Snapshot::take(server, clients)?;
    let report = drive(&server.url, plan, sizes.concurrency).await?;
    let usage = before.usage(server, clients, clock_ticks)?;
    if let Some(clients) = clients {
        settle(&clients.statuses, Duration::from_secs(10)).await;
    }
    let delivered = before.usage(server, clients, clock_ticks)?;
    Ok(Closed {
        report,
        usage,
        statuses: delivered.statuses,
    })
}

/// A closed-loop measurement.
struct Closed {
    report: Report,
    /// During the drive.
    usage: Usage,
    /// Status events the subscribers received, until the last of them arrived.
    statuses: u64,
}

impl Closed {
    /// Server CPU time per acknowledged webhook, in milliseconds.
    fn cpu_ms_per_webhook(&self) -> Option<f64> {
        let acknowledged = self.report.acknowledged();
        (acknowledged > 0).then(|| self.usage.server_cpu_secs * 1000.0 / acknowledged as f64)
    }

    /// What the server alone could ingest on `cores` at this CPU cost per webhook (an
    /// extrapolation: it assumes the load generator and subscribers took no core).
    fn server_only_ceiling(&self, cores: usize) -> Option<f64> {
        self.cpu_ms_per_webhook()
            .map(|ms| cores as f64 * 1000.0 / ms)
    }

    fn print(&self, name: &str, cores: usize) {
        print_phase(name, &self.report);
        println!(
            "    server CPU {:.0}% of one core ({} ms per webhook: {} /s on {cores} cores if it \
             had them alone), this process {:.0}%",
            self.usage.server_cpu,
            self.cpu_ms_per_webhook()
                .map_or("n/a".into(), |ms| format!("{ms:.3}")),
            self.server_only_ceiling(cores)
                .map_or("n/a".into(), |n| format!("{n:.0}")),
            self.usage.bench_cpu,
        );
        if self.statuses > 0 {
            println!(
                "    subscribers received {} status events ({:.0} per webhook)",
                self.statuses,
                self.events_per_webhook()
            );
        }
    }

    fn events_per_webhook(&self) -> f64 {
        self.statuses as f64 / self.report.acknowledged().max(1) as f64
    }

    /// Server CPU per event a subscriber received, in µs: what each webhook cost above `base`'s
    /// cost per webhook (no subscriber), divided by the events it fanned out to.
    fn cpu_us_per_event(&self, base: &Closed) -> Option<f64> {
        let extra = self.cpu_ms_per_webhook()? - base.cpu_ms_per_webhook()?;
        (self.statuses > 0).then(|| extra * 1000.0 / self.events_per_webhook())
    }
}

/// Resource counters at one instant.
struct Snapshot {
    at: Instant,
    server_ticks: u64,
    bench_ticks: u64,
    statuses: u64,
}

/// What was used between a [`Snapshot`] and now.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    /// Server CPU, % of one core.
    server_cpu: f64,
    server_cpu_secs: f64,
    /// This process's CPU (generator and subscribers), % of one core.
    bench_cpu: f64,
    /// Status events the subscribers received.
    statuses: u64,
}

impl Snapshot {
    fn take(server: &Server, clients: Option<&Clients>) -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            at: Instant::now(),
            server_ticks: server.cpu_ticks()?,
            bench_ticks: proc_cpu_ticks("self")?,
            statuses: clients.map_or(0, |c| c.statuses.load(Ordering::Relaxed)),
        })
    }

    fn usage(
        &self,
        server: &Server,
        clients: Option<&Clients>,
        clock_ticks: f64,
    ) -> anyhow::Result<Usage> {
        let wall = self.at.elapsed();
        let server_ticks = server.cpu_ticks()? - self.server_ticks;
        Ok(Usage {
            server_cpu: cpu_percent(server_ticks, clock_ticks, wall),
            server_cpu_secs: server_ticks as f64 / clock_ticks,
            bench_cpu: cpu_percent(
                proc_cpu_ticks("self")? - self.bench_ticks,
                clock_ticks,
                wall,
            ),
            statuses: clients.map_or(0, |c| c.statuses.load(Ordering::Relaxed)) - self.statuses,
        })
    }
}

/// One acknowledged webhook of an open-loop phase: the SSE id its event carries and when its
/// 200 arrived.
#[derive(Debug, Clone, Copy)]
struct Ack {
    version: u64,
    /// When the sender started the request.
    sent_us: u64,
    /// When its 200 had been read.
    at_us: u64,
}

/// What one open-loop phase measured.
#[derive(Debug, Default)]
struct Steady {
    sent: u64,
    accepted: u64,
    /// Every answer but `accepted`, by label ("HTTP 503", "duplicate", "no answer").
    other: BTreeMap<String, u64>,
    /// Sends that started more than 10 ms after their slot (the generator fell behind).
    late: u64,
    /// Send → 200, per acknowledged webhook, sorted.
    latencies: Vec<Duration>,
    /// Per video, its acknowledged webhooks in order.
    acks: Vec<Vec<Ack>>,
    /// From the first send to the last 200.
    elapsed: Duration,
    usage: Usage,
}

impl Steady {
    fn throughput(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn print(&self, name: &str, sizes: &Sizes) {
        println!("{name}:");
        println!(
            "    offered {} webhooks/s for {} s: {} sent, {} accepted in {:.2} s ({:.1}/s); \
             {} sends started > 10 ms late",
            sizes.rate,
            sizes.steady_secs,
            self.sent,
            self.accepted,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.late
        );
        if !self.other.is_empty() {
            println!("    other answers: {:?}", self.other);
        }
        let l = percentiles(&self.latencies);
        println!(
            "    webhook send → 200: p50 {}, p99 {}, max {}",
            ms(l.p50),
            ms(l.p99),
            ms(l.max)
        );
        println!(
            "    server CPU {:.0}% of one core, this process (generator and subscribers) {:.0}%",
            self.usage.server_cpu, self.usage.bench_cpu
        );
        if self.usage.statuses > 0 {
            println!(
                "    subscribers received {} status events ({:.0} per webhook)",
                self.usage.statuses,
                self.usage.statuses as f64 / self.accepted.max(1) as f64
            );
        }
    }
}

/// The open loop: each video sends its next step every `videos / rate` seconds, the videos
/// staggered evenly over that period, so the server gets `rate` webhooks/s whatever it answers
/// (a video's own webhooks go one after the other, as a provider's would). Each acknowledged
/// webhook is logged with the version its event carries.
async fn steady(
    server: &Server,
    sizes: &Sizes,
    videos: &mut Videos,
    signer: &Arc<Provider>,
    clients: Option<&Clients>,
    epoch: Instant,
    clock_ticks: f64,
) -> anyhow::Result<Steady> {
    let count = videos.ids.len();
    let period = Duration::from_secs_f64(count as f64 / sizes.rate as f64);
    let per_video = ((sizes.steady_secs as f64 * sizes.rate as f64) / count as f64).ceil() as u32;
    let client = http_client(256)?;
    let endpoint = Arc::new(format!("{}/webhooks/demo", server.url));
    let begin = tokio::time::Instant::now() + Duration::from_millis(200);
    let before = Snapshot::take(server, clients)?;

    let mut senders = JoinSet::new();
    for video in 0..count {
        let deliveries: Vec<Delivery> = (0..per_video)
            .map(|i| videos.delivery(video, videos.next_step[video] + i))
            .collect();
        videos.next_step[video] += per_video;
        let version = videos.version[video];
        let offset = period.mul_f64(video as f64 / count as f64);
        let (client, endpoint, signer) = (client.clone(), endpoint.clone(), signer.clone());
        senders.spawn(async move {
            let mut run = VideoRun {
                video,
                version,
                ..VideoRun::default()
            };
            let mut slots = tokio::time::interval_at(begin + offset, period);
            slots.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for delivery in deliveries {
                let slot = slots.tick().await;
                if slot.elapsed() > Duration::from_millis(10) {
                    run.late += 1;
                }
                run.send(&client, &endpoint, &signer, &delivery, epoch)
                    .await;
            }
            run
        });
    }

    let mut result = Steady {
        acks: vec![Vec::new(); count],
        ..Steady::default()
    };
    let mut first_send = u64::MAX;
    let mut last_ack = 0;
    let deadline = Duration::from_secs(sizes.steady_secs + 60);
    let runs = tokio::time::timeout(deadline, async {
        let mut runs = Vec::with_capacity(count);
        while let Some(run) = senders.join_next().await {
            runs.push(run.context("a sender panicked")?);
        }
        anyhow::Ok(runs)
    })
    .await
    .context("the open-loop senders did not finish in time")??;
    for run in runs {
        result.sent += run.sent;
        result.accepted += run.acks.len() as u64;
        result.late += run.late;
        for (label, n) in run.other {
            *result.other.entry(label).or_default() += n;
        }
        result.latencies.extend(run.latencies);
        first_send = first_send.min(run.first_send_us);
        last_ack = last_ack.max(run.last_ack_us);
        videos.version[run.video] = run.version;
        result.acks[run.video] = run.acks;
    }
    result.latencies.sort_unstable();
    result.elapsed = Duration::from_micros(last_ack.saturating_sub(first_send));
    let usage = before.usage(server, clients, clock_ticks)?;
    if let Some(clients) = clients {
        // Let the last events arrive; what has not arrived by then is counted as missed.
        settle(&clients.statuses, Duration::from_secs(10)).await;
        // CPU and wall time stay those of the sending; deliveries and writes count to the end.
        let delivered = before.usage(server, Some(clients), clock_ticks)?;
        result.usage = Usage {
            statuses: delivered.statuses,
            ..usage
        };
    } else {
        result.usage = usage;
    }
    Ok(result)
}

/// One video's sender in an open-loop phase.
#[derive(Default)]
struct VideoRun {
    video: usize,
    /// The video's version: one more per accepted webhook (each appends one event).
    version: u64,
    sent: u64,
    late: u64,
    other: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
    acks: Vec<Ack>,
    first_send_us: u64,
    last_ack_us: u64,
}

impl VideoRun {
    async fn send(
        &mut self,
        client: &reqwest::Client,
        endpoint: &str,
        signer: &Provider,
        delivery: &Delivery,
        epoch: Instant,
    ) {
        let mut request = client
            .post(endpoint)
            .header("content-type", "application/json")
            .body(delivery.body.clone());
        for (name, value) in signer
            .sign(&delivery.event_id, Utc::now(), &delivery.body)
            .expect("the demo provider has a secret to sign with")
        {
            request = request.header(name, value);
        }
        let sent = Instant::now();
        if self.sent == 0 {
            self.first_send_us = micros_since(epoch, sent);
        }
        self.sent += 1;
        let answer = async {
            let response = request.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        let acked = Instant::now();
        let label = match answer {
            Err(_) => "no answer".to_string(),
            Ok((status, _)) if !status.is_success() => format!("HTTP {}", status.as_u16()),
            Ok((_, body)) => {
                let receipt: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                receipt["status"]
                    .as_str()
                    .unwrap_or("unreadable")
                    .to_string()
            }
        };
        if label == "accepted" {
            self.version += 1;
            let at_us = micros_since(epoch, acked);
            self.acks.push(Ack {
                version: self.version,
                sent_us: micros_since(epoch, sent),
                at_us,
            });
            self.latencies.push(acked - sent);
            self.last_ack_us = at_us;
        } else {
            *self.other.entry(label).or_default() += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Subscribers: raw TCP, `GET ... HTTP/1.1`, chunked decoding and a minimal SSE parser

/// Which stream a subscriber follows.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Video(u32),
    Global,
}

/// One status event as a subscriber received it.
#[derive(Debug, Clone, Copy)]
struct Received {
    video: u32,
    version: u64,
    at_us: u64,
}

/// What every subscriber task shares.
struct Clients {
    epoch: Instant,
    /// Set `TCP_QUICKACK` after every read (`--quickack`).
    quickack: bool,
    /// Whether status events are logged (the open-loop phase of (3) only).
    recording: AtomicBool,
    attached: AtomicUsize,
    failed: AtomicUsize,
    /// Streams that ended after attaching (closed by the server or an error).
    ended: AtomicUsize,
    first_error: Mutex<Option<String>>,
    comments: AtomicU64,
    statuses: AtomicU64,
    resets: AtomicU64,
}

impl Clients {
    fn new(epoch: Instant, quickack: bool) -> Arc<Clients> {
        Arc::new(Clients {
            epoch,
            quickack,
            recording: AtomicBool::new(false),
            attached: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            first_error: Mutex::new(None),
            comments: AtomicU64::new(0),
            statuses: AtomicU64::new(0),
            resets: AtomicU64::new(0),
        })
    }

    /// Subscribers attached whose stream is still open.
    fn live(&self) -> usize {
        self.attached
            .load(Ordering::Relaxed)
            .saturating_sub(self.ended.load(Ordering::Relaxed))
    }

    fn error(&self, error: &anyhow::Error) {
        let mut first = self.first_error.lock().unwrap();
        if first.is_none() {
            *first = Some(format!("{error:#}"));
        }
    }
}

struct Subscriber {
    stream: Stream,
    /// Set once its stream was answered (and, for a video, its first status came).
    attached: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

struct Attached {
    subscribers: Vec<Subscriber>,
    took: Duration,
}

/// Connects every subscriber (at most 256 connecting at once) and waits, at most two minutes,
/// until each has its response headers (and, on a video's stream, its first status).
async fn attach(
    addr: SocketAddr,
    sizes: &Sizes,
    clients: &Arc<Clients>,
) -> anyhow::Result<Attached> {
    let permits = Arc::new(Semaphore::new(256));
    let started = Instant::now();
    let mut subscribers = Vec::with_capacity(sizes.subscribers());
    let streams = (0..sizes.video_subscribers)
        .map(|i| Stream::Video((i % sizes.videos) as u32))
        .chain((0..sizes.global_subscribers).map(|_| Stream::Global));
    for stream in streams {
        let log = Arc::new(Mutex::new(Vec::new()));
        let attached = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(subscribe(
            addr,
            stream,
            clients.clone(),
            attached.clone(),
            log.clone(),
            permits.clone(),
        ));
        subscribers.push(Subscriber {
            stream,
            attached,
            log,
            task,
        });
    }
    let total = subscribers.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    while clients.attached.load(Ordering::Relaxed) + clients.failed.load(Ordering::Relaxed) < total
    {
        if Instant::now() >= deadline {
            println!(
                "note: only {} of {total} subscribers attached within 120 s",
                clients.attached.load(Ordering::Relaxed)
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Attached {
        subscribers,
        took: started.elapsed(),
    })
}

async fn subscribe(
    addr: SocketAddr,
    stream: Stream,
    clients: Arc<Clients>,
    attached: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Received>>>,
    permits: Arc<Semaphore>,
) {
    let result = follow(addr, stream, &clients, &attached, &log, permits).await;
    if attached.load(Ordering::Relaxed) {
        clients.ended.fetch_add(1, Ordering::Relaxed);
    } else {
        clients.failed.fetch_add(1, Ordering::Relaxed);
    }
    if let Err(error) = result {
        clients.error(&error);
    }
}

/// Reads one stream until it ends (or the task is aborted).
async fn follow(
    addr: SocketAddr,
    stream: Stream,
    clients: &Clients,
    attached: &AtomicBool,
    log: &Mutex<Vec<Received>>,
    permits: Arc<Semaphore>,
) -> anyhow::Result<()> {
    const CONNECT: Duration = Duration::from_secs(15);
    let permit = permits.acquire_owned().await?;
    let path = match stream {
        Stream::Video(v) => format!("/videos/{}/events", video_id(v as usize)),
        Stream::Global => "/events".to_string(),
    };
    let mut socket = tokio::time::timeout(CONNECT, TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;

    let mut buffer = vec![
        0u8;
        match stream {
            Stream::Video(_) => 1024,
            Stream::Global => 16 * 1024,
        }
    ];
    // The response head.
    let mut head = Vec::new();
    let body_start = loop {
        let n = tokio::time::timeout(CONNECT, socket.read(&mut buffer))
            .await
            .context("no response head in time")??;
        if n == 0 {
            bail!("the server closed the connection before answering");
        }
        head.extend_from_slice(&buffer[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if head.len() > 16 * 1024 {
            bail!("response head over 16 KiB");
        }
    };
    let head_text = String::from_utf8_lossy(&head[..body_start]).to_ascii_lowercase();
    if !head_text.starts_with("http/1.1 200") {
        bail!(
            "{path}: {}",
            head_text.lines().next().unwrap_or("no status line")
        );
    }
    let mut decoder = Chunked::new(head_text.contains("transfer-encoding: chunked"));
    let mut parser = SseParser::new(stream);
    let mut decoded = Vec::new();
    let mut permit = Some(permit);
    let mut feed = |bytes: &[u8], decoded: &mut Vec<u8>, parser: &mut SseParser| {
        let at_us = micros_since(clients.epoch, Instant::now());
        decoded.clear();
        decoder.feed(bytes, decoded);
        parser.feed(decoded, at_us, clients, log)
    };
    let mut ended = feed(&head[body_start..], &mut decoded, &mut parser);
    loop {
        // Attached: a global stream once answered, a video's stream once its first status came.
        let answered = attached.load(Ordering::Relaxed);
        if !answered && (matches!(stream, Stream::Global) || parser.statuses > 0) {
            attached.store(true, Ordering::Relaxed);
            clients.attached.fetch_add(1, Ordering::Relaxed);
            permit.take();
        }
        if ended {
            return Ok(());
        }
        let n = if attached.load(Ordering::Relaxed) {
            socket.read(&mut buffer).await?
        } else {
            tokio::time::timeout(CONNECT, socket.read(&mut buffer))
                .await
                .context("no first status in time")??
        };
        if n == 0 {
            bail!("{path}: the server closed the stream");
        }
        if clients.quickack {
            quickack(&socket);
        }
        ended = feed(&buffer[..n], &mut decoded, &mut parser);
    }
}

/// HTTP/1.1 chunked transfer decoding, fed any slices of the body.
struct Chunked {
    chunked: bool,
    state: ChunkState,
    size_line: Vec<u8>,
}

enum ChunkState {
    Size,
    Data(usize),
    /// The CRLF after a chunk's data: bytes still to skip.
    DataEnd(usize),
    Done,
}

impl Chunked {
    fn new(chunked: bool) -> Chunked {
        Chunked {
            chunked,
            state: ChunkState::Size,
            size_line: Vec::new(),
        }
    }

    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if !self.chunked {
            out.extend_from_slice(input);
            return;
        }
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => match input.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        self.size_line.extend_from_slice(&input[..end]);
                        input = &input[end + 1..];
                        let line = String::from_utf8_lossy(&self.size_line);
                        let hex = line.split(';').next().unwrap_or("").trim();
                        let size = usize::from_str_radix(hex, 16).unwrap_or(0);
                        self.size_line.clear();
                        self.state = if size == 0 {
                            ChunkState::Done
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    None => {
                        self.size_line.extend_from_slice(input);
                        input = &[];
                    }
                },
                ChunkState::Data(left) => {
                    let take = left.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = if take == left {
                        ChunkState::DataEnd(2)
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd(left) => {
                    let take = left.min(input.len());
                    input = &input[take..];
                    self.state = if take == left {
                        ChunkState::Size
                    } else {
                        ChunkState::DataEnd(left - take)
                    };
                }
                ChunkState::Done => return,
            }
        }
    }
}

/// The `event:`, `id:` and `data:` lines of server-sent events, fed any slices of the stream.
struct SseParser {
    stream: Stream,
    /// An incomplete line carried over to the next slice.
    partial: Vec<u8>,
    event: Vec<u8>,
    id: Option<u64>,
    /// Kept on global streams only (the video and version are in the status).
    data: Vec<u8>,
    statuses: u64,
}

impl SseParser {
    fn new(stream: Stream) -> SseParser {
        SseParser {
            stream,
            partial: Vec::new(),
            event: Vec::new(),
            id: None,
            data: Vec::new(),
            statuses: 0,
        }
    }

    /// Answers whether the stream ended (`event: shutdown`).
    fn feed(
        &mut self,
        mut input: &[u8],
        at_us: u64,
        clients: &Clients,
        log: &Mutex<Vec<Received>>,
    ) -> bool {
        let mut ended = false;
        while let Some(end) = input.iter().position(|&b| b == b'\n') {
            let line = if self.partial.is_empty() {
                &input[..end]
            } else {
                self.partial.extend_from_slice(&input[..end]);
                &std::mem::take(&mut self.partial)[..]
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            ended |= self.line(line, at_us, clients, log);
            input = &input[end + 1..];
        }
        self.partial.extend_from_slice(input);
        ended
    }

    fn line(
        &mut self,
        line: &[u8],
        at_us: u64,
        clients: &Clients,
        log: &Mutex<Vec<Received>>,
    ) -> bool {
        if line.is_empty() {
            return self.dispatch(at_us, clients, log);
        }
        if line[0] == b':' {
            clients.comments.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => self.event = value.to_vec(),
            b"id" => self.id = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()),
            b"data" if matches!(self.stream, Stream::Global) => {
                if !self.data.is_empty() {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
            }
            _ => {}
        }
        false
    }

    fn dispatch(&mut self, at_us: u64, clients: &Clients, log: &Mutex<Vec<Received>>) -> bool {
        let event = std::mem::take(&mut self.event);
        let id = self.id.take();
        let data = std::mem::take(&mut self.data);
        match &event[..] {
            b"status" => {
                self.statuses += 1;
                clients.statuses.fetch_add(1, Ordering::Relaxed);
                if clients.recording.load(Ordering::Relaxed) {
                    let received = match self.stream {
                        Stream::Video(video) => id.map(|version| (video, version)),
                        Stream::Global => video_and_version(&data),
                    };
                    if let Some((video, version)) = received {
                        log.lock().unwrap().push(Received {
                            video,
                            version,
                            at_us,
                        });
                    }
                }
                false
            }
            b"reset" => {
                clients.resets.fetch_add(1, Ordering::Relaxed);
                false
            }
            b"shutdown" => true,
            _ => false,
        }
    }
}

/// The video (as this run's index) and version of a status event's data, without a JSON parse.
fn video_and_version(data: &[u8]) -> Option<(u32, u64)> {
    let text = std::str::from_utf8(data).ok()?;
    let id = text.split_once("\"video_id\":\"")?.1.split('"').next()?;
    let version = text.split_once("\"version\":")?.1;
    let digits = version
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(version.len());
    Some((video_index(id)?, version[..digits].parse().ok()?))
}

/// Waits until `counter` has not moved for 500 ms, at most `limit`.
async fn settle(counter: &AtomicU64, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = counter.load(Ordering::Relaxed);
    let mut still_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= Duration::from_millis(500) {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Matching acknowledgements with received events

/// Ack → received over every expected delivery of the open loop of (3).
#[derive(Debug, Default)]
struct Delivered {
    /// Expected deliveries: per acknowledged webhook, its video's subscribers plus the global
    /// ones.
    expected: u64,
    /// Matched: received with the video and version of an acknowledged webhook.
    received: u64,
    /// Not received, but a newer version of the video was (latest wins, by design).
    superseded: u64,
    /// Neither it nor anything newer of that video was received.
    missed: u64,
    /// Received before its 200 reached the sender (the server announces a commit before it
    /// answers); counted as 0 in the percentiles.
    before_ack: u64,
    /// Status events logged that match no acknowledged webhook.
    unmatched: u64,
    all: Percentiles,
    video: Percentiles,
    global: Percentiles,
    /// From the webhook's send (not its 200): the webhook's own latency plus the fan-out.
    from_send: Percentiles,
}

impl Delivered {
    fn print(&self) {
        println!(
            "    deliveries: {} expected, {} received, {} superseded (a newer status came \
             instead), {} missed; {} arrived before the sender had its 200; {} unmatched",
            self.expected,
            self.received,
            self.superseded,
            self.missed,
            self.before_ack,
            self.unmatched
        );
        for (name, p) in [
            ("ack → received, all", &self.all),
            ("ack → received, per-video streams", &self.video),
            ("ack → received, global streams", &self.global),
            ("send → received, all", &self.from_send),
        ] {
            println!(
                "    {name}: p50 {}, p90 {}, p99 {}, max {}",
                ms(p.p50),
                ms(p.p90),
                ms(p.p99),
                ms(p.max)
            );
        }
    }
}

fn analyse(steady: &Steady, subscribers: &[Subscriber], videos: usize) -> Delivered {
    let mut delivered = Delivered::default();
    let mut video_latencies = Vec::new();
    let mut global_latencies = Vec::new();
    let mut from_send = Vec::new();
    let acked_total: u64 = steady.acks.iter().map(|a| a.len() as u64).sum();
    for subscriber in subscribers {
        if !subscriber.attached.load(Ordering::Relaxed) {
            // Never attached: nothing was expected of it.
            continue;
        }
        let log = std::mem::take(&mut *subscriber.log.lock().unwrap());
        match subscriber.stream {
            Stream::Video(video) => {
                let acks = &steady.acks[video as usize];
                delivered.expected += acks.len() as u64;
                let got: HashMap<u64, u64> = log
                    .iter()
                    .filter(|r| r.video == video)
                    .map(|r| (r.version, r.at_us))
                    .collect();
                let newest = got.keys().copied().max().unwrap_or(0);
                let mut matched = 0;
                for ack in acks {
                    match got.get(&ack.version) {
                        Some(&at) => {
                            matched += 1;
                            video_latencies.push(at as i64 - ack.at_us as i64);
                            from_send.push(Duration::from_micros(at.saturating_sub(ack.sent_us)));
                        }
                        None if newest > ack.version => delivered.superseded += 1,
                        None => delivered.missed += 1,
                    }
                }
                delivered.unmatched += log.len() as u64 - matched;
            }
            Stream::Global => {
                delivered.expected += acked_total;
                let mut got: HashMap<(u32, u64), u64> = HashMap::with_capacity(log.len());
                let mut newest = vec![0u64; videos];
                for r in &log {
                    got.insert((r.video, r.version), r.at_us);
                    if let Some(n) = newest.get_mut(r.video as usize) {
                        *n = (*n).max(r.version);
                    }
                }
                let mut matched = 0;
                for (video, acks) in steady.acks.iter().enumerate() {
                    for ack in acks {
                        match got.get(&(video as u32, ack.version)) {
                            Some(&at) => {
                                matched += 1;
                                global_latencies.push(at as i64 - ack.at_us as i64);
                                from_send
                                    .push(Duration::from_micros(at.saturating_sub(ack.sent_us)));
                            }
                            None if newest[video] > ack.version => delivered.superseded += 1,
                            None => delivered.missed += 1,
                        }
                    }
                }
                delivered.unmatched += log.len() as u64 - matched;
            }
        }
    }
    let to_durations = |mut signed: Vec<i64>| -> Vec<Duration> {
        signed.sort_unstable();
        signed
            .into_iter()
            .map(|us| Duration::from_micros(us.max(0) as u64))
            .collect()
    };
    delivered.before_ack = video_latencies
        .iter()
        .chain(&global_latencies)
        .filter(|&&us| us < 0)
        .count() as u64;
    let video = to_durations(video_latencies);
    let global = to_durations(global_latencies);
    delivered.received = (video.len() + global.len()) as u64;
    let mut all: Vec<Duration> = video.iter().chain(&global).copied().collect();
    all.sort_unstable();
    delivered.all = percentiles(&all);
    delivered.video = percentiles(&video);
    delivered.global = percentiles(&global);
    from_send.sort_unstable();
    delivered.from_send = percentiles(&from_send);
    delivered
}

/// Nearest-rank percentiles of a sorted slice.
#[derive(Debug, Clone, Copy, Default)]
struct Percentiles {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

fn percentiles(sorted: &[Duration]) -> Percentiles {
    let rank = |p: f64| -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    };
    Percentiles {
        p50: rank(0.50),
        p90: rank(0.90),
        p99: rank(0.99),
        max: sorted.last().copied().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

/// Everything the run measured; `None` where a phase produced nothing.
#[derive(Default)]
struct Figures {
    idle_cpu_base: Option<f64>,
    steady_base: Option<Steady>,
    closed_base: Option<Closed>,
    rss_before: Option<u64>,
    rss_attached: Option<u64>,
    rss_disconnected: Option<u64>,
    attached: usize,
    attach_secs: f64,
    idle_cpu_attached: Option<f64>,
    idle_comments: u64,
    steady_loaded: Option<Steady>,
    delivered: Option<Delivered>,
    closed_loaded: Option<Closed>,
    still_live: usize,
    resets: u64,
    probe_kib_per_subscriber: Option<f64>,
    probe_cpu: Option<f64>,
    probe_us_per_keep_alive: Option<f64>,
    plain_kib_per_connection: Option<f64>,
}

/// One line of the summary: a figure with subscribers attached, its baseline with none, their
/// ratio, and the target it meets or misses.
struct Row {
    name: String,
    value: String,
    baseline: String,
    ratio: String,
    target: String,
    verdict: &'static str,
}

impl Row {
    fn new(name: impl Into<String>, value: String, target: &str, met: Option<bool>) -> Row {
        Row {
            name: name.into(),
            value,
            baseline: "—".into(),
            ratio: "—".into(),
            target: target.into(),
            verdict: match met {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "—",
            },
        }
    }

    /// With a baseline (0 subscribers) and the ratio value / baseline.
    fn against(mut self, baseline: String, ratio: Option<f64>) -> Row {
        self.baseline = baseline;
        self.ratio = ratio.map_or("—".into(), |r| format!("{r:.2}×"));
        self
    }
}

fn ratio(value: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0).then(|| value / baseline)
}

impl Figures {
    fn rows(&self, sizes: &Sizes, cores: usize) -> Vec<Row> {
        let mut rows = Vec::new();
        let n = self.attached;
        let rate = sizes.rate;
        rows.push(Row::new(
            "subscribers attached",
            format!(
                "{n} of {} in {:.1} s",
                sizes.subscribers(),
                self.attach_secs
            ),
            &format!("{}", sizes.subscribers()),
            Some(n == sizes.subscribers()),
        ));
        if let (Some(base), Some(loaded)) = (&self.steady_base, &self.steady_loaded) {
            rows.push(
                Row::new(
                    format!("ingest achieved, {rate}/s offered, {n} subscribers"),
                    format!("{:.0} /s", loaded.throughput()),
                    "reference",
                    None,
                )
                .against(
                    format!("{:.0} /s", base.throughput()),
                    ratio(loaded.throughput(), base.throughput()),
                ),
            );
            let (lb, ll) = (percentiles(&base.latencies), percentiles(&loaded.latencies));
            rows.push(
                Row::new("webhook send → 200, p50", ms(ll.p50), "reference", None)
                    .against(ms(lb.p50), ratio(secs(ll.p50), secs(lb.p50))),
            );
            rows.push(
                Row::new("webhook send → 200, p99", ms(ll.p99), "reference", None)
                    .against(ms(lb.p99), ratio(secs(ll.p99), secs(lb.p99))),
            );
            if loaded.usage.statuses > 0 && base.accepted > 0 {
                // Above what the same webhooks cost with no subscriber.
                let base_secs =
                    base.usage.server_cpu_secs * loaded.accepted as f64 / base.accepted as f64;
                let us =
                    (loaded.usage.server_cpu_secs - base_secs) * 1e6 / loaded.usage.statuses as f64;
                rows.push(Row::new(
                    format!("server CPU per event received, {rate}/s"),
                    format!("{us:.1} µs"),
                    "reference",
                    None,
                ));
            }
            rows.push(
                Row::new(
                    format!("server CPU at {rate} webhooks/s"),
                    format!("{:.0}%", loaded.usage.server_cpu),
                    "reference",
                    None,
                )
                .against(
                    format!("{:.0}%", base.usage.server_cpu),
                    ratio(loaded.usage.server_cpu, base.usage.server_cpu),
                ),
            );
            rows.push(
                Row::new(
                    format!("bench process CPU at {rate} webhooks/s"),
                    format!("{:.0}%", loaded.usage.bench_cpu),
                    "reference",
                    None,
                )
                .against(
                    format!("{:.0}%", base.usage.bench_cpu),
                    ratio(loaded.usage.bench_cpu, base.usage.bench_cpu),
                ),
            );
        }
        if let Some(d) = &self.delivered {
            rows.push(Row::new(
                "ack → received, p50",
                ms(d.all.p50),
                "reference",
                None,
            ));
            rows.push(Row::new(
                "ack → received, p99",
                ms(d.all.p99),
                "< 50 ms",
                Some(d.received > 0 && d.all.p99 < Duration::from_millis(50)),
            ));
            rows.push(Row::new(
                "ack → received, max",
                ms(d.all.max),
                "reference",
                None,
            ));
            rows.push(Row::new(
                "ack → received p50 / p99, per-video streams",
                format!("{} / {}", ms(d.video.p50), ms(d.video.p99)),
                "reference",
                None,
            ));
            rows.push(Row::new(
                "ack → received p50 / p99, global streams",
                format!("{} / {}", ms(d.global.p50), ms(d.global.p99)),
                "reference",
                None,
            ));
            rows.push(Row::new(
                "send → received p50 / p99 (webhook + fan-out)",
                format!("{} / {}", ms(d.from_send.p50), ms(d.from_send.p99)),
                "reference",
                None,
            ));
            rows.push(Row::new(
                "expected deliveries missed",
                format!("{} of {}", d.missed, d.expected),
                "0",
                Some(d.missed == 0 && d.expected > 0),
            ));
            rows.push(Row::new(
                "global stream resets during (3) (fell behind)",
                format!("{}", self.resets),
                "reference",
                None,
            ));
            rows.push(Row::new(
                "expected deliveries superseded (latest wins)",
                format!("{} of {}", d.superseded, d.expected),
                "reference",
                None,
            ));
        }
        if let (Some(base), Some(loaded)) = (&self.closed_base, &self.closed_loaded) {
            let c = sizes.concurrency;
            let (b, l) = (&base.report, &loaded.report);
            let r = ratio(l.throughput_per_sec, b.throughput_per_sec);
            rows.push(
                Row::new(
                    format!("max ingest, c={c}, {n} subscribers"),
                    format!("{:.0} /s", l.throughput_per_sec),
                    "≥ 0.80× baseline",
                    r.map(|r| r >= 0.8 && l.failures() == 0),
                )
                .against(format!("{:.0} /s", b.throughput_per_sec), r),
            );
            if let (Some(lc), Some(bc)) = (loaded.cpu_ms_per_webhook(), base.cpu_ms_per_webhook()) {
                rows.push(
                    Row::new(
                        format!("server CPU per webhook, c={c}"),
                        format!("{lc:.3} ms"),
                        "reference",
                        None,
                    )
                    .against(format!("{bc:.3} ms"), ratio(lc, bc)),
                );
            }
            if let (Some(lm), Some(bm)) = (
                loaded.server_only_ceiling(cores),
                base.server_only_ceiling(cores),
            ) {
                rows.push(
                    Row::new(
                        format!("server-only ceiling, c={c} ({cores} cores ÷ CPU per webhook)"),
                        format!("{lm:.0} /s"),
                        "reference",
                        None,
                    )
                    .against(format!("{bm:.0} /s"), ratio(lm, bm)),
                );
            }
            if let Some(us) = loaded.cpu_us_per_event(base) {
                rows.push(Row::new(
                    format!(
                        "server CPU per event received, c={c} ({:.0} events per webhook)",
                        loaded.events_per_webhook()
                    ),
                    format!("{us:.1} µs"),
                    "reference",
                    None,
                ));
            }
        }
        if let (Some(before), Some(after)) = (self.rss_before, self.rss_attached) {
            let per = per_subscriber_kib(before, after, n);
            rows.push(Row::new(
                format!("server RSS, 0 → {n} idle subscribers"),
                format!("{} → {}", megabytes(before), megabytes(after)),
                "reference",
                None,
            ));
            // The target is stated for 10,000 subscribers; a smaller run is shown, not judged.
            rows.push(Row::new(
                "memory per idle subscriber",
                per.map_or("n/a".into(), |kib| format!("{kib:.1} KiB")),
                "< 16 KiB",
                per.filter(|_| n >= 10_000).map(|kib| kib < 16.0),
            ));
        }
        if let (Some(attached), Some(gone)) = (self.rss_attached, self.rss_disconnected) {
            rows.push(Row::new(
                "server RSS after every subscriber hung up",
                format!("{} (from {})", megabytes(gone), megabytes(attached)),
                "reference",
                None,
            ));
        }
        if let Some(kib) = self.probe_kib_per_subscriber {
            rows.push(Row::new(
                "memory per idle subscriber, fresh server (4)",
                format!("{kib:.1} KiB"),
                "< 16 KiB",
                (n >= 10_000).then_some(kib < 16.0),
            ));
        }
        if let Some(kib) = self.plain_kib_per_connection {
            rows.push(Row::new(
                "memory per idle plain HTTP/1.1 connection, fresh server (5)",
                format!("{kib:.1} KiB"),
                "reference",
                None,
            ));
        }
        if let (Some(base), Some(idle)) = (self.idle_cpu_base, self.idle_cpu_attached) {
            rows.push(
                Row::new(
                    format!("server CPU idle, {n} subscribers, keep-alive 15 s"),
                    format!("{idle:.2}%"),
                    "reference",
                    None,
                )
                .against(format!("{base:.2}%"), ratio(idle, base)),
            );
        }
        if let Some(cpu) = self.probe_cpu {
            rows.push(Row::new(
                format!("server CPU idle, {n} subscribers, keep-alive 1 s"),
                format!("{cpu:.2}%"),
                "reference",
                None,
            ));
            rows.push(Row::new(
                "server CPU per keep-alive",
                self.probe_us_per_keep_alive
                    .map_or("n/a".into(), |us| format!("{us:.1} µs")),
                "reference",
                None,
            ));
        }
        rows
    }

    fn print(&self, sizes: &Sizes, machine: &Machine) {
        let rows = self.rows(sizes, machine.cores);
        let width = rows
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(0);
        println!(
            "{:<width$}  {:>19}  {:>12}  {:>6}  {:<16}  result",
            "figure (baseline: 0 subscribers)", "value", "baseline", "ratio", "target"
        );
        for row in &rows {
            println!(
                "{:<width$}  {:>19}  {:>12}  {:>6}  {:<16}  {}",
                row.name, row.value, row.baseline, row.ratio, row.target, row.verdict
            );
        }
        if self.still_live < self.attached {
            println!(
                "note: {} subscriber stream(s) ended before the end of (3)",
                self.attached - self.still_live
            );
        }
        println!();
        println!(
            "Markdown ({machine}; server in its own process, generator and subscribers in the \
             benchmark's):"
        );
        println!();
        println!("| figure | value | baseline (0 subscribers) | ratio | target | result |");
        println!("|---|---|---|---|---|---|");
        for row in rows {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                row.name, row.value, row.baseline, row.ratio, row.target, row.verdict
            );
        }
    }
}

fn print_phase(name: &str, report: &Report) {
    println!("{name}:");
    for line in report.to_string().lines() {
        println!("    {line}");
    }
}

fn per_subscriber_kib(before: u64, after: u64, subscribers: usize) -> Option<f64> {
    (subscribers > 0).then(|| after.saturating_sub(before) as f64 / subscribers as f64 / 1024.0)
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

fn micros_since(epoch: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(epoch).as_micros() as u64
}

// ---------------------------------------------------------------------------------------------
// The machine and /proc

/// Raises the soft RLIMIT_NOFILE to `wanted` if it is lower (never above the hard limit); the
/// server, started after, inherits it. Answers a line saying what the limit is.
// `rlim_t` is `u64` on Linux x86_64 but not on every target.
#[allow(clippy::unnecessary_cast)]
fn raise_nofile(wanted: u64) -> anyhow::Result<String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit`/`setrlimit` with a valid pointer to a local `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("getrlimit(RLIMIT_NOFILE) failed");
    }
    let (soft, hard) = (limit.rlim_cur as u64, limit.rlim_max as u64);
    let mut raised = soft;
    if soft < wanted {
        limit.rlim_cur = wanted.min(hard) as libc::rlim_t;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            bail!("setrlimit(RLIMIT_NOFILE, {wanted}) failed");
        }
        raised = limit.rlim_cur as u64;
    }
    if raised < wanted {
        bail!(
            "RLIMIT_NOFILE: {wanted} descriptors needed, the hard limit is {hard}; \
             raise it (ulimit -Hn) or use --subscribers"
        );
    }
    Ok(if raised == soft {
        format!(
            "RLIMIT_NOFILE soft {soft}, hard {hard} (≥ {wanted} needed; the server inherits it)"
        )
    } else {
        format!("RLIMIT_NOFILE soft raised {soft} → {raised}, hard {hard} (the server inherits it)")
    })
}

/// Turns delayed ACKs off until the next read (Linux resets `TCP_QUICKACK` by itself).
fn quickack(socket: &TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a pointer to a local int of the given size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: `sysconf` reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime + stime of a process (`self` or a pid), in clock ticks.
fn proc_cpu_ticks(pid: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name may hold spaces; the fields after it are fixed: state is the first,
    // utime the 12th and stime the 13th.
    let after = stat
        .rsplit_once(')')
        .with_context(|| format!("unexpected {path}"))?
        .1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("unexpected {path}"))
    };
    Ok(field(11)? + field(12)?)
}
