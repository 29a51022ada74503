//! Put/Update/Get/Delete/ListFunctionEventInvokeConfig(s): retries, event age and destinations
//! of asynchronous invocations, per version or alias (`$LATEST` when no qualifier is given).
//!
//! Put replaces the whole configuration, Update merges the fields it is given. Destinations must
//! be ARNs lamina can deliver to: SQS queues and Lambda functions.

use chrono::Utc;
use http::StatusCode;
use lamina_types::asynchronous::{
    Destination, DestinationConfig, EventInvokeConfig, QueueKey, EVENT_AGE_RANGE,
    RETRY_ATTEMPTS_RANGE,
};
use lamina_types::names::{FunctionKey, FunctionRef, LATEST};
use lamina_types::validate::InputError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::functions::{load, resolve, resolve_unqualified};
use crate::page::{with_next, Page};
use crate::{empty, json, parse_json, ApiState, Ctx, Resp};

/// The longest destination ARN the model allows.
const MAX_DESTINATION_LEN: usize = 350;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigRequest {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
    destination_config: Option<DestinationConfig>,
}

/// The function and qualifier a request names; the version or alias must exist.
async fn target(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
) -> Result<(FunctionKey, String), ApiError> {
    let (key, qualifier) = resolve(ctx, name, qualifier)?;
    load(state, &key, qualifier.as_deref()).await?;
    Ok((key, qualifier.unwrap_or_else(|| LATEST.to_string())))
}

fn check_range(field: &str, value: i64, (lo, hi): (i64, i64)) -> Result<u32, ApiError> {
    if value < lo {
        return Err(InputError::validation(
            field,
            &value.to_string(),
            &format!("Member must have value greater than or equal to {lo}"),
        )
        .into());
    }
    if value > hi {
        return Err(InputError::validation(
            field,
            &value.to_string(),
            &format!("Member must have value less than or equal to {hi}"),
        )
        .into());
    }
    Ok(value as u32)
}

/// A destination must be an SQS queue or Lambda function ARN (the only targets lamina serves).
fn check_destination(field: &str, d: &Option<Destination>) -> Result<(), ApiError> {
    let Some(arn) = d.as_ref().and_then(|d| d.destination.as_deref()) else {
        return Ok(());
    };
    if arn.len() > MAX_DESTINATION_LEN {
        return Err(InputError::validation(
            field,
            arn,
            &format!("Member must have length less than or equal to {MAX_DESTINATION_LEN}"),
        )
        .into());
    }
    let is_queue = QueueKey::from_arn(arn).is_some();
    let is_function = arn.starts_with("arn:aws:lambda:") && FunctionRef::parse(arn).is_ok();
    if !(is_queue || is_function) {
        return Err(ApiError::InvalidParameterValue(format!(
            "The destination ARN {arn} is invalid: lamina delivers to SQS queues (arn:aws:sqs:...) and Lambda functions (arn:aws:lambda:...)"
        )));
    }
    Ok(())
}

/// Check a request's fields and apply them to `config` (all of them for a put, the given ones
/// for an update).
fn apply(config: &mut EventInvokeConfig, req: ConfigRequest) -> Result<(), ApiError> {
    if let Some(n) = req.maximum_retry_attempts {
        config.maximum_retry_attempts = Some(check_range(
            "maximumRetryAttempts",
            n,
            RETRY_ATTEMPTS_RANGE,
        )?);
    }
    if let Some(n) = req.maximum_event_age_in_seconds {
        config.maximum_event_age_in_seconds =
            Some(check_range("maximumEventAgeInSeconds", n, EVENT_AGE_RANGE)?);
    }
    if let Some(d) = req.destination_config {
        check_destination("destinationConfig.onSuccess.destination", &d.on_success)?;
        check_destination("destinationConfig.onFailure.destination", &d.on_failure)?;
        config.destination_config = Some(d);
    }
    config.last_modified = Utc::now().timestamp_millis() as f64 / 1000.0;
    Ok(())
}

/// `FunctionEventInvokeConfig` as AWS returns it.
fn presented(key: &FunctionKey, qualifier: &str, c: &EventInvokeConfig) -> Value {
    let mut out = json!({
        "LastModified": c.last_modified,
        "FunctionArn": key.qualified_arn(qualifier),
        "DestinationConfig": {
            "OnSuccess": c.destination_config.as_ref().and_then(|d| d.on_success.clone()).unwrap_or_default(),
            "OnFailure": c.destination_config.as_ref().and_then(|d| d.on_failure.clone()).unwrap_or_default(),
        },
    });
    if let Some(n) = c.maximum_retry_attempts {
        out["MaximumRetryAttempts"] = json!(n);
    }
    if let Some(n) = c.maximum_event_age_in_seconds {
        out["MaximumEventAgeInSeconds"] = json!(n);
    }
    out
}

fn no_config(key: &FunctionKey, qualifier: &str) -> ApiError {
    ApiError::ResourceNotFound(format!(
        "The function {} doesn't have an EventInvokeConfig",
        key.qualified_arn(qualifier)
    ))
}

/// PUT /2019-09-25/functions/{FunctionName}/event-invoke-config
pub(crate) async fn put(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let req: ConfigRequest = parse_json(body)?;
    let (key, qualifier) = target(state, ctx, name, qualifier).await?;
    let mut config = EventInvokeConfig::default();
    apply(&mut config, req)?;
    state
        .store
        .put_event_config(&key, &qualifier, &config)
        .await?;
    Ok(json(StatusCode::OK, &presented(&key, &qualifier, &config)))
}

/// POST /2019-09-25/functions/{FunctionName}/event-invoke-config
pub(crate) async fn update(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let req: ConfigRequest = parse_json(body)?;
    let (key, qualifier) = target(state, ctx, name, qualifier).await?;
    let mut config = state
        .store
        .get_event_config(&key, &qualifier)
        .await?
        .ok_or_else(|| no_config(&key, &qualifier))?;
    apply(&mut config, req)?;
    state
        .store
        .put_event_config(&key, &qualifier, &config)
        .await?;
    Ok(json(StatusCode::OK, &presented(&key, &qualifier, &config)))
}

/// GET /2019-09-25/functions/{FunctionName}/event-invoke-config
pub(crate) async fn get(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Resp, ApiError> {
    let (key, qualifier) = target(state, ctx, name, qualifier).await?;
    let config = state
        .store
        .get_event_config(&key, &qualifier)
        .await?
        .ok_or_else(|| no_config(&key, &qualifier))?;
    Ok(json(StatusCode::OK, &presented(&key, &qualifier, &config)))
}

/// DELETE /2019-09-25/functions/{FunctionName}/event-invoke-config
pub(crate) async fn delete(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Resp, ApiError> {
    let (key, qualifier) = target(state, ctx, name, qualifier).await?;
    if !state.store.delete_event_config(&key, &qualifier).await? {
        return Err(no_config(&key, &qualifier));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// GET /2019-09-25/functions/{FunctionName}/event-invoke-config/list
pub(crate) async fn list(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    marker: Option<String>,
    max_items: Option<String>,
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    load(state, &key, None).await?;
    let page = Page::parse(marker.as_deref(), max_items.as_deref())?;
    let mut items: Vec<(String, EventInvokeConfig)> = state
        .store
        .list_event_configs(&key)
        .await?
        .into_iter()
        .filter(|(q, _)| page.after.as_deref().is_none_or(|a| q.as_str() > a))
        .take(page.limit + 1)
        .collect();
    let next = page.cut(&mut items, |(q, _)| q.clone());
    let mut out = json!({
        "FunctionEventInvokeConfigs": items
            .iter()
            .map(|(q, c)| presented(&key, q, c))
            .collect::<Vec<_>>(),
    });
    with_next(&mut out, next);
    Ok(json(StatusCode::OK, &out))
}
