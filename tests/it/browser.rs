//! The live page (`GET /`) in a real headless Chromium driven over WebDriver (Debian's
//! `chromium` and `chromium-driver`): it goes live, a signed lifecycle shows up as `ready` with its
//! poster without a reload, the status filter works, data is never parsed as HTML, and the page
//! reconnects by itself after a server restart.
//!
//! Without the browser the test prints a note and passes, except under `CI=true`, where it fails:
//! `.ci/run` installs the packages. `UPDATE_SCREENSHOT=1` rewrites `docs/live-page.png`.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::{
    corrupt_status, eventually, lifecycle, native, spawn_app_at, spawn_app_with, TestApp,
};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const WAIT: Duration = Duration::from_secs(10);

/// `chromedriver` on a free port, in its own process group so that dropping it also ends the
/// browsers it started, whatever state the test panicked in.
struct ChromeDriver {
    child: Child,
    port: u16,
    profile: TempDir,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        use std::os::unix::process::CommandExt;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                profile.path().join("chromedriver.log").display()
            ))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let mut driver = ChromeDriver {
            child,
            port,
            profile,
        };
        let status = format!("http://127.0.0.1:{port}/status");
        let http = crate::support::http_client();
        let ready = eventually(WAIT, || {
            let (http, status) = (&http, &status);
            async move {
                match http.get(status).send().await {
                    Ok(response) => response.text().await.is_ok_and(|text| {
                        serde_json::from_str::<Value>(&text)
                            .is_ok_and(|body| body["value"]["ready"] == true)
                    }),
                    Err(_) => false,
                }
            }
        })
        .await;
        if !ready {
            let exited = driver.child.try_wait().ok().flatten();
            panic!(
                "chromedriver not ready on port {port} within {WAIT:?} (exit: {exited:?}); log:\n{}",
                driver.log()
            );
        }
        driver
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromedriver.log")).unwrap_or_default()
    }

    async fn session(&self) -> Client {
        let user_data_dir = self.profile.path().join("chromium-profile");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    "--window-size=1200,900",
                    format!("--user-data-dir={}", user_data_dir.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
        {
            Ok(client) => client,
            Err(e) => panic!("no WebDriver session with {CHROMIUM}: {e}\n{}", self.log()),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group is the driver's own (process_group(0)): its id is the child's id.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the browser is installed; `CI=true` turns its absence into a failure.
fn browser_installed() -> bool {
    let missing: Vec<&str> = [CHROMEDRIVER, CHROMIUM]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let hint = "install them with `apt-get install -y chromium chromium-driver` (.ci/run does)";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the live-page browser test needs {missing:?}, which are missing; {hint}");
    }
    eprintln!("note: skipping the live-page browser test: {missing:?} missing; {hint}");
    false
}

/// What the page shows: (video id, status badge text, img src) per row, top to bottom.
async fn rows(client: &Client) -> Vec<(String, String, Option<String>)> {
    let script = r##"return [...document.querySelectorAll("#rows tr")].map((tr) => {
        const img = tr.querySelector("img");
        return [tr.dataset.videoId, tr.querySelector(".badge").textContent,
                img ? img.getAttribute("src") : null];
    });"##;
    let value = client.execute(script, vec![]).await.expect("script runs");
    serde_json::from_value(value).expect("rows as arrays")
}

async fn connection(client: &Client) -> String {
    match client.find(Locator::Id("conn")).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits (≤ `WAIT`) until `check` holds for the rows the page shows.
async fn wait_rows(
    client: &Client,
    what: &str,
    check: impl Fn(&[(String, String, Option<String>)]) -> bool,
) {
    let check = &check;
    let shown = eventually(WAIT, || async move { check(&rows(client).await) }).await;
    assert!(
        shown,
        "the page did not show {what} within {WAIT:?}; it shows {:?}",
        rows(client).await
    );
}

async fn wait_connection(client: &Client, state: &str) {
    let reached = eventually(WAIT, || async move { connection(client).await == state }).await;
    assert!(
        reached,
        "the connection indicator did not say {state:?} within {WAIT:?}; it says {:?}",
        connection(client).await
    );
}

async fn deliver_all(app: &TestApp, events: &[(String, Value)]) {
    for (id, body) in events {
        let answer = app.deliver("demo", id, body).await;
        assert_eq!(answer.status, 200, "{id}: {}", answer.text);
    }
}

fn row_of<'a>(
    rows: &'a [(String, String, Option<String>)],
    video_id: &str,
) -> Option<&'a (String, String, Option<String>)> {
    rows.iter().find(|row| row.0 == video_id)
}

#[tokio::test]
async fn the_live_page_shows_a_lifecycle_as_it_lands_and_reconnects_after_a_restart() {
    if !browser_installed() {
        return;
    }
    let app = spawn_app_with(|config| config.sse.retry_ms = 500).await;
    let driver = ChromeDriver::start().await;
    let client = driver.session().await;

    client.goto(&app.url("/")).await.expect("the page loads");
    assert_eq!(client.title().await.unwrap(), "video-status · live");
    wait_connection(&client, "live").await;
    // Anything the page shows from now on must come without a reload: a reload would drop this.
    client
        .execute("window.__sameDocument = true;", vec![])
        .await
        .unwrap();

    deliver_all(&app, &lifecycle("vid_browser", "ready")).await;
    let poster = "https://cdn.example.test/vid_browser/poster.jpg";
    wait_rows(&client, "vid_browser ready with its poster", |rows| {
        row_of(rows, "vid_browser")
            == Some(&(
                "vid_browser".into(),
                "ready".into(),
                Some(poster.to_string()),
            ))
    })
    .await;
    let history = client
        .find(Locator::Css(r#"tr[data-video-id="vid_browser"] a"#))
        .await
        .unwrap();
    assert_eq!(
        history.attr("href").await.unwrap().as_deref(),
        Some("/videos/vid_browser/history")
    );
    assert_eq!(app.get("/videos/vid_browser/history").await.status, 200);

    // A few more videos in every status, for the filter and the screenshot.
    seed(&app).await;
    wait_rows(&client, "all seven videos", |rows| rows.len() == 7).await;
    let shown = rows(&client).await;
    assert_eq!(shown[0].0, "old_teaser", "newest update on top: {shown:?}");
    let update_screenshot = std::env::var("UPDATE_SCREENSHOT").as_deref() == Ok("1");
    if update_screenshot {
        // Let the "changed" highlights fade and the relative times tick, as a viewer sees it.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let screenshot = client.screenshot().await.expect("a screenshot");
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");
    if update_screenshot {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/live-page.png");
        std::fs::write(&path, &screenshot).unwrap();
        eprintln!("wrote {}", path.display());
    }

    // The filter is client-side and in the URL.
    client
        .find(Locator::Css(r#"#filters button[data-status="failed"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_rows(&client, "only the failed video", |rows| {
        rows.len() == 1 && rows[0].0 == "onboarding_v2"
    })
    .await;
    assert_eq!(
        client.current_url().await.unwrap().query(),
        Some("status=failed")
    );
    client
        .find(Locator::Css(r#"#filters button[data-status=""]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_rows(&client, "every video again", |rows| rows.len() == 7).await;

    // Ids and messages are text, never markup.
    let hostile = r#"<img src=x onerror="window.__pwned=1">"#;
    let mut failed = native("hostile-1", "failed", hostile, "2026-11-23T10:00:00.000Z");
    failed["data"]["error"] =
        json!({ "code": "<b>x</b>", "message": "<script>window.__pwned=2</script>" });
    deliver_all(&app, &[("hostile-1".into(), failed)]).await;
    wait_rows(&client, "the hostile id as text", |rows| {
        row_of(rows, hostile).is_some()
    })
    .await;
    let injected = client
        .execute(
            "return [window.__pwned ?? null, document.querySelectorAll('#rows img[src=x], #rows b, #rows script').length,
                     document.querySelector('#rows .err').textContent];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        injected,
        json!([null, 0, "<b>x</b>: <script>window.__pwned=2</script>"])
    );

    // Restart the server on the same port: the page says so, then catches up by itself.
    let addr: SocketAddr = app.addr;
    let db_path = app.db_path.clone();
    let dir = app.stop().await;
    wait_connection(&client, "reconnecting").await;
    // Damaged while the server is down: the page shows the row as stored once it refetches.
    corrupt_status(&db_path, "vid_browser");
    let app = spawn_app_at(&db_path, |config| {
        config.listen = addr;
        config.sse.retry_ms = 500;
    })
    .await;
    wait_connection(&client, "live").await;
    deliver_all(&app, &lifecycle("vid_after_restart", "failed")).await;
    wait_rows(&client, "vid_after_restart failed", |rows| {
        row_of(rows, "vid_after_restart").is_some_and(|row| row.1 == "failed")
    })
    .await;
    wait_rows(&client, "vid_browser as the damaged row says", |rows| {
        row_of(rows, "vid_browser").is_some_and(|row| row.1 == "uploaded")
    })
    .await;
    // An online rebuild corrects it at the same version; the page takes it without a reload.
    assert_eq!(app.post_admin("/admin/rebuild").await.status, 202);
    wait_rows(&client, "vid_browser ready again", |rows| {
        row_of(rows, "vid_browser").is_some_and(|row| row.1 == "ready")
    })
    .await;
    let same = client
        .execute("return window.__sameDocument === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same, json!(true), "the page was never reloaded");

    client.close().await.expect("the session closes");
    drop(driver);
    app.stop().await;
    drop(dir);
}

/// Videos in every status (posters as inline SVG, so the screenshot needs no network).
async fn seed(app: &TestApp) {
    let poster = |from: &str, to: &str| {
        let svg = format!(
            "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 160 90'><defs><linearGradient id='g' x2='1' y2='1'>\
             <stop offset='0' stop-color='{from}'/><stop offset='1' stop-color='{to}'/></linearGradient></defs>\
             <rect width='160' height='90' fill='url(#g)'/><circle cx='118' cy='30' r='14' fill='#fff' opacity='.55'/>\
             <path d='M0 90 L55 42 L90 72 L115 55 L160 90Z' fill='#000' opacity='.28'/></svg>"
        );
        format!("data:image/svg+xml,{}", svg.replace('#', "%23"))
    };
    let mut keynote = lifecycle("keynote_2026", "ready");
    keynote[4].1["data"]["assets"]["poster"] = json!(poster("#f97316", "#7c3aed"));
    keynote[4].1["data"]["assets"]["duration"] = json!(2712);
    deliver_all(app, &keynote).await;

    let mut lecture = lifecycle("lecture-eu-03", "ready");
    lecture.truncate(3);
    lecture[2].1["data"]["progress"] = json!(64);
    deliver_all(app, &lecture).await;

    let promo = lifecycle("promo_black_friday", "ready");
    deliver_all(app, &promo[..4]).await;
    deliver_all(app, &lifecycle("onboarding_v2", "failed")).await;
    deliver_all(app, &lifecycle("clip_8f3a21", "ready")[..1]).await;

    let mut old = lifecycle("old_teaser", "ready");
    old[4].1["data"]["assets"]["poster"] = json!(poster("#0ea5e9", "#14b8a6"));
    old.push((
        "old_teaser-evt-5".into(),
        native(
            "old_teaser-evt-5",
            "deleted",
            "old_teaser",
            "2026-11-23T10:01:00.000Z",
        ),
    ));
    deliver_all(app, &old).await;
}
