//! The one place where errors become HTTP: status code, machine code, human message. Internal
//! details collapse to an opaque 500; nothing here ever echoes a secret.

use std::convert::Infallible;

use serde::Serialize;
use tracing::error;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::actor::IngestError;
use crate::auth::AuthError;
use crate::providers::{MapError, VerifyError};
use crate::store::StoreError;

/// Seconds a client is told to wait before retrying a 503.
const RETRY_AFTER_SECS: u32 = 1;

/// A deliberate HTTP error: `{"error": "<machine code>", "message": "<human text>"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u32>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    fn retry_later(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(RETRY_AFTER_SECS),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    pub fn unknown_provider(name: &str) -> ApiError {
        let shown: String = name.chars().take(64).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            format!("no provider named {shown:?} is configured"),
        )
    }

    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        )
    }

    pub fn unreadable_body() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            "the request body could not be read",
        )
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// A mapped-but-unreadable payload; `kept` says whether it reached the quarantine.
    pub fn unmappable(error: &MapError) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            error.code(),
            format!("{error}; the request was quarantined for replay"),
        )
    }

    fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl From<VerifyError> for ApiError {
    fn from(error: VerifyError) -> ApiError {
        ApiError::unauthorized(error.code(), error.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        let status = match error {
            AuthError::Forbidden => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, error.code(), error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Unavailable(_) | StoreError::Conflict { .. } => {
                error!(%error, "store not available");
                ApiError::retry_later(
                    "store_unavailable",
                    "the event store cannot be written now; retry later",
                )
            }
            StoreError::Corrupt(_) => {
                error!(%error, "store returned corrupt data");
                ApiError::internal()
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> ApiError {
        let code = match &error {
            IngestError::VideoBusy | IngestError::Overloaded => "overloaded",
            IngestError::StoreUnavailable(_) | IngestError::Timeout => "store_unavailable",
            IngestError::ActorFailed | IngestError::Contention => "temporarily_unavailable",
            IngestError::ShuttingDown => "shutting_down",
        };
        ApiError::retry_later(code, format!("{error}; retry later"))
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Turns warp's own rejections (no route, wrong method, bad query) into the same JSON shape.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::not_found("not_found", "no such endpoint")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method",
        )
    } else if let Some(cors) = rejection.find::<warp::cors::CorsForbidden>() {
        ApiError::new(StatusCode::FORBIDDEN, "cors_forbidden", cors.to_string())
    } else if let Some(query) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad_request("invalid_query", query.to_string())
    } else {
        error!(?rejection, "unhandled rejection");
        ApiError::internal()
    };
    Ok(error.into_response())
}

/// Renders a handler's result, ok or error.
pub fn respond<R: Reply>(result: Result<R, ApiError>) -> Result<Response, Infallible> {
    Ok(match result {
        Ok(reply) => reply.into_response(),
        Err(error) => error.into_response(),
    })
}
