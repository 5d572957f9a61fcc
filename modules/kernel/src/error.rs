//! The one HTTP error type, [`ApiError`], and the problem document it becomes (RFC 9457
//! `application/problem+json`): defined in [`kernel_api::error`], where every module's
//! contract reaches them, and re-exported here with the kernel's part, which knows the
//! database pool.

pub use kernel_api::error::{
    ApiError, ErrorKind, FieldError, PROBLEM_CONTENT_TYPE, Problem, ProblemCode, Retryable,
    Shortage, Unavailable, from_tagged, members, problem_response, tagged_members,
};

/// A pool that gave no connection in time, marked as the [`Shortage`] it is: the client gets
/// 503 with `Retry-After`, not 500.
pub(crate) fn no_connection(error: r2d2::Error) -> anyhow::Error {
    anyhow::Error::new(Shortage::new("no database connection available", error))
}

#[cfg(test)]
mod tests {
    use actix_web::{ResponseError, http::header};
    use diesel::{r2d2::ConnectionManager, sqlite::SqliteConnection};

    use super::*;

    #[test]
    fn no_database_connection_in_time_is_a_503_with_retry_after() {
        // A database that cannot be opened, as when the process has no file descriptor left.
        let pool = r2d2::Pool::builder()
            .connection_timeout(std::time::Duration::from_millis(50))
            .build_unchecked(ConnectionManager::<SqliteConnection>::new(
                "/nonexistent-dir/tessera.db",
            ));
        let err = pool.get().err().expect("the pool cannot open a connection");
        let api = ApiError::from(no_connection(err).context("load the order"));
        assert_eq!(api.kind(), ErrorKind::ServiceUnavailable);
        let response = api.error_response();
        assert_eq!(response.status().as_u16(), 503);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_CONTENT_TYPE
        );
    }
}
