//! `spawn_app()` and the helpers every test uses: signing like a provider, reading like a UI.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use video_status::app::{AppState, Application};
use video_status::config::{Config, Overrides, ProviderConfig, SchemeName, Secret, DEMO_SECRET};
use video_status::providers::Providers;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const HMAC_SECRET: &str = "hmac-test-secret";
pub const ROTATED_OLD: &str = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
pub const ROTATED_NEW: &str = "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    pub db_path: PathBuf,
    providers: Providers,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    _dir: Option<TempDir>,
}

/// The providers every test app has: `demo` (standard), `rotating` (standard with two secrets,
/// the new one first), `plain` (hmac-sha256).
pub fn test_providers() -> Vec<ProviderConfig> {
    vec![
        ProviderConfig::new("demo", SchemeName::Standard, vec![Secret::new(DEMO_SECRET)]),
        ProviderConfig::new(
            "rotating",
            SchemeName::Standard,
            vec![Secret::new(ROTATED_NEW), Secret::new(ROTATED_OLD)],
        ),
        ProviderConfig {
            header: Some("X-Webhook-Signature".into()),
            ..ProviderConfig::new(
                "plain",
                SchemeName::HmacSha256,
                vec![Secret::new(HMAC_SECRET)],
            )
        },
    ]
}

pub fn test_config(db_path: &Path) -> Config {
    let mut config = Config::load(
        None,
        &Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            store: Some(format!("sqlite://{}", db_path.display())),
        },
    )
    .expect("test config loads");
    config.providers = test_providers();
    config.auth.admin_token = Some(Secret::new(ADMIN_TOKEN));
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("video-status.db");
    let mut app = spawn_app_at(&db_path, tweak).await;
    app._dir = Some(dir);
    app
}

/// A plain HTTP client, as the service builds its own (see `video_status::http_client`).
pub fn http_client() -> reqwest::Client {
    video_status::http_client::client_builder()
        .build()
        .expect("an HTTP client")
}

/// Starts a server on an existing database file (restart tests).
pub async fn spawn_app_at(db_path: &Path, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config(db_path);
    tweak(&mut config);
    let providers = Providers::from_config(&config.providers).unwrap();
    let app = Application::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: http_client(),
        state,
        db_path: db_path.to_path_buf(),
        providers,
        stop: Some(stop),
        server: Some(server),
        _dir: None,
    }
}

/// What a webhook POST answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server gracefully and waits for it; keeps the database file.
    pub async fn stop(mut self) -> Option<TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        self._dir.take()
    }

    pub fn sign(
        &self,
        provider: &str,
        event_id: &str,
        at: DateTime<Utc>,
        body: &[u8],
    ) -> Vec<(String, String)> {
        self.providers
            .get(provider)
            .unwrap()
            .sign(event_id, at, body)
            .expect("the test provider can sign")
    }

    /// Posts `body` signed now, as the provider would.
    pub async fn deliver(&self, provider: &str, event_id: &str, body: &Value) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap();
        let headers = self.sign(provider, event_id, Utc::now(), &bytes);
        self.post_raw(provider, &headers, bytes).await
    }

    /// Posts raw `body` bytes signed now. For providers whose event id is in the body (or a
    /// hash of it), not in a signed header.
    pub async fn post_signed(&self, provider: &str, body: Vec<u8>) -> Answer {
        let headers = self.sign(provider, "unused", Utc::now(), &body);
        self.post_raw(provider, &headers, body).await
    }

    pub async fn post_raw(
        &self,
        provider: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self
            .client
            .post(self.url(&format!("/webhooks/{provider}")))
            .body(body);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.expect("server answers");
        to_answer(response).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("server answers");
        to_answer(response).await
    }

    pub async fn get_admin(&self, path: &str) -> Answer {
        let response = self
            .client
            .get(self.url(path))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .send()
            .await
            .expect("server answers");
        to_answer(response).await
    }

    pub async fn post_admin(&self, path: &str) -> Answer {
        let response = self
            .client
            .post(self.url(path))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .send()
            .await
            .expect("server answers");
        to_answer(response).await
    }

    pub async fn history_ids(&self, video_id: &str) -> Vec<String> {
        let answer = self.get(&format!("/videos/{video_id}/history")).await;
        if answer.status == 404 {
            return Vec::new();
        }
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_string())
            .collect()
    }
}

pub async fn to_answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        body,
        text,
    }
}

/// A native-format body: `kind` is the event type after `video.`.
pub fn native(event_id: &str, kind: &str, video_id: &str, at: &str) -> Value {
    let mut data = json!({ "videoId": video_id, "metadata": { "tenant": "acme" } });
    match kind {
        "processing.progress" => data["progress"] = json!(50),
        "ready" => {
            data["progress"] = json!(100);
            data["assets"] = json!({
                "resolutions": ["1080p", "720p"],
                "poster": format!("https://cdn.example.test/{video_id}/poster.jpg"),
                "thumbnail": format!("https://cdn.example.test/{video_id}/thumb.jpg"),
            });
        }
        "failed" => data["error"] = json!({ "code": "codec", "message": "unsupported codec" }),
        _ => {}
    }
    json!({ "id": event_id, "type": format!("video.{kind}"), "timestamp": at, "data": data })
}

/// A whole lifecycle of one video, in event-time order: (event id, body).
pub fn lifecycle(video_id: &str, ends_in: &str) -> Vec<(String, Value)> {
    let kinds = [
        "uploaded",
        "processing.started",
        "processing.progress",
        "processing.completed",
        ends_in,
    ];
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let id = format!("{video_id}-evt-{i}");
            let at = format!("2026-11-23T10:00:{:02}.000Z", i * 5);
            (id.clone(), native(&id, kind, video_id, &at))
        })
        .collect()
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Damages a video's row of the status table behind the server's back (its status becomes
/// `uploaded`, its version stays), as a rebuild must find and correct.
pub fn corrupt_status(db_path: &Path, video_id: &str) {
    let conn = rusqlite::Connection::open(db_path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let changed = conn
        .execute(
            "UPDATE status SET doc = json_set(doc, '$.status', 'uploaded') WHERE video_id = ?1",
            [video_id],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

/// An SSE client over a real HTTP connection, parsed by `eventsource-stream`.
pub struct SseClient {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    events: std::pin::Pin<Box<dyn futures_util::Stream<Item = eventsource_stream::Event> + Send>>,
}

impl SseClient {
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> SseClient {
        use eventsource_stream::Eventsource;
        use futures_util::StreamExt;
        let mut request = http_client().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let events = response
            .bytes_stream()
            .eventsource()
            .filter_map(|event| async move { event.ok() })
            .boxed();
        SseClient {
            status,
            headers,
            events,
        }
    }

    /// The next event other than the `retry:` hint, or `None` if none comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<eventsource_stream::Event> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.next())
                .await
                .ok()??;
            if !(event.event == "message" && event.data.is_empty()) {
                return Some(event);
            }
        }
    }

    pub async fn next_status(&mut self) -> eventsource_stream::Event {
        let event = self
            .next_within(Duration::from_secs(5))
            .await
            .expect("an event within 5 s");
        assert_eq!(event.event, "status", "{event:?}");
        event
    }
}

/// The real binary on its own port: for what only a process shows (signals, crashes, export).
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    /// Kept open so the server's later output does not hit a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// `video-status serve --listen 127.0.0.1:0` and `args`, once it announced its address.
    pub fn start(args: &[&str]) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_video-status"));
        command.env("RUST_LOG", "warn").stderr(Stdio::null());
        ServerProcess::spawn(command, args)
    }

    /// [`ServerProcess::start`] with the log settings an operator gets by default (no
    /// `RUST_LOG`, no `NO_COLOR`), its log lines going to `stderr`.
    pub fn start_with_default_logs(args: &[&str], stderr: std::fs::File) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_video-status"));
        command
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stderr(stderr);
        ServerProcess::spawn(command, args)
    }

    fn spawn(mut command: Command, args: &[&str]) -> ServerProcess {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let url = first
            .trim()
            .strip_prefix("video-status listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        ServerProcess {
            child,
            url,
            _stdout: stdout,
        }
    }

    /// Sends SIGTERM, as an init system stops it, and waits for the exit.
    pub async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        tokio::task::spawn_blocking(move || self.child.wait().unwrap())
            .await
            .unwrap()
    }
}
