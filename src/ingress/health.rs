//! Liveness, readiness and Prometheus metrics.

use std::time::Duration;

use serde_json::json;
use warp::http::StatusCode;
use warp::Reply;

use crate::app::AppState;
use crate::store::EventStore;

/// Longest `/readyz` waits for its probe write (less when `limits.request_timeout_ms` is).
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn healthz() -> warp::reply::Response {
    warp::reply::json(&json!({ "status": "ok" })).into_response()
}

/// Ready when the store takes writes and its disk has room (`limits.min_free_disk_bytes`): a
/// load balancer then stops sending webhooks that would 503. The detail shows the disk's free
/// bytes and each provider's last deliveries and counts since start, so a provider that stopped
/// sending, or whose secret changed, shows at a glance.
pub async fn readyz(state: AppState) -> warp::reply::Response {
    let providers = state.provider_health.snapshot();
    let free_bytes = state.store.free_disk_bytes();
    let min_free_bytes = state.config.limits.min_free_disk_bytes;
    let disk = json!({ "free_bytes": free_bytes, "min_free_bytes": min_free_bytes });
    // A probe must answer within its own timeout (a second, Kubernetes' default) with the
    // reason, not wait as long as a webhook may: the store's writer can be held for seconds
    // (another process's lock), and probes would queue behind one another.
    let probe_timeout =
        Duration::from_millis(state.config.limits.request_timeout_ms).min(READY_PROBE_TIMEOUT);
    let probe = tokio::time::timeout(probe_timeout, state.store.ping()).await;
    let problem = match probe {
        Err(_) => Some(format!(
            "the store did not confirm a write within {} ms",
            probe_timeout.as_millis()
        )),
        Ok(Err(error)) => Some(error.to_string()),
        Ok(Ok(())) => free_bytes
            .filter(|&free| free < min_free_bytes)
            .map(|free| {
                format!(
                    "{free} bytes free on the store's disk, below limits.min_free_disk_bytes \
                     ({min_free_bytes})"
                )
            }),
    };
    match problem {
        None => {
            warp::reply::json(&json!({ "status": "ready", "disk": disk, "providers": providers }))
                .into_response()
        }
        Some(problem) => warp::reply::with_status(
            warp::reply::json(&json!({
                "status": "unavailable",
                "store": problem,
                "disk": disk,
                "providers": providers,
            })),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response(),
    }
}

pub async fn metrics(state: AppState) -> warp::reply::Response {
    let stats = state.store.stats();
    metrics::counter!("store_commits_total").absolute(stats.commits);
    metrics::counter!("store_events_appended_total").absolute(stats.appended);
    metrics::gauge!("video_actors_active").set(state.videos.active_actors() as f64);
    if let Some(free) = state.store.free_disk_bytes() {
        metrics::gauge!("store_disk_free_bytes").set(free as f64);
    }
    let subscribers = state.hub.subscribers();
    metrics::gauge!("sse_subscribers", "stream" => "video").set(subscribers.videos as f64);
    metrics::gauge!("sse_subscribers", "stream" => "global").set(subscribers.global as f64);
    metrics::gauge!("sse_watched_videos").set(subscribers.watched_videos as f64);
    warp::reply::with_header(
        state.metrics.render(),
        "content-type",
        "text/plain; version=0.0.4",
    )
    .into_response()
}
