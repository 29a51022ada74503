//! TagResource, UntagResource, ListTags. Tags belong to the function (not to versions); the
//! resource is the function's ARN.

use http::StatusCode;
use lamina_types::function::Tags;
use lamina_types::names::{FunctionKey, FunctionRef};
use lamina_types::validate::{self, InputError};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::{empty, json, parse_json, ApiState, Ctx, Resp};

fn function_of(ctx: &Ctx, resource: &str) -> Result<FunctionKey, ApiError> {
    if !resource.starts_with("arn:") {
        return Err(InputError::validation(
            "resource",
            resource,
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:(function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?|code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|capacity-provider:[a-zA-Z0-9-_]+)",
        )
        .into());
    }
    let (key, qualifier) = FunctionRef::parse_field(resource, "resource")?.resolve(
        &ctx.caller.account,
        &ctx.caller.region,
        None,
    )?;
    if qualifier.is_some() {
        return Err(ApiError::InvalidParameterValue(
            "Tags are not supported on function versions or aliases; tag the unqualified function ARN".into(),
        ));
    }
    Ok(key)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagRequest {
    tags: Option<Tags>,
}

/// POST /2017-03-31/tags/{Resource}
pub(crate) async fn tag(
    state: &ApiState,
    ctx: &Ctx,
    resource: &str,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let key = function_of(ctx, resource)?;
    let req: TagRequest = parse_json(body)?;
    let tags = req.tags.ok_or_else(|| InputError::missing("tags"))?;
    validate::check_tags(&tags)?;
    state.store.tag(&key, &tags).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// DELETE /2017-03-31/tags/{Resource}?tagKeys=...
pub(crate) async fn untag(
    state: &ApiState,
    ctx: &Ctx,
    resource: &str,
    keys: &[String],
) -> Result<Resp, ApiError> {
    let key = function_of(ctx, resource)?;
    if keys.is_empty() {
        return Err(InputError::missing("tagKeys").into());
    }
    state.store.untag(&key, keys).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// GET /2017-03-31/tags/{Resource}
pub(crate) async fn list(state: &ApiState, ctx: &Ctx, resource: &str) -> Result<Resp, ApiError> {
    let key = function_of(ctx, resource)?;
    let record =
        state.store.get_function(&key).await?.ok_or_else(|| {
            ApiError::ResourceNotFound(format!("Function not found: {}", key.arn()))
        })?;
    Ok(json(StatusCode::OK, &json!({ "Tags": record.tags })))
}
