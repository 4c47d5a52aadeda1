//! Building and running the application: store, providers, actors and HTTP server wired
//! together. `Application::build` binds the port (0 works: tests read `local_addr`), and
//! `run_until_stopped` serves until the shutdown future resolves, then drains.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tracing::info;

use crate::actor::VideoManager;
use crate::auth::{KeyError, SubscriberAuth};
use crate::config::Config;
use crate::correlation::Correlator;
use crate::ingress;
use crate::projection::rebuild::Rebuilder;
use crate::projection::stall::StallPolicy;
use crate::providers::health::ProviderHealth;
use crate::providers::health::{WEBHOOK_DURATION, WEBHOOK_DURATION_BUCKETS};
use crate::providers::{ProviderConfigError, Providers};
use crate::reconcile::{PollSetupError, Reconciler};
use crate::sse::Hub;
use crate::store::{OpenError, Store};

/// Everything a request handler needs; cheap to clone (one reference count, however many
/// parts it holds: warp clones it into every request).
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// The parts of [`AppState`], reached through it.
pub struct Parts {
    pub config: Arc<Config>,
    pub store: Store,
    pub providers: Providers,
    /// What each provider has been sending, for `/metrics` and `/readyz`.
    pub provider_health: ProviderHealth,
    /// Which video an id names, when a provider knows one video by several ids.
    pub correlator: Correlator,
    pub videos: VideoManager,
    pub hub: Hub,
    pub rebuilder: Rebuilder,
    pub subscribers: SubscriberAuth,
    /// Each provider's deadline, for the `stalled` flag of every status shown.
    pub stalls: StallPolicy,
    pub metrics: PrometheusHandle,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("config: {0}")]
    Provider(#[from] ProviderConfigError),
    #[error("store: {0}")]
    Store(#[from] OpenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("config: {0}")]
    SubscriberKey(#[from] KeyError),
    #[error("cannot start the actor system: {0}")]
    Actors(#[from] ractor::SpawnErr),
    #[error("config: {0}")]
    Poll(#[from] PollSetupError),
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    reconciler: Reconciler,
}

impl Application {
    /// Opens the store (migrating it), checks every provider's secrets, starts the actor
    /// supervisor and binds the listener.
    pub async fn build(config: Config) -> Result<Application, StartError> {
        let providers = Providers::from_config(&config.providers)?;
        let subscribers = SubscriberAuth::from_config(&config.auth)?;
        let provider_health = ProviderHealth::new(config.providers.iter().map(|p| p.name.as_str()));
        let store = Store::open(&config.store).await?;
        let videos =
            VideoManager::start(store.clone(), config.limits.clone(), config.actors.clone())
                .await?;
        let hub = Hub::start(&store, config.sse.global_buffer);
        let rebuilder = Rebuilder::new(store.clone());
        let correlator = Correlator::new(store.clone());
        let stalls = StallPolicy::from_config(&config.providers);
        let reconciler = Reconciler::new(
            &config,
            &providers,
            store.clone(),
            hub.clone(),
            videos.clone(),
            stalls.clone(),
        )?;
        rebuilder
            .rebuild_if_fold_changed()
            .await
            .map_err(OpenError::from)?;
        let listener = bind(config.listen).map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        Ok(Application {
            listener,
            reconciler,
            state: AppState(Arc::new(Parts {
                config: Arc::new(config),
                store,
                provider_health,
                correlator,
                providers,
                videos,
                hub,
                rebuilder,
                subscribers,
                stalls,
                metrics: metrics_handle(),
            })),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves (and reconciles) until `shutdown` resolves; then stops polling and accepting, lets
    /// in-flight webhooks finish their durable appends, and stops the actors.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let routes = ingress::routes(self.state.clone());
        let hub = self.state.hub.clone();
        let reconciler = tokio::spawn(self.reconciler.run());
        let shutdown = async move {
            shutdown.await;
            // Polls append through the actors, which stop after the drain: end them first. An
            // answer not appended yet is asked again by the next run.
            reconciler.abort();
            // Open SSE streams would otherwise keep the graceful shutdown waiting forever: end
            // each with a final event.
            hub.close();
        };
        serve_http1(self.listener, routes, shutdown).await;
        info!("HTTP server drained; stopping a running rebuild and the video actors");
        self.state.rebuilder.stop().await;
        self.state.videos.shutdown().await;
    }
}

/// Serves HTTP/1.1 through hyper's `http1::Builder` and `warp::service` rather than
/// `warp::serve`, whose hyper-util auto builder also accepts HTTP/2 with prior knowledge and
/// costs about 4 KiB more per open connection (issue 4's benchmark: 17.7 → 13.5 KiB per idle SSE
/// subscriber). Nothing here speaks HTTP/2. Graceful shutdown as `warp::serve` does it: stop
/// accepting, then wait for the open connections (SSE streams end on `hub.close()`).
async fn serve_http1(
    listener: TcpListener,
    routes: warp::filters::BoxedFilter<(warp::reply::Response,)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let service = warp::service(routes);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, most likely: a pause rather than a busy loop.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = hyper::server::conn::http1::Builder::new().serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Binds the listener with `TCP_NODELAY`, which Linux copies to every accepted socket: an SSE
/// event or a small JSON answer goes out at once instead of waiting on Nagle's algorithm for
/// the peer's delayed ACK (neither warp nor hyper sets it on accepted connections).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The process-wide Prometheus recorder (installed once, shared by every app in a test binary).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(WEBHOOK_DURATION.to_owned()),
                    WEBHOOK_DURATION_BUCKETS,
                )
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding app); ours then only renders.
            if metrics::set_global_recorder(recorder).is_ok() {
                describe_metrics();
            }
            handle
        })
        .clone()
}

/// The `# HELP` line of each metric the service records.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

    describe_counter!(
        "webhooks_total",
        "Deliveries to a configured provider, by result"
    );
    describe_histogram!(
        WEBHOOK_DURATION,
        Unit::Seconds,
        "Time from a webhook's route to its answer, by provider and result"
    );
    describe_gauge!(
        "webhook_last_received_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the provider's last delivery, verified or not"
    );
    describe_gauge!(
        "webhook_last_verified_timestamp_seconds",
        Unit::Seconds,
        "Unix time of the provider's last delivery whose signature verified"
    );
    describe_counter!(
        "webhook_id_conflicts_total",
        "Event ids delivered again with a different body (answered duplicate, kept in the audit log)"
    );
    describe_gauge!(
        "store_disk_free_bytes",
        Unit::Bytes,
        "Bytes still free for the service on the disk the store writes to"
    );
    describe_counter!(
        "store_commits_total",
        "Transactions the store's writer committed"
    );
    describe_counter!("store_events_appended_total", "Events appended to the log");
    describe_gauge!("video_actors_active", "Video actors alive (not passivated)");
    describe_counter!(
        "actor_activations_total",
        "Video actors started, by where their state came from"
    );
    describe_counter!(
        "video_actor_failures_total",
        "Video actors that failed and were restarted"
    );
    describe_counter!(
        "video_alias_conflicts_total",
        "Ids an event linked that already named another video (counted, not merged)"
    );
    describe_gauge!("sse_subscribers", "Open SSE streams, by stream");
    describe_gauge!(
        "sse_watched_videos",
        "Videos with at least one SSE subscriber"
    );
    describe_counter!(
        "sse_hub_resyncs_total",
        "Times the SSE hub fell behind the store's change feed and re-read the watched videos"
    );
    describe_counter!(
        "sse_global_resets_total",
        "Times a global SSE stream fell behind its buffer and was sent a reset"
    );
    describe_gauge!("videos_stalled", "Videos stalled now, by provider");
    describe_counter!(
        "videos_stalled_total",
        "Videos that became stalled, by provider"
    );
    describe_counter!(
        "provider_polls_total",
        "Reconciliation polls of a provider's API, by result"
    );
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => info!("Ctrl-C received; shutting down"),
        _ = term => info!("SIGTERM received; shutting down"),
    }
}
