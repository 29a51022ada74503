//! Put/Get/Delete/ListProvisionedConcurrencyConfig(s): environments started ahead of time for
//! a version or an alias (its main version), kept warm and never reaped while configured.
//!
//! A put is stored as `IN_PROGRESS` and answered with 202; a task then starts the environments
//! and records `READY` (allocated = available = requested) or `FAILED` with the reason.

use std::sync::Arc;

use chrono::Utc;
use http::StatusCode;
use lamina_invoke::Invoker;
use lamina_store::{Store, StoreError};
use lamina_types::function::ProvisionedConcurrencyConfig;
use lamina_types::names::{FunctionKey, LATEST};
use lamina_types::time::lambda_timestamp;
use lamina_types::validate::InputError;
use serde::Deserialize;
use serde_json::json;

use crate::concurrency::MIN_UNRESERVED;
use crate::error::ApiError;
use crate::functions::{load, not_found, resolve_unqualified};
use crate::page::{with_next, Page};
use crate::{empty, json, parse_json, ApiState, Ctx, Resp};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRequest {
    provisioned_concurrent_executions: Option<i64>,
}

fn qualifier_of(qualifier: Option<&str>) -> Result<&str, ApiError> {
    match qualifier {
        None | Some("") => Err(InputError::missing("qualifier").into()),
        Some(LATEST) => Err(ApiError::InvalidParameterValue(
            "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
                .into(),
        )),
        Some(q) => Ok(q),
    }
}

/// PUT /2019-09-30/functions/{FunctionName}/provisioned-concurrency?Qualifier=
pub(crate) async fn put(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    let qualifier = qualifier_of(qualifier)?;
    let req: PutRequest = parse_json(body)?;
    let requested = req
        .provisioned_concurrent_executions
        .ok_or_else(|| InputError::missing("provisionedConcurrentExecutions"))?;
    if requested < 1 {
        return Err(InputError::validation(
            "provisionedConcurrentExecutions",
            &requested.to_string(),
            "Member must have value greater than or equal to 1",
        )
        .into());
    }
    let record = state
        .store
        .get_function(&key)
        .await?
        .ok_or_else(|| not_found(&key, None))?;
    load(state, &key, Some(qualifier)).await?;
    // Other qualifiers' provisioned environments of this function count too.
    let others: u64 = state
        .store
        .list_provisioned(Some(&key))
        .await?
        .iter()
        .filter(|(_, c)| c.qualifier != qualifier)
        .map(|(_, c)| u64::from(c.requested_provisioned_concurrent_executions))
        .sum();
    let wanted = others + requested as u64;
    match record.reserved_concurrency {
        Some(reserved) if wanted > u64::from(reserved) => {
            return Err(ApiError::InvalidParameterValue(format!(
                "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function ({reserved})"
            )))
        }
        Some(_) => {}
        None => {
            let reserved = state
                .store
                .total_reserved(&key.account, &key.region, None)
                .await?;
            let unreserved =
                u64::from(state.invoker.concurrency_limit()).saturating_sub(reserved);
            if wanted + MIN_UNRESERVED > unreserved {
                return Err(ApiError::InvalidParameterValue(format!(
                    "Requested Provisioned Concurrency ({wanted}) would leave fewer than {MIN_UNRESERVED} of the account's {unreserved} unreserved concurrent executions"
                )));
            }
        }
    }
    let config = ProvisionedConcurrencyConfig {
        qualifier: qualifier.to_string(),
        requested_provisioned_concurrent_executions: requested as u32,
        available_provisioned_concurrent_executions: 0,
        allocated_provisioned_concurrent_executions: 0,
        status: "IN_PROGRESS".into(),
        status_reason: None,
        last_modified: lambda_timestamp(Utc::now()),
    };
    state.store.put_provisioned(&key, &config).await?;
    spawn_provision(
        state.store.clone(),
        state.invoker.clone(),
        key,
        config.clone(),
    );
    Ok(json(StatusCode::ACCEPTED, &config))
}

/// Start the environments of `config` and record how that went.
fn spawn_provision(
    store: Arc<dyn Store>,
    invoker: Invoker,
    key: FunctionKey,
    config: ProvisionedConcurrencyConfig,
) {
    tokio::spawn(async move {
        let count = config.requested_provisioned_concurrent_executions as usize;
        let outcome = invoker.provision(&key, &config.qualifier, count).await;
        // Only record the outcome if the configuration was not replaced or deleted meanwhile.
        match store.get_provisioned(&key, &config.qualifier).await {
            Ok(Some(current)) if current == config => {}
            _ => return,
        }
        let mut done = config;
        match outcome {
            Ok(()) => {
                done.status = "READY".into();
                done.allocated_provisioned_concurrent_executions =
                    done.requested_provisioned_concurrent_executions;
                done.available_provisioned_concurrent_executions =
                    done.requested_provisioned_concurrent_executions;
            }
            Err(reason) => {
                done.status = "FAILED".into();
                done.status_reason = Some(reason);
            }
        }
        done.last_modified = lambda_timestamp(Utc::now());
        if let Err(e) = store.put_provisioned(&key, &done).await {
            tracing::warn!(function = %key, error = %e, "cannot record provisioned concurrency status");
        }
    });
}

/// Start the provisioned environments of every stored configuration (at start-up).
pub async fn restore_provisioned(
    store: Arc<dyn Store>,
    invoker: &Invoker,
) -> Result<usize, StoreError> {
    let all = store.list_provisioned(None).await?;
    let n = all.len();
    for (key, mut config) in all {
        config.status = "IN_PROGRESS".into();
        config.status_reason = None;
        store.put_provisioned(&key, &config).await?;
        spawn_provision(store.clone(), invoker.clone(), key, config);
    }
    Ok(n)
}

fn config_not_found() -> ApiError {
    ApiError::ProvisionedConcurrencyConfigNotFound(
        "No Provisioned Concurrency Config found for this function".into(),
    )
}

/// GET /2019-09-30/functions/{FunctionName}/provisioned-concurrency?Qualifier=
pub(crate) async fn get(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    let qualifier = qualifier_of(qualifier)?;
    if state.store.get_function(&key).await?.is_none() {
        return Err(not_found(&key, None));
    }
    let config = state
        .store
        .get_provisioned(&key, qualifier)
        .await?
        .ok_or_else(config_not_found)?;
    Ok(json(StatusCode::OK, &config))
}

/// DELETE /2019-09-30/functions/{FunctionName}/provisioned-concurrency?Qualifier=
pub(crate) async fn delete(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    let qualifier = qualifier_of(qualifier)?;
    if state.store.get_function(&key).await?.is_none() {
        return Err(not_found(&key, None));
    }
    if !state.store.delete_provisioned(&key, qualifier).await? {
        return Err(config_not_found());
    }
    state.invoker.unprovision(&key, qualifier).await;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// GET /2019-09-30/functions/{FunctionName}/provisioned-concurrency?List=ALL
pub(crate) async fn list(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    marker: Option<String>,
    max_items: Option<String>,
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    if state.store.get_function(&key).await?.is_none() {
        return Err(not_found(&key, None));
    }
    let page_request = Page::parse(marker.as_deref(), max_items.as_deref())?;
    let (limit, after) = (page_request.limit, page_request.after.clone());
    let mut page: Vec<ProvisionedConcurrencyConfig> = state
        .store
        .list_provisioned(Some(&key))
        .await?
        .into_iter()
        .map(|(_, c)| c)
        .filter(|c| after.as_deref().is_none_or(|a| c.qualifier.as_str() > a))
        .take(limit + 1)
        .collect();
    let next = page_request.cut(&mut page, |item| item.qualifier.to_string());
    let items: Vec<serde_json::Value> = page
        .iter()
        .map(|c| {
            let mut v = json!(c);
            v["FunctionArn"] = json!(key.qualified_arn(&c.qualifier));
            v
        })
        .collect();
    let mut out = json!({ "ProvisionedConcurrencyConfigs": items });
    with_next(&mut out, next);
    Ok(json(StatusCode::OK, &out))
}
