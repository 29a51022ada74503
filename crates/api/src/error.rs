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

/// A failure of an SQS-compatible call, in SQS's shape.
///
/// On the JSON protocol: status 400 (500 for `InternalError`), body
/// `{"__type": "com.amazonaws.sqs#{code}", "message": ...}` and the legacy query code in
/// `x-amzn-query-error: {query code};Sender` (the model is `awsQueryCompatible`). On the query
/// protocol: an `ErrorResponse` XML document with the query code. [`SqsError::code`],
/// [`SqsError::query_code`] and [`SqsError::status`] are exhaustive matches.
#[derive(Debug, thiserror::Error)]
pub enum SqsError {
    /// The queue named by a URL or name does not exist.
    #[error("The specified queue does not exist.")]
    QueueDoesNotExist,
    /// A queue of that name exists with other attributes.
    #[error("A queue already exists with the same name and a different value for attribute {0}")]
    QueueNameExists(String),
    /// An attribute name SQS does not know.
    #[error("Unknown Attribute {0}.")]
    InvalidAttributeName(String),
    /// An attribute value out of range or malformed.
    #[error("{0}")]
    InvalidAttributeValue(String),
    /// A parameter out of range (also an oversize message).
    #[error("{0}")]
    InvalidParameterValue(String),
    /// A required parameter is missing.
    #[error("The request must contain the parameter {0}.")]
    MissingParameter(String),
    /// Characters SQS does not allow in a message.
    #[error("Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF")]
    InvalidMessageContents,
    /// A receipt handle this queue did not give out.
    #[error("The input receipt handle \"{0}\" is not a valid receipt handle.")]
    ReceiptHandleIsInvalid(String),
    /// ChangeMessageVisibility of a message that is not in flight.
    #[error("Message does not exist or is not available for visibility timeout change.")]
    MessageNotInflight,
    /// A batch of more than 10 entries.
    #[error("Maximum number of entries per request are 10. You have sent {0}.")]
    TooManyEntriesInBatchRequest(usize),
    /// A batch without entries.
    #[error("There should be at least one {0} in the request.")]
    EmptyBatchRequest(String),
    /// Two entries of a batch with one id.
    #[error("Id {0} repeated.")]
    BatchEntryIdsNotDistinct(String),
    /// A batch entry id with characters SQS does not allow.
    #[error("A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")]
    InvalidBatchEntryId,
    /// A batch whose messages add up to more than the queue's limit.
    #[error("Batch requests cannot be longer than {0} bytes. You have sent {1} bytes.")]
    BatchRequestTooLong(usize, usize),
    /// An action lamina does not serve.
    #[error("lamina does not serve the SQS action {0}")]
    UnsupportedOperation(String),
    /// A body that is not the protocol's shape.
    #[error("{0}")]
    MalformedRequest(String),
    /// A server fault; the detail is logged, not sent.
    #[error("{0}")]
    Internal(String),
}

impl SqsError {
    /// The shape name (`__type` after `com.amazonaws.sqs#`).
    pub fn code(&self) -> &'static str {
        match self {
            SqsError::QueueDoesNotExist => "QueueDoesNotExist",
            SqsError::QueueNameExists(_) => "QueueNameExists",
            SqsError::InvalidAttributeName(_) => "InvalidAttributeName",
            SqsError::InvalidAttributeValue(_) => "InvalidAttributeValue",
            SqsError::InvalidParameterValue(_) => "InvalidParameterValue",
            SqsError::MissingParameter(_) => "MissingParameter",
            SqsError::InvalidMessageContents => "InvalidMessageContents",
            SqsError::ReceiptHandleIsInvalid(_) => "ReceiptHandleIsInvalid",
            SqsError::MessageNotInflight => "MessageNotInflight",
            SqsError::TooManyEntriesInBatchRequest(_) => "TooManyEntriesInBatchRequest",
            SqsError::EmptyBatchRequest(_) => "EmptyBatchRequest",
            SqsError::BatchEntryIdsNotDistinct(_) => "BatchEntryIdsNotDistinct",
            SqsError::InvalidBatchEntryId => "InvalidBatchEntryId",
            SqsError::BatchRequestTooLong(..) => "BatchRequestTooLong",
            SqsError::UnsupportedOperation(_) => "UnsupportedOperation",
            SqsError::MalformedRequest(_) => "MalformedQueryString",
            SqsError::Internal(_) => "InternalError",
        }
    }

    /// The legacy query-protocol code (`x-amzn-query-error` and the XML `Code`).
    pub fn query_code(&self) -> &'static str {
        match self {
            SqsError::QueueDoesNotExist => "AWS.SimpleQueueService.NonExistentQueue",
            SqsError::QueueNameExists(_) => "QueueAlreadyExists",
            SqsError::InvalidAttributeName(_) => "InvalidAttributeName",
            SqsError::InvalidAttributeValue(_) => "InvalidAttributeValue",
            SqsError::InvalidParameterValue(_) => "InvalidParameterValue",
            SqsError::MissingParameter(_) => "MissingParameter",
            SqsError::InvalidMessageContents => "InvalidMessageContents",
            SqsError::ReceiptHandleIsInvalid(_) => "ReceiptHandleIsInvalid",
            SqsError::MessageNotInflight => "AWS.SimpleQueueService.MessageNotInflight",
            SqsError::TooManyEntriesInBatchRequest(_) => {
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
            }
            SqsError::EmptyBatchRequest(_) => "AWS.SimpleQueueService.EmptyBatchRequest",
            SqsError::BatchEntryIdsNotDistinct(_) => {
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
            }
            SqsError::InvalidBatchEntryId => "AWS.SimpleQueueService.InvalidBatchEntryId",
            SqsError::BatchRequestTooLong(..) => "AWS.SimpleQueueService.BatchRequestTooLong",
            SqsError::UnsupportedOperation(_) => "AWS.SimpleQueueService.UnsupportedOperation",
            SqsError::MalformedRequest(_) => "MalformedQueryString",
            SqsError::Internal(_) => "InternalError",
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            SqsError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            SqsError::QueueDoesNotExist
            | SqsError::QueueNameExists(_)
            | SqsError::InvalidAttributeName(_)
            | SqsError::InvalidAttributeValue(_)
            | SqsError::InvalidParameterValue(_)
            | SqsError::MissingParameter(_)
            | SqsError::InvalidMessageContents
            | SqsError::ReceiptHandleIsInvalid(_)
            | SqsError::MessageNotInflight
            | SqsError::TooManyEntriesInBatchRequest(_)
            | SqsError::EmptyBatchRequest(_)
            | SqsError::BatchEntryIdsNotDistinct(_)
            | SqsError::InvalidBatchEntryId
            | SqsError::BatchRequestTooLong(..)
            | SqsError::UnsupportedOperation(_)
            | SqsError::MalformedRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// `Sender` for client faults, `Receiver` for server faults.
    pub fn fault(&self) -> &'static str {
        if self.status().is_server_error() {
            "Receiver"
        } else {
            "Sender"
        }
    }

    /// The message sent to the client (server faults stay in the log).
    pub fn message(&self) -> String {
        match self {
            SqsError::Internal(detail) => {
                tracing::error!(%detail, "sqs service error");
                "An internal error occurred in lamina; see the server log".to_string()
            }
            other => other.to_string(),
        }
    }

    /// The JSON-protocol response.
    pub fn to_json_response(&self) -> Response<Full<Bytes>> {
        let body = serde_json::json!({
            "__type": format!("com.amazonaws.sqs#{}", self.code()),
            "message": self.message(),
        });
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("{};{}", self.query_code(), self.fault())) {
            h.insert("x-amzn-query-error", v);
        }
        resp
    }
}

impl From<StoreError> for SqsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::QueueNotFound(_) => SqsError::QueueDoesNotExist,
            other => SqsError::Internal(other.to_string()),
        }
    }
}
