//! `Status` objects: how the API server reports every failure (and some successes).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::resource::Resource;

/// The `reason` values of metav1.StatusReason the fake produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    AlreadyExists,
    Conflict,
    Expired,
    Invalid,
    MethodNotAllowed,
    NotAcceptable,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    InternalError,
    ServiceUnavailable,
    Timeout,
    Unknown,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Expired => "Expired",
            Reason::Invalid => "Invalid",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Timeout => "Timeout",
            Reason::Unknown => "",
        }
    }

    /// The reason the real server pairs with an HTTP code (used by `fail_next`).
    pub(crate) fn for_code(code: u16) -> Reason {
        match code {
            400 => Reason::BadRequest,
            401 => Reason::Unauthorized,
            403 => Reason::Forbidden,
            404 => Reason::NotFound,
            405 => Reason::MethodNotAllowed,
            406 => Reason::NotAcceptable,
            409 => Reason::Conflict,
            410 => Reason::Expired,
            413 => Reason::RequestEntityTooLarge,
            415 => Reason::UnsupportedMediaType,
            422 => Reason::Invalid,
            429 => Reason::TooManyRequests,
            500 => Reason::InternalError,
            503 => Reason::ServiceUnavailable,
            504 => Reason::Timeout,
            _ => Reason::Unknown,
        }
    }
}

/// A failed request: becomes a `Status` body with the same HTTP code.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: Reason,
    pub(crate) message: String,
    /// `details`: name, group and kind (the plural, as the real server fills it).
    pub(crate) details: Option<Box<Details>>,
    pub(crate) causes: Vec<Value>,
}

#[derive(Clone, Debug)]
pub(crate) struct Details {
    pub(crate) name: String,
    pub(crate) group: String,
    pub(crate) kind: String,
}

impl Details {
    pub(crate) fn of(resource: &Resource, name: &str) -> Details {
        Details {
            name: name.to_owned(),
            group: resource.group.clone(),
            kind: resource.plural.clone(),
        }
    }
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: Reason, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            causes: Vec::new(),
        }
    }

    pub(crate) fn with_details(mut self, details: Details) -> ApiError {
        self.details = Some(Box::new(details));
        self
    }

    pub(crate) fn not_found(resource: &Resource, name: &str) -> ApiError {
        ApiError::new(
            404,
            Reason::NotFound,
            format!("{} \"{name}\" not found", resource.qualified()),
        )
        .with_details(Details::of(resource, name))
    }

    pub(crate) fn already_exists(resource: &Resource, name: &str) -> ApiError {
        ApiError::new(
            409,
            Reason::AlreadyExists,
            format!("{} \"{name}\" already exists", resource.qualified()),
        )
        .with_details(Details::of(resource, name))
    }

    /// 409 Conflict with the real server's wording: "Operation cannot be fulfilled on ...".
    pub(crate) fn conflict(resource: &Resource, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                resource.qualified()
            ),
        )
        .with_details(Details::of(resource, name))
    }

    pub(crate) fn stale(resource: &Resource, name: &str) -> ApiError {
        ApiError::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid: `field` is the JSON path that failed validation.
    pub(crate) fn invalid(resource: &Resource, name: &str, field: &str, why: &str) -> ApiError {
        let mut error = ApiError::new(
            422,
            Reason::Invalid,
            format!("{} \"{name}\" is invalid: {field}: {why}", resource.kind),
        );
        error.details = Some(Box::new(Details {
            name: name.to_owned(),
            group: resource.group.clone(),
            kind: resource.kind.clone(),
        }));
        error
            .causes
            .push(json!({"reason": "FieldValueInvalid", "message": why, "field": field}));
        error
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, Reason::BadRequest, message)
    }

    pub(crate) fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, Reason::Expired, message)
    }

    pub(crate) fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, Reason::MethodNotAllowed, message)
    }

    pub(crate) fn unknown_path() -> ApiError {
        ApiError::new(
            404,
            Reason::NotFound,
            "the server could not find the requested resource",
        )
    }

    pub(crate) fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code,
        });
        if self.details.is_some() || !self.causes.is_empty() {
            let mut details = serde_json::Map::new();
            if let Some(d) = &self.details {
                details.insert("name".into(), json!(d.name));
                details.insert("group".into(), json!(d.group));
                details.insert("kind".into(), json!(d.kind));
            }
            if !self.causes.is_empty() {
                details.insert("causes".into(), Value::Array(self.causes.clone()));
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// A `Status` with `status: Success`, as returned by binding, eviction and some deletes.
pub(crate) fn success(code: u16, details: Option<Details>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": code,
    });
    if let Some(d) = details {
        status["details"] = json!({"name": d.name, "group": d.group, "kind": d.kind});
    }
    status
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.to_status())).into_response()
    }
}
