//! The AWS error shape, in one place.
//!
//! Every failure a client can see is an [`ApiError`]. [`ApiError::code`] (the
//! `x-amzn-ErrorType` header and `__type`), [`ApiError::status`] and the message member name
//! (`message` or `Message`, as the model declares it per exception) are exhaustive matches, so a
//! new variant cannot be added without deciding all three. Server faults keep their detail in
//! the log and send a generic message.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use lamina_invoke::InvokeError;
use lamina_store::StoreError;
use lamina_types::names::ResolveError;
use lamina_types::validate::InputError;

/// A failure reported to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `ValidationException`.
    #[error("{0}")]
    Validation(String),
    /// 400 `InvalidParameterValueException`.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// 400 `InvalidRequestContentException`.
    #[error("{0}")]
    InvalidRequestContent(String),
    /// 403 `AccessDeniedException`: a `Code.Location` link with a bad signature or past its
    /// expiry (S3 refuses a presigned URL the same way).
    #[error("{0}")]
    AccessDenied(String),
    /// 404 `ResourceNotFoundException`.
    #[error("{0}")]
    ResourceNotFound(String),
    /// 404 `ProvisionedConcurrencyConfigNotFoundException`.
    #[error("{0}")]
    ProvisionedConcurrencyConfigNotFound(String),
    /// 404 `UnknownOperationException`: no operation has this method and path.
    #[error("{0}")]
    UnknownOperation(String),
    /// 409 `ResourceConflictException`.
    #[error("{0}")]
    ResourceConflict(String),
    /// 412 `PreconditionFailedException`.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413 `RequestEntityTooLargeException` (the model's `RequestTooLargeException`).
    #[error("{0}")]
    RequestTooLarge(String),
    /// 429 `TooManyRequestsException` with its `Reason` and a `Retry-After` header.
    #[error("Rate Exceeded.")]
    TooManyRequests {
        /// Which limit.
        reason: &'static str,
    },
    /// 500 `ServiceException`; the detail is logged, not sent.
    #[error("{0}")]
    Service(String),
}

impl ApiError {
    /// The error code (`x-amzn-ErrorType`).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "ValidationException",
            ApiError::InvalidParameterValue(_) => "InvalidParameterValueException",
            ApiError::InvalidRequestContent(_) => "InvalidRequestContentException",
            ApiError::AccessDenied(_) => "AccessDeniedException",
            ApiError::ResourceNotFound(_) => "ResourceNotFoundException",
            ApiError::ProvisionedConcurrencyConfigNotFound(_) => {
                "ProvisionedConcurrencyConfigNotFoundException"
            }
            ApiError::UnknownOperation(_) => "UnknownOperationException",
            ApiError::ResourceConflict(_) => "ResourceConflictException",
            ApiError::PreconditionFailed(_) => "PreconditionFailedException",
            ApiError::RequestTooLarge(_) => "RequestEntityTooLargeException",
            ApiError::TooManyRequests { .. } => "TooManyRequestsException",
            ApiError::Service(_) => "ServiceException",
        }
    }

    /// The modelled status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_)
            | ApiError::InvalidParameterValue(_)
            | ApiError::InvalidRequestContent(_) => StatusCode::BAD_REQUEST,
            ApiError::AccessDenied(_) => StatusCode::FORBIDDEN,
            ApiError::ResourceNotFound(_)
            | ApiError::ProvisionedConcurrencyConfigNotFound(_)
            | ApiError::UnknownOperation(_) => StatusCode::NOT_FOUND,
            ApiError::ResourceConflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Service(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the model names the message member `Message` (else `message`).
    fn capital_message(&self) -> bool {
        match self {
            ApiError::AccessDenied(_)
            | ApiError::ResourceNotFound(_)
            | ApiError::Service(_)
            | ApiError::UnknownOperation(_) => true,
            ApiError::Validation(_)
            | ApiError::InvalidParameterValue(_)
            | ApiError::InvalidRequestContent(_)
            | ApiError::ResourceConflict(_)
            | ApiError::PreconditionFailed(_)
            | ApiError::RequestTooLarge(_)
            | ApiError::ProvisionedConcurrencyConfigNotFound(_)
            | ApiError::TooManyRequests { .. } => false,
        }
    }

    /// `User` for client faults, `Service` for server faults.
    fn fault(&self) -> &'static str {
        if self.status().is_server_error() {
            "Service"
        } else {
            "User"
        }
    }

    /// The HTTP response: status, `x-amzn-ErrorType`, and `{"Type", "message"|"Message"}`.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let message = match self {
            ApiError::Service(detail) => {
                tracing::error!(%detail, "service error");
                "An internal error occurred in lamina; see the server log".to_string()
            }
            other => other.to_string(),
        };
        let mut body = serde_json::Map::new();
        body.insert("Type".into(), self.fault().into());
        body.insert(
            if self.capital_message() {
                "Message"
            } else {
                "message"
            }
            .into(),
            message.into(),
        );
        body.insert("__type".into(), self.code().into());
        if let ApiError::TooManyRequests { reason } = self {
            body.insert("Reason".into(), (*reason).into());
        }
        let mut resp = Response::new(Full::new(Bytes::from(
            serde_json::Value::Object(body).to_string(),
        )));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.code()));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        if let ApiError::TooManyRequests { .. } = self {
            h.insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Validation(m) => ApiError::Validation(m),
            InputError::InvalidParameterValue(m) => ApiError::InvalidParameterValue(m),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Input(i) => i.into(),
            ResolveError::Elsewhere(arn) => {
                ApiError::ResourceNotFound(format!("Function not found: {arn}"))
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(arn) => ApiError::ResourceNotFound(format!("Function not found: {arn}")),
            StoreError::AlreadyExists(name) => {
                ApiError::ResourceConflict(format!("Function already exist: {name}"))
            }
            StoreError::RevisionMismatch { .. } => ApiError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
            ),
            StoreError::AliasExists(arn) => {
                ApiError::ResourceConflict(format!("Alias already exists: {arn}"))
            }
            e @ StoreError::AliasNotFound(_) => ApiError::ResourceNotFound(e.to_string()),
            // AWS's wording names only the aliases.
            StoreError::VersionInUse { aliases, .. } => ApiError::ResourceConflict(format!(
                "Unable to delete version because the following aliases reference it: [{aliases}]"
            )),
            other => ApiError::Service(other.to_string()),
        }
    }
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> Self {
        match e {
            InvokeError::NotFound(_) => ApiError::ResourceNotFound(e.to_string()),
            InvokeError::NotActive { .. } => ApiError::ResourceConflict(e.to_string()),
            InvokeError::Throttled { reason } => ApiError::TooManyRequests { reason },
            InvokeError::Store(s) => s.into(),
            InvokeError::Internal(m) => ApiError::Service(m),
        }
    }
}
