//! Where the service's `tracing` output goes: log lines on stderr always, and spans to an
//! OpenTelemetry collector over OTLP/HTTP (protobuf) when an endpoint is configured.
//!
//! The request path is already instrumented with `tracing` spans (the HTTP request, the webhook,
//! the video actor, the store's append); the export turns them into one trace per webhook.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config;

/// What the log lines show unless `RUST_LOG` says otherwise. Successful requests are not logged
/// one by one: at webhook volume that line is noise. Failed requests (4xx/5xx) are, by
/// `ingress::log_failed_request`, with their method and path; warp's own line for them has
/// neither, since its request span stays off here (formatting it cost every request).
const DEFAULT_LOG_FILTER: &str = "info,warp::filters::trace=off";

/// The standard variables that turn export on when the config names no endpoint.
const OTEL_ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The path OTLP/HTTP receivers take traces on, under the configured base URL.
const TRACES_PATH: &str = "/v1/traces";

/// Unsent spans are given this long to reach the collector when the service stops.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// Keeps span export running; [`Telemetry::shutdown`] sends what is still queued.
#[must_use = "dropping it without shutdown may lose the last spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Log lines on stderr only: the commands that do not serve.
    pub fn logs_only() -> Telemetry {
        install_subscriber(None);
        Telemetry { provider: None }
    }

    /// Log lines on stderr, and spans to the collector `settings` (or the standard `OTEL_*`
    /// variables) name. Fails only on a setting the exporter cannot use.
    pub fn install(settings: &config::Telemetry) -> anyhow::Result<Telemetry> {
        let Some(endpoint) = export_endpoint(settings, |name| std::env::var(name).ok()) else {
            return Ok(Telemetry::logs_only());
        };
        let provider = tracer_provider(settings, endpoint.as_deref())?;
        let tracer = provider.tracer(env!("CARGO_PKG_NAME"));
        install_subscriber(Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(exported_spans())
                .boxed(),
        ));
        tracing::info!(
            endpoint = endpoint.as_deref().unwrap_or("(from OTEL_* variables)"),
            "exporting spans over OTLP/HTTP"
        );
        Ok(Telemetry {
            provider: Some(provider),
        })
    }

    /// Sends the spans still queued (waiting at most a few seconds for the collector).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The exporter's HTTP client blocks: keep it off the async workers.
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_FLUSH))
                .await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("telemetry: last spans not exported: {error}"),
            Err(error) => eprintln!("telemetry: shutdown failed: {error}"),
        }
    }
}

/// The export URL: `Some(Some(url))` from the config, `Some(None)` when only the standard
/// variables name one (the exporter reads them itself), `None` for no export.
fn export_endpoint(
    settings: &config::Telemetry,
    variable: impl Fn(&str) -> Option<String>,
) -> Option<Option<String>> {
    if let Some(base) = &settings.otlp_endpoint {
        return Some(Some(traces_url(base)));
    }
    OTEL_ENDPOINT_VARIABLES
        .iter()
        .any(|name| variable(name).is_some_and(|value| !value.trim().is_empty()))
        .then_some(None)
}

/// `base` + `/v1/traces`, as the OTLP spec builds it from `OTEL_EXPORTER_OTLP_ENDPOINT`; a URL
/// that already ends in the traces path is taken as it is.
fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        base.to_string()
    } else {
        format!("{base}{TRACES_PATH}")
    }
}

fn tracer_provider(
    settings: &config::Telemetry,
    endpoint: Option<&str>,
) -> anyhow::Result<SdkTracerProvider> {
    // The exporter builds its own reqwest client.
    crate::http_client::install_crypto_provider();
    let mut exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    if !settings.otlp_headers.is_empty() {
        let headers: HashMap<String, String> = settings
            .otlp_headers
            .iter()
            .map(|(name, value)| (name.clone(), value.expose().to_string()))
            .collect();
        exporter = exporter.with_headers(headers);
    }
    let exporter = exporter
        .build()
        .map_err(|error| anyhow::anyhow!("telemetry: the OTLP exporter: {error}"))?;
    let service_name = settings
        .service_name
        .clone()
        .or_else(|| std::env::var("OTEL_SERVICE_NAME").ok())
        .unwrap_or_else(|| env!("CARGO_PKG_NAME").to_string());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // A trace started upstream keeps its own decision; a new one is kept at the ratio.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(service_name)
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build())
}

/// The spans worth a trace: this crate's (a webhook's are at debug level, so that logging at
/// `info` does not pay for them), and warp's request span that parents them. The log filter
/// (`RUST_LOG`) does not apply, so quiet logs still give whole traces.
fn exported_spans() -> Targets {
    Targets::new()
        .with_target(env!("CARGO_CRATE_NAME"), Level::DEBUG)
        .with_target("warp::filters::trace", Level::INFO)
}

type BoxedLayer = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

fn install_subscriber(spans: Option<BoxedLayer>) {
    let log_filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    // `try_init`: a second install (tests running several commands in one process) keeps the first.
    let _ = match spans {
        // The log filter then sees each span first, so what it turns off costs nothing.
        None => tracing_subscriber::fmt()
            .with_env_filter(log_filter)
            .with_writer(std::io::stderr)
            .with_ansi(colored_logs())
            .try_init()
            .is_ok(),
        Some(spans) => tracing_subscriber::registry()
            .with(spans)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(colored_logs())
                    .with_filter(log_filter),
            )
            .try_init()
            .is_ok(),
    };
}

/// Colours only for a person at a terminal: a file, a pipe or journald gets plain text. `NO_COLOR`
/// (any value) turns them off there too.
fn colored_logs() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: Option<&str>) -> config::Telemetry {
        config::Telemetry {
            otlp_endpoint: endpoint.map(str::to_string),
            ..config::Telemetry::default()
        }
    }

    #[test]
    fn the_traces_path_is_added_to_a_base_url_once() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://api.example/otlp/"),
            "https://api.example/otlp/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
    }

    #[test]
    fn export_is_on_only_when_an_endpoint_is_named() {
        let none = |_: &str| None;
        assert_eq!(export_endpoint(&settings(None), none), None);
        assert_eq!(
            export_endpoint(&settings(Some("http://c:4318")), none),
            Some(Some("http://c:4318/v1/traces".to_string()))
        );
        let standard = |name: &str| {
            (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://env:4318".to_string())
        };
        assert_eq!(export_endpoint(&settings(None), standard), Some(None));
        assert_eq!(
            export_endpoint(&settings(Some("http://c:4318")), standard),
            Some(Some("http://c:4318/v1/traces".to_string())),
            "the config wins over the environment"
        );
        let blank = |_: &str| Some("  ".to_string());
        assert_eq!(export_endpoint(&settings(None), blank), None);
    }
}
