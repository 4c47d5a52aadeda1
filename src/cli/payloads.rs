//! What `simulate` sends for each provider: a native lifecycle step rendered the way that provider
//! shapes its webhooks (the shapes of `tests/fixtures/providers/`), so each built-in mapper can
//! be tried without an account. A step a provider never sends (Mux has no progress webhook, fal
//! only notifies the end) is left out.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The body shape `simulate` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Payload {
    /// video-status' own envelope (DESIGN.md "The native mapper").
    Native,
    /// Mux Video: `video.upload.asset_created`, `video.asset.created`, `video.asset.ready`, ...
    Mux,
    /// Cloudflare Stream video objects, by `status.state`.
    CloudflareStream,
    /// fal.ai queue results: `OK` or `ERROR` only.
    Fal,
    /// api.video: `video.source.recorded`, `video.encoding.quality.completed`.
    ApiVideo,
}

impl Payload {
    /// The shape a mapper reads, for a built-in mapper's name.
    pub fn of_mapper(mapper: &str) -> Option<Payload> {
        let payload = match mapper {
            "native" => Payload::Native,
            "mux" => Payload::Mux,
            "cloudflare-stream" => Payload::CloudflareStream,
            "fal" => Payload::Fal,
            "api-video" => Payload::ApiVideo,
            _ => return None,
        };
        Some(payload)
    }
}

/// One step of a native lifecycle, before it has a shape.
pub struct Step<'a> {
    pub video_id: &'a str,
    /// The step's event id in the native shape, unique per video and step.
    pub event_id: &'a str,
    /// The native type, e.g. `video.processing.progress`.
    pub event_type: &'a str,
    pub occurred_at: DateTime<Utc>,
    /// The native `data` object (`progress`, `error{code,message}`, `assets{...}`, `metadata`).
    pub data: &'a Value,
}

/// The step as `payload` shapes it: the event id the request is signed under and the body, or
/// `None` when that provider does not send such a step.
pub fn render(payload: Payload, step: &Step<'_>) -> Option<(String, Value)> {
    match payload {
        // Millisecond timestamps, as the native bodies have always carried them.
        Payload::Native => Some((
            step.event_id.to_string(),
            json!({
                "id": step.event_id,
                "type": step.event_type,
                "timestamp": step.occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                "data": step.data,
            }),
        )),
        Payload::Mux => mux(step),
        Payload::CloudflareStream => cloudflare_stream(step),
        Payload::Fal => fal(step),
        Payload::ApiVideo => api_video(step),
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn error_parts(step: &Step<'_>) -> (String, String) {
    let code = step.data["error"]["code"].as_str().unwrap_or("error");
    let message = step.data["error"]["message"]
        .as_str()
        .unwrap_or("the provider reported an error");
    (code.to_string(), message.to_string())
}

/// The app's id travels in `passthrough`; asset and upload ids are derived from it, so every
/// step of one video names the same Mux asset.
fn mux(step: &Step<'_>) -> Option<(String, Value)> {
    let asset = format!("asset-{}", step.video_id);
    let upload = format!("upload-{}", step.video_id);
    let playback = format!("playback-{}", step.video_id);
    let event_type = match step.event_type {
        "video.uploaded" => "video.upload.asset_created",
        "video.processing.started" => "video.asset.created",
        "video.ready" => "video.asset.ready",
        "video.failed" | "video.processing.failed" => "video.asset.errored",
        "video.deleted" => "video.asset.deleted",
        _ => return None,
    };
    let (object, data) = if event_type == "video.upload.asset_created" {
        (
            json!({ "type": "upload", "id": upload }),
            json!({
                "id": upload, "status": "asset_created", "asset_id": asset,
                "new_asset_settings": { "passthrough": step.video_id, "playback_policies": ["public"] },
            }),
        )
    } else {
        let mut data = json!({
            "id": asset, "upload_id": upload, "passthrough": step.video_id,
            "status": if event_type == "video.asset.ready" { "ready" } else { "preparing" },
            "playback_ids": [{ "id": playback, "policy": "public" }],
        });
        if event_type == "video.asset.ready" {
            data["duration"] = step.data["assets"]["duration"].clone();
            data["resolution_tier"] = json!("1080p");
        }
        if event_type == "video.asset.errored" {
            let (code, message) = error_parts(step);
            data["status"] = json!("errored");
            data["errors"] = json!({ "type": code, "messages": [message] });
        }
        (json!({ "type": "asset", "id": asset }), data)
    };
    Some((
        step.event_id.to_string(),
        json!({
            "type": event_type,
            "id": step.event_id,
            "created_at": time(step.occurred_at),
            "object": object,
            "environment": { "name": "Simulated", "id": "sim" },
            "data": data,
        }),
    ))
}

fn cloudflare_stream(step: &Step<'_>) -> Option<(String, Value)> {
    let uid = format!("uid-{}", step.video_id);
    let (state, percent, ready) = match step.event_type {
        "video.uploaded" => ("queued", "0.000000".to_string(), false),
        "video.processing.started" => ("inprogress", "0.000000".to_string(), false),
        "video.processing.progress" => (
            "inprogress",
            format!("{:.6}", step.data["progress"].as_f64().unwrap_or(0.0)),
            false,
        ),
        "video.processing.completed" => ("ready", "90.000000".to_string(), true),
        "video.ready" => ("ready", "100.000000".to_string(), true),
        "video.failed" | "video.processing.failed" => ("error", "0".to_string(), false),
        _ => return None,
    };
    let (code, text) = if state == "error" {
        error_parts(step)
    } else {
        (String::new(), String::new())
    };
    let base = format!("https://customer-sim.cloudflarestream.example/{uid}");
    // No id in Cloudflare's body: the mapper hashes it, and the signature has no id either.
    Some((
        step.event_id.to_string(),
        json!({
            "uid": uid,
            "readyToStream": ready,
            "status": {
                "state": state, "pctComplete": percent,
                "errorReasonCode": code, "errorReasonText": text,
            },
            "meta": { "videoId": step.video_id, "name": format!("{}.mp4", step.video_id) },
            "modified": time(step.occurred_at),
            "thumbnail": format!("{base}/thumbnails/thumbnail.jpg"),
            "playback": { "hls": format!("{base}/manifest/video.m3u8") },
            "duration": if ready { step.data["assets"]["duration"].clone() } else { json!(-1) },
            "input": { "width": 1920, "height": 1080 },
        }),
    ))
}

/// fal notifies the end of a request only; the request id is the video and the event.
fn fal(step: &Step<'_>) -> Option<(String, Value)> {
    let body = match step.event_type {
        "video.ready" => json!({
            "request_id": step.video_id,
            "gateway_request_id": step.video_id,
            "status": "OK",
            "payload": { "video": {
                "url": format!("https://v3.fal.media/files/sim/{}.mp4", step.video_id),
                "content_type": "video/mp4",
            } },
        }),
        "video.failed" | "video.processing.failed" => {
            let (_, message) = error_parts(step);
            json!({
                "request_id": step.video_id,
                "gateway_request_id": step.video_id,
                "status": "ERROR",
                "error": message,
                "payload": { "detail": [{ "msg": message, "type": "simulated" }] },
            })
        }
        _ => return None,
    };
    Some((step.video_id.to_string(), body))
}

fn api_video(step: &Step<'_>) -> Option<(String, Value)> {
    let (event_type, encoding) = match step.event_type {
        "video.uploaded" => ("video.source.recorded", None),
        "video.processing.completed" => ("video.encoding.quality.completed", Some("hls")),
        "video.ready" => ("video.encoding.quality.completed", Some("mp4")),
        _ => return None,
    };
    let mut body = json!({
        "type": event_type,
        "emittedAt": time(step.occurred_at),
        "videoId": step.video_id,
    });
    if let Some(encoding) = encoding {
        body["encoding"] = json!(encoding);
        body["quality"] = json!("720p");
    }
    Some((step.event_id.to_string(), body))
}
