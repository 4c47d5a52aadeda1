//! `video-status rebuild [--verify | --remap]`: re-fold every stream into a fresh status table
//! (safe beside a running server: rows of appends made meanwhile are kept; the online rebuild
//! is `POST /admin/rebuild`), check the stored one against the log, or re-run the current
//! mappers over the stored raw requests first.

use std::io::IsTerminal;
use std::ops::Bound;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use super::StoreArgs;
use crate::actor::VideoManager;
use crate::event::VideoId;
pub use crate::projection::rebuild::refold_all;
use crate::projection::rebuild::{fold_stream, rebuild, FoldBesideLive, RebuildReport};
use crate::providers::Providers;
use crate::remap::{remap, RemapReport};
use crate::store::{EventStore, LiveStatus, RebuiltStatus, Store};

#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Compare the re-folded statuses with the stored ones, print every difference and exit 1 if
    /// any; writes nothing.
    #[arg(long, conflicts_with = "remap")]
    pub verify: bool,
    /// First run the current mappers over the raw requests kept with every event and every
    /// ignored delivery: newly understood deliveries are appended (once), the stored events are
    /// compared and never rewritten. Then rebuild.
    #[arg(long)]
    pub remap: bool,
}

pub async fn run(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let config = args.store.load(None)?;
    let store = Store::open_existing(&config.store).await?;
    if args.remap {
        // The providers `serve` would run with this config, the demo one included.
        let config = config.with_demo_provider();
        let providers = Providers::from_config(&config.providers)?;
        let videos =
            VideoManager::start(store.clone(), config.limits.clone(), config.actors.clone())
                .await?;
        let report = remap(&store, &providers, &videos).await;
        videos.shutdown().await;
        print_remap(&report?);
    }
    if !args.verify {
        let mut progress = Progress::new();
        let report = rebuild(&store, |r| progress.show(r)).await?;
        progress.finish();
        println!(
            "rebuilt the status of {} videos from {} events ({:.0} events/s), fold version {}",
            report.videos, report.events_done, report.events_per_sec, report.fold_version
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (videos, differences) = verify(&store).await?;
    if differences.is_empty() {
        println!("verified: the stored status of all {videos} videos equals the log's fold");
        Ok(ExitCode::SUCCESS)
    } else {
        for line in &differences {
            println!("{line}");
        }
        println!(
            "{} difference(s) between the stored statuses and the log",
            differences.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn print_remap(report: &RemapReport) {
    for note in &report.notes {
        println!("remap: {note}");
    }
    println!(
        "remap: {} events in the log: {} unchanged, {} mapped differently now (kept as stored)",
        report.events_checked, report.events_unchanged, report.events_differing
    );
    println!(
        "remap: {} ignored deliveries: {} appended, {} already in the log, {} still ignored, \
         {} unmappable",
        report.ignored_checked,
        report.ignored_appended,
        report.ignored_duplicate,
        report.ignored_still_ignored,
        report.ignored_unmappable
    );
    if report.unknown_provider > 0 {
        println!(
            "remap: {} stored requests of providers no longer configured, left as they are",
            report.unknown_provider
        );
    }
}

/// A progress bar (events/s, ETA) on a terminal; plain lines every few seconds otherwise, so
/// logs of a scripted rebuild stay readable.
enum Progress {
    Bar(ProgressBar),
    Lines { last: Option<Instant> },
}

impl Progress {
    fn new() -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:10} [{bar:40}] {human_pos}/{human_len} events, {rate}, ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                // indicatif's own `{per_sec}` prints four decimals of events per second.
                .with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} events/s", state.per_sec());
                    },
                )
                .progress_chars("=> "),
            );
            Progress::Bar(bar)
        } else {
            Progress::Lines { last: None }
        }
    }

    fn show(&mut self, report: &RebuildReport) {
        let phase = serde_json::to_value(report.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        match self {
            Progress::Bar(bar) => {
                bar.set_length(report.events_total);
                bar.set_position(report.events_done);
                bar.set_message(phase);
            }
            Progress::Lines { last } => {
                let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
                if due || report.events_done == report.events_total {
                    eprintln!(
                        "rebuild: {phase} {}/{} events ({:.0} events/s)",
                        report.events_done, report.events_total, report.events_per_sec
                    );
                    *last = Some(Instant::now());
                }
            }
        }
    }

    fn finish(self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Refolds the log and walks the stored rows beside it, both in video id order, a page of each
/// at a time: one line per video whose stored row differs from the fold, in its status or in the
/// global position it records (which decides whether an append's row wins over a rebuild's), or
/// cannot be read back. Returns the number of videos compared and the lines.
///
/// Safe beside a running server: the fold stops at the log's head as the walk began, so a row an
/// append rewrote since then folds events the walk did not read. Such a video is compared on its
/// own once the walk is done, its row and its whole stream read again.
pub async fn verify(store: &Store) -> anyhow::Result<(u64, Vec<String>)> {
    let head = store.head_position().await?;
    let mut walk = FoldBesideLive::new(store.clone(), head);
    let (mut videos, mut lines, mut moved) = (0, Vec::new(), Vec::new());
    while let Some((folded, stored)) = walk.next().await? {
        videos += folded.len() as u64;
        lines.extend(differences(folded, stored, head, &mut moved));
    }
    for video_id in moved {
        let (compared, line) = compare_alone(store, &video_id).await?;
        videos += u64::from(compared);
        lines.extend(line);
    }
    Ok((videos, lines))
}

/// How often a video that moved during the walk is read again before it is reported as never
/// holding still.
const SETTLE_ATTEMPTS: usize = 20;

/// Compares one video's row with the fold of its whole stream. The row is read before and after
/// the stream: an append writes its event and the row in one transaction, so a row that reads the
/// same both times was not moved by an append that the stream read could have missed or caught
/// half of. Otherwise all three are read again. Answers whether the video came to be compared (it
/// was not if it has neither a row nor an accepted event), and the line of a difference.
async fn compare_alone(
    store: &Store,
    video_id: &VideoId,
) -> anyhow::Result<(bool, Option<String>)> {
    let only = || Bound::Included(video_id.clone());
    for _ in 0..SETTLE_ATTEMPTS {
        let row = store.statuses_between(only(), only()).await?;
        let stream = store.read_stream_after(video_id, 0).await?;
        if store.statuses_between(only(), only()).await? != row {
            continue;
        }
        let fresh: Vec<RebuiltStatus> = fold_stream(stream).into_iter().collect();
        let compared = !(fresh.is_empty() && row.is_empty());
        let line = differences(fresh, row, u64::MAX, &mut Vec::new()).pop();
        return Ok((compared, line));
    }
    Ok((
        true,
        Some(format!(
            "{video_id}: its row changed during each of {SETTLE_ATTEMPTS} reads of its events; \
             not compared"
        )),
    ))
}

/// The lines for what differs between `folded` (the log up to position `head`) and `stored`,
/// both in video id order and covering the same ids. A stored row that folds an event past
/// `head` is not judged here: its id goes to `moved`.
fn differences(
    folded: Vec<RebuiltStatus>,
    stored: Vec<LiveStatus>,
    head: u64,
    moved: &mut Vec<VideoId>,
) -> Vec<String> {
    let mut stored = stored.into_iter().peekable();
    let mut lines = Vec::new();
    for fresh in folded {
        let id = &fresh.status.video_id;
        while let Some(row) = stored.next_if(|row| row.video_id < *id) {
            without_events(row, head, &mut lines, moved);
        }
        match stored.next_if(|row| row.video_id == *id) {
            None => lines.push(format!("{id}: missing from the status table")),
            Some(row) if appended_since(&row, head) => moved.push(row.video_id),
            Some(LiveStatus { stored: None, .. }) => lines.push(format!(
                "{id}: the stored row cannot be read back as a status"
            )),
            Some(LiveStatus {
                stored: Some(old), ..
            }) => lines.extend(difference(&old, &fresh)),
        }
    }
    for row in stored {
        without_events(row, head, &mut lines, moved);
    }
    lines
}

fn appended_since(row: &LiveStatus, head: u64) -> bool {
    row.stored.as_ref().is_some_and(|s| s.position > head)
}

/// A stored row for which the log up to `head` has no status.
fn without_events(row: LiveStatus, head: u64, lines: &mut Vec<String>, moved: &mut Vec<VideoId>) {
    if appended_since(&row, head) {
        moved.push(row.video_id);
    } else {
        lines.push(no_events(&row.video_id));
    }
}

fn no_events(video_id: &VideoId) -> String {
    format!("{video_id}: in the status table but has no events in the log")
}

/// The line for a video whose stored row differs from the fold, naming the fields (and the
/// row's global position, which is not part of the status a client reads).
fn difference(stored: &RebuiltStatus, fresh: &RebuiltStatus) -> Option<String> {
    if stored == fresh {
        return None;
    }
    let old = serde_json::to_value(&stored.status).unwrap_or_default();
    let new = serde_json::to_value(&fresh.status).unwrap_or_default();
    let mut fields: Vec<String> = new
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, value)| old.get(key.as_str()) != Some(value))
        .map(|(key, value)| {
            format!(
                "{key}: stored {} != log {}",
                old.get(key.as_str()).unwrap_or(&serde_json::Value::Null),
                value
            )
        })
        .collect();
    if stored.position != fresh.position {
        fields.push(format!(
            "position (of its last event in the log): stored {} != log {}",
            stored.position, fresh.position
        ));
    }
    Some(format!("{}: {}", fresh.status.video_id, fields.join("; ")))
}
