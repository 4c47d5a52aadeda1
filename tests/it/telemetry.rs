//! Span export: the real binary, configured with `[telemetry] otlp_endpoint`, sends one trace per
//! webhook to an OTLP/HTTP receiver, as an OpenTelemetry collector would receive it. And the log
//! lines an operator gets by default.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use warp::Filter;

use crate::support::{native, test_providers, ServerProcess};
use video_status::providers::Providers;

/// What one export carried: its headers and its decoded body.
struct Export {
    headers: warp::http::HeaderMap,
    request: ExportTraceServiceRequest,
}

/// A receiver of `POST /v1/traces` (protobuf), keeping every export.
async fn start_collector() -> (String, Arc<Mutex<Vec<Export>>>) {
    let received: Arc<Mutex<Vec<Export>>> = Arc::default();
    let route = warp::post()
        .and(warp::path!("v1" / "traces"))
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map({
            let received = received.clone();
            move |headers, body: bytes::Bytes| {
                let request = ExportTraceServiceRequest::decode(body)
                    .expect("the export is an OTLP protobuf request");
                received.lock().unwrap().push(Export { headers, request });
                warp::reply()
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}"), received)
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(
            |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(value) => Some(value.clone()),
                other => Some(format!("{other:?}")),
            },
        )
}

/// Posts `body` to the server's `demo` provider, signed as the demo provider signs.
async fn deliver_to_demo(
    server_url: &str,
    event_id: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    let providers = Providers::from_config(&test_providers()).unwrap();
    let demo = providers.get("demo").unwrap();
    let body = serde_json::to_vec(body).unwrap();
    let mut request = crate::support::http_client()
        .post(format!("{server_url}/webhooks/demo"))
        .body(body.clone());
    for (name, value) in demo.sign(event_id, Utc::now(), &body).unwrap() {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

/// A span as the test reads it.
#[derive(Debug)]
struct SeenSpan {
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: Vec<KeyValue>,
}

#[tokio::test]
async fn each_webhook_is_one_trace_exported_over_otlp_http() {
    let (collector, received) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("video-status.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"sqlite://{}\"\n\n[telemetry]\notlp_endpoint = \"{collector}\"\n\
             service_name = \"video-status-it\"\n\n[telemetry.otlp_headers]\n\
             x-api-key = \"k-telemetry-test\"\n",
            dir.path().join("telemetry.db").display()
        ),
    )
    .unwrap();
    let server = ServerProcess::start(&["--config", config.to_str().unwrap()]);

    let body = native(
        "evt_traced_1",
        "uploaded",
        "vid_traced",
        "2026-11-23T10:00:00Z",
    );
    let response = deliver_to_demo(&server.url, "evt_traced_1", &body).await;
    assert_eq!(response.status(), 200);

    // Spans are exported in batches; stopping the service sends what is still queued.
    assert!(server.terminate().await.success());

    let exports = received.lock().unwrap();
    assert!(!exports.is_empty(), "the collector received an export");
    for export in exports.iter() {
        assert_eq!(
            export.headers["content-type"], "application/x-protobuf",
            "OTLP/HTTP binary"
        );
        assert_eq!(export.headers["x-api-key"], "k-telemetry-test");
    }
    let mut spans = Vec::new();
    for resource_spans in exports.iter().flat_map(|e| &e.request.resource_spans) {
        let resource = resource_spans.resource.as_ref().unwrap();
        assert_eq!(
            text(&resource.attributes, "service.name").as_deref(),
            Some("video-status-it")
        );
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            spans.push(SeenSpan {
                name: span.name.clone(),
                trace_id: span.trace_id.clone(),
                span_id: span.span_id.clone(),
                parent_span_id: span.parent_span_id.clone(),
                attributes: span.attributes.clone(),
            });
        }
    }

    let webhook = spans
        .iter()
        .find(|span| span.name == "receive")
        .unwrap_or_else(|| panic!("a webhook span among {spans:#?}"));
    assert_eq!(
        text(&webhook.attributes, "provider").as_deref(),
        Some("demo")
    );
    assert_eq!(
        text(&webhook.attributes, "video_id").as_deref(),
        Some("vid_traced")
    );
    assert_eq!(
        text(&webhook.attributes, "event_id").as_deref(),
        Some("evt_traced_1")
    );
    assert_eq!(
        text(&webhook.attributes, "result").as_deref(),
        Some("accepted")
    );

    // One trace from the HTTP request down to the store: request → webhook → manager →
    // the video's actor (another task) → the append.
    let trace: Vec<&SeenSpan> = spans
        .iter()
        .filter(|span| span.trace_id == webhook.trace_id)
        .collect();
    let by_id: BTreeMap<&[u8], &SeenSpan> = trace
        .iter()
        .map(|span| (span.span_id.as_slice(), *span))
        .collect();
    let append = trace
        .iter()
        .find(|span| span.name == "append")
        .unwrap_or_else(|| panic!("the store's append in the webhook's trace: {trace:#?}"));
    let mut chain = vec![append.name.as_str()];
    let mut current = *append;
    while let Some(parent) = by_id.get(current.parent_span_id.as_slice()) {
        chain.push(parent.name.as_str());
        current = parent;
    }
    chain.reverse();
    assert_eq!(
        chain,
        ["request", "receive", "ingest", "ingest", "append"],
        "{trace:#?}"
    );
    assert!(current.parent_span_id.is_empty(), "the request is the root");
}

/// By default (no `RUST_LOG`), into a file: plain text, nothing per accepted webhook, and one
/// line per failed request naming its method, path and status, never its query.
#[tokio::test]
async fn default_logs_name_each_failed_request_and_stay_quiet_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let store = format!("sqlite://{}", dir.path().join("logs.db").display());
    let server = ServerProcess::start_with_default_logs(
        &["--store", &store],
        std::fs::File::create(&log_path).unwrap(),
    );
    let client = crate::support::http_client();

    let body = native(
        "evt_logged_1",
        "uploaded",
        "vid_logged",
        "2026-11-23T10:00:00Z",
    );
    let accepted = deliver_to_demo(&server.url, "evt_logged_1", &body).await;
    assert_eq!(accepted.status(), 200);
    let untracked = serde_json::json!({
        "id": "evt_logged_untracked", "type": "video.caption.generated",
        "timestamp": "2026-11-23T10:00:01Z", "data": { "videoId": "vid_logged" }
    });
    let ignored = deliver_to_demo(&server.url, "evt_logged_untracked", &untracked).await;
    assert_eq!(ignored.status(), 200);
    let unsigned = client
        .post(format!("{}/webhooks/demo", server.url))
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let unknown = client
        .get(format!(
            "{}/videos/vid_never_seen?token=query-secret-never-logged",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(server.terminate().await.success());

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains('\x1b'), "no colour codes in a file:\n{log}");
    let line = |needle: &str| {
        log.lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("a line with {needle:?} in:\n{log}"))
    };
    let refused = line(r#"path="/webhooks/demo" status=401"#);
    assert!(refused.contains("WARN") && refused.contains("request refused method=POST"));
    assert!(line("webhook signature rejected").contains("provider=demo"));
    let not_found = line(r#"path="/videos/vid_never_seen" status=404"#);
    assert!(not_found.contains("method=GET"), "{not_found}");
    assert!(!log.contains("query-secret-never-logged"), "{log}");
    assert!(
        !log.contains("evt_logged_1")
            && !log.contains("evt_logged_untracked")
            && !log.contains("status=200"),
        "nothing per accepted or ignored webhook:\n{log}"
    );
}

/// Another process holding the store's write lock: webhooks get 503 at their timeout, `/readyz`
/// answers 503 with the reason within its own second instead of queueing behind the lock, the log
/// names the delivery that was not stored, and both recover once the lock is gone.
#[tokio::test]
async fn a_locked_store_answers_503_promptly_and_the_log_names_the_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    let config = dir.path().join("video-status.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"sqlite://{}\"\n[limits]\nrequest_timeout_ms = 1500\n",
            db.display()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("serve.log");
    let server = ServerProcess::start_with_default_logs(
        &["--config", config.to_str().unwrap()],
        std::fs::File::create(&log_path).unwrap(),
    );
    let client = crate::support::http_client();
    assert_eq!(
        client
            .get(format!("{}/readyz", server.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = std::time::Instant::now();
    let ready = client
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = serde_json::from_slice(&ready.bytes().await.unwrap()).unwrap();
    assert_eq!(
        body["store"], "the store did not confirm a write within 1000 ms",
        "{body}"
    );
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");

    let body = native(
        "evt_locked_1",
        "uploaded",
        "vid_locked",
        "2026-11-23T10:00:00Z",
    );
    let refused = deliver_to_demo(&server.url, "evt_locked_1", &body).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));

    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let recovered = crate::support::eventually(std::time::Duration::from_secs(20), || {
        let url = format!("{}/readyz", server.url);
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    assert!(recovered, "ready again once the lock is gone");
    assert!(server.terminate().await.success());

    let log = std::fs::read_to_string(&log_path).unwrap();
    let not_stored = log
        .lines()
        .find(|line| line.contains("webhook not stored"))
        .unwrap_or_else(|| panic!("a line for the delivery in:\n{log}"));
    assert!(
        not_stored.contains("provider=demo")
            && not_stored.contains("video_id=vid_locked")
            && not_stored.contains("event_id=evt_locked_1"),
        "{not_stored}"
    );
}
