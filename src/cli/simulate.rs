//! `video-status simulate`: plays signed video lifecycles into a running server, the way a
//! provider would (shuffled order, redeliveries, failures), and reports what the server answered
//! with throughput and latency percentiles. It is also the load generator of `benches/ingest.rs`:
//! [`plan`] builds the deliveries, [`drive`] posts them with bounded concurrency and measures.
//!
//! It speaks only HTTP to the server; signing reuses the provider schemes of [`crate::providers`]
//! so a request is signed exactly as the server will check it.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::payloads::{self, Payload};
use crate::config::{
    Config, DemoProvider, Overrides, ProviderConfig, SchemeName, Secret, DEMO_SECRET,
};
use crate::providers::{Provider, Providers};

const DEFAULT_URL: &str = "http://127.0.0.1:8080";
const DEFAULT_PROVIDER: &str = "demo";
const DEFAULT_VIDEOS: usize = 20;
const DEFAULT_CONCURRENCY: usize = 8;
const DEFAULT_DUPLICATES: f64 = 0.1;
const DEFAULT_FAIL_RATIO: f64 = 0.1;
const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Flags of `video-status simulate`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Base URL of the running server. Default: the `listen` address of `--config` (a wildcard
    /// address read as localhost), else http://127.0.0.1:8080.
    #[arg(long)]
    pub url: Option<String>,
    /// Provider name: deliveries go to `{url}/webhooks/{provider}`.
    #[arg(long, default_value = DEFAULT_PROVIDER)]
    pub provider: String,
    /// The server's TOML config: the provider of that name signs as configured there (its
    /// scheme, first secret, header, and its mapper's payloads) where `--scheme`, `--secret`,
    /// `--header` and `--payload` are not given. A config without providers means the demo
    /// ones, as `serve` runs them.
    #[arg(long, env = crate::config::CONFIG_FILE_VARIABLE)]
    pub config: Option<PathBuf>,
    /// Signature scheme of that provider: `standard`, `hmac-sha256`, `stripe`, `mux`,
    /// `cloudflare-stream` or `ed25519` (its `--secret` a private key). Default: the scheme of
    /// the demo provider of that name (`mux`, `cloudflare-stream`, `fal`, `api-video`), else
    /// `standard`.
    #[arg(long, value_parser = parse_scheme)]
    pub scheme: Option<SchemeName>,
    /// Secret the provider signs with. Default: the public dev secret of the demo provider of
    /// that name (`serve` without a config runs them all).
    #[arg(long, env = crate::config::SIMULATE_SECRET_VARIABLE, hide_env_values = true,
          value_parser = parse_secret)]
    pub secret: Option<Secret>,
    /// `hmac-sha256`: the header the signature goes in (default: the demo provider's, else
    /// `X-Webhook-Signature`).
    #[arg(long)]
    pub header: Option<String>,
    /// Body shape: `native`, `mux`, `cloudflare-stream`, `fal` or `api-video`, each with the
    /// lifecycle events that provider sends. Default: the demo provider's mapper, else `native`.
    #[arg(long, value_enum)]
    pub payload: Option<Payload>,
    /// Number of videos, each played through a whole lifecycle.
    #[arg(long, default_value_t = DEFAULT_VIDEOS)]
    pub videos: usize,
    /// Requests in flight at once (workers; each plays one video at a time).
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY,
          value_parser = parse_concurrency)]
    pub concurrency: usize,
    /// Deliver each video's events in a random order (the default).
    #[arg(long, overrides_with = "in_order")]
    pub shuffle: bool,
    /// Deliver each video's events in lifecycle order instead.
    #[arg(long = "in-order", overrides_with = "shuffle")]
    pub in_order: bool,
    /// Fraction of events delivered twice, as a provider retrying would.
    #[arg(long, default_value_t = DEFAULT_DUPLICATES, value_parser = parse_fraction)]
    pub duplicates: f64,
    /// Fraction of videos whose lifecycle ends in `video.failed` instead of `video.ready`.
    #[arg(long, default_value_t = DEFAULT_FAIL_RATIO, value_parser = parse_fraction)]
    pub fail_ratio: f64,
    /// Seed of the plan (order, failures, duplicates, timestamps); random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Prefix of the video and event ids; a fresh random one when absent, so every run creates
    /// new videos. The same `--seed`, `--prefix` and `--start` replay the same events, which the
    /// server then answers as duplicates.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Event time (RFC 3339) the lifecycles start from; ten minutes ago when absent.
    #[arg(long)]
    pub start: Option<DateTime<Utc>>,
    /// Times a delivery answered 503 or lost to a connection error is tried again (after the
    /// server's Retry-After); 0 counts it and moves on.
    #[arg(long, default_value_t = 0)]
    pub retries: u32,
    /// Seconds to wait for one response before counting a connection error.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
    pub timeout_secs: u64,
}

impl Default for SimulateArgs {
    /// The same values the flags default to.
    fn default() -> Self {
        SimulateArgs {
            url: None,
            provider: DEFAULT_PROVIDER.into(),
            config: None,
            scheme: None,
            secret: None,
            header: None,
            payload: None,
            videos: DEFAULT_VIDEOS,
            concurrency: DEFAULT_CONCURRENCY,
            shuffle: false,
            in_order: false,
            duplicates: DEFAULT_DUPLICATES,
            fail_ratio: DEFAULT_FAIL_RATIO,
            seed: None,
            prefix: None,
            start: None,
            retries: 0,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
        }
    }
}

impl SimulateArgs {
    /// Whether each video's deliveries are shuffled (`--in-order` turns it off).
    pub fn shuffled(&self) -> bool {
        !self.in_order
    }

    /// These args with a concrete seed, prefix and start, so that [`plan`] is reproducible and
    /// the report can say how to replay it.
    pub fn resolved(mut self) -> SimulateArgs {
        let mut rng = rand::rng();
        if self.seed.is_none() {
            self.seed = Some(rng.random());
        }
        if self.prefix.is_none() {
            self.prefix = Some(format!("sim-{:06x}", rng.random_range(0..0x100_0000u32)));
        }
        if self.start.is_none() {
            // Whole milliseconds, as the bodies carry them, so a replay prints the same start.
            let now = Utc::now().timestamp_millis();
            self.start = DateTime::from_timestamp_millis(now - 10 * 60 * 1000);
        }
        self
    }

    /// Takes from `--config` the provider of this name, as `serve` would run it, for every
    /// setting the flags left open.
    pub fn with_config(mut self) -> anyhow::Result<SimulateArgs> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let config = Config::load(Some(&path), &Overrides::default())?;
        if self.url.is_none() {
            self.url = Some(local_url(config.listen));
        }
        if config.providers.is_empty() {
            return Ok(self);
        }
        let file = path.display();
        let Some(provider) = config.providers.iter().find(|p| p.name == self.provider) else {
            let names: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
            anyhow::bail!(
                "no provider named {:?} in {file} (configured: {}); choose one with --provider",
                self.provider,
                names.join(", ")
            );
        };
        self.scheme.get_or_insert(provider.scheme);
        if self.secret.is_none() {
            let first = provider.secrets.first().with_context(|| {
                format!(
                    "provider {:?} in {file} has no secret to sign with (only public keys are \
                     trusted): pass --secret",
                    provider.name
                )
            })?;
            self.secret = Some(first.clone());
        }
        if self.header.is_none() {
            self.header = provider.header.clone();
        }
        if self.payload.is_none() {
            let payload = provider.builtin_mapper().and_then(Payload::of_mapper);
            self.payload = Some(payload.with_context(|| {
                format!(
                    "provider {:?} in {file} maps its own payloads ([provider.mapper]); \
                     pass --payload with a shape it maps",
                    provider.name
                )
            })?);
        }
        Ok(self)
    }

    /// The body shape: `--payload`, else the demo provider's, else native.
    pub fn payload(&self) -> Payload {
        self.payload
            .or_else(|| {
                DemoProvider::find(&self.provider).and_then(|demo| Payload::of_mapper(demo.mapper))
            })
            .unwrap_or(Payload::Native)
    }

    /// Where and how the deliveries are sent: flags first, then the demo provider of that name.
    pub fn target(&self) -> Target {
        let demo = DemoProvider::find(&self.provider);
        Target {
            url: self.url.clone().unwrap_or_else(|| DEFAULT_URL.into()),
            provider: self.provider.clone(),
            scheme: self
                .scheme
                .or(demo.map(|demo| demo.scheme))
                .unwrap_or(SchemeName::Standard),
            secret: self
                .secret
                .clone()
                .unwrap_or_else(|| Secret::new(demo.map_or(DEMO_SECRET, |demo| demo.secret))),
            header: self
                .header
                .clone()
                .or_else(|| demo.and_then(|demo| demo.header.map(str::to_string))),
            retries: self.retries,
            timeout: Duration::from_secs(self.timeout_secs),
        }
    }
}

/// The URL a client on this machine reaches a server listening on `listen` at.
fn local_url(listen: std::net::SocketAddr) -> String {
    let mut reachable = listen;
    if listen.ip().is_unspecified() {
        reachable.set_ip(match listen {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{reachable}")
}

fn parse_scheme(raw: &str) -> Result<SchemeName, String> {
    match raw {
        "standard" => Ok(SchemeName::Standard),
        "hmac-sha256" => Ok(SchemeName::HmacSha256),
        "stripe" => Ok(SchemeName::Stripe),
        "mux" => Ok(SchemeName::Mux),
        "cloudflare-stream" => Ok(SchemeName::CloudflareStream),
        "ed25519" => Ok(SchemeName::Ed25519),
        other => Err(format!(
            "unknown scheme `{other}` (standard, hmac-sha256, stripe, mux, cloudflare-stream, \
             ed25519)"
        )),
    }
}

fn parse_secret(raw: &str) -> Result<Secret, String> {
    Ok(Secret::new(raw))
}

fn parse_concurrency(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{raw}` is not a whole number of at least 1")),
    }
}

fn parse_fraction(raw: &str) -> Result<f64, String> {
    let value: f64 = raw
        .parse()
        .map_err(|_| format!("`{raw}` is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not a fraction between 0 and 1"))
    }
}

/// Plans the lifecycles `args` describe, sends them to the server and reports the answers.
pub async fn run(args: SimulateArgs) -> anyhow::Result<Report> {
    let args = args.with_config()?.resolved();
    let deliveries = plan(&args);
    let summary = PlanSummary::of(&args, &deliveries);
    let mut report = drive(&args.target(), deliveries, args.concurrency).await?;
    report.plan = Some(summary);
    Ok(report)
}

/// One HTTP request to make. The body is built when the plan is; the signature headers only when
/// it is sent, so the signed timestamp is fresh however long the delivery waited in the plan.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The video the event is about; [`drive`] keeps each video's deliveries in plan order.
    pub video_id: String,
    /// The event id, sent as the scheme's delivery id and as the body's `id`.
    pub event_id: String,
    /// The native event type, e.g. `video.ready`.
    pub event_type: &'static str,
    /// The native-format JSON body (shared by the two deliveries of a duplicated event).
    pub body: Bytes,
}

/// Builds the deliveries of `args.videos` lifecycles, each video's deliveries contiguous and in
/// the order they are to be sent. Deterministic when `args.seed`, `args.prefix` and `args.start`
/// are set (see [`SimulateArgs::resolved`]).
pub fn plan(args: &SimulateArgs) -> Vec<Delivery> {
    let args = args.clone().resolved();
    let seed = args.seed.expect("resolved args have a seed");
    let prefix = args.prefix.as_deref().expect("resolved args have a prefix");
    let start = args.start.expect("resolved args have a start");
    let mut rng = StdRng::seed_from_u64(seed);

    // Exact counts rather than per-item coin flips, so a small run still shows failures and
    // duplicates in the proportions asked for.
    let payload = args.payload();
    let failing = pick(&mut rng, args.videos, args.fail_ratio);
    let lifecycles: Vec<Vec<Event>> = (0..args.videos)
        .map(|index| lifecycle(&mut rng, prefix, start, index, failing[index]))
        .collect();
    let events: usize = lifecycles.iter().map(Vec::len).sum();
    let mut duplicated = pick(&mut rng, events, args.duplicates).into_iter();

    let mut deliveries = Vec::with_capacity(events + events / 4);
    for events in lifecycles {
        let start = deliveries.len();
        for event in events {
            let twice = duplicated.next().unwrap_or(false);
            let Some(delivery) = event.into_delivery(payload) else {
                continue;
            };
            if twice {
                // In order, a redelivery follows its original, as a provider's retry would.
                deliveries.push(delivery.clone());
            }
            deliveries.push(delivery);
        }
        if args.shuffled() {
            deliveries[start..].shuffle(&mut rng);
        }
    }
    deliveries
}

/// `count` flags, `round(count * fraction)` of them set, at random places.
fn pick(rng: &mut StdRng, count: usize, fraction: f64) -> Vec<bool> {
    let chosen = ((count as f64) * fraction).round() as usize;
    let mut flags: Vec<bool> = (0..count).map(|i| i < chosen).collect();
    flags.shuffle(rng);
    flags
}

/// One lifecycle event before it is serialized.
struct Event {
    video_id: String,
    event_id: String,
    event_type: &'static str,
    occurred_at: DateTime<Utc>,
    data: serde_json::Value,
}

impl Event {
    /// Step `step` of a video's lifecycle; `data` gets the video id and the metadata added.
    fn new(
        video_id: &str,
        step: usize,
        event_type: &'static str,
        occurred_at: DateTime<Utc>,
        mut data: serde_json::Value,
        metadata: &serde_json::Value,
    ) -> Event {
        let fields = data.as_object_mut().expect("event data is a JSON object");
        fields.insert("videoId".into(), json!(video_id));
        fields.insert("metadata".into(), metadata.clone());
        Event {
            video_id: video_id.to_owned(),
            event_id: format!("{video_id}-e{step}"),
            event_type,
            occurred_at,
            data,
        }
    }

    /// The event shaped as `payload`'s provider sends it; `None` for a step it never sends.
    fn into_delivery(self, payload: Payload) -> Option<Delivery> {
        let (event_id, body) = payloads::render(
            payload,
            &payloads::Step {
                video_id: &self.video_id,
                event_id: &self.event_id,
                event_type: self.event_type,
                occurred_at: self.occurred_at,
                data: &self.data,
            },
        )?;
        Some(Delivery {
            video_id: self.video_id,
            event_id,
            event_type: self.event_type,
            body: Bytes::from(serde_json::to_vec(&body).expect("a JSON value serializes")),
        })
    }
}

const FAILURES: [(&str, &str); 3] = [
    (
        "unsupported_codec",
        "The source uses a codec the transcoder does not support",
    ),
    ("source_unreadable", "The uploaded file could not be read"),
    ("transcode_timeout", "Transcoding did not finish in time"),
];

/// The events of one video in lifecycle order, with strictly increasing timestamps: whatever
/// order they are delivered in, the fold must end on the last one.
fn lifecycle(
    rng: &mut StdRng,
    prefix: &str,
    start: DateTime<Utc>,
    index: usize,
    fails: bool,
) -> Vec<Event> {
    let video_id = video_id(prefix, index);
    // Event times are the provider's, in the past by default; the signed webhook timestamp is
    // separate and is always "now".
    let mut at = start + TimeDelta::milliseconds(rng.random_range(0..60_000));
    let metadata = metadata(index);

    let mut steps: Vec<(&'static str, serde_json::Value)> = vec![
        ("video.uploaded", json!({})),
        ("video.processing.started", json!({})),
    ];
    let progress_steps = if fails { rng.random_range(0..=3) } else { 3 };
    for percent in [25, 50, 75].into_iter().take(progress_steps) {
        steps.push(("video.processing.progress", json!({ "progress": percent })));
    }
    if fails {
        let (code, message) = FAILURES[rng.random_range(0..FAILURES.len())];
        steps.push((
            "video.failed",
            json!({ "error": { "code": code, "message": message } }),
        ));
    } else {
        steps.push(("video.processing.completed", json!({ "progress": 100 })));
        steps.push((
            "video.ready",
            json!({
                "progress": 100,
                "assets": {
                    "resolutions": ["1080p", "720p", "480p"],
                    "poster": format!("https://cdn.example.com/{video_id}/poster.jpg"),
                    "thumbnail": format!("https://cdn.example.com/{video_id}/thumbnail.jpg"),
                    "playbackUrl": format!("https://stream.example.com/{video_id}.m3u8"),
                    "duration": f64::from(rng.random_range(5_000..900_000u32)) / 1000.0,
                },
            }),
        ));
    }

    steps
        .into_iter()
        .enumerate()
        .map(|(step, (event_type, data))| {
            at += TimeDelta::milliseconds(rng.random_range(200..3_000));
            Event::new(&video_id, step, event_type, at, data, &metadata)
        })
        .collect()
}

/// One `video.uploaded` for each video of `videos` (ids as [`plan`] makes them under `prefix`):
/// the cheapest way to touch many distinct videos, e.g. to fill the actor registry.
pub fn plan_uploads(prefix: &str, videos: Range<usize>, start: DateTime<Utc>) -> Vec<Delivery> {
    videos
        .map(|index| {
            let video_id = video_id(prefix, index);
            Event::new(
                &video_id,
                0,
                "video.uploaded",
                start,
                json!({}),
                &metadata(index),
            )
            .into_delivery(Payload::Native)
            .expect("the native shape sends every step")
        })
        .collect()
}

fn video_id(prefix: &str, index: usize) -> String {
    format!("{prefix}-v{index:06}")
}

fn metadata(index: usize) -> serde_json::Value {
    json!({ "source": "video-status simulate", "title": format!("Simulated video {index}") })
}

/// Where deliveries go and how they are signed.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Provider name in `/webhooks/{provider}`.
    pub provider: String,
    pub scheme: SchemeName,
    pub secret: Secret,
    /// `hmac-sha256`: the signature header, when not the default one.
    pub header: Option<String>,
    /// Extra attempts after a 503 or a connection error.
    pub retries: u32,
    /// Longest wait for one response.
    pub timeout: Duration,
}

impl Target {
    /// The `demo` provider of a server at `url`, with the public dev secret.
    pub fn demo(url: impl Into<String>) -> Target {
        Target {
            url: url.into(),
            ..SimulateArgs::default().target()
        }
    }

    fn endpoint(&self) -> String {
        format!(
            "{}/webhooks/{}",
            self.url.trim_end_matches('/'),
            self.provider
        )
    }

    /// The provider as the server would configure it: its `sign` is the scheme's own.
    fn signer(&self) -> anyhow::Result<Arc<Provider>> {
        let config = ProviderConfig {
            header: self.header.clone(),
            ..ProviderConfig::new(
                self.provider.clone(),
                self.scheme,
                vec![self.secret.clone()],
            )
        };
        let providers = Providers::from_config(&[config]).context("cannot sign with --secret")?;
        let provider = providers
            .get(&self.provider)
            .expect("a provider is registered under its name");
        // Every scheme reads `--secret` as something that signs; checked once here so that each
        // request can rely on it.
        provider
            .sign("probe", Utc::now(), b"")
            .context("cannot sign with --secret")?;
        Ok(provider)
    }
}

/// Posts every delivery of `plan` to `target` with `concurrency` workers over a shared queue of
/// videos: a worker takes the next video and sends its deliveries one after the other, in plan
/// order, so videos interleave but each video's order is the planned one. Deliveries are grouped
/// by runs of the same `video_id`; a plan of one delivery per video spreads every request.
pub async fn drive(
    target: &Target,
    plan: Vec<Delivery>,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let concurrency = concurrency.max(1);
    let client = crate::http_client::client_builder()
        .http1_only()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .timeout(target.timeout)
        .build()
        .context("cannot build the HTTP client")?;
    let sender = Arc::new(Sender {
        client,
        endpoint: target.endpoint(),
        signer: target.signer()?,
        retries: target.retries,
    });
    let groups = Arc::new(video_runs(&plan));
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicUsize::new(0));

    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(groups.len()) {
        let (sender, plan, groups, next) =
            (sender.clone(), plan.clone(), groups.clone(), next.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let Some(group) = groups.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return tally;
                };
                for delivery in &plan[group.clone()] {
                    sender.deliver(delivery, &mut tally).await;
                }
            }
        });
    }
    let mut total = Tally::default();
    while let Some(tally) = workers.join_next().await {
        total.merge(tally.context("a load worker panicked")?);
    }
    Ok(total.into_report(started.elapsed()))
}

/// Index ranges of consecutive deliveries for the same video.
fn video_runs(plan: &[Delivery]) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (i, delivery) in plan.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if plan[run.start].video_id == delivery.video_id => run.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    runs
}

struct Sender {
    client: reqwest::Client,
    endpoint: String,
    signer: Arc<Provider>,
    retries: u32,
}

/// The part of a 200 body the report counts.
#[derive(serde::Deserialize)]
struct Receipt {
    status: String,
}

impl Sender {
    /// Sends one delivery (and its retries, if configured), counting every answer.
    async fn deliver(&self, delivery: &Delivery, tally: &mut Tally) {
        let mut attempt = 0;
        loop {
            let retry_after = self.attempt(delivery, tally).await;
            match retry_after {
                Some(wait) if attempt < self.retries => {
                    attempt += 1;
                    tally.retries += 1;
                    tokio::time::sleep(wait).await;
                }
                _ => return,
            }
        }
    }

    /// One request; answers how long to wait before a retry when the outcome is retryable.
    async fn attempt(&self, delivery: &Delivery, tally: &mut Tally) -> Option<Duration> {
        // Signed now: a retry gets a fresh timestamp, as a provider's retry does.
        let headers = self
            .signer
            .sign(&delivery.event_id, Utc::now(), &delivery.body)
            .expect("Target::signer checked that the provider can sign");
        let mut request = self
            .client
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .body(delivery.body.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        tally.sent += 1;
        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                tally.connection_error(&error);
                return Some(Duration::from_millis(200));
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => {
                tally.connection_error(&error);
                return Some(Duration::from_millis(200));
            }
        };
        tally.latencies.push(started.elapsed());

        let outcome = status
            .is_success()
            .then(|| serde_json::from_slice::<Receipt>(&body).ok())
            .flatten();
        match outcome.as_ref().map(|r| r.status.as_str()) {
            Some("accepted") => tally.accepted += 1,
            Some("duplicate") => tally.duplicate += 1,
            Some("ignored") => tally.ignored += 1,
            // A 2xx whose body is not a receipt is counted under its code, like any error.
            _ => *tally.errors.entry(status.as_u16()).or_default() += 1,
        }
        (status == reqwest::StatusCode::SERVICE_UNAVAILABLE).then(|| {
            retry_after
                .unwrap_or(Duration::from_millis(200))
                .min(Duration::from_secs(5))
        })
    }
}

/// One worker's counts, merged into the report at the end.
#[derive(Default)]
struct Tally {
    sent: u64,
    accepted: u64,
    duplicate: u64,
    ignored: u64,
    errors: BTreeMap<u16, u64>,
    connection_errors: u64,
    first_connection_error: Option<String>,
    retries: u64,
    latencies: Vec<Duration>,
}

impl Tally {
    fn connection_error(&mut self, error: &reqwest::Error) {
        self.connection_errors += 1;
        if self.first_connection_error.is_none() {
            self.first_connection_error = Some(error_chain(error));
        }
    }

    fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.duplicate += other.duplicate;
        self.ignored += other.ignored;
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
        self.connection_errors += other.connection_errors;
        self.first_connection_error = self
            .first_connection_error
            .take()
            .or(other.first_connection_error);
        self.retries += other.retries;
        self.latencies.extend(other.latencies);
    }

    fn into_report(mut self, elapsed: Duration) -> Report {
        self.latencies.sort_unstable();
        let acknowledged = self.accepted + self.duplicate + self.ignored;
        Report {
            plan: None,
            sent: self.sent,
            accepted: self.accepted,
            duplicate: self.duplicate,
            ignored: self.ignored,
            errors: self.errors,
            connection_errors: self.connection_errors,
            first_connection_error: self.first_connection_error,
            retries: self.retries,
            elapsed,
            throughput_per_sec: acknowledged as f64 / elapsed.as_secs_f64().max(f64::EPSILON),
            latency: Latency::of_sorted(&self.latencies),
        }
    }
}

/// A reqwest error with its causes ("error sending request: ... Connection refused").
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What was planned, so the report can check the answers against it and say how to replay it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSummary {
    pub videos: usize,
    /// Distinct events: each should be answered `accepted` once by a server that has not seen it.
    pub events: usize,
    /// Requests planned: events plus redeliveries.
    pub deliveries: usize,
    pub shuffled: bool,
    pub seed: u64,
    pub prefix: String,
    pub start: DateTime<Utc>,
}

impl PlanSummary {
    /// Summarises `deliveries` planned from resolved `args`.
    pub fn of(args: &SimulateArgs, deliveries: &[Delivery]) -> PlanSummary {
        let events: std::collections::HashSet<&str> =
            deliveries.iter().map(|d| d.event_id.as_str()).collect();
        PlanSummary {
            videos: args.videos,
            events: events.len(),
            deliveries: deliveries.len(),
            shuffled: args.shuffled(),
            seed: args.seed.unwrap_or_default(),
            prefix: args.prefix.clone().unwrap_or_default(),
            start: args.start.unwrap_or_default(),
        }
    }
}

/// Latency percentiles over every request that got an HTTP response (nearest rank).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    fn of_sorted(sorted: &[Duration]) -> Latency {
        let rank = |p: f64| -> Duration {
            if sorted.is_empty() {
                return Duration::ZERO;
            }
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        Latency {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: sorted.last().copied().unwrap_or_default(),
        }
    }
}

/// What the server answered to a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The plan, when the run came from [`run`]; `None` from [`drive`] alone.
    pub plan: Option<PlanSummary>,
    /// HTTP requests sent, retries included.
    pub sent: u64,
    /// 200 `accepted`: a new event, durably stored.
    pub accepted: u64,
    /// 200 `duplicate`: an event id the log already had.
    pub duplicate: u64,
    /// 200 `ignored`: an event type the server does not track.
    pub ignored: u64,
    /// Every other response, by HTTP status code (503 included).
    pub errors: BTreeMap<u16, u64>,
    /// Requests that got no HTTP response (refused, reset, timed out).
    pub connection_errors: u64,
    /// The first connection error, to tell "no server" from "server overloaded".
    pub first_connection_error: Option<String>,
    /// Attempts repeated after a 503 or a connection error (`--retries`).
    pub retries: u64,
    /// Wall time from the first request to the last response.
    pub elapsed: Duration,
    /// Acknowledged (200) deliveries per second of `elapsed`.
    pub throughput_per_sec: f64,
    pub latency: Latency,
}

impl Report {
    /// Adds the counts of `other` (a later chunk of the same run) to this report; latency
    /// becomes the worst of each percentile, the honest summary when chunks differ.
    pub fn absorb(&mut self, other: Report) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.duplicate += other.duplicate;
        self.ignored += other.ignored;
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
        self.connection_errors += other.connection_errors;
        self.first_connection_error = self
            .first_connection_error
            .take()
            .or(other.first_connection_error);
        self.retries += other.retries;
        self.elapsed += other.elapsed;
        self.throughput_per_sec = self.acknowledged() as f64 / self.elapsed.as_secs_f64();
        self.latency.p50 = self.latency.p50.max(other.latency.p50);
        self.latency.p90 = self.latency.p90.max(other.latency.p90);
        self.latency.p99 = self.latency.p99.max(other.latency.p99);
        self.latency.max = self.latency.max.max(other.latency.max);
    }

    /// Deliveries answered 200 (accepted, duplicate or ignored).
    pub fn acknowledged(&self) -> u64 {
        self.accepted + self.duplicate + self.ignored
    }

    /// Responses that were not a 200 receipt, plus requests that got no response.
    pub fn failures(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.connection_errors
    }

    /// Planned deliveries that never got a 200, retries included (0 without a plan: then
    /// every failed request counts).
    pub fn unacknowledged(&self) -> u64 {
        match &self.plan {
            Some(plan) => (plan.deliveries as u64).saturating_sub(self.acknowledged()),
            None => self.failures(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        if let Some(plan) = &self.plan {
            writeln!(
                f,
                "planned     {} videos, {} events + {} redeliveries, {}",
                plan.videos,
                plan.events,
                plan.deliveries - plan.events,
                if plan.shuffled {
                    "shuffled"
                } else {
                    "in order"
                },
            )?;
            writeln!(
                f,
                "replay      --seed {} --prefix {} --start {}",
                plan.seed,
                plan.prefix,
                plan.start.to_rfc3339_opts(SecondsFormat::Millis, true),
            )?;
        }
        writeln!(
            f,
            "sent        {} requests in {:.2} s ({:.1} acknowledged/s){}",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.throughput_per_sec,
            if self.retries > 0 {
                format!(", {} of them retries", self.retries)
            } else {
                String::new()
            },
        )?;
        writeln!(
            f,
            "answers     {} accepted, {} duplicate, {} ignored",
            self.accepted, self.duplicate, self.ignored
        )?;
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(code, count)| format!("{count} × {code}"))
            .collect();
        writeln!(
            f,
            "errors      {}",
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(", ")
            }
        )?;
        if self.connection_errors > 0 {
            writeln!(
                f,
                "no answer   {} (first: {})",
                self.connection_errors,
                self.first_connection_error.as_deref().unwrap_or("unknown")
            )?;
        }
        write!(
            f,
            "latency     p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(self.latency.p50),
            ms(self.latency.p90),
            ms(self.latency.p99),
            ms(self.latency.max),
        )?;
        if let Some(plan) = &self.plan {
            // A server that had not seen these ids must accept each event once and recognise
            // every redelivery; anything else is worth a look at the history endpoint.
            let expected = (plan.events as u64, (plan.deliveries - plan.events) as u64);
            if self.unacknowledged() > 0 {
                write!(
                    f,
                    "\nunanswered  {} of {} deliveries got no 200: the exit status is 1",
                    self.unacknowledged(),
                    plan.deliveries
                )?;
            } else if (self.accepted, self.duplicate) != expected {
                write!(
                    f,
                    "\nnote        expected {} accepted and {} duplicate for a fresh prefix",
                    expected.0, expected.1
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::providers::Mapped;

    fn args(videos: usize, seed: u64) -> SimulateArgs {
        SimulateArgs {
            videos,
            seed: Some(seed),
            prefix: Some("t".into()),
            start: DateTime::from_timestamp(1_790_000_000, 0),
            ..SimulateArgs::default()
        }
    }

    fn body(delivery: &Delivery) -> serde_json::Value {
        serde_json::from_slice(&delivery.body).expect("bodies are JSON")
    }

    #[test]
    fn same_seed_and_prefix_plan_the_same_deliveries() {
        let sent = |plan: Vec<Delivery>| -> Vec<(String, Bytes)> {
            plan.into_iter().map(|d| (d.event_id, d.body)).collect()
        };
        assert_eq!(sent(plan(&args(30, 7))), sent(plan(&args(30, 7))));
        assert_ne!(sent(plan(&args(30, 7))), sent(plan(&args(30, 8))));
    }

    #[test]
    fn failures_and_duplicates_come_in_the_asked_proportions() {
        let deliveries = plan(&SimulateArgs {
            fail_ratio: 0.25,
            duplicates: 0.5,
            ..args(40, 1)
        });
        let failed: HashSet<&str> = deliveries
            .iter()
            .filter(|d| d.event_type == "video.failed")
            .map(|d| d.video_id.as_str())
            .collect();
        assert_eq!(failed.len(), 10);
        let events: HashSet<&str> = deliveries.iter().map(|d| d.event_id.as_str()).collect();
        assert_eq!(
            deliveries.len() - events.len(),
            (events.len() as f64 * 0.5).round() as usize
        );
    }

    #[test]
    fn each_video_ends_ready_or_failed_at_its_latest_timestamp() {
        let deliveries = plan(&args(50, 3));
        let mut last: HashMap<&str, (String, String)> = HashMap::new();
        for delivery in &deliveries {
            let body = body(delivery);
            let at = body["timestamp"].as_str().unwrap().to_string();
            let entry = last
                .entry(delivery.video_id.as_str())
                .or_insert((String::new(), String::new()));
            // RFC 3339 in UTC with a fixed width sorts as text.
            if at > entry.0 {
                *entry = (at, delivery.event_type.to_string());
            }
        }
        assert_eq!(last.len(), 50);
        assert!(last
            .values()
            .all(|(_, kind)| kind == "video.ready" || kind == "video.failed"));
    }

    #[test]
    fn in_order_keeps_lifecycle_order_and_video_runs_stay_contiguous() {
        let deliveries = plan(&SimulateArgs {
            in_order: true,
            duplicates: 0.0,
            fail_ratio: 0.0,
            ..args(5, 9)
        });
        let runs = video_runs(&deliveries);
        assert_eq!(runs.len(), 5);
        for run in runs {
            let kinds: Vec<&str> = deliveries[run].iter().map(|d| d.event_type).collect();
            assert_eq!(
                kinds,
                [
                    "video.uploaded",
                    "video.processing.started",
                    "video.processing.progress",
                    "video.processing.progress",
                    "video.processing.progress",
                    "video.processing.completed",
                    "video.ready",
                ]
            );
        }
    }

    #[test]
    fn bodies_have_the_native_shape() {
        let deliveries = plan(&SimulateArgs {
            fail_ratio: 0.0,
            ..args(1, 4)
        });
        let ready = deliveries
            .iter()
            .find(|d| d.event_type == "video.ready")
            .expect("a ready event");
        let body = body(ready);
        assert_eq!(body["id"], json!(ready.event_id));
        assert_eq!(body["data"]["videoId"], json!(ready.video_id));
        assert_eq!(body["data"]["assets"]["resolutions"][0], json!("1080p"));
        assert!(body["data"]["assets"]["poster"].is_string());
        assert!(DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    }

    #[tokio::test]
    async fn every_delivery_verifies_and_maps_to_a_lifecycle_event() {
        let target = Target::demo("http://unused");
        let provider = target.signer().expect("the demo secret is valid");
        let now = Utc::now();
        for delivery in plan(&args(20, 5)) {
            let mut headers = http::HeaderMap::new();
            let signed = provider
                .sign(&delivery.event_id, now, &delivery.body)
                .expect("the demo secret signs");
            for (name, value) in signed {
                headers.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(&value).unwrap(),
                );
            }
            let verified = provider
                .verify(&headers, &delivery.body, now)
                .await
                .expect("signed as the scheme checks");
            let mapped = provider
                .map(&verified, &delivery.body, now)
                .unwrap_or_else(|e| panic!("{} does not map: {e}", delivery.event_type));
            match mapped {
                Mapped::Event(event) => {
                    assert_eq!(event.event_id.as_str(), delivery.event_id);
                    assert_eq!(event.video_id.as_str(), delivery.video_id);
                }
                Mapped::Ignored { .. } => panic!("{} is ignored", delivery.event_type),
            }
        }
    }

    #[tokio::test]
    async fn each_demo_providers_own_lifecycles_verify_map_and_fold_to_their_end() {
        use crate::config::DEMO_PROVIDERS;
        use crate::lifecycle::{Fold, Status};
        for demo in DEMO_PROVIDERS {
            let args = SimulateArgs {
                provider: demo.name.into(),
                ..args(12, 11)
            };
            let signer = args.target().signer().expect("the demo secret signs");
            let server = Providers::from_config(&[demo.config()]).unwrap();
            let server = server.get(demo.name).unwrap();
            let now = Utc::now();
            let mut folds: std::collections::HashMap<String, Fold> = Default::default();
            let deliveries = plan(&args);
            assert!(!deliveries.is_empty(), "{}", demo.name);
            for delivery in deliveries {
                let mut headers = http::HeaderMap::new();
                for (name, value) in signer
                    .sign(&delivery.event_id, now, &delivery.body)
                    .unwrap()
                {
                    headers.insert(
                        http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        http::HeaderValue::from_str(&value).unwrap(),
                    );
                }
                let verified = server
                    .verify(&headers, &delivery.body, now)
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", demo.name));
                match server.map(&verified, &delivery.body, now) {
                    Ok(Mapped::Event(event)) => {
                        assert_eq!(event.video_id.as_str(), delivery.video_id, "{}", demo.name);
                        folds
                            .entry(delivery.video_id.clone())
                            .or_default()
                            .insert(event);
                    }
                    other => panic!("{} {}: {other:?}", demo.name, delivery.event_type),
                }
            }
            let ends: std::collections::BTreeSet<&str> = folds
                .values()
                .map(|fold| fold.state().expect("folded").status.as_str())
                .collect();
            let expected: &[&str] = match demo.name {
                // api.video sends no ready or failed webhook.
                "api-video" => &[Status::Processed.as_str(), Status::Uploaded.as_str()],
                _ => &[Status::Failed.as_str(), Status::Ready.as_str()],
            };
            assert_eq!(
                ends.into_iter().collect::<Vec<_>>(),
                expected,
                "{}",
                demo.name
            );
        }
    }

    /// A stand-in server on port 0: answers `accepted` for a new `webhook-id` and `duplicate`
    /// for a known one, or 503 (Retry-After: 0) to the first attempt of each id when `flaky`;
    /// records the order in which ids arrived.
    async fn fake_server(flaky: bool) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use warp::Filter;
        let arrivals = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = arrivals.clone();
        let route = warp::post()
            .and(warp::path!("webhooks" / String))
            .and(warp::header::<String>("webhook-id"))
            .map(move |_provider: String, id: String| {
                let mut seen = seen.lock().unwrap();
                let attempts = seen.iter().filter(|s| **s == id).count();
                seen.push(id);
                let (code, status) = match (flaky, attempts) {
                    (true, 0) => (503, "unavailable"),
                    (true, 1) | (false, 0) => (200, "accepted"),
                    _ => (200, "duplicate"),
                };
                warp::http::Response::builder()
                    .status(code)
                    .header("retry-after", "0")
                    .body(format!(r#"{{"status":"{status}"}}"#))
                    .unwrap()
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(warp::serve(route).incoming(listener).run());
        (url, arrivals)
    }

    #[tokio::test]
    async fn drive_counts_answers_and_keeps_each_videos_order() {
        let (url, arrivals) = fake_server(false).await;
        let deliveries = plan(&args(12, 11));
        let planned: Vec<String> = deliveries.iter().map(|d| d.event_id.clone()).collect();
        let events = planned.iter().collect::<HashSet<_>>().len() as u64;

        let report = drive(&Target::demo(url), deliveries, 4).await.unwrap();

        assert_eq!(report.sent, planned.len() as u64);
        assert_eq!(report.accepted, events);
        assert_eq!(report.duplicate, planned.len() as u64 - events);
        assert_eq!(report.failures(), 0);
        let arrived = arrivals.lock().unwrap().clone();
        for video in 0..12 {
            let of_video = |ids: &[String]| -> Vec<String> {
                let prefix = format!("t-v{video:06}-");
                ids.iter()
                    .filter(|id| id.starts_with(&prefix))
                    .cloned()
                    .collect()
            };
            assert_eq!(of_video(&arrived), of_video(&planned));
        }
    }

    #[tokio::test]
    async fn unavailable_is_counted_and_retried_only_when_asked() {
        // No redeliveries: the fake answers 200 to a second attempt, and a redelivery is one.
        let planned = SimulateArgs {
            duplicates: 0.0,
            ..args(3, 2)
        };
        let deliveries = plan(&planned);
        let count = deliveries.len() as u64;
        let summary = PlanSummary::of(&planned.clone().resolved(), &deliveries);

        let (url, _) = fake_server(true).await;
        let mut once = drive(&Target::demo(url), deliveries.clone(), 2)
            .await
            .unwrap();
        once.plan = Some(summary.clone());
        assert_eq!(
            once.unacknowledged(),
            count,
            "what the exit status 1 is for"
        );
        assert_eq!(once.errors.get(&503), Some(&count));
        assert_eq!((once.sent, once.accepted, once.retries), (count, 0, 0));

        let (url, _) = fake_server(true).await;
        let target = Target {
            retries: 1,
            ..Target::demo(url)
        };
        let mut retried = drive(&target, deliveries, 2).await.unwrap();
        assert_eq!((retried.accepted, retried.retries), (count, count));
        assert_eq!(retried.errors.get(&503), Some(&count));
        // Every delivery got its 200 in the end: the run succeeded.
        retried.plan = Some(summary);
        assert_eq!(retried.unacknowledged(), 0);
    }

    #[tokio::test]
    async fn a_missing_server_is_counted_as_connection_errors() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let report = drive(&Target::demo(url), plan(&args(2, 1)), 2)
            .await
            .unwrap();
        assert_eq!(report.connection_errors, report.sent);
        assert!(report.first_connection_error.is_some());
        assert!(report.to_string().contains("no answer"));
        assert_eq!(report.unacknowledged(), report.sent);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let latency = Latency::of_sorted(&sorted);
        assert_eq!(latency.p50, Duration::from_millis(50));
        assert_eq!(latency.p99, Duration::from_millis(99));
        assert_eq!(latency.max, Duration::from_millis(100));
        assert_eq!(Latency::of_sorted(&[]), Latency::default());
    }

    /// `simulate --config`: the named provider signs as the file configures it, where the flags
    /// leave it open.
    #[test]
    fn a_config_file_gives_the_provider_its_scheme_secret_header_and_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("video-status.toml");
        std::fs::write(
            &path,
            "[[provider]]\nname = \"acme\"\nscheme = \"hmac-sha256\"\n\
             secrets = [\"acme-first-secret\", \"acme-older-secret\"]\n\
             header = \"X-Acme-Signature\"\n\n\
             [[provider]]\nname = \"cf\"\nscheme = \"cloudflare-stream\"\n\
             secrets = [\"cf-secret\"]\n",
        )
        .unwrap();
        let with = |provider: &str, secret: Option<&str>| {
            SimulateArgs {
                provider: provider.into(),
                config: Some(path.clone()),
                secret: secret.map(Secret::new),
                ..SimulateArgs::default()
            }
            .with_config()
        };

        let acme = with("acme", None).unwrap();
        let target = acme.target();
        assert_eq!(target.scheme, SchemeName::HmacSha256);
        assert_eq!(
            target.secret.expose(),
            "acme-first-secret",
            "the first one signs"
        );
        assert_eq!(target.header.as_deref(), Some("X-Acme-Signature"));
        assert_eq!(acme.payload(), Payload::Native);
        assert_eq!(
            with("cf", None).unwrap().payload(),
            Payload::CloudflareStream
        );
        let flagged = with("acme", Some("from-the-flag")).unwrap();
        assert_eq!(flagged.target().secret.expose(), "from-the-flag");

        let unknown = with("demo", None).unwrap_err().to_string();
        assert!(
            unknown.contains("no provider named \"demo\"") && unknown.contains("acme, cf"),
            "{unknown}"
        );

        assert_eq!(target.url, "http://127.0.0.1:8080", "the file's listen");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:18081\"\n[[provider]]\nname = \"acme\"\n\
             scheme = \"standard\"\nsecrets = [\"whsec_c2ltdWxhdGUtc2VjcmV0LTEyMzQ=\"]\n",
        )
        .unwrap();
        assert_eq!(
            with("acme", None).unwrap().target().url,
            "http://127.0.0.1:18081",
            "a wildcard listen address is reached on localhost"
        );
        let flagged = SimulateArgs {
            url: Some("http://10.0.0.7:9000".into()),
            ..with("acme", None).unwrap()
        };
        assert_eq!(
            flagged.with_config().unwrap().target().url,
            "http://10.0.0.7:9000"
        );
    }

    #[test]
    fn flags_default_to_shuffled_and_in_order_turns_it_off() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: SimulateArgs,
        }
        let parsed = Cli::parse_from(["simulate"]).args;
        assert!(parsed.shuffled());
        assert_eq!(parsed.target().secret.expose(), DEMO_SECRET);
        assert_eq!((parsed.videos, parsed.concurrency), (20, 8));
        assert!(!Cli::parse_from(["simulate", "--in-order"]).args.shuffled());
        assert!(Cli::parse_from(["simulate", "--in-order", "--shuffle"])
            .args
            .shuffled());
        assert!(Cli::try_parse_from(["simulate", "--duplicates", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["simulate", "--concurrency", "0"]).is_err());
    }
}
