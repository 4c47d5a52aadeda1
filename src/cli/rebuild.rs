//! `video-status rebuild [--verify]`: offline re-fold of every stream into a fresh status table.
//! Run it with the server stopped; the online rebuild is `POST /admin/rebuild`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::StoreArgs;
use crate::event::VideoId;
pub use crate::projection::rebuild::refold_all;
use crate::projection::rebuild::{rebuild, RebuildReport};
use crate::projection::VideoStatus;
use crate::store::{EventStore, StatusQuery, Store};

#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Compare the re-folded statuses with the stored ones, print every difference and exit 1 if
    /// any; writes nothing.
    #[arg(long)]
    pub verify: bool,
}

pub async fn run(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let config = args.store.load(None)?;
    let store = Store::open(&config.store).await?;
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
    let rebuilt = refold_all(&store).await?;
    let stored = read_all_statuses(&store).await?;
    let differences = diff(&stored, &rebuilt);
    if differences.is_empty() {
        println!(
            "verified: the stored status of all {} videos equals the log's fold",
            rebuilt.len()
        );
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
                    "{msg:10} [{bar:40}] {pos}/{len} events, {per_sec}, ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
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

async fn read_all_statuses(store: &Store) -> anyhow::Result<BTreeMap<VideoId, VideoStatus>> {
    let mut statuses = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store
            .list_statuses(StatusQuery {
                after,
                limit: 1000,
                ..StatusQuery::default()
            })
            .await?;
        for status in page.videos {
            statuses.insert(status.video_id.clone(), status);
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(statuses)
}

/// One line per video whose stored status differs from the fold, naming the fields.
fn diff(
    stored: &BTreeMap<VideoId, VideoStatus>,
    rebuilt: &BTreeMap<VideoId, VideoStatus>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (video_id, fresh) in rebuilt {
        match stored.get(video_id) {
            None => lines.push(format!("{video_id}: missing from the status table")),
            Some(old) if old != fresh => {
                let old = serde_json::to_value(old).unwrap_or_default();
                let new = serde_json::to_value(fresh).unwrap_or_default();
                let fields: Vec<String> = new
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
                lines.push(format!("{video_id}: {}", fields.join("; ")));
            }
            Some(_) => {}
        }
    }
    for video_id in stored.keys().filter(|id| !rebuilt.contains_key(*id)) {
        lines.push(format!(
            "{video_id}: in the status table but has no events in the log"
        ));
    }
    lines
}
