//! [`ApiError`] as an actix-web response (feature `actix`): the problem document, with
//! `WWW-Authenticate` on 401, `Retry-After` when the client should wait, and the request id.

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};

use super::{ApiError, ErrorKind, PROBLEM_CONTENT_TYPE, Problem};

/// Builds a problem response from its parts.
pub fn problem_response(problem: &Problem) -> HttpResponse {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    builder.insert_header((header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE));
    if status == StatusCode::UNAUTHORIZED {
        builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    builder.body(serde_json::to_string(problem).unwrap_or_default())
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if let (Some(source), ErrorKind::ServiceUnavailable) = (&self.source, self.kind) {
            // Not a 500, so the request-context middleware does not log it: say why here.
            tracing::warn!(error = ?source, "answering 503: {}", self.detail);
        }
        let mut response = problem_response(&self.problem());
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(seconds.max(1)),
            );
        }
        if let Some(value) = self
            .request_id
            .as_deref()
            .and_then(|id| header::HeaderValue::from_str(id).ok())
        {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static("x-request-id"), value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Shortage;

    #[test]
    fn a_shortage_answers_503_with_retry_after_as_a_problem() {
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let api = ApiError::from(anyhow::Error::new(Shortage::new(
            "no database connection available",
            timeout,
        )));
        let response = api.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_CONTENT_TYPE
        );
    }

    #[test]
    fn every_kind_answers_with_its_own_status() {
        for kind in [
            ErrorKind::Unauthorized,
            ErrorKind::Validation,
            ErrorKind::Internal,
        ] {
            let response = ApiError::new(kind, "x").error_response();
            assert_eq!(response.status().as_u16(), kind.status());
        }
        let unauthorized = ApiError::new(ErrorKind::Unauthorized, "x").error_response();
        assert_eq!(
            unauthorized
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .unwrap(),
            "Bearer"
        );
    }
}
