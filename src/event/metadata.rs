//! [`Metadata`]: a provider's passthrough field, kept as canonical JSON text.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// The provider's passthrough/meta field, untouched. Held as its canonical JSON text (serde_json's
/// own serialization of the value: object keys sorted, no spaces), so equal values have equal
/// texts: comparing, copying, storing and showing it never walks the value. What the log stores is
/// that text, and reading an event back does not parse it; a rebuild reads every event and almost
/// never looks inside one. The parsed value is made once, on first use ([`Metadata::value`], or
/// through `Deref`), and shared by every copy.
#[derive(Clone, Default)]
pub struct Metadata(Option<Arc<Inner>>);

struct Inner {
    text: Box<RawValue>,
    value: OnceLock<Value>,
}

/// JSON `null`: what [`Metadata::value`] answers for absent metadata.
static NULL: Value = Value::Null;

impl Metadata {
    /// No metadata (JSON `null`).
    pub const NULL: Metadata = Metadata(None);

    /// The metadata a mapper found; `null` is the absence of metadata.
    pub fn from_value(value: Value) -> Metadata {
        if value.is_null() {
            return Metadata::NULL;
        }
        let text =
            serde_json::value::to_raw_value(&value).expect("a JSON value serializes to JSON text");
        Metadata(Some(Arc::new(Inner {
            text,
            value: OnceLock::from(value),
        })))
    }

    /// Metadata from JSON text that [`Metadata::json`] wrote (the log's copy): checked to be JSON,
    /// not parsed into a value.
    pub fn from_json(text: String) -> Result<Metadata, serde_json::Error> {
        let text = RawValue::from_string(text)?;
        Ok(Metadata::from_raw(text))
    }

    fn from_raw(text: Box<RawValue>) -> Metadata {
        if text.get() == "null" {
            return Metadata::NULL;
        }
        Metadata(Some(Arc::new(Inner {
            text,
            value: OnceLock::new(),
        })))
    }

    pub fn is_null(&self) -> bool {
        self.0.is_none()
    }

    /// The canonical JSON text (`null` when absent).
    pub fn json(&self) -> &str {
        self.0.as_ref().map_or("null", |inner| inner.text.get())
    }

    /// The parsed value, made on first use.
    pub fn value(&self) -> &Value {
        match &self.0 {
            None => &NULL,
            Some(inner) => inner.value.get_or_init(|| {
                serde_json::from_str(inner.text.get()).expect("metadata text is checked JSON")
            }),
        }
    }
}

impl std::ops::Deref for Metadata {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl From<Value> for Metadata {
    fn from(value: Value) -> Metadata {
        Metadata::from_value(value)
    }
}

impl PartialEq for Metadata {
    fn eq(&self, other: &Metadata) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.text.get() == b.text.get(),
            _ => false,
        }
    }
}

impl PartialEq<Value> for Metadata {
    fn eq(&self, other: &Value) -> bool {
        *self == Metadata::from_value(other.clone())
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metadata({})", self.json())
    }
}

/// As the JSON itself, written without being walked.
impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            None => serializer.serialize_unit(),
            Some(inner) => inner.text.serialize(serializer),
        }
    }
}

/// Takes the JSON text as it stands in the document (a status document holds what
/// [`Serialize`] wrote: the canonical text).
impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Metadata, D::Error> {
        let text = Option::<Box<RawValue>>::deserialize(deserializer)?;
        Ok(text.map_or(Metadata::NULL, Metadata::from_raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_have_equal_text_whatever_the_order_they_were_written_in() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, 2.50], "a": {"y": null, "x": "s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":null},"b":[1,2.5]}"#).unwrap();
        assert_eq!(Metadata::from(a.clone()), Metadata::from(b));
        assert_eq!(
            Metadata::from(a.clone()).json(),
            r#"{"a":{"x":"s","y":null},"b":[1,2.5]}"#
        );
        assert_ne!(Metadata::from(a), Metadata::from(json!({"a": 1})));
    }

    #[test]
    fn text_read_back_equals_the_value_it_was_written_from_and_parses_to_it() {
        let value = json!({"tenant": "acme", "n": 3, "tags": ["x", "y"], "f": 0.1});
        let written = Metadata::from(value.clone());
        let read = Metadata::from_json(written.json().to_string()).unwrap();
        assert_eq!(read, written);
        assert_eq!(read.value(), &value);
        assert_eq!(read["tenant"], "acme");
        assert!(Metadata::from_json("{not json".into()).is_err());
    }

    #[test]
    fn null_is_the_absence_of_metadata() {
        assert!(Metadata::from(Value::Null).is_null());
        assert!(Metadata::from_json("null".into()).unwrap().is_null());
        assert_eq!(Metadata::NULL.json(), "null");
        assert_eq!(Metadata::NULL.value(), &Value::Null);
        assert_eq!(Metadata::NULL, Value::Null);
    }

    #[test]
    fn it_serializes_as_the_json_itself_and_reads_back_equal() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Doc {
            metadata: Metadata,
            after: u8,
        }
        for metadata in [Metadata::NULL, json!({"a": [1, {"b": "c\"d"}]}).into()] {
            let doc = Doc { metadata, after: 1 };
            let text = serde_json::to_string(&doc).unwrap();
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["metadata"], *doc.metadata.value());
            assert_eq!(serde_json::from_str::<Doc>(&text).unwrap(), doc);
        }
    }
}
