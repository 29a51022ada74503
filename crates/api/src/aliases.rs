//! CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases.
//!
//! An alias names one version (or `$LATEST`) and may send a share of invocations to one more
//! published version (`RoutingConfig.AdditionalVersionWeights`). Lambda's rules: at most one
//! additional version, a weight in [0, 1], neither version `$LATEST`, two different versions
//! with the same dead-letter configuration.

use http::StatusCode;
use lamina_types::function::{
    AliasConfiguration, AliasRoutingConfiguration, CreateAliasRequest, UpdateAliasRequest,
};
use lamina_types::names::{is_name, is_version_number, FunctionKey, LATEST};
use lamina_types::validate::InputError;
use serde_json::json;

use crate::error::ApiError;
use crate::functions::{load, not_found, resolve_unqualified, revision};
use crate::page::{with_next, Page};
use crate::{empty, json, parse_json, ApiState, Ctx, Resp};

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.len() > 128 {
        return Err(InputError::validation(
            "name",
            name,
            "Member must have length less than or equal to 128",
        )
        .into());
    }
    let ok = !name.is_empty() && is_name(name) && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(InputError::validation(
            "name",
            name,
            "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)",
        )
        .into())
    }
}

fn check_version_ref(version: &str) -> Result<(), ApiError> {
    if version == LATEST || is_version_number(version) {
        Ok(())
    } else {
        Err(InputError::validation(
            "functionVersion",
            version,
            "Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)",
        )
        .into())
    }
}

/// Check a routing configuration against `main` (the alias's version); an empty one means
/// no routing.
async fn check_routing(
    state: &ApiState,
    key: &FunctionKey,
    main: &str,
    routing: Option<AliasRoutingConfiguration>,
) -> Result<Option<AliasRoutingConfiguration>, ApiError> {
    let Some(routing) = routing.filter(|r| !r.additional_version_weights.is_empty()) else {
        return Ok(None);
    };
    for (version, weight) in &routing.additional_version_weights {
        if !(0.0..=1.0).contains(weight) {
            return Err(InputError::validation(
                "routingConfig.additionalVersionWeights",
                &format!("{{{version}={weight}}}"),
                "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0]",
            )
            .into());
        }
    }
    if routing.additional_version_weights.len() > 1 {
        return Err(ApiError::InvalidParameterValue(
            "Number of items in AdditionalVersionWeights cannot be greater than 1".into(),
        ));
    }
    let (extra, weight) = routing
        .additional_version_weights
        .iter()
        .next()
        .expect("one entry");
    if !is_version_number(extra) {
        return Err(InputError::validation(
            "routingConfig.additionalVersionWeights",
            &format!("{{{extra}={weight}}}"),
            "Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [0-9]+]",
        )
        .into());
    }
    if main == LATEST {
        return Err(ApiError::InvalidParameterValue(
            "$LATEST is not supported for an alias pointing to more than 1 version".into(),
        ));
    }
    if extra == main {
        return Err(ApiError::InvalidParameterValue(format!(
            "Invalid function version {extra}. Function version {extra} is already included in routing configuration."
        )));
    }
    let main_version = load(state, key, Some(main)).await?;
    let extra_version = load(state, key, Some(extra)).await?;
    if main_version.config.dead_letter_config != extra_version.config.dead_letter_config {
        return Err(ApiError::InvalidParameterValue(format!(
            "Versions {main} and {extra} of {} have different DeadLetterConfig; an alias can only route between versions with the same one",
            key.arn()
        )));
    }
    Ok(Some(routing))
}

/// POST /2015-03-31/functions/{FunctionName}/aliases
pub(crate) async fn create(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    let req: CreateAliasRequest = parse_json(body)?;
    let alias = req.name.ok_or_else(|| InputError::missing("name"))?;
    check_name(&alias)?;
    let version = req
        .function_version
        .ok_or_else(|| InputError::missing("functionVersion"))?;
    check_version_ref(&version)?;
    if state.store.get_function(&key).await?.is_none() {
        return Err(not_found(&key, None));
    }
    load(state, &key, Some(&version)).await?;
    let routing_config = check_routing(state, &key, &version, req.routing_config).await?;
    let config = AliasConfiguration {
        alias_arn: key.qualified_arn(&alias),
        name: alias,
        function_version: version,
        description: req.description.unwrap_or_default(),
        routing_config,
        revision_id: revision(),
    };
    state.store.create_alias(&key, &config).await?;
    Ok(json(StatusCode::CREATED, &config))
}

/// The alias, or 404 with `missing` (AWS words GetAlias's and UpdateAlias's differently).
async fn existing(
    state: &ApiState,
    key: &FunctionKey,
    alias: &str,
    missing: &str,
) -> Result<AliasConfiguration, ApiError> {
    state.store.get_alias(key, alias).await?.ok_or_else(|| {
        ApiError::ResourceNotFound(format!("{missing} {}", key.qualified_arn(alias)))
    })
}

/// GET /2015-03-31/functions/{FunctionName}/aliases/{Name}
pub(crate) async fn get(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    alias: &str,
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    let config = existing(state, &key, alias, "Cannot find alias arn:").await?;
    Ok(json(StatusCode::OK, &config))
}

/// PUT /2015-03-31/functions/{FunctionName}/aliases/{Name}
pub(crate) async fn update(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    alias: &str,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    let req: UpdateAliasRequest = parse_json(body)?;
    let current = existing(state, &key, alias, "Alias not found:").await?;
    if let Some(rev) = &req.revision_id {
        if rev != &current.revision_id {
            return Err(ApiError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
            ));
        }
    }
    let mut next = current.clone();
    if let Some(v) = req.function_version {
        check_version_ref(&v)?;
        load(state, &key, Some(&v)).await?;
        next.function_version = v;
    }
    if let Some(d) = req.description {
        next.description = d;
    }
    let routing = req.routing_config.or(current.routing_config);
    next.routing_config = check_routing(state, &key, &next.function_version, routing).await?;
    next.revision_id = revision();
    state
        .store
        .update_alias(&key, &next, &current.revision_id)
        .await?;
    Ok(json(StatusCode::OK, &next))
}

/// DELETE /2015-03-31/functions/{FunctionName}/aliases/{Name}
pub(crate) async fn delete(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    alias: &str,
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    state.store.delete_alias(&key, alias).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// GET /2015-03-31/functions/{FunctionName}/aliases
pub(crate) async fn list(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    function_version: Option<String>,
    marker: Option<String>,
    max_items: Option<String>,
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    if state.store.get_function(&key).await?.is_none() {
        return Err(not_found(&key, None));
    }
    let page_request = Page::parse(marker.as_deref(), max_items.as_deref())?;
    let (limit, after) = (page_request.limit, page_request.after.clone());
    let mut page: Vec<AliasConfiguration> = state
        .store
        .list_aliases(&key)
        .await?
        .into_iter()
        .filter(|a| {
            function_version
                .as_deref()
                .is_none_or(|v| a.function_version == v)
        })
        .filter(|a| after.as_deref().is_none_or(|after| a.name.as_str() > after))
        .take(limit + 1)
        .collect();
    let next = page_request.cut(&mut page, |item| item.name.to_string());
    let mut out = json!({ "Aliases": page });
    with_next(&mut out, next);
    Ok(json(StatusCode::OK, &out))
}
