//! Liveness, readiness and Prometheus metrics.

use serde_json::json;
use warp::http::StatusCode;
use warp::Reply;

use crate::app::AppState;
use crate::store::EventStore;

pub async fn healthz() -> warp::reply::Response {
    warp::reply::json(&json!({ "status": "ok" })).into_response()
}

/// Ready when the store takes writes: a load balancer then stops sending webhooks that would 503.
/// The detail shows each provider's last deliveries and counts since start, so a provider that
/// stopped sending, or whose secret changed, shows at a glance.
pub async fn readyz(state: AppState) -> warp::reply::Response {
    let providers = state.provider_health.snapshot();
    match state.store.ping().await {
        Ok(()) => {
            warp::reply::json(&json!({ "status": "ready", "providers": providers })).into_response()
        }
        Err(error) => warp::reply::with_status(
            warp::reply::json(&json!({
                "status": "unavailable",
                "store": error.to_string(),
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
