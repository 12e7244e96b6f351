//! The portal's one error type and its mapping to HTTP. The JSON body is
//! `{"error": {"code": "...", "message": "..."}}` with a stable `code`; 5xx responses carry a
//! generic message and the full cause chain goes to the log only.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::cache::CacheError;
use crate::db::DbError;
use crate::domain::ValidationError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("the request body is not valid: {0}")]
    BadRequest(String),
    #[error("sign in first")]
    Unauthorized,
    #[error("wrong e-mail address or password")]
    InvalidCredentials,
    #[error("verify your e-mail address first; we sent you a link")]
    EmailNotVerified,
    #[error("you are not allowed to do that")]
    Forbidden,
    #[error("the form expired or came from another site; reload the page and try again")]
    CsrfFailed,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    RateLimited { message: String, retry_after: Duration },
    #[error("this link has expired; ask for a new one")]
    TokenExpired,
    #[error("this link was already used")]
    TokenUsed,
    #[error("this link is not valid")]
    TokenInvalid,
    /// An upload or deploy refused for a reason the user can fix (a hostile ZIP, a missing file).
    #[error("{message}")]
    Rejected { code: &'static str, message: String },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation(e) => e.code,
            AppError::BadRequest(_) => "invalid_body",
            AppError::Unauthorized => "unauthorized",
            AppError::InvalidCredentials => "invalid_credentials",
            AppError::EmailNotVerified => "email_not_verified",
            AppError::Forbidden => "forbidden",
            AppError::CsrfFailed => "csrf_failed",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict { code, .. } => code,
            AppError::RateLimited { .. } => "rate_limited",
            AppError::TokenExpired => "token_expired",
            AppError::TokenUsed => "token_used",
            AppError::TokenInvalid => "token_invalid",
            AppError::Rejected { code, .. } => code,
            AppError::Unavailable(_) => "service_unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// The message a user may see. Internal errors say nothing about their cause.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => "something went wrong on our side; it has been logged".to_owned(),
            other => other.to_string(),
        }
    }

    /// The field a validation error belongs to, for forms.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AppError::Validation(e) => Some(e.field),
            _ => None,
        }
    }
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(reason) => {
                tracing::error!("database unavailable: {reason}");
                AppError::Unavailable("the database is unavailable; try again in a moment".to_owned())
            }
            DbError::Query(e) => AppError::Internal(anyhow::Error::new(e).context("database query failed")),
        }
    }
}

impl From<CacheError> for AppError {
    fn from(error: CacheError) -> Self {
        tracing::error!("{error}");
        AppError::Unavailable("the session store is unavailable; try again in a moment".to_owned())
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unauthorized | AppError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            AppError::EmailNotVerified | AppError::Forbidden | AppError::CsrfFailed => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::TokenExpired | AppError::TokenUsed => StatusCode::GONE,
            AppError::TokenInvalid | AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Rejected { code: "upload_too_large", .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(code = self.code(), "request failed: {:#}", anyhow_chain(self));
        }
        let mut response = HttpResponse::build(status);
        match self {
            AppError::RateLimited { retry_after, .. } => {
                response.insert_header(("Retry-After", retry_after.as_secs().max(1).to_string()));
            }
            AppError::Unavailable(_) => {
                response.insert_header(("Retry-After", "5"));
            }
            _ => {}
        }
        let mut error = serde_json::json!({ "code": self.code(), "message": self.public_message() });
        if let Some(field) = self.field() {
            error["field"] = field.into();
        }
        response.json(serde_json::json!({ "error": error }))
    }
}

fn anyhow_chain(error: &AppError) -> String {
    match error {
        AppError::Internal(inner) => format!("{inner:#}"),
        other => other.to_string(),
    }
}
