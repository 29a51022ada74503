//! PutFunctionConcurrency, GetFunctionConcurrency, DeleteFunctionConcurrency: reserved
//! concurrency, with Lambda's rule that at least 100 of the account limit stay unreserved.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::functions::{not_found, resolve_unqualified};
use crate::{empty, json, parse_json, ApiState, Ctx, Resp};
use lamina_types::validate::InputError;

/// What must stay unreserved of the account's concurrency limit.
pub(crate) const MIN_UNRESERVED: u64 = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRequest {
    reserved_concurrent_executions: Option<i64>,
}

/// PUT /2017-10-31/functions/{FunctionName}/concurrency
pub(crate) async fn put(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    let req: PutRequest = parse_json(body)?;
    let value = req
        .reserved_concurrent_executions
        .ok_or_else(|| InputError::missing("reservedConcurrentExecutions"))?;
    if value < 0 {
        return Err(InputError::validation(
            "reservedConcurrentExecutions",
            &value.to_string(),
            "Member must have value greater than or equal to 0",
        )
        .into());
    }
    if state.store.get_function(&key).await?.is_none() {
        return Err(not_found(&key, None));
    }
    let others = state
        .store
        .total_reserved(&key.account, &key.region, Some(&key))
        .await?;
    let limit = u64::from(state.invoker.concurrency_limit());
    if limit.saturating_sub(others).saturating_sub(value as u64) < MIN_UNRESERVED
        || others + value as u64 > limit
    {
        return Err(ApiError::InvalidParameterValue(format!(
            "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{MIN_UNRESERVED}]."
        )));
    }
    let value = u32::try_from(value).unwrap_or(u32::MAX);
    state
        .store
        .set_reserved_concurrency(&key, Some(value))
        .await?;
    Ok(json(
        StatusCode::OK,
        &json!({ "ReservedConcurrentExecutions": value }),
    ))
}

/// GET /2019-09-30/functions/{FunctionName}/concurrency
pub(crate) async fn get(state: &ApiState, ctx: &Ctx, name: &str) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    let record = state
        .store
        .get_function(&key)
        .await?
        .ok_or_else(|| not_found(&key, None))?;
    let out = match record.reserved_concurrency {
        Some(v) => json!({ "ReservedConcurrentExecutions": v }),
        None => json!({}),
    };
    Ok(json(StatusCode::OK, &out))
}

/// DELETE /2017-10-31/functions/{FunctionName}/concurrency
pub(crate) async fn delete(state: &ApiState, ctx: &Ctx, name: &str) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    state.store.set_reserved_concurrency(&key, None).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
