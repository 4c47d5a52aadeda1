//! Rebuild benchmark (issue 5, "Performance"), all from one `cargo bench` run:
//! 1. a SQLite log of 1M events over 100k videos, bulk-loaded straight into the schema the store
//!    created (rows encoded by `event::codec`, as the store writes them; no HTTP);
//! 2. in a child process (this binary again, `--measure`), so that nothing else inflates its
//!    memory: a bare read of the log in position order (read + decode every event, no fold),
//!    the same read in stream order (the table's own order, so the file's sequential read), and
//!    the rebuild (fold + shadow table + swap), each twice, best kept; the ratio is taken
//!    against the faster of the two reads; peak RSS during the first rebuild;
//! 3. the real application on that log: webhook latency under a steady open-loop load (1,000
//!    webhooks/s) in rounds (three by default), each an online rebuild (`POST /admin/rebuild`'s
//!    code path) then an idle window as long; each round's p99 during over its p99 idle, and the
//!    median of those ratios is judged (one round the host disturbed does not decide it); then
//!    `rebuild --verify`'s check of the result.
//!
//! ```text
//! cargo bench --bench rebuild                 # defaults: 1M events, 100k videos
//! cargo bench --bench rebuild -- --quick      # a smoke run: 100k events, 10k videos
//! cargo bench --bench rebuild -- --help
//! ```

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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use summary::Row;

use anyhow::{bail, Context};
use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::oneshot;

use video_status::app::Application;
use video_status::cli::rebuild::verify;
use video_status::config::{Config, Overrides};
use video_status::event::codec::{encode_event, encode_raw};
use video_status::event::{
    Assets, EventId, EventKind, FailureReason, ProviderName, RawDelivery, VideoEvent, VideoId,
};
use video_status::projection::rebuild::{rebuild, Phase};
use video_status::providers::Providers;
use video_status::store::{EventStore, Store};

#[derive(Debug, Clone)]
struct Sizes {
    events: usize,
    videos: usize,
    /// Webhooks per second in phase 3 (open loop).
    rate: usize,
    /// Shortest idle window of phase 3 (each is as long as the rebuild before it).
    idle_secs: u64,
    /// Phase 3's rounds, each an online rebuild then an idle window: the median of the rounds'
    /// ratios is judged, so a moment of the host's own noise weighs on one round, not on the
    /// figure.
    rounds: usize,
    /// Status rows phase 3 makes wrong before each round, so that its online rebuild has that
    /// many to correct (past the rebuild's 2,000, it builds and swaps a whole new table).
    stale: usize,
    quick: bool,
}

impl Sizes {
    const DEFAULT: Sizes = Sizes {
        events: 1_000_000,
        videos: 100_000,
        rate: 1_000,
        idle_secs: 5,
        rounds: 3,
        stale: 0,
        quick: false,
    };
    const QUICK: Sizes = Sizes {
        events: 100_000,
        videos: 10_000,
        rate: 1_000,
        idle_secs: 2,
        rounds: 2,
        stale: 0,
        quick: true,
    };
}

enum Mode {
    Run(Sizes),
    /// The child of phase 2: measures the log at this path.
    Measure(PathBuf),
    /// Only phase 1, into this path: a log to profile `--measure` on, or to keep.
    WriteLog(PathBuf, Sizes),
    /// Only phase 3, on a copy of the log at this path.
    Online(PathBuf, Sizes),
}

fn parse_args() -> anyhow::Result<Mode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes = if args.iter().any(|a| a == "--quick") {
        Sizes::QUICK
    } else {
        Sizes::DEFAULT
    };
    let mut args = args.into_iter();
    let mut write_log = None;
    let mut online_only = None;
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
            "--events" => sizes.events = number("--events")?,
            "--videos" => sizes.videos = number("--videos")?,
            "--rate" => sizes.rate = number("--rate")?,
            "--rounds" => sizes.rounds = number("--rounds")?,
            "--stale" => sizes.stale = number("--stale")?,
            // `cargo bench` passes `--bench` to every harness-less benchmark.
            "--quick" | "--bench" => {}
            "--measure" => {
                let path = args.next().context("--measure needs a path")?;
                return Ok(Mode::Measure(path.into()));
            }
            "--online" => {
                let path = args.next().context("--online needs a path")?;
                online_only = Some(PathBuf::from(path));
            }
            "--write-log" => {
                let path = args.next().context("--write-log needs a path")?;
                write_log = Some(PathBuf::from(path));
            }
            "--help" | "-h" => {
                println!(
                    "cargo bench --bench rebuild -- [--quick] [--events N] [--videos N] \
                     [--rate N] [--rounds N]\n\
                     cargo bench --bench rebuild -- --write-log PATH [sizes]   (phase 1 only)\n\
                     cargo bench --bench rebuild -- --measure PATH             (phase 2 only)\n\
                     cargo bench --bench rebuild -- --online PATH [--rate N] [--rounds N] [--stale N]   (phase 3 only, on a copy)\n\
                     --stale N: phase 3 makes N status rows wrong before each round (default 0)\n\
                     defaults: --events {} --videos {} --rate {} --rounds {}\n\
                     --quick:  --events {} --videos {} --rounds {}",
                    Sizes::DEFAULT.events,
                    Sizes::DEFAULT.videos,
                    Sizes::DEFAULT.rate,
                    Sizes::DEFAULT.rounds,
                    Sizes::QUICK.events,
                    Sizes::QUICK.videos,
                    Sizes::QUICK.rounds,
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if sizes.events < sizes.videos {
        bail!("--events must be at least --videos");
    }
    Ok(match (write_log, online_only) {
        (Some(_), Some(_)) => bail!("--write-log and --online are two separate runs"),
        (Some(path), None) => Mode::WriteLog(path, sizes),
        (None, Some(path)) => Mode::Online(path, sizes),
        (None, None) => Mode::Run(sizes),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mode = parse_args()?;
    // As the binary does (src/main.rs): phase 2 measures what `video-status rebuild` runs,
    // with mimalloc's defaults; phase 3 runs the server, which returns freed memory at once.
    if !matches!(mode, Mode::Measure(_)) {
        video_status::allocator::return_freed_memory_promptly();
    }
    let sizes = match mode {
        Mode::Measure(path) => return measure_child(&path).await,
        Mode::WriteLog(path, sizes) => {
            build_log(&path, &sizes).await?;
            println!(
                "log of {} events written to {}",
                sizes.events,
                path.display()
            );
            return Ok(());
        }
        Mode::Online(path, sizes) => {
            // On a copy: the phase writes webhooks and swaps the status table.
            let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
            let db = dir.path().join("rebuild.db");
            copy_log(&path, &db)?;
            write_back(&db)?;
            return online(&db, &sizes, &mut Figures::default()).await;
        }
        Mode::Run(sizes) => sizes,
    };
    let machine = Machine::read();
    println!("video-status rebuild benchmark");
    println!("machine: {machine}");
    println!(
        "load:    {} (load average over 1, 5, 15 min at start: other work skews every figure)",
        load_average()
    );
    println!(
        "sizes:   {} events over {} videos; phase 3 at {} webhooks/s, {} rounds{}",
        sizes.events,
        sizes.videos,
        sizes.rate,
        sizes.rounds,
        if sizes.quick { " (--quick)" } else { "" }
    );
    if cfg!(debug_assertions) {
        println!("warning: debug build; run `cargo bench` for figures worth keeping");
    }
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let db = dir.path().join("rebuild.db");
    let mut figures = Figures {
        events: sizes.events as u64,
        videos: sizes.videos as u64,
        rate: sizes.rate,
        ..Figures::default()
    };

    let started = Instant::now();
    build_log(&db, &sizes).await?;
    figures.db_bytes = std::fs::metadata(&db)?.len();
    println!(
        "(1) log built in {:.1} s: {} in {}",
        started.elapsed().as_secs_f64(),
        megabytes(figures.db_bytes),
        db.display()
    );

    write_back(&db)?;
    measure(&db, &mut figures)?;
    online(&db, &sizes, &mut figures).await?;

    println!();
    figures.print(&machine);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (1) The log

/// Events per video, in the order a video's lifecycle sends them.
fn lifecycle_kind(step: usize, steps: usize, fails: bool) -> EventKind {
    match step {
        0 => EventKind::Uploaded,
        1 => EventKind::ProcessingStarted,
        s if s + 2 < steps => EventKind::Progress {
            percent: (100 * (s - 1) / (steps - 2)) as f64,
        },
        s if s + 2 == steps => EventKind::ProcessingCompleted,
        _ if fails => EventKind::Failed {
            error: Some(FailureReason {
                code: Some("codec".into()),
                message: "unsupported codec".into(),
            }),
        },
        _ => EventKind::Ready,
    }
}

/// Rows encoded as the store encodes them, inserted in one transaction per 50k. The videos
/// interleave as live traffic does: round after round, every video sends its next event, the
/// videos in a new random order each round; one video in 20 has two events that arrive in the
/// other order than they happened (a late event, which makes the fold sort).
async fn build_log(db: &Path, sizes: &Sizes) -> anyhow::Result<()> {
    // The store creates (migrates) the schema; the rows then go in through one plain connection.
    drop(Store::open(&format!("sqlite://{}", db.display())).await?);
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let steps = sizes.events / sizes.videos;
    let extra = sizes.events % sizes.videos;
    let provider = ProviderName::parse("demo")?;
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let mut order: Vec<usize> = (0..sizes.videos).collect();
    let mut inserted = 0usize;
    let mut tx = conn.transaction()?;
    for round in 0..=steps {
        order.shuffle(&mut rng);
        for &video in &order {
            let video_steps = steps + usize::from(video < extra);
            if round >= video_steps {
                continue;
            }
            let late = video % 20 == 7 && (round == 2 || round == 3);
            let step = if late { 5 - round } else { round };
            let event = sample_event(&provider, video, step, video_steps, start, &mut rng);
            let raw = sample_raw(&event);
            let position = inserted as i64 + 1;
            tx.prepare_cached(
                "INSERT INTO events (stream_id, stream_version, position, provider, event_id,
                 kind, occurred_at, received_at, body_sha256, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(rusqlite::params![
                event.video_id.as_str(),
                (round + 1) as i64,
                position,
                event.provider.as_str(),
                event.event_id.as_str(),
                event.kind.name(),
                event.occurred_at.timestamp_micros(),
                event.received_at.timestamp_micros(),
                &raw.body_sha256()[..],
                encode_event(&event),
            ])?;
            tx.prepare_cached("INSERT INTO raw_deliveries (position, raw) VALUES (?1, ?2)")?
                .execute(rusqlite::params![position, encode_raw(&raw)])?;
            inserted += 1;
            if inserted % 50_000 == 0 {
                tx.commit()?;
                tx = conn.transaction()?;
            }
        }
    }
    tx.commit()?;
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    anyhow::ensure!(inserted == sizes.events, "built {inserted} events");
    Ok(())
}

/// Waits until the kernel has written the log to disk. Phase 1 builds it with `synchronous=OFF`,
/// leaving its pages dirty in the page cache; written back during phase 3, they would stretch
/// the fsyncs of whichever window they fall in, which a server that built its log over months
/// never meets. (Two runs without this read an idle p99 of 15.7 and 29.5 ms, against 2.4-6.9 ms
/// in five runs with it; how much of that was this write-back is not known.)
fn write_back(db: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    for file in [db.to_path_buf(), wal_of(db)] {
        if file.exists() {
            std::fs::File::open(&file)?
                .sync_all()
                .with_context(|| format!("cannot sync {}", file.display()))?;
        }
    }
    println!(
        "    the log is on disk ({:.1} s of write-back)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The WAL file beside a database file.
fn wal_of(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Copies a log that nothing is writing: the database file and, when there is one, its WAL,
/// whose committed frames the file alone may lack (SQLite rebuilds the WAL's index on opening).
fn copy_log(from: &Path, to: &Path) -> anyhow::Result<()> {
    for (source, target) in [
        (from.to_path_buf(), to.to_path_buf()),
        (wal_of(from), wal_of(to)),
    ] {
        if source == from || source.exists() {
            std::fs::copy(&source, &target)
                .with_context(|| format!("cannot copy {}", source.display()))?;
        }
    }
    Ok(())
}

fn sample_event(
    provider: &ProviderName,
    video: usize,
    step: usize,
    steps: usize,
    start: DateTime<Utc>,
    rng: &mut StdRng,
) -> VideoEvent {
    let kind = lifecycle_kind(step, steps, video % 10 == 3);
    let video_id = format!("bench-v{video:06}");
    let occurred_at = start + chrono::Duration::seconds((video * 10 + step * 7) as i64);
    let assets = match kind {
        EventKind::Ready => Assets {
            resolutions: vec!["1080p".into(), "720p".into(), "480p".into()],
            poster: Some(format!("https://cdn.example.test/{video_id}/poster.jpg")),
            thumbnail: Some(format!("https://cdn.example.test/{video_id}/thumb.jpg")),
            playback_url: Some(format!("https://cdn.example.test/{video_id}/index.m3u8")),
            duration_secs: Some(rng.random_range(5.0..600.0)),
        },
        _ => Assets::default(),
    };
    VideoEvent {
        event_id: EventId::parse(format!("{video_id}-evt-{step:02}")).unwrap(),
        video_id: VideoId::parse(video_id).unwrap(),
        provider: provider.clone(),
        kind,
        occurred_at,
        received_at: occurred_at + chrono::Duration::milliseconds(rng.random_range(50..5_000)),
        assets,
        metadata: json!({ "tenant": "acme", "title": format!("Video {video}") }).into(),
        source: Default::default(),
    }
}

/// A native body and Standard Webhooks headers of the size a real delivery has.
fn sample_raw(event: &VideoEvent) -> RawDelivery {
    let body = json!({
        "id": event.event_id,
        "type": format!("video.{}", event.kind.name()),
        "timestamp": event.occurred_at.to_rfc3339(),
        "data": { "videoId": event.video_id, "metadata": event.metadata, "assets": event.assets },
    });
    RawDelivery {
        body: body.to_string().into(),
        headers: vec![
            ("webhook-id".into(), event.event_id.to_string()),
            (
                "webhook-timestamp".into(),
                event.received_at.timestamp().to_string(),
            ),
            (
                "webhook-signature".into(),
                "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=".into(),
            ),
        ],
    }
}

// ---------------------------------------------------------------------------------------------
// (2) Reads and rebuild, in a child process

const RESULT_PREFIX: &str = "measure result:";

fn measure(db: &Path, figures: &mut Figures) -> anyhow::Result<()> {
    let result = child::run(
        [std::ffi::OsStr::new("--measure"), db.as_os_str()],
        RESULT_PREFIX,
        "the measuring child",
    )?;
    let field = |name: &str| result.field::<f64>(name);
    figures.read_per_sec = field("read")?;
    figures.stream_read_per_sec = field("stream_read")?;
    figures.rebuild_per_sec = field("rebuild")?;
    figures.rebuild_secs = field("rebuild_secs")?;
    figures.rss_before = field("rss_before")? as u64;
    figures.rss_peak = field("rss_peak")? as u64;
    Ok(())
}

async fn measure_child(db: &Path) -> anyhow::Result<()> {
    let store = Store::open(&format!("sqlite://{}", db.display())).await?;
    let head = store.head_position().await?;
    // The first pass brings the file into the page cache; every timed pass then reads it warm.
    let warm = Instant::now();
    bare_read(&store, head).await?;
    println!(
        "(2) warm-up read of {head} events: {:.2} s",
        warm.elapsed().as_secs_f64()
    );
    let (mut read, mut stream_read, mut rebuilt) = (0f64, 0f64, 0f64);
    let mut rebuild_secs = f64::MAX;
    // The first rebuild of this fresh process: what a rebuild adds to a process that did not
    // rebuild before (a second one reuses what the allocator kept from the first).
    let mut first_rss = None;
    // CPU per event (all threads of this process) says what each costs whatever else the
    // machine runs; events/s says what it takes on the wall clock.
    let cpu_per_event = |cpu_before: f64, events: u64| {
        (process_cpu_secs() - cpu_before) * 1e6 / events.max(1) as f64
    };
    for pass in 1..=2 {
        let (started, cpu) = (Instant::now(), process_cpu_secs());
        let events = bare_read(&store, head).await?;
        let rate = events as f64 / started.elapsed().as_secs_f64();
        read = read.max(rate);
        println!(
            "    pass {pass}: bare read (position order)  {rate:>10.0} events/s \
             ({:.2} µs of CPU per event)",
            cpu_per_event(cpu, events)
        );

        let (started, cpu) = (Instant::now(), process_cpu_secs());
        let events = stream_order_read(&store, head).await?;
        let rate = events as f64 / started.elapsed().as_secs_f64();
        stream_read = stream_read.max(rate);
        println!(
            "    pass {pass}: read in stream order        {rate:>10.0} events/s \
             ({:.2} µs of CPU per event)",
            cpu_per_event(cpu, events)
        );

        reset_peak_rss();
        let before = proc_status_kib("self", "VmRSS:")? * 1024;
        let (started, cpu) = (Instant::now(), process_cpu_secs());
        let report = rebuild(&store, |_| {}).await?;
        let secs = started.elapsed().as_secs_f64();
        let rate = report.events_done as f64 / secs;
        if rate > rebuilt {
            rebuilt = rate;
            rebuild_secs = secs;
        }
        let peak = proc_status_kib("self", "VmHWM:")? * 1024;
        first_rss.get_or_insert((before, peak));
        println!(
            "    pass {pass}: rebuild                      {rate:>10.0} events/s \
             ({} videos in {secs:.2} s, {:.2} µs of CPU per event; RSS {} → peak {})",
            report.videos,
            cpu_per_event(cpu, report.events_done),
            megabytes(before),
            megabytes(peak)
        );
        anyhow::ensure!(report.events_done == head, "the rebuild read every event");
    }
    let (rss_before, peak) = first_rss.unwrap_or_default();
    println!(
        "{RESULT_PREFIX} read={read:.0} stream_read={stream_read:.0} rebuild={rebuilt:.0} \
         rebuild_secs={rebuild_secs:.3} rss_before={rss_before} rss_peak={peak}"
    );
    Ok(())
}

/// Every event in position order, read and decoded, nothing else.
async fn bare_read(store: &Store, head: u64) -> anyhow::Result<u64> {
    let (mut after, mut events, mut checksum) = (0, 0u64, 0u64);
    while after < head {
        let page = store.read_all(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        events += page.len() as u64;
        checksum += page.iter().map(|e| e.version).sum::<u64>();
    }
    anyhow::ensure!(checksum > 0 || events == 0);
    Ok(events)
}

/// The rebuild's own reads (stream order, through the index), without the fold.
async fn stream_order_read(store: &Store, head: u64) -> anyhow::Result<u64> {
    let (mut after, mut events) = (None, 0u64);
    loop {
        let page = store.read_streams(after, None, head, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = Some(video_status::store::StreamCursor {
            video_id: last.event.video_id.clone(),
            version: last.version,
        });
        events += page.len() as u64;
    }
    Ok(events)
}

/// User + system CPU time of every thread of this process so far.
fn process_cpu_secs() -> f64 {
    // SAFETY: getrusage writes one `rusage` into the zeroed value it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0), so the peak read after is the rebuild's.
fn reset_peak_rss() {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        println!("    note: cannot reset VmHWM; the peak includes the reads before");
    }
}

// ---------------------------------------------------------------------------------------------
// (3) Webhook latency while an online rebuild runs

async fn online(db: &Path, sizes: &Sizes, figures: &mut Figures) -> anyhow::Result<()> {
    let config = Config::load(
        None,
        &Overrides {
            listen: Some("127.0.0.1:0".parse()?),
            store: Some(format!("sqlite://{}", db.display())),
        },
    )?
    .with_demo_provider();
    let providers = Providers::from_config(&config.providers)?;
    let app = Application::build(config).await?;
    let url = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let (stop_server, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let load = Load::new(&url, &providers, sizes.rate)?;

    // Warm-up: connections, actors, the status rows of new videos.
    load.run("warm", stop_after(Duration::from_secs(1))).await?;
    let mut idle = LoadReport::default();
    let mut during = LoadReport::default();
    let mut rebuild_rates = Vec::with_capacity(sizes.rounds);
    let mut round_ratios = Vec::with_capacity(sizes.rounds);
    for round in 1..=sizes.rounds {
        if sizes.stale > 0 {
            make_stale(db, sizes.stale)?;
        }
        let (busy, report) = load_during_rebuild(&load, &state, round).await?;
        let outcome = match report.corrected {
            Some(rows) => format!("corrected {rows} rows in place"),
            None => "swapped in a new table".to_owned(),
        };
        println!(
            "(3) round {round}, during an online rebuild at {}/s: {} webhooks in {:.1} s, p50 {} \
             p99 {}; the rebuild folded {} events at {:.0} events/s, {outcome}",
            sizes.rate,
            busy.latencies.len(),
            busy.elapsed.as_secs_f64(),
            ms(busy.percentile(0.50)),
            ms(busy.percentile(0.99)),
            report.events_done,
            report.events_per_sec
        );
        println!("    slowest during: {}", busy.slowest(5));
        // As long as the rebuild took: both windows meet as many of the host's own stalls.
        let window = busy.elapsed.max(Duration::from_secs(sizes.idle_secs));
        let quiet = load
            .run(&format!("idle{round}"), stop_after(window))
            .await?;
        let ratio =
            busy.percentile(0.99).as_secs_f64() / quiet.percentile(0.99).as_secs_f64().max(1e-9);
        println!(
            "    round {round}, idle right after: {} webhooks in {:.1} s, p50 {} p99 {}; \
             p99 during / idle {ratio:.2}",
            quiet.latencies.len(),
            quiet.elapsed.as_secs_f64(),
            ms(quiet.percentile(0.50)),
            ms(quiet.percentile(0.99))
        );
        println!("    slowest idle: {}", quiet.slowest(5));
        rebuild_rates.push(report.events_per_sec);
        round_ratios.push(ratio);
        idle.absorb(quiet);
        during.absorb(busy);
    }
    println!(
        "    all {} rounds: idle p50 {} p99 {} ({} webhooks); during p50 {} p99 {} ({} webhooks)",
        sizes.rounds,
        ms(idle.percentile(0.50)),
        ms(idle.percentile(0.99)),
        idle.latencies.len(),
        ms(during.percentile(0.50)),
        ms(during.percentile(0.99)),
        during.latencies.len()
    );
    let (videos, differences) = verify(&state.store).await?;
    println!(
        "    verify afterwards: {} differences over {videos} videos",
        differences.len()
    );
    figures.idle_p99 = Some(idle.percentile(0.99));
    figures.during_p99 = Some(during.percentile(0.99));
    figures.round_ratios = round_ratios;
    figures.online_per_sec = rebuild_rates.iter().sum::<f64>() / rebuild_rates.len() as f64;
    figures.load_errors = idle.errors + during.errors;
    figures.verify_differences = Some(differences.len());
    let _ = stop_server.send(());
    server.await?;
    Ok(())
}

/// Points `rows` random status rows at a wrong log position, through a connection of its own
/// while the server runs (nothing else writes between rounds): the next rebuild must correct
/// them.
fn make_stale(db: &Path, rows: usize) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let changed = conn.execute(
        "UPDATE status SET position = -1 WHERE video_id IN \
         (SELECT video_id FROM status ORDER BY random() LIMIT ?1)",
        [i64::try_from(rows)?],
    )?;
    // Copied into the database file now, so that the round does not meet the checkpoint of
    // this setup step: what it measures is the rebuild's own writes.
    let (frames, copied): (i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(1)?, row.get(2)?))
        })?;
    println!("    made {changed} status rows stale ({copied} of {frames} WAL frames checkpointed)");
    Ok(())
}

/// Runs the load while one online rebuild (`POST /admin/rebuild`'s code path) runs to its end.
async fn load_during_rebuild(
    load: &Load,
    state: &video_status::app::AppState,
    round: usize,
) -> anyhow::Result<(LoadReport, video_status::projection::rebuild::RebuildReport)> {
    state
        .rebuilder
        .start()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let rebuilder = state.rebuilder.clone();
    let done = Arc::new(AtomicBool::new(false));
    let begun = Instant::now();
    let watcher = tokio::spawn({
        let done = done.clone();
        async move {
            let mut swapping_from = None;
            loop {
                let report = rebuilder.report();
                if !report.is_running() {
                    break;
                }
                if swapping_from.is_none() && report.phase == Phase::Swapping {
                    swapping_from = Some(begun.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            done.store(true, Ordering::SeqCst);
            swapping_from
        }
    });
    let during = load.run(&format!("during{round}"), done).await?;
    let swapping_from = watcher.await?;
    let report = state.rebuilder.report();
    anyhow::ensure!(report.phase == Phase::Done, "online rebuild: {report:?}");
    if let Some(from) = swapping_from {
        let (folding, swapping) = during.split_at(from);
        println!(
            "    while folding: {} webhooks in {:.1} s, p99 {}; while swapping (and freeing the \
             replaced table): {} webhooks, p99 {}",
            folding.latencies.len(),
            from.as_secs_f64(),
            ms(folding.percentile(0.99)),
            swapping.latencies.len(),
            ms(swapping.percentile(0.99))
        );
    }
    Ok((during, report))
}

/// The middle value (the mean of the two middle ones for an even count): one round disturbed
/// by the host, in either window, does not decide it.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn stop_after(after: Duration) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    tokio::spawn({
        let stop = stop.clone();
        async move {
            tokio::time::sleep(after).await;
            stop.store(true, Ordering::SeqCst);
        }
    });
    stop
}

/// An open loop: one webhook every `1 / rate` seconds, whatever the answers (a provider does not
/// wait for the previous delivery), each on its own task, signed with the demo provider's secret.
/// Five consecutive webhooks make one video's lifecycle.
struct Load {
    url: String,
    client: reqwest::Client,
    provider: Arc<video_status::providers::Provider>,
    rate: usize,
}

#[derive(Default)]
struct LoadReport {
    latencies: Vec<Duration>,
    /// When each webhook of `latencies` was sent, from the start of its window.
    sent_at: Vec<Duration>,
    elapsed: Duration,
    errors: u64,
}

impl LoadReport {
    /// Pools another window's webhooks with these.
    fn absorb(&mut self, other: LoadReport) {
        self.latencies.extend(other.latencies);
        self.sent_at.extend(other.sent_at);
        self.elapsed += other.elapsed;
        self.errors += other.errors;
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    }

    /// The webhooks sent before `at` (from the start of the window), and those sent after.
    fn split_at(&self, at: Duration) -> (LoadReport, LoadReport) {
        let (mut before, mut after) = (LoadReport::default(), LoadReport::default());
        for (&latency, &sent) in self.latencies.iter().zip(&self.sent_at) {
            let part = if sent < at { &mut before } else { &mut after };
            part.latencies.push(latency);
            part.sent_at.push(sent);
        }
        (before, after)
    }

    /// The `n` slowest webhooks of one window, each with when it was sent: whether a tail
    /// gathers at the start or end of a rebuild, or is spread over it.
    fn slowest(&self, n: usize) -> String {
        let mut pairs: Vec<(Duration, Duration)> = self
            .latencies
            .iter()
            .copied()
            .zip(self.sent_at.iter().copied())
            .collect();
        pairs.sort_by_key(|pair| std::cmp::Reverse(pair.0));
        pairs
            .iter()
            .take(n)
            .map(|(latency, at)| format!("{} at {:.2} s", ms(*latency), at.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Load {
    fn new(url: &str, providers: &Providers, rate: usize) -> anyhow::Result<Load> {
        Ok(Load {
            url: format!("{url}/webhooks/demo"),
            client: video_status::http_client::client_builder()
                .http1_only()
                .no_proxy()
                .build()?,
            provider: providers.get("demo").context("the demo provider")?,
            rate,
        })
    }

    /// Sends until `stop` is set; every webhook sent before counts, answered after or not.
    async fn run(&self, phase: &str, stop: Arc<AtomicBool>) -> anyhow::Result<LoadReport> {
        const KINDS: [&str; 5] = [
            "uploaded",
            "processing.started",
            "processing.progress",
            "processing.completed",
            "ready",
        ];
        let started = Instant::now();
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / self.rate as f64));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut requests = tokio::task::JoinSet::new();
        let mut n = 0usize;
        while !stop.load(Ordering::SeqCst) {
            ticks.tick().await;
            let video = format!("load-{phase}-{}", n / KINDS.len());
            let event_id = format!("{video}-{n}");
            let body = json!({
                "id": event_id,
                "type": format!("video.{}", KINDS[n % KINDS.len()]),
                "timestamp": (Utc::now()).to_rfc3339(),
                "data": { "videoId": video, "progress": 50, "metadata": { "tenant": "acme" } },
            })
            .to_string();
            let mut request = self.client.post(&self.url).body(body.clone());
            let headers = self
                .provider
                .sign(&event_id, Utc::now(), body.as_bytes())
                .expect("the demo provider has a secret to sign with");
            for (name, value) in headers {
                request = request.header(name, value);
            }
            requests.spawn(async move {
                let sent = Instant::now();
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        Some((sent.elapsed(), sent - started))
                    }
                    _ => None,
                }
            });
            n += 1;
        }
        let mut report = LoadReport {
            latencies: Vec::with_capacity(n),
            sent_at: Vec::with_capacity(n),
            elapsed: started.elapsed(),
            errors: 0,
        };
        while let Some(answer) = requests.join_next().await {
            match answer? {
                Some((latency, sent_at)) => {
                    report.latencies.push(latency);
                    report.sent_at.push(sent_at);
                }
                None => report.errors += 1,
            }
        }
        Ok(report)
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

#[derive(Default)]
struct Figures {
    events: u64,
    videos: u64,
    rate: usize,
    db_bytes: u64,
    read_per_sec: f64,
    stream_read_per_sec: f64,
    rebuild_per_sec: f64,
    rebuild_secs: f64,
    rss_before: u64,
    rss_peak: u64,
    /// Pooled over every round.
    idle_p99: Option<Duration>,
    during_p99: Option<Duration>,
    /// Each round's p99 during its rebuild over the p99 of the idle window right after.
    round_ratios: Vec<f64>,
    online_per_sec: f64,
    load_errors: u64,
    verify_differences: Option<usize>,
}

impl Figures {
    fn rows(&self) -> Vec<Row> {
        // The log is stored clustered by stream (migration 0006), so the sequential read of the
        // file is the stream-order one; the ratio is taken against the faster read, whichever.
        let fastest_read = self.read_per_sec.max(self.stream_read_per_sec);
        let ratio = self.rebuild_per_sec / fastest_read;
        let growth = self.rss_peak.saturating_sub(self.rss_before);
        let mut rows = vec![
            Row::new(
                "log",
                format!(
                    "{} events, {} videos, {} on disk",
                    self.events,
                    self.videos,
                    megabytes(self.db_bytes)
                ),
                "1M / 100k",
                None,
            ),
            Row::new(
                "bare read in position order (read + decode)",
                format!("{:.0} events/s", self.read_per_sec),
                "reference",
                None,
            ),
            Row::new(
                "read in stream order (read + decode)",
                format!("{:.0} events/s", self.stream_read_per_sec),
                "reference",
                None,
            ),
            Row::new(
                "rebuild",
                format!(
                    "{:.0} events/s ({:.2} s)",
                    self.rebuild_per_sec, self.rebuild_secs
                ),
                "≥ 1M events/s",
                Some(self.rebuild_per_sec >= 1_000_000.0),
            ),
            Row::new(
                "rebuild / fastest bare read",
                format!("{ratio:.2}"),
                "≥ 0.5",
                Some(ratio >= 0.5),
            ),
            Row::new(
                "peak RSS during rebuild",
                format!(
                    "{} (+{} over {} before)",
                    megabytes(self.rss_peak),
                    megabytes(growth),
                    megabytes(self.rss_before)
                ),
                "growth < 100 MB",
                Some(growth < 100_000_000),
            ),
        ];
        if let (Some(idle), Some(during)) = (self.idle_p99, self.during_p99) {
            let c = format!("{}/s", self.rate);
            let pooled = during.as_secs_f64() / idle.as_secs_f64().max(1e-9);
            rows.push(Row::new(
                format!("ingest p99 idle, open loop {c}, all rounds"),
                ms(idle),
                "reference",
                None,
            ));
            rows.push(Row::new(
                format!("ingest p99 during online rebuilds, {c}, all rounds"),
                format!("{} ({pooled:.2}× idle)", ms(during)),
                "reference",
                None,
            ));
            let ratio = median(&self.round_ratios);
            let each: Vec<String> = self
                .round_ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect();
            rows.push(Row::new(
                "ingest p99 during / idle, median of the rounds",
                format!("{ratio:.2}× (rounds: {})", each.join(", ")),
                "< 2×",
                Some(ratio < 2.0),
            ));
            rows.push(Row::new(
                "online rebuild under that load",
                format!("{:.0} events/s", self.online_per_sec),
                "reference",
                None,
            ));
            rows.push(Row::new(
                "webhook errors during (3)",
                self.load_errors.to_string(),
                "0",
                Some(self.load_errors == 0),
            ));
        }
        if let Some(differences) = self.verify_differences {
            rows.push(Row::new(
                "verify after the online rebuild",
                format!("{differences} differences"),
                "0",
                Some(differences == 0),
            ));
        }
        rows
    }

    fn print(&self, machine: &Machine) {
        summary::print(&self.rows(), &[], &machine.to_string());
    }
}
