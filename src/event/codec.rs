//! The byte encoding of the log: [`VideoEvent`] and [`RawDelivery`] to and from the protobuf
//! messages of `proto/video_status/v1/events.proto`. Every backend stores these bytes, so this
//! file and the `.proto` are the log's contract; nothing here knows where the bytes are kept.
//!
//! Decoding is strict about meaning (ids are re-parsed, timestamps range-checked, an unknown
//! schema version is refused) and lenient about fields it does not know, as protobuf intends.

use chrono::{DateTime, Utc};

use super::{
    Assets, EventId, EventKind, FailureReason, IdError, Metadata, ProviderName, RawDelivery,
    Source, VideoEvent, VideoId,
};

/// The generated protobuf types. Private: the rest of the crate speaks `VideoEvent`.
#[allow(clippy::all, missing_docs)]
mod pb {
    include!(concat!(env!("OUT_DIR"), "/video_status.v1.rs"));
}

/// The schema version written into every record. Readers accept `1..=CURRENT_SCHEMA_VERSION`.
pub const CURRENT_SCHEMA_VERSION: u32 = 1;

/// Why stored bytes could not be read back as an event or a delivery. Says which field is bad.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Not a protobuf message of the expected shape (the message names the field path).
    #[error("malformed protobuf: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// Written by a newer schema (or not by video-status at all, for 0): refusing beats misreading.
    #[error(
        "schema version {found} is not supported (this build reads 1..={CURRENT_SCHEMA_VERSION})"
    )]
    UnsupportedVersion { found: u32 },
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{field}` is not a valid id: {source}")]
    InvalidId {
        field: &'static str,
        #[source]
        source: IdError,
    },
    #[error("field `{field}` is not a representable timestamp")]
    InvalidTimestamp { field: &'static str },
    #[error("field `metadata_json` is not valid JSON: {0}")]
    InvalidMetadata(#[source] serde_json::Error),
}

/// Encodes an event for the log.
pub fn encode_event(event: &VideoEvent) -> Vec<u8> {
    use prost::Message;

    let message = pb::VideoEvent {
        schema_version: CURRENT_SCHEMA_VERSION,
        event_id: event.event_id.as_str().to_owned(),
        video_id: event.video_id.as_str().to_owned(),
        provider: event.provider.as_str().to_owned(),
        occurred_at: Some(timestamp_to_pb(event.occurred_at)),
        received_at: Some(timestamp_to_pb(event.received_at)),
        assets: Some(assets_to_pb(&event.assets)),
        // Null is the absence of metadata: written as the empty string, proto3's default.
        metadata_json: if event.metadata.is_null() {
            String::new()
        } else {
            event.metadata.json().to_owned()
        },
        kind: Some(kind_to_pb(&event.kind)),
        source: source_to_pb(event.source) as i32,
    };
    message.encode_to_vec()
}

/// Decodes an event written by [`encode_event`] of this or an older schema version.
pub fn decode_event(bytes: &[u8]) -> Result<VideoEvent, CodecError> {
    EventDecoder::default().decode(bytes)
}

/// Decodes a run of events, such as a page of the log read stream by stream. The events of one
/// video nearly always carry the same metadata (a provider's passthrough is set once per
/// upload): when an event's metadata text is the one of the event decoded before, it gets that
/// event's copy, shared, instead of the text being checked and copied again, and the fold then
/// compares the two by pointer. The protobuf message is decoded into the same buffers each time.
#[derive(Default)]
pub struct EventDecoder {
    message: pb::VideoEvent,
    last_metadata: Metadata,
}

impl EventDecoder {
    /// [`decode_event`], sharing the metadata of the event decoded before when it is the same.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<VideoEvent, CodecError> {
        use prost::Message;

        self.message.clear();
        self.message.merge(bytes)?;
        check_version(self.message.schema_version)?;
        let metadata = self.metadata()?;
        event_from_pb(&mut self.message, metadata)
    }

    fn metadata(&mut self) -> Result<Metadata, CodecError> {
        let text = &self.message.metadata_json;
        if text.is_empty() {
            return Ok(Metadata::NULL);
        }
        if !self.last_metadata.is_null() && self.last_metadata.json() == text {
            return Ok(self.last_metadata.clone());
        }
        // Checked to be JSON, not parsed: the fold compares and copies the text.
        let metadata = Metadata::from_json(text.clone()).map_err(CodecError::InvalidMetadata)?;
        self.last_metadata = metadata.clone();
        Ok(metadata)
    }
}

/// Takes the event's fields out of a decoded message.
fn event_from_pb(
    message: &mut pb::VideoEvent,
    metadata: Metadata,
) -> Result<VideoEvent, CodecError> {
    use std::mem::take;

    Ok(VideoEvent {
        event_id: EventId::parse(take(&mut message.event_id)).map_err(invalid_id("event_id"))?,
        video_id: VideoId::parse(take(&mut message.video_id)).map_err(invalid_id("video_id"))?,
        provider: ProviderName::parse(take(&mut message.provider))
            .map_err(invalid_id("provider"))?,
        kind: kind_from_pb(
            message
                .kind
                .take()
                .ok_or(CodecError::MissingField("kind"))?,
        ),
        occurred_at: timestamp_from_pb(message.occurred_at, "occurred_at")?,
        received_at: timestamp_from_pb(message.received_at, "received_at")?,
        // Absent assets are the empty set: an event that states none.
        assets: message
            .assets
            .take()
            .map(assets_from_pb)
            .unwrap_or_default(),
        metadata,
        source: source_from_pb(message.source),
    })
}

/// Encodes a raw delivery (body and verified headers) for the log.
pub fn encode_raw(raw: &RawDelivery) -> Vec<u8> {
    use prost::Message;

    let message = pb::RawDelivery {
        schema_version: CURRENT_SCHEMA_VERSION,
        body: raw.body.clone(),
        headers: raw
            .headers
            .iter()
            .map(|(name, value)| pb::Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    };
    message.encode_to_vec()
}

/// Decodes a raw delivery written by [`encode_raw`] of this or an older schema version.
pub fn decode_raw(bytes: &[u8]) -> Result<RawDelivery, CodecError> {
    use prost::Message;

    let message = pb::RawDelivery::decode(bytes)?;
    check_version(message.schema_version)?;
    Ok(RawDelivery {
        body: message.body,
        headers: message
            .headers
            .into_iter()
            .map(|header| (header.name, header.value))
            .collect(),
    })
}

fn check_version(found: u32) -> Result<(), CodecError> {
    if (1..=CURRENT_SCHEMA_VERSION).contains(&found) {
        Ok(())
    } else {
        Err(CodecError::UnsupportedVersion { found })
    }
}

fn invalid_id(field: &'static str) -> impl FnOnce(IdError) -> CodecError {
    move |source| CodecError::InvalidId { field, source }
}

fn timestamp_to_pb(at: DateTime<Utc>) -> pb::Timestamp {
    pb::Timestamp {
        seconds: at.timestamp(),
        // Below 2e9 even for a leap second, so it always fits an i32.
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

fn timestamp_from_pb(
    at: Option<pb::Timestamp>,
    field: &'static str,
) -> Result<DateTime<Utc>, CodecError> {
    let at = at.ok_or(CodecError::MissingField(field))?;
    let nanos = u32::try_from(at.nanos).map_err(|_| CodecError::InvalidTimestamp { field })?;
    DateTime::from_timestamp(at.seconds, nanos).ok_or(CodecError::InvalidTimestamp { field })
}

fn kind_to_pb(kind: &EventKind) -> pb::video_event::Kind {
    use pb::video_event::Kind;

    match kind {
        EventKind::Uploaded => Kind::Uploaded(pb::Uploaded {}),
        EventKind::ProcessingStarted => Kind::ProcessingStarted(pb::ProcessingStarted {}),
        EventKind::Progress { percent } => Kind::Progress(pb::Progress { percent: *percent }),
        EventKind::ProcessingCompleted => Kind::ProcessingCompleted(pb::ProcessingCompleted {}),
        EventKind::Ready => Kind::Ready(pb::Ready {}),
        EventKind::Failed { error } => Kind::Failed(pb::Failed {
            error: error.as_ref().map(|reason| pb::FailureReason {
                code: reason.code.clone(),
                message: reason.message.clone(),
            }),
        }),
        EventKind::Deleted => Kind::Deleted(pb::Deleted {}),
    }
}

fn kind_from_pb(kind: pb::video_event::Kind) -> EventKind {
    use pb::video_event::Kind;

    match kind {
        Kind::Uploaded(_) => EventKind::Uploaded,
        Kind::ProcessingStarted(_) => EventKind::ProcessingStarted,
        Kind::Progress(progress) => EventKind::Progress {
            percent: progress.percent,
        },
        Kind::ProcessingCompleted(_) => EventKind::ProcessingCompleted,
        Kind::Ready(_) => EventKind::Ready,
        Kind::Failed(failed) => EventKind::Failed {
            error: failed.error.map(|reason| FailureReason {
                code: reason.code,
                message: reason.message,
            }),
        },
        Kind::Deleted(_) => EventKind::Deleted,
    }
}

fn source_to_pb(source: Source) -> pb::Source {
    match source {
        Source::Webhook => pb::Source::Webhook,
        Source::Poll => pb::Source::Poll,
    }
}

/// A source this build does not know (written by a newer one) reads as a webhook: the fold does
/// not depend on it, and refusing the record would make the whole stream unreadable.
fn source_from_pb(raw: i32) -> Source {
    match pb::Source::try_from(raw) {
        Ok(pb::Source::Poll) => Source::Poll,
        Ok(pb::Source::Webhook) | Err(_) => Source::Webhook,
    }
}

fn assets_to_pb(assets: &Assets) -> pb::Assets {
    pb::Assets {
        resolutions: assets.resolutions.clone(),
        poster: assets.poster.clone(),
        thumbnail: assets.thumbnail.clone(),
        playback_url: assets.playback_url.clone(),
        duration_secs: assets.duration_secs,
    }
}

fn assets_from_pb(assets: pb::Assets) -> Assets {
    Assets {
        resolutions: assets.resolutions,
        poster: assets.poster,
        thumbnail: assets.thumbnail,
        playback_url: assets.playback_url,
        duration_secs: assets.duration_secs,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::prelude::*;
    use prost::Message;
    use serde_json::json;

    use super::*;

    /// Old encoded events: decoding them must keep working whatever the schema becomes.
    const V1_EVENTS: &str = "tests/fixtures/events/v1-samples.bin";
    const V1_RAWS: &str = "tests/fixtures/events/v1-raw-samples.bin";

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)
    }

    fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, nanos).unwrap()
    }

    fn event(n: u32, kind: EventKind, assets: Assets, metadata: serde_json::Value) -> VideoEvent {
        VideoEvent {
            event_id: EventId::parse(format!("evt_{n}")).unwrap(),
            video_id: VideoId::parse("vid_42").unwrap(),
            provider: ProviderName::parse("mux").unwrap(),
            kind,
            occurred_at: at(1_795_428_000 + i64::from(n), 120_000_000),
            received_at: at(1_795_428_001 + i64::from(n), 123_456_789),
            assets,
            metadata: metadata.into(),
            source: Source::Webhook,
        }
    }

    /// The events in `v1-samples.bin`, written out by hand: every kind, assets, metadata,
    /// failure reasons with and without a code, unicode ids, a pre-1970 timestamp.
    fn v1_events() -> Vec<VideoEvent> {
        let full_assets = Assets {
            resolutions: vec!["1080p".into(), "720p".into()],
            poster: Some("https://cdn.example/vid_42/poster.jpg".into()),
            thumbnail: Some("https://cdn.example/vid_42/thumb.jpg".into()),
            playback_url: Some("https://cdn.example/vid_42/index.m3u8".into()),
            duration_secs: Some(63.25),
        };
        let mut unicode = event(
            9,
            EventKind::Deleted,
            Assets::default(),
            json!({"note": "supprimée ✓"}),
        );
        unicode.video_id = VideoId::parse("vidéo/7 ✓").unwrap();
        unicode.occurred_at = at(-86_400, 999_999_999);
        vec![
            event(
                1,
                EventKind::Uploaded,
                Assets::default(),
                json!({"user": "u_1", "tags": ["a", "b"], "n": 3, "nested": {"ok": true}}),
            ),
            event(
                2,
                EventKind::ProcessingStarted,
                Assets::default(),
                serde_json::Value::Null,
            ),
            event(
                3,
                EventKind::Progress { percent: 42.5 },
                Assets::default(),
                json!("plain string"),
            ),
            event(
                4,
                EventKind::ProcessingCompleted,
                Assets {
                    resolutions: vec!["720p".into()],
                    ..Assets::default()
                },
                serde_json::Value::Null,
            ),
            event(5, EventKind::Ready, full_assets, json!({"user": "u_1"})),
            event(
                6,
                EventKind::Failed {
                    error: Some(FailureReason {
                        code: Some("invalid_input".into()),
                        message: "codec not supported".into(),
                    }),
                },
                Assets::default(),
                serde_json::Value::Null,
            ),
            event(
                7,
                EventKind::Failed {
                    error: Some(FailureReason {
                        code: None,
                        message: "timed out".into(),
                    }),
                },
                Assets::default(),
                serde_json::Value::Null,
            ),
            event(
                8,
                EventKind::Failed { error: None },
                Assets::default(),
                json!([1, 2, 3]),
            ),
            unicode,
        ]
    }

    /// The deliveries in `v1-raw-samples.bin`.
    fn v1_raws() -> Vec<RawDelivery> {
        vec![
            RawDelivery {
                body: bytes::Bytes::from_static(br#"{"id":"evt_1","type":"video.uploaded"}"#),
                headers: vec![
                    ("webhook-id".into(), "evt_1".into()),
                    ("webhook-timestamp".into(), "1795428001".into()),
                    ("webhook-signature".into(), "v1,c2lnbmF0dXJl".into()),
                ],
            },
            // Not UTF-8, with a NUL: the body is bytes, never text.
            RawDelivery {
                body: bytes::Bytes::from_static(&[0xff, 0x00, 0xfe, b'x']),
                headers: vec![("x-webhook-signature".into(), "sha256=00ff".into())],
            },
            RawDelivery::default(),
        ]
    }

    fn write_delimited(messages: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        for message in messages {
            prost::encode_length_delimiter(message.len(), &mut out).unwrap();
            out.extend_from_slice(&message);
        }
        out
    }

    fn read_delimited(mut bytes: &[u8]) -> Vec<&[u8]> {
        let mut messages = Vec::new();
        while !bytes.is_empty() {
            let len = prost::decode_length_delimiter(&mut bytes).unwrap();
            let (message, rest) = bytes.split_at(len);
            messages.push(message);
            bytes = rest;
        }
        messages
    }

    #[test]
    fn v1_fixture_events_still_decode_to_the_same_values() {
        let bytes = std::fs::read(fixture(V1_EVENTS)).expect("checked-in v1 event fixture");
        let decoded: Vec<VideoEvent> = read_delimited(&bytes)
            .into_iter()
            .map(|message| decode_event(message).unwrap())
            .collect();
        assert_eq!(decoded, v1_events());
    }

    #[test]
    fn v1_fixture_events_cover_every_kind() {
        let mut names: Vec<&str> = v1_events().iter().map(|e| e.kind.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names,
            [
                "deleted",
                "failed",
                "processing_completed",
                "processing_started",
                "progress",
                "ready",
                "uploaded"
            ]
        );
    }

    #[test]
    fn v1_fixture_raw_deliveries_still_decode_to_the_same_values() {
        let bytes = std::fs::read(fixture(V1_RAWS)).expect("checked-in v1 raw fixture");
        let decoded: Vec<RawDelivery> = read_delimited(&bytes)
            .into_iter()
            .map(|message| decode_raw(message).unwrap())
            .collect();
        assert_eq!(decoded, v1_raws());
    }

    /// Rewrites the v1 fixtures from the values above. Only for creating them: once checked in,
    /// they are what old logs contain and must not change.
    /// `cargo test --lib event::codec -- --ignored regenerate_v1_fixtures`
    #[test]
    #[ignore = "rewrites checked-in fixtures"]
    fn regenerate_v1_fixtures() {
        let events = write_delimited(v1_events().iter().map(encode_event));
        std::fs::write(fixture(V1_EVENTS), events).unwrap();
        let raws = write_delimited(v1_raws().iter().map(encode_raw));
        std::fs::write(fixture(V1_RAWS), raws).unwrap();
    }

    #[test]
    fn every_record_carries_the_current_schema_version() {
        let event = pb::VideoEvent::decode(&encode_event(&v1_events()[0])[..]).unwrap();
        assert_eq!(event.schema_version, CURRENT_SCHEMA_VERSION);
        let raw = pb::RawDelivery::decode(&encode_raw(&v1_raws()[0])[..]).unwrap();
        assert_eq!(raw.schema_version, CURRENT_SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_or_missing_schema_version_is_refused() {
        let mut message = pb::VideoEvent::decode(&encode_event(&v1_events()[0])[..]).unwrap();
        message.schema_version = CURRENT_SCHEMA_VERSION + 1;
        let err = decode_event(&message.encode_to_vec()).unwrap_err();
        assert!(
            matches!(err, CodecError::UnsupportedVersion { found } if found == CURRENT_SCHEMA_VERSION + 1)
        );

        // Empty bytes are a message of defaults: version 0, never written by video-status.
        assert!(matches!(
            decode_event(&[]).unwrap_err(),
            CodecError::UnsupportedVersion { found: 0 }
        ));
        assert!(matches!(
            decode_raw(&[]).unwrap_err(),
            CodecError::UnsupportedVersion { found: 0 }
        ));
    }

    fn reencoded(edit: impl FnOnce(&mut pb::VideoEvent)) -> Result<VideoEvent, CodecError> {
        let mut message = pb::VideoEvent::decode(&encode_event(&v1_events()[0])[..]).unwrap();
        edit(&mut message);
        decode_event(&message.encode_to_vec())
    }

    #[test]
    fn decode_errors_name_the_bad_field() {
        let err = reencoded(|m| m.video_id.clear()).unwrap_err();
        assert!(matches!(
            err,
            CodecError::InvalidId {
                field: "video_id",
                source: IdError::Empty
            }
        ));
        let err = reencoded(|m| m.event_id = "a\nb".into()).unwrap_err();
        assert!(matches!(
            err,
            CodecError::InvalidId {
                field: "event_id",
                source: IdError::ControlCharacter
            }
        ));
        let err = reencoded(|m| m.provider = "p".repeat(300)).unwrap_err();
        assert!(matches!(
            err,
            CodecError::InvalidId {
                field: "provider",
                source: IdError::TooLong
            }
        ));
        let err = reencoded(|m| m.kind = None).unwrap_err();
        assert!(matches!(err, CodecError::MissingField("kind")));
        let err = reencoded(|m| m.occurred_at = None).unwrap_err();
        assert!(matches!(err, CodecError::MissingField("occurred_at")));
        let err = reencoded(|m| m.received_at.as_mut().unwrap().nanos = -1).unwrap_err();
        assert!(matches!(
            err,
            CodecError::InvalidTimestamp {
                field: "received_at"
            }
        ));
        let err = reencoded(|m| m.occurred_at.as_mut().unwrap().seconds = i64::MAX).unwrap_err();
        assert!(matches!(
            err,
            CodecError::InvalidTimestamp {
                field: "occurred_at"
            }
        ));
        let err = reencoded(|m| m.metadata_json = "{not json".into()).unwrap_err();
        assert!(matches!(err, CodecError::InvalidMetadata(_)));
        assert!(err.to_string().contains("metadata_json"));
    }

    #[test]
    fn events_written_before_the_source_field_read_as_webhooks() {
        let bytes = std::fs::read(fixture(V1_EVENTS)).expect("checked-in v1 event fixture");
        for message in read_delimited(&bytes) {
            assert_eq!(pb::VideoEvent::decode(message).unwrap().source, 0);
            assert_eq!(decode_event(message).unwrap().source, Source::Webhook);
        }
    }

    #[test]
    fn a_source_from_a_newer_build_reads_as_webhook_instead_of_failing_the_stream() {
        let event = reencoded(|m| m.source = 7).expect("an unknown source still decodes");
        assert_eq!(event.source, Source::Webhook);
        let poll = reencoded(|m| m.source = pb::Source::Poll as i32).unwrap();
        assert_eq!(poll.source, Source::Poll);
    }

    #[test]
    fn garbage_is_malformed() {
        // Field 1 with wire type 7 does not exist in protobuf.
        assert!(matches!(
            decode_event(&[0x0f, 0x01]).unwrap_err(),
            CodecError::Malformed(_)
        ));
        assert!(matches!(
            decode_raw(&[0x0f, 0x01]).unwrap_err(),
            CodecError::Malformed(_)
        ));
    }

    fn id() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_.:/é-]{1,40}"
    }

    fn kind() -> impl Strategy<Value = EventKind> {
        let reason = (proptest::option::of(id()), ".{0,40}")
            .prop_map(|(code, message)| FailureReason { code, message });
        prop_oneof![
            Just(EventKind::Uploaded),
            Just(EventKind::ProcessingStarted),
            (0.0f64..=100.0).prop_map(|percent| EventKind::Progress { percent }),
            Just(EventKind::ProcessingCompleted),
            Just(EventKind::Ready),
            proptest::option::of(reason).prop_map(|error| EventKind::Failed { error }),
            Just(EventKind::Deleted),
        ]
    }

    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        // About ±3000 years around 1970, every nanosecond allowed.
        (-95_000_000_000i64..95_000_000_000, 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| at(secs, nanos))
    }

    fn assets() -> impl Strategy<Value = Assets> {
        (
            proptest::collection::vec(id(), 0..4),
            proptest::option::of(id()),
            proptest::option::of(id()),
            proptest::option::of(id()),
            proptest::option::of(0.0f64..1e7),
        )
            .prop_map(
                |(resolutions, poster, thumbnail, playback_url, duration_secs)| Assets {
                    resolutions,
                    poster,
                    thumbnail,
                    playback_url,
                    duration_secs,
                },
            )
    }

    fn metadata() -> impl Strategy<Value = serde_json::Value> {
        // Integers and strings only: JSON text round-trips them exactly.
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            (id(), ".{0,20}", any::<bool>())
                .prop_map(|(key, text, flag)| json!({ key: text, "flag": flag })),
        ]
    }

    proptest! {
        #[test]
        fn any_event_round_trips(
            ids in (id(), id(), id()),
            kind in kind(),
            occurred_at in instant(),
            received_at in instant(),
            assets in assets(),
            metadata in metadata(),
            poll in any::<bool>(),
        ) {
            let event = VideoEvent {
                event_id: EventId::parse(ids.0).unwrap(),
                video_id: VideoId::parse(ids.1).unwrap(),
                provider: ProviderName::parse(ids.2).unwrap(),
                kind,
                occurred_at,
                received_at,
                assets,
                metadata: metadata.into(),
                source: if poll { Source::Poll } else { Source::Webhook },
            };
            prop_assert_eq!(decode_event(&encode_event(&event)).unwrap(), event);
        }

        /// Sharing the metadata of the event before must never hand out another event's.
        #[test]
        fn a_decoder_reads_a_run_of_events_as_they_were_written(
            texts in proptest::collection::vec(metadata(), 3),
            picks in proptest::collection::vec(0..3usize, 1..12),
        ) {
            // Drawn from a few values, so that runs of the same metadata and changes both occur.
            let events: Vec<VideoEvent> = picks
                .into_iter()
                .enumerate()
                .map(|(n, pick)| {
                    event(n as u32, EventKind::Uploaded, Assets::default(), texts[pick].clone())
                })
                .collect();
            let mut decoder = EventDecoder::default();
            for event in &events {
                prop_assert_eq!(&decoder.decode(&encode_event(event)).unwrap(), event);
            }
        }

        #[test]
        fn any_raw_delivery_round_trips(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            headers in proptest::collection::vec((id(), ".{0,40}"), 0..6),
        ) {
            let raw = RawDelivery { body: body.into(), headers };
            prop_assert_eq!(decode_raw(&encode_raw(&raw)).unwrap(), raw);
        }
    }
}
