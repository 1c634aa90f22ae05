//! The error body every failed API call answers with:
//! `{"error": {"code": "...", "message": "..."}}`.
//!
//! Invariant: `code` is stable (clients match on it), `message` is for people.

use serde::{Deserialize, Serialize};

/// A failed call's body.
#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error: a stable code and a message.
#[derive(Serialize, Deserialize, Debug)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}
