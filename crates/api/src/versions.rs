//! PublishVersion and ListVersionsByFunction. Versions are immutable snapshots of `$LATEST`
//! numbered 1, 2, ... (never reused); deleting one is DeleteFunction with a `Qualifier`.

use chrono::Utc;
use http::StatusCode;
use lamina_store::MakeVersion;
use lamina_types::function::{state, update_status, FunctionVersion, PublishVersionRequest};
use lamina_types::names::FunctionKey;
use lamina_types::time::lambda_timestamp;
use lamina_types::validate::InputError;
use serde_json::json;

use crate::error::ApiError;
use crate::functions::{load, not_found, resolve_unqualified, revision, spawn_settle};
use crate::page::{with_next, Page};
use crate::{json, parse_json, ApiState, Ctx, Resp};

/// POST /2015-03-31/functions/{FunctionName}/versions
pub(crate) async fn publish(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    let req: PublishVersionRequest = parse_json(body)?;
    if let Some(d) = &req.description {
        if d.chars().count() > 256 {
            return Err(InputError::validation(
                "description",
                d,
                "Member must have length less than or equal to 256",
            )
            .into());
        }
    }
    let latest = load(state, &key, None).await?;
    if latest.config.last_update_status.as_deref() == Some(update_status::IN_PROGRESS) {
        return Err(ApiError::ResourceConflict(format!(
            "The operation cannot be performed at this time. An update is in progress for resource: {}",
            key.arn()
        )));
    }
    if let Some(sha) = &req.code_sha256 {
        if sha != &latest.config.code_sha256 {
            // AWS answers a CodeSha256 guard failure with 400, not 412.
            return Err(ApiError::InvalidParameterValue(format!(
                "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
                latest.config.code_sha256
            )));
        }
    }
    let published =
        publish_latest(state, &key, req.revision_id.as_deref(), req.description).await?;
    Ok(json(StatusCode::CREATED, &published.config))
}

/// Publish `$LATEST` (or return the last version if nothing changed since it).
pub(crate) async fn publish_latest(
    state: &ApiState,
    key: &FunctionKey,
    expected_revision: Option<&str>,
    description: Option<String>,
) -> Result<FunctionVersion, ApiError> {
    let now = lambda_timestamp(Utc::now());
    let make: MakeVersion = Box::new(move |latest, number| {
        let mut v = latest.clone();
        v.config.version = number.to_string();
        v.config.function_arn = v.key.qualified_arn(&v.config.version);
        v.config.revision_id = revision();
        v.config.last_modified = now;
        if let Some(d) = description {
            v.config.description = d;
        }
        v
    });
    let (version, created) = state
        .store
        .publish_version(key, expected_revision, make)
        .await?;
    let c = &version.config;
    if created
        && (c.state.as_deref() == Some(state::PENDING)
            || c.last_update_status.as_deref() == Some(update_status::IN_PROGRESS))
    {
        spawn_settle(state, key.clone(), &c.version, c.revision_id.clone());
    }
    Ok(version)
}

/// GET /2015-03-31/functions/{FunctionName}/versions
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
    let mut page = state
        .store
        .list_versions(&key, after.as_deref(), limit + 1)
        .await?;
    let next = page_request.cut(&mut page, |item| item.config.version.to_string());
    let versions: Vec<_> = page
        .into_iter()
        .map(|v| {
            let mut c = v.config;
            c.function_arn = key.qualified_arn(&c.version);
            c
        })
        .collect();
    let mut out = json!({ "Versions": versions });
    with_next(&mut out, next);
    Ok(json(StatusCode::OK, &out))
}
