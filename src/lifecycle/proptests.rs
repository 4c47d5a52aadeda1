//! Properties of the fold over generated streams. Few timestamps, ids and percents, so ties,
//! late events and redeliveries are common rather than rare.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::{json, Value};

use super::*;
use crate::event::{
    Assets, EventId, EventKind, FailureReason, ProviderName, Source, VideoEvent, VideoId,
};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap() + Duration::seconds(secs)
}

fn kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(EventKind::Uploaded),
        Just(EventKind::ProcessingStarted),
        select(vec![0.0, 25.0, 50.0, 100.0]).prop_map(|percent| EventKind::Progress { percent }),
        Just(EventKind::ProcessingCompleted),
        Just(EventKind::Ready),
        proptest::option::of(select(vec!["oom", "codec"])).prop_map(|message| {
            EventKind::Failed {
                error: message.map(|m| FailureReason {
                    code: None,
                    message: m.to_owned(),
                }),
            }
        }),
        Just(EventKind::Deleted),
    ]
}

fn event() -> impl Strategy<Value = VideoEvent> {
    (
        kind(),
        0..4i64,
        0..30i64,
        0..8u8,
        select(vec!["mux", "fal"]),
        proptest::option::of(select(vec!["https://cdn/a.jpg", "https://cdn/b.jpg"])),
        select(vec![Value::Null, json!({"user": 1}), json!({"user": 2})]),
    )
        .prop_map(
            |(kind, at, lag, id, provider, poster, metadata)| VideoEvent {
                event_id: EventId::parse(format!("e{id}")).unwrap(),
                video_id: VideoId::parse("vid_42").unwrap(),
                provider: ProviderName::parse(provider).unwrap(),
                kind,
                occurred_at: t(at),
                received_at: t(at + lag),
                source: Source::Webhook,
                assets: Assets {
                    poster: poster.map(str::to_owned),
                    ..Assets::default()
                },
                metadata: metadata.into(),
            },
        )
}

fn key(event: &VideoEvent) -> (ProviderName, EventId) {
    (event.provider.clone(), event.event_id.clone())
}

/// Events with distinct `(provider, event_id)`, as a stream in the log holds them.
fn stream() -> impl Strategy<Value = Vec<VideoEvent>> {
    proptest::collection::vec(event(), 0..14).prop_map(|events| {
        let mut seen = HashSet::new();
        events
            .into_iter()
            .filter(|event| seen.insert(key(event)))
            .collect()
    })
}

/// A stream and the same events in another order.
fn stream_and_shuffle() -> impl Strategy<Value = (Vec<VideoEvent>, Vec<VideoEvent>)> {
    stream().prop_flat_map(|events| (Just(events.clone()), Just(events).prop_shuffle()))
}

fn assert_same_fold(a: &Fold, b: &Fold) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.events(), b.events());
    prop_assert_eq!(a.history(), b.history());
    prop_assert_eq!(a.state(), b.state());
    prop_assert_eq!(a.version(), b.version());
    Ok(())
}

/// The state after each event in fold order.
fn states_after_each(fold: &Fold) -> Vec<Option<VideoState>> {
    (1..=fold.events().len())
        .map(|n| {
            Fold::from_events(fold.events()[..n].to_vec())
                .state()
                .cloned()
        })
        .collect()
}

proptest! {
    #[test]
    fn any_permutation_folds_to_the_same_state_and_history((events, shuffled) in stream_and_shuffle()) {
        assert_same_fold(&Fold::from_events(events), &Fold::from_events(shuffled))?;
    }

    #[test]
    fn delivering_an_event_again_changes_nothing(
        events in stream(),
        which in any::<Index>(),
        lag in 0..100i64,
    ) {
        prop_assume!(!events.is_empty());
        let mut fold = Fold::from_events(events.clone());
        let before = fold.clone();
        // A redelivery arrives later; the dedupe key alone makes it the same event.
        let mut again = which.get(&events).clone();
        again.received_at += Duration::seconds(lag);
        prop_assert!(!fold.insert(again.clone()));
        assert_same_fold(&fold, &before)?;
        assert_same_fold(&Fold::from_events(events.into_iter().chain([again])), &before)?;
    }

    #[test]
    fn inserting_in_arrival_order_equals_folding_all_at_once(
        (events, arrival) in stream_and_shuffle(),
        redeliver in proptest::collection::vec(any::<Index>(), 0..4),
    ) {
        let mut fold = Fold::default();
        for (n, event) in arrival.iter().enumerate() {
            prop_assert!(fold.insert(event.clone()), "a new event is reported new");
            // Redeliveries of events already seen, interleaved with new ones.
            for index in &redeliver {
                let seen = index.get(&arrival[..=n]);
                prop_assert!(!fold.insert(seen.clone()));
            }
            prop_assert!(fold.contains(&event.provider, &event.event_id));
        }
        assert_same_fold(&fold, &Fold::from_events(events))?;
    }

    #[test]
    fn a_tip_extended_with_newer_events_equals_the_whole_fold(
        (events, arrival) in stream_and_shuffle(),
        split in any::<Index>(),
    ) {
        // A snapshot taken after some arrivals; the rest arrive after an activation from it.
        let cut = split.index(arrival.len() + 1);
        let before = Fold::from_events(arrival[..cut].iter().cloned());
        let Some(mut tip) = Tip::of(&before) else { return Ok(()) };
        let mut whole = before.clone();
        for event in &arrival[cut..] {
            if !tip.takes(event) {
                // Late for the tip: the actor reloads the whole stream; nothing more to check.
                return Ok(());
            }
            whole.insert(event.clone());
            let outcome = tip.extend(event.clone());
            let decided = whole.outcome_of(&event.provider, &event.event_id).unwrap().outcome;
            prop_assert_eq!(outcome, decided);
            prop_assert_eq!(Some(tip.state()), whole.state());
            prop_assert_eq!(tip.version(), whole.version());
        }
        let all_at_once = Fold::from_events(events);
        prop_assert_eq!(Some(tip.state()), all_at_once.state());
    }

    #[test]
    fn the_state_only_fold_equals_the_full_fold(
        events in stream(),
        again in proptest::collection::vec(any::<Index>(), 0..8),
    ) {
        // Redeliveries included: both keep the first event of a dedupe key. Up to 14 + 7 events:
        // both of `fold_state`'s ways of finding repeated keys (pairs up to 16 events, a hash
        // set beyond).
        let mut delivered = events.clone();
        for pick in again.iter().filter(|_| !events.is_empty()) {
            let mut copy = pick.get(&events).clone();
            copy.received_at += Duration::seconds(99);
            delivered.push(copy);
        }
        let fold = Fold::from_events(delivered.clone());
        let (state, version) = fold_state(delivered);
        prop_assert_eq!(state.as_ref(), fold.state());
        prop_assert_eq!(version, fold.version());
    }

    #[test]
    fn version_is_the_number_of_distinct_events(
        events in proptest::collection::vec(event(), 0..14),
    ) {
        let distinct = events.iter().map(key).collect::<HashSet<_>>().len() as u64;
        let fold = Fold::from_events(events.clone());
        prop_assert_eq!(fold.version(), distinct);
        prop_assert_eq!(fold.history().len() as u64, distinct);
        let mut one_by_one = Fold::default();
        let new = events.into_iter().filter(|e| one_by_one.insert(e.clone())).count() as u64;
        prop_assert_eq!(new, distinct);
        prop_assert_eq!(one_by_one.version(), distinct);
    }

    #[test]
    fn status_only_moves_forward_except_through_a_retry(events in stream()) {
        let fold = Fold::from_events(events);
        let mut last: Option<Status> = None;
        for entry in fold.history().iter().filter(|e| e.outcome == Outcome::Accepted) {
            let now = entry.status_after.expect("an accepted event has a status after it");
            if let Some(before) = last {
                prop_assert_ne!(before, Status::Deleted, "nothing is accepted after deleted");
                prop_assert!(
                    !(before == Status::Ready && now == Status::Failed),
                    "failed after ready was accepted"
                );
                if let (Some(b), Some(n)) = (before.rank(), now.rank()) {
                    prop_assert!(n >= b, "{} accepted after {}", now, before);
                }
            }
            last = Some(now);
        }
    }

    #[test]
    fn progress_only_moves_forward_within_processing(events in stream()) {
        let fold = Fold::from_events(events);
        let states = states_after_each(&fold);
        for pair in states.windows(2) {
            if let [Some(before), Some(after)] = pair {
                if before.status == Status::Processing && after.status == Status::Processing {
                    if let (Some(b), Some(a)) = (before.progress, after.progress) {
                        prop_assert!(a >= b, "progress {} after {}", a, b);
                    }
                    prop_assert!(before.progress.is_none() || after.progress.is_some());
                }
            }
        }
    }

    #[test]
    fn the_state_after_each_event_is_the_fold_of_the_events_up_to_it(events in stream()) {
        let fold = Fold::from_events(events);
        let states = fold.states_after();
        prop_assert_eq!(&states, &states_after_each(&fold));
        let last = states.last().cloned().flatten();
        prop_assert_eq!(last.as_ref(), fold.state());
    }

    #[test]
    fn rejected_events_change_nothing(events in stream()) {
        let fold = Fold::from_events(events);
        let states = states_after_each(&fold);
        for (n, entry) in fold.history().iter().enumerate() {
            let before = if n == 0 { None } else { states[n - 1].as_ref() };
            match entry.outcome {
                Outcome::Rejected => {
                    prop_assert_eq!(states[n].as_ref(), before);
                    prop_assert!(entry.reason.is_some() && entry.status_after.is_none());
                }
                Outcome::Accepted => {
                    prop_assert_eq!(entry.status_after, states[n].as_ref().map(|s| s.status));
                    prop_assert!(entry.reason.is_none());
                }
            }
        }
        // So the accepted events alone fold to the same state, each accepted again.
        let accepted = fold
            .events()
            .iter()
            .zip(fold.history())
            .filter(|(_, entry)| entry.outcome == Outcome::Accepted)
            .map(|(event, _)| event.clone());
        let alone = Fold::from_events(accepted);
        prop_assert_eq!(alone.state(), fold.state());
        prop_assert!(alone.history().iter().all(|e| e.outcome == Outcome::Accepted));
    }

    #[test]
    fn timestamps_are_those_of_the_last_event_that_changed_the_state(events in stream()) {
        let fold = Fold::from_events(events);
        let states = states_after_each(&fold);
        let mut changed_by = None;
        for (n, event) in fold.events().iter().enumerate() {
            let before = if n == 0 { None } else { states[n - 1].as_ref() };
            if states[n].as_ref() != before {
                changed_by = Some(event);
            }
        }
        if let (Some(state), Some(event)) = (fold.state(), changed_by) {
            prop_assert_eq!(state.updated_at, event.received_at);
            prop_assert_eq!(state.last_event_at, event.occurred_at);
        }
    }

    #[test]
    fn fold_order_is_a_strict_total_order_on_distinct_events(
        a in event(), b in event(), c in event(),
    ) {
        prop_assume!(key(&a) != key(&b) && key(&b) != key(&c) && key(&a) != key(&c));
        prop_assert_ne!(fold_order(&a, &b), std::cmp::Ordering::Equal);
        prop_assert_eq!(fold_order(&a, &b), fold_order(&b, &a).reverse());
        if fold_order(&a, &b).is_lt() && fold_order(&b, &c).is_lt() {
            prop_assert!(fold_order(&a, &c).is_lt());
        }
    }
}
