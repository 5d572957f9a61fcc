//! What is kept of a first response ([`Stored`]) and how it is played back to a repeated
//! request, marked `Idempotent-Replayed: true`.

use actix_web::{
    HttpResponse,
    http::{StatusCode, header},
};

use super::store::Record;

/// What is kept of a response.
pub(super) struct Stored {
    pub(super) status: u16,
    pub(super) content_type: Option<String>,
    pub(super) location: Option<String>,
    pub(super) etag: Option<String>,
    pub(super) body: Vec<u8>,
}

impl Stored {
    pub(super) fn of(head: &HttpResponse<()>, body: Vec<u8>) -> Self {
        let header = |name| {
            head.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            status: head.status().as_u16(),
            content_type: header(header::CONTENT_TYPE),
            location: header(header::LOCATION),
            etag: header(header::ETAG),
            body,
        }
    }
}

pub(super) fn replay(record: &Record) -> HttpResponse {
    let status = record
        .status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = HttpResponse::build(status);
    response.insert_header(("Idempotent-Replayed", "true"));
    for (name, value) in [
        (header::CONTENT_TYPE, &record.content_type),
        (header::LOCATION, &record.location),
        (header::ETAG, &record.etag),
    ] {
        if let Some(value) = value {
            response.insert_header((name, value.as_str()));
        }
    }
    response.body(record.body.clone().unwrap_or_default())
}
