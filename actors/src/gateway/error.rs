//! [`ApiError`]: one error type for both front ends, mapped to a gRPC status code and
//! an HTTP status with a JSON body `{"error": …}`.

use serde::Serialize;

use crate::topic::TopicError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    Unauthenticated,
    PermissionDenied,
    Unavailable,
    DeadlineExceeded,
    Failed,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// Reads an error message from the driver host (its errors are text, as they
    /// cross the dipper wire) and picks its kind. Topic errors are typed: see
    /// `From<TopicError>`.
    pub fn from_actor(message: String) -> Self {
        let m = message.as_str();
        let kind = if m.contains("is not loaded") {
            ErrorKind::NotFound
        } else if m == "timeout" {
            ErrorKind::DeadlineExceeded
        } else if m.contains("not alive")
            || m.contains("not running")
            || m.contains("restarted")
            || m.contains("stopped")
            || m.contains("shutting down")
            || (m.starts_with("driver ") && m.contains(" is "))
        {
            ErrorKind::Unavailable
        } else if m.starts_with("invalid") || m.contains("expected") || m.contains("must") {
            ErrorKind::InvalidArgument
        } else {
            ErrorKind::Failed
        };
        ApiError { kind, message }
    }

    pub fn http_status(&self) -> u16 {
        match self.kind {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Failed => 422,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
            ErrorKind::DeadlineExceeded => 504,
        }
    }

    pub fn grpc_code(&self) -> tonic::Code {
        match self.kind {
            ErrorKind::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::Failed => tonic::Code::FailedPrecondition,
            ErrorKind::Internal => tonic::Code::Internal,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::DeadlineExceeded => tonic::Code::DeadlineExceeded,
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        tonic::Status::new(e.grpc_code(), e.message)
    }
}

impl From<TopicError> for ApiError {
    fn from(e: TopicError) -> Self {
        let kind = match &e {
            TopicError::AutoCreateOff { .. }
            | TopicError::UnknownTopic { .. }
            | TopicError::NoPartition { .. } => ErrorKind::NotFound,
            TopicError::PartitionRequired { .. }
            | TopicError::InvalidName { .. }
            | TopicError::InvalidMsgId { .. }
            | TopicError::PartitionCount { .. }
            | TopicError::TooManyPartitions { .. }
            | TopicError::Conflict { .. } => ErrorKind::InvalidArgument,
            TopicError::Configured { .. } | TopicError::Deleting { .. } => ErrorKind::Failed,
            TopicError::Partition(_) | TopicError::PartitionLimit { .. } => ErrorKind::Failed,
            TopicError::Unavailable(_) => ErrorKind::Unavailable,
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::new(
            ErrorKind::Unavailable,
            format!("broker component unavailable: {e}"),
        )
    }
}
