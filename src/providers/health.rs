//! What each provider has been sending: counts per result and the last times, so an operator sees
//! at once that a provider stopped sending (no recent delivery) or that its secret changed (only
//! `unauthorized` lately). Counted in `/metrics`, shown in `/readyz`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// `webhook_duration_seconds{provider,result}`: from the request's route to its answer.
pub const WEBHOOK_DURATION: &str = "webhook_duration_seconds";
/// Its histogram's buckets (seconds): a durable append is milliseconds, an overloaded one tens.
pub const WEBHOOK_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The fate of one delivery to a configured provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryResult {
    /// Stored, and the fold accepted it.
    Accepted,
    /// Stored, and the fold kept it as a rejected regression.
    Rejected,
    Duplicate,
    /// Verified, of a type the mapper does not track.
    Ignored,
    /// The signature check failed (401).
    Unauthorized,
    /// Verified but not mappable (400, quarantined).
    Unmappable,
    /// Refused before verification: too large or unreadable.
    Malformed,
    /// The store or the actors could not take it (503); the provider retries.
    Unavailable,
}

impl DeliveryResult {
    pub fn label(self) -> &'static str {
        match self {
            DeliveryResult::Accepted => "accepted",
            DeliveryResult::Rejected => "rejected",
            DeliveryResult::Duplicate => "duplicate",
            DeliveryResult::Ignored => "ignored",
            DeliveryResult::Unauthorized => "unauthorized",
            DeliveryResult::Unmappable => "unmappable",
            DeliveryResult::Malformed => "malformed",
            DeliveryResult::Unavailable => "unavailable",
        }
    }

    /// Whether the request proved it came from the provider.
    fn verified(self) -> bool {
        !matches!(
            self,
            DeliveryResult::Unauthorized | DeliveryResult::Malformed
        )
    }
}

/// One provider's record, as `/readyz` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProviderActivity {
    /// Any delivery, verified or not.
    pub last_webhook_at: Option<DateTime<Utc>>,
    /// The last delivery whose signature verified.
    pub last_verified_at: Option<DateTime<Utc>>,
    pub last_unauthorized_at: Option<DateTime<Utc>>,
    pub counts: BTreeMap<DeliveryResult, u64>,
}

/// Every configured provider's activity since start; a cheap handle to share.
#[derive(Debug, Clone, Default)]
pub struct ProviderHealth {
    by_name: Arc<HashMap<String, Mutex<ProviderActivity>>>,
}

impl ProviderHealth {
    pub fn new<'n>(names: impl IntoIterator<Item = &'n str>) -> ProviderHealth {
        let by_name = names
            .into_iter()
            .map(|name| (name.to_string(), Mutex::new(ProviderActivity::default())))
            .collect();
        ProviderHealth {
            by_name: Arc::new(by_name),
        }
    }

    /// Records a delivery to `provider` that was answered in `took` (ignored for a name that is
    /// not configured: those are 404s from anyone, not a provider's activity, and would let
    /// anyone add labels).
    pub fn record(
        &self,
        provider: &str,
        result: DeliveryResult,
        at: DateTime<Utc>,
        took: Duration,
    ) {
        let Some(activity) = self.by_name.get(provider) else {
            return;
        };
        metrics::counter!("webhooks_total", "provider" => provider.to_string(), "result" => result.label())
            .increment(1);
        metrics::histogram!(WEBHOOK_DURATION, "provider" => provider.to_string(), "result" => result.label())
            .record(took.as_secs_f64());
        metrics::gauge!("webhook_last_received_timestamp_seconds", "provider" => provider.to_string())
            .set(at.timestamp() as f64);
        let mut activity = activity.lock().unwrap_or_else(|e| e.into_inner());
        activity.last_webhook_at = Some(at);
        if result.verified() {
            activity.last_verified_at = Some(at);
            metrics::gauge!("webhook_last_verified_timestamp_seconds", "provider" => provider.to_string())
                .set(at.timestamp() as f64);
        }
        if result == DeliveryResult::Unauthorized {
            activity.last_unauthorized_at = Some(at);
        }
        *activity.counts.entry(result).or_default() += 1;
    }

    /// Every provider's activity, by name.
    pub fn snapshot(&self) -> BTreeMap<String, ProviderActivity> {
        self.by_name
            .iter()
            .map(|(name, activity)| {
                let activity = activity.lock().unwrap_or_else(|e| e.into_inner());
                (name.clone(), activity.clone())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_times_are_kept_per_provider_and_unknown_names_are_not() {
        let health = ProviderHealth::new(["mux", "fal"]);
        let t1 = Utc::now();
        let t2 = t1 + chrono::Duration::seconds(5);
        let took = Duration::from_millis(3);
        health.record("mux", DeliveryResult::Accepted, t1, took);
        health.record("mux", DeliveryResult::Unauthorized, t2, took);
        health.record("mux", DeliveryResult::Accepted, t1, took);
        health.record("nobody", DeliveryResult::Accepted, t2, took);

        let seen = health.snapshot();
        assert_eq!(seen.len(), 2);
        let mux = &seen["mux"];
        assert_eq!(mux.counts[&DeliveryResult::Accepted], 2);
        assert_eq!(mux.counts[&DeliveryResult::Unauthorized], 1);
        assert_eq!(mux.last_unauthorized_at, Some(t2));
        assert_eq!(mux.last_verified_at, Some(t1));
        assert_eq!(mux.last_webhook_at, Some(t1));
        assert!(seen["fal"].last_webhook_at.is_none());
    }
}
