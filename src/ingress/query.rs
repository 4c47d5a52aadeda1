//! Query parameters as clients send them. An empty value is no value: a form, or
//! `URLSearchParams` built from a filter left blank, sends `status=` for "any status", and the
//! API's own template (`GET /videos?status=&provider=&limit=&cursor=`) reads the same way.
//! Numbers and flags are taken as text and parsed here, so that a bad one is named in the 400.

use super::reject::ApiError;

/// The parameter's value, or `None` when it is absent or empty.
pub(super) fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|value| !value.is_empty())
}

/// `limit`: a whole number from 1 to `most`; `default` when not given.
pub(super) fn limit(
    value: &Option<String>,
    default: usize,
    most: usize,
) -> Result<usize, ApiError> {
    let Some(text) = given(value) else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(limit) if (1..=most).contains(&limit) => Ok(limit),
        _ => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be a whole number between 1 and {most}; got {text:?}"),
        )),
    }
}

/// A whole-number parameter named `name`; `None` when not given.
pub(super) fn number(name: &str, value: &Option<String>) -> Result<Option<u64>, ApiError> {
    let Some(text) = given(value) else {
        return Ok(None);
    };
    text.parse::<u64>().map(Some).map_err(|_| {
        ApiError::bad_request(
            "invalid_query",
            format!("{name} must be a whole number; got {text:?}"),
        )
    })
}

/// A `true`/`false` parameter named `name`; `None` when not given.
pub(super) fn flag(name: &str, value: &Option<String>) -> Result<Option<bool>, ApiError> {
    match given(value) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(
            "invalid_query",
            format!("{name} must be true or false; got {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    #[test]
    fn an_empty_value_is_no_value() {
        assert_eq!(given(&some("")), None);
        assert_eq!(given(&None), None);
        assert_eq!(given(&some("ready")), Some("ready"));
        assert_eq!(limit(&some(""), 50, 1000).unwrap(), 50);
        assert_eq!(flag("stalled", &some("")).unwrap(), None);
    }

    #[test]
    fn a_limit_is_a_whole_number_in_range() {
        assert_eq!(limit(&some("7"), 50, 1000).unwrap(), 7);
        assert_eq!(limit(&None, 50, 1000).unwrap(), 50);
        for bad in ["0", "1001", "abc", "-1", "2.5"] {
            let error = limit(&some(bad), 50, 1000).unwrap_err();
            assert_eq!(error.code(), "invalid_limit", "{bad}");
            assert!(error.message().contains(bad), "{bad}: {}", error.message());
        }
    }

    #[test]
    fn a_number_is_whole_and_named_when_it_is_not() {
        assert_eq!(number("after", &some("12")).unwrap(), Some(12));
        assert_eq!(number("after", &some("")).unwrap(), None);
        let error = number("after", &some("-3")).unwrap_err();
        assert_eq!(error.message(), "after must be a whole number; got \"-3\"");
    }

    #[test]
    fn a_flag_is_true_or_false() {
        assert_eq!(flag("stalled", &some("true")).unwrap(), Some(true));
        assert_eq!(flag("stalled", &some("false")).unwrap(), Some(false));
        let error = flag("stalled", &some("yes")).unwrap_err();
        assert!(
            error.message().starts_with("stalled must be"),
            "{}",
            error.message()
        );
    }
}
