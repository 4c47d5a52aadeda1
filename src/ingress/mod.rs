//! HTTP ingress (warp). Routes only: each handler lives in its own file, and `reject.rs` is the
//! one place errors turn into status codes. Nothing here touches SQL.

mod admin;
mod events;
mod health;
mod limits;
mod query;
mod reads;
pub mod reject;
mod webhook;

use tracing::{error, warn};
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderMap};
use warp::{Filter, Reply};

pub use webhook::{Receipt, ReceiptStatus};

use crate::app::AppState;
use crate::auth::Access;
use reject::ApiError;

/// The live page: HTML, CSS and JS in one file, compiled into the binary.
const LIVE_PAGE: &str = include_str!("page/index.html");

/// The subscriber token of a read (`Authorization: Bearer` or `?token=`) and what it grants.
pub(crate) fn subscriber_access(
    headers: &HeaderMap,
    query_token: Option<&str>,
    state: &AppState,
) -> Result<Access, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    Ok(state.subscribers.access(bearer.or(query_token))?)
}

/// A path segment as the client meant it, percent-decoded. warp hands a segment over as it was
/// sent, and a client must encode an id with a space, a slash or any non-ASCII letter (the live
/// page does, with `encodeURIComponent`): read raw, such a video would be one nobody can read.
/// Not UTF-8 once decoded: the route does not match (404).
struct Segment(String);

impl std::str::FromStr for Segment {
    type Err = std::str::Utf8Error;

    fn from_str(sent: &str) -> Result<Segment, Self::Err> {
        let decoded = percent_encoding::percent_decode_str(sent).decode_utf8()?;
        Ok(Segment(decoded.into_owned()))
    }
}

/// GET, and HEAD for the same answer without its body (hyper leaves the body out): HTTP asks
/// every server for HEAD where it has GET, and uptime monitors and load balancers check with it.
fn get_or_head() -> impl Filter<Extract = (), Error = warp::Rejection> + Copy {
    warp::get().or(warp::head()).unify()
}

fn with_state(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Every route of the service.
/// Boxed: the nested filter types are deep enough that checking their future's `Unpin` where the
/// server runs them overflows the compiler's recursion limit in release builds (E0275).
pub fn routes(state: AppState) -> BoxedFilter<(warp::reply::Response,)> {
    // Paths before methods: an unknown path must reject as 404, not as 405 from the first
    // method filter it met.
    let webhook = warp::path!("webhooks" / Segment)
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(with_state(state.clone()))
        .and_then(|Segment(provider), headers, body, state| async move {
            reject::respond(webhook::receive(provider, headers, body, state).await)
        });

    let status = warp::path!("videos" / Segment)
        .and(get_or_head())
        .and(warp::query::<reads::StatusParams>())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|Segment(id), params, headers, state| async move {
            reject::respond(reads::get_status(id, params, headers, state).await)
        });
    let list = warp::path!("videos")
        .and(get_or_head())
        .and(warp::query::<reads::ListParams>())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|params, headers, state| async move {
            reject::respond(reads::list(params, headers, state).await)
        });
    let history = warp::path!("videos" / Segment / "history")
        .and(get_or_head())
        .and(warp::query::<reads::TokenParam>())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|Segment(id), params, headers, state| async move {
            reject::respond(reads::history(id, params, headers, state).await)
        });
    let video_events = warp::path!("videos" / Segment / "events")
        .and(get_or_head())
        .and(warp::query::<events::VideoStreamParams>())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|Segment(id), params, headers, state| async move {
            reject::respond(events::video_stream(id, params, headers, state).await)
        });
    let all_events = warp::path!("events")
        .and(get_or_head())
        .and(warp::query::<events::GlobalStreamParams>())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|params, headers, state| async move {
            reject::respond(events::global_stream(params, headers, state).await)
        });
    let page = warp::path::end()
        .and(get_or_head())
        .map(|| warp::reply::html(LIVE_PAGE));

    let quarantine = warp::path!("admin" / "quarantine")
        .and(get_or_head())
        .and(warp::query::<admin::PageParams>())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|params, headers: HeaderMap, state| async move {
            reject::respond(admin::quarantine(params, headers, state).await)
        });
    let audit = warp::path!("admin" / "audit")
        .and(get_or_head())
        .and(warp::query::<admin::AuditParams>())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|params, headers: HeaderMap, state| async move {
            reject::respond(admin::audit(params, headers, state).await)
        });

    let replay = warp::path!("admin" / "quarantine" / "replay")
        .and(warp::post())
        .and(warp::query::<admin::ReplayParams>())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|params, headers: HeaderMap, state| async move {
            reject::respond(admin::replay_quarantine(params, headers, state).await)
        });
    let start_rebuild = warp::path!("admin" / "rebuild")
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|headers: HeaderMap, state| async move {
            reject::respond(admin::start_rebuild(headers, state).await)
        });
    let rebuild_report = warp::path!("admin" / "rebuild")
        .and(get_or_head())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|headers: HeaderMap, state| async move {
            reject::respond(admin::rebuild_report(headers, state).await)
        });
    let healthz = warp::path!("healthz")
        .and(get_or_head())
        .then(health::healthz);
    let readyz = warp::path!("readyz")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .then(health::readyz);
    let metrics = warp::path!("metrics")
        .and(get_or_head())
        .and(with_state(state.clone()))
        .then(health::metrics);

    let cors = cors(&state.config.http.cors_origins);
    webhook
        .or(status)
        .or(list)
        .or(history)
        .or(video_events)
        .or(all_events)
        .or(page)
        .or(quarantine)
        .or(audit)
        .or(replay)
        .or(start_rebuild)
        .or(rebuild_report)
        .or(healthz)
        .or(readyz)
        .or(metrics)
        .with(cors)
        .recover(reject::recover)
        .with(warp::log::custom(log_failed_request))
        .with(warp::trace::request())
        .map(Reply::into_response)
        .boxed()
}

/// One log line per failed request: method, path (never the query, which may carry a subscriber
/// token), status and time taken. A 4xx is the client's mistake, a 5xx ours. Successful requests
/// are counted in `/metrics`, not logged one by one.
fn log_failed_request(request: warp::log::Info<'_>) {
    let status = request.status();
    let elapsed_ms = request.elapsed().as_secs_f64() * 1e3;
    if status.is_server_error() {
        error!(
            method = %request.method(),
            path = request.path(),
            status = status.as_u16(),
            elapsed_ms,
            "request failed"
        );
    } else if status.is_client_error() {
        warn!(
            method = %request.method(),
            path = request.path(),
            status = status.as_u16(),
            elapsed_ms,
            "request refused"
        );
    }
}

/// CORS for browser clients on other origins (`http.cors_origins`); none configured: only
/// same-origin pages can read the API.
fn cors(origins: &[String]) -> warp::cors::Builder {
    let builder = warp::cors()
        .allow_methods(["GET", "POST", "OPTIONS"])
        .allow_headers(["authorization", "content-type", "last-event-id"])
        .max_age(600);
    if origins.iter().any(|o| o == "*") {
        builder.allow_any_origin()
    } else {
        builder.allow_origins(origins.iter().map(String::as_str))
    }
}
