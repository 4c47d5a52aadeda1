//! HTTP ingress (warp). Routes only: each handler lives in its own file, and `reject.rs` is the
//! one place errors turn into status codes. Nothing here touches SQL.

mod admin;
mod health;
mod limits;
mod reads;
pub mod reject;
mod webhook;

use warp::http::HeaderMap;
use warp::{Filter, Reply};

pub use webhook::{Receipt, ReceiptStatus};

use crate::app::AppState;

fn with_state(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Every route of the service.
pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    // Paths before methods: an unknown path must reject as 404, not as 405 from the first
    // method filter it met.
    let webhook = warp::path!("webhooks" / String)
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(with_state(state.clone()))
        .and_then(|provider, headers, body, state| async move {
            reject::respond(webhook::receive(provider, headers, body, state).await)
        });

    let status = warp::path!("videos" / String)
        .and(warp::get())
        .and(with_state(state.clone()))
        .and_then(|id, state| async move { reject::respond(reads::get_status(id, state).await) });
    let list = warp::path!("videos")
        .and(warp::get())
        .and(warp::query::<reads::ListParams>())
        .and(with_state(state.clone()))
        .and_then(|params, state| async move { reject::respond(reads::list(params, state).await) });
    let history = warp::path!("videos" / String / "history")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and_then(|id, state| async move { reject::respond(reads::history(id, state).await) });

    let quarantine = warp::path!("admin" / "quarantine")
        .and(warp::get())
        .and(warp::query::<admin::PageParams>())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|params, headers: HeaderMap, state| async move {
            reject::respond(admin::quarantine(params, headers, state).await)
        });
    let audit = warp::path!("admin" / "audit")
        .and(warp::get())
        .and(warp::query::<admin::AuditParams>())
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and_then(|params, headers: HeaderMap, state| async move {
            reject::respond(admin::audit(params, headers, state).await)
        });

    let healthz = warp::path!("healthz")
        .and(warp::get())
        .then(health::healthz);
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_state(state.clone()))
        .then(health::readyz);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state))
        .then(health::metrics);

    webhook
        .or(status)
        .or(list)
        .or(history)
        .or(quarantine)
        .or(audit)
        .or(healthz)
        .or(readyz)
        .or(metrics)
        .recover(reject::recover)
        .with(warp::trace::request())
}
