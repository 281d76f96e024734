//! JSON parsing that says where it failed.

use serde::de::DeserializeOwned;

use crate::error::NormalizeError;

/// Parses `bytes` into `T`. On failure the error is `payload_invalid` with the dotted path of
/// the offending field (`data.user.id`), or `.` when the document itself is not JSON.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, NormalizeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(path_error)?;
    deserializer
        .end()
        .map_err(|error| NormalizeError::invalid(".", error.to_string()))?;
    Ok(value)
}

/// Converts an already parsed value into `T`, reporting the path on failure.
pub fn from_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, NormalizeError> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

fn path_error(error: serde_path_to_error::Error<serde_json::Error>) -> NormalizeError {
    let path = error.path().to_string();
    NormalizeError::invalid(path, error.into_inner().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        data: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        id: u64,
    }

    #[test]
    fn reports_the_path_of_the_bad_field() {
        let error = from_slice::<Outer>(br#"{"data": {"id": "x"}}"#).unwrap_err();
        assert_eq!(error.path(), Some("data.id"));
    }

    #[test]
    fn reports_the_document_when_it_is_not_json() {
        let error = from_slice::<Outer>(b"not json").unwrap_err();
        assert_eq!(error.path(), Some("."));
        let error = from_slice::<Outer>(br#"{"data": {"id": 1}} trailing"#).unwrap_err();
        assert_eq!(error.path(), Some("."));
    }
}
