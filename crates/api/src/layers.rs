//! Layers: PublishLayerVersion, GetLayerVersion, GetLayerVersionByArn, ListLayers,
//! ListLayerVersions, DeleteLayerVersion, and the layer version policy
//! (Add/RemoveLayerVersionPermission, GetLayerVersionPolicy).
//!
//! A layer version's package is stored like a function's (content-addressed, unpacked once);
//! deleting the version leaves the package, so functions that use it keep working.

use chrono::Utc;
use http::StatusCode;
use lamina_types::layer::{
    layer_arn, LayerArn, LayerVersion, LayerVersionContent, PublishLayerVersionRequest,
    StoredLayerVersion,
};
use lamina_types::names::is_name;
use lamina_types::time::lambda_timestamp;
use lamina_types::validate::{self, InputError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::functions::{accept_package, code_url, revision};
use crate::page::{with_next, Page};
use crate::{empty, json, parse_json, ApiState, Ctx, Resp};

/// A layer name from the path: a name or a layer ARN of the caller's account and region.
fn layer_name(ctx: &Ctx, input: &str) -> Result<String, ApiError> {
    if input.starts_with("arn:") {
        let arn = LayerArn::parse(input)
            .filter(|a| a.version.is_none())
            .ok_or_else(|| bad_name(input))?;
        if arn.account != ctx.caller.account || arn.region != ctx.caller.region {
            return Err(ApiError::ResourceNotFound(format!(
                "Layer not found: {input}"
            )));
        }
        return Ok(arn.name);
    }
    if is_name(input) && input.len() <= 140 {
        Ok(input.to_string())
    } else {
        Err(bad_name(input))
    }
}

fn bad_name(input: &str) -> ApiError {
    InputError::validation(
        "layerName",
        input,
        "Member must satisfy regular expression pattern: (arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+",
    )
    .into()
}

fn version_number(input: &str) -> Result<u64, ApiError> {
    let n: i64 = input.parse().map_err(|_| {
        ApiError::from(InputError::validation(
            "versionNumber",
            input,
            "Member must be a number",
        ))
    })?;
    if n < 1 {
        return Err(ApiError::InvalidParameterValue(
            "Layer Version Cannot be less than 1".into(),
        ));
    }
    Ok(n as u64)
}

/// AWS's exact wording (the layer version is the one in the request).
fn not_found() -> ApiError {
    ApiError::ResourceNotFound("The resource you requested does not exist.".into())
}

/// The response shape: the stored one with a fresh download URL.
fn presented(state: &ApiState, ctx: &Ctx, stored: &StoredLayerVersion) -> LayerVersion {
    let mut layer = stored.layer.clone();
    layer.content.location = code_url(state, ctx, &stored.code_sha256_hex);
    layer
}

async fn load(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    version: u64,
) -> Result<StoredLayerVersion, ApiError> {
    state
        .store
        .get_layer_version(&ctx.caller.account, &ctx.caller.region, name, version)
        .await?
        .ok_or_else(not_found)
}

/// Like [`load`], with the policy operations' wording for a missing version.
async fn load_for_policy(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    version: u64,
) -> Result<StoredLayerVersion, ApiError> {
    state
        .store
        .get_layer_version(&ctx.caller.account, &ctx.caller.region, name, version)
        .await?
        .ok_or_else(|| {
            ApiError::ResourceNotFound(format!(
                "Layer version {}:{version} does not exist.",
                layer_arn(&ctx.caller.region, &ctx.caller.account, name)
            ))
        })
}

/// POST /2018-10-31/layers/{LayerName}/versions
pub(crate) async fn publish(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let name = layer_name(ctx, name)?;
    let req: PublishLayerVersionRequest = parse_json(body)?;
    let content = req.content.ok_or_else(|| InputError::missing("content"))?;
    for runtime in req.compatible_runtimes.iter().flatten() {
        if !lamina_types::runtime::is_known(runtime) {
            return Err(InputError::validation(
                "compatibleRuntimes",
                runtime,
                "Member must satisfy enum value set of the Runtime shape",
            )
            .into());
        }
    }
    if let Some(archs) = &req.compatible_architectures {
        for a in archs {
            validate::check_architectures(std::slice::from_ref(a))?;
        }
    }
    let info = accept_package(
        state,
        content.zip_file.as_deref(),
        content.s3_bucket.is_some() || content.s3_key.is_some(),
        false,
    )
    .await?;
    let (account, region) = (ctx.caller.account.clone(), ctx.caller.region.clone());
    let arn = layer_arn(&region, &account, &name);
    let created = lambda_timestamp(Utc::now());
    let stored = state
        .store
        .publish_layer_version(
            &account,
            &region,
            &name,
            Box::new(move |version| StoredLayerVersion {
                layer: LayerVersion {
                    content: LayerVersionContent {
                        location: String::new(),
                        code_sha256: info.sha256_base64(),
                        code_size: info.zipped_size,
                    },
                    layer_version_arn: format!("{arn}:{version}"),
                    layer_arn: arn,
                    description: req.description.unwrap_or_default(),
                    created_date: created,
                    version,
                    compatible_runtimes: req.compatible_runtimes.unwrap_or_default(),
                    compatible_architectures: req.compatible_architectures.unwrap_or_default(),
                    license_info: req.license_info,
                },
                code_sha256_hex: info.sha256_hex(),
                policy: None,
                policy_revision: revision(),
            }),
        )
        .await?;
    Ok(json(StatusCode::CREATED, &presented(state, ctx, &stored)))
}

/// GET /2018-10-31/layers/{LayerName}/versions/{VersionNumber}
pub(crate) async fn get(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    version: &str,
) -> Result<Resp, ApiError> {
    let name = layer_name(ctx, name)?;
    let version = version_number(version)?;
    let stored = load(state, ctx, &name, version).await?;
    Ok(json(StatusCode::OK, &presented(state, ctx, &stored)))
}

/// GET /2018-10-31/layers?find=LayerVersion&Arn=...
pub(crate) async fn get_by_arn(
    state: &ApiState,
    ctx: &Ctx,
    arn: Option<&str>,
) -> Result<Resp, ApiError> {
    let arn = arn.ok_or_else(|| InputError::missing("arn"))?;
    let parsed = LayerArn::parse(arn).ok_or_else(|| {
        ApiError::from(InputError::validation(
            "arn",
            arn,
            "Member must satisfy regular expression pattern: arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+",
        ))
    })?;
    let version = parsed.version.ok_or_else(|| {
        ApiError::InvalidParameterValue(format!("{arn} is not a layer version ARN"))
    })?;
    if parsed.account != ctx.caller.account || parsed.region != ctx.caller.region {
        return Err(not_found());
    }
    let stored = load(state, ctx, &parsed.name, version).await?;
    Ok(json(StatusCode::OK, &presented(state, ctx, &stored)))
}

/// The list-item shape of a layer version (no `Content`, no `LayerArn`).
fn list_item(layer: &LayerVersion) -> Value {
    let mut v = json!(layer);
    if let Some(o) = v.as_object_mut() {
        o.remove("Content");
        o.remove("LayerArn");
    }
    v
}

fn matches(layer: &LayerVersion, runtime: Option<&str>, arch: Option<&str>) -> bool {
    runtime.is_none_or(|r| layer.compatible_runtimes.iter().any(|x| x == r))
        && arch.is_none_or(|a| layer.compatible_architectures.iter().any(|x| x == a))
}

/// GET /2018-10-31/layers/{LayerName}/versions
pub(crate) async fn list_versions(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    filters: (Option<String>, Option<String>),
    marker: Option<String>,
    max_items: Option<String>,
) -> Result<Resp, ApiError> {
    let name = layer_name(ctx, name)?;
    let page_request = Page::parse(marker.as_deref(), max_items.as_deref())?;
    let limit = page_request.limit;
    let after: Option<u64> = match page_request.after.as_deref() {
        None => None,
        Some(a) => Some(a.parse().map_err(|_| {
            ApiError::InvalidParameterValue(format!(
                "Invalid Marker: {}",
                marker.unwrap_or_default()
            ))
        })?),
    };
    let mut page: Vec<LayerVersion> = state
        .store
        .list_layer_versions(&ctx.caller.account, &ctx.caller.region, Some(&name))
        .await?
        .into_iter()
        .map(|s| s.layer)
        .filter(|l| matches(l, filters.0.as_deref(), filters.1.as_deref()))
        .filter(|l| after.is_none_or(|a| l.version < a))
        .take(limit + 1)
        .collect();
    let next = page_request.cut(&mut page, |item| item.version.to_string());
    let mut out = json!({ "LayerVersions": page.iter().map(list_item).collect::<Vec<_>>() });
    with_next(&mut out, next);
    Ok(json(StatusCode::OK, &out))
}

/// GET /2018-10-31/layers
pub(crate) async fn list_layers(
    state: &ApiState,
    ctx: &Ctx,
    filters: (Option<String>, Option<String>),
    marker: Option<String>,
    max_items: Option<String>,
) -> Result<Resp, ApiError> {
    let page_request = Page::parse(marker.as_deref(), max_items.as_deref())?;
    let after = page_request.after.clone();
    let all = state
        .store
        .list_layer_versions(&ctx.caller.account, &ctx.caller.region, None)
        .await?;
    // Versions come by name, newest first: the first match per name is the latest matching one.
    let mut layers: Vec<(String, LayerVersion)> = Vec::new();
    for stored in all {
        let name = LayerArn::parse(&stored.layer.layer_arn)
            .map(|a| a.name)
            .unwrap_or_default();
        if after.as_deref().is_some_and(|a| name.as_str() <= a)
            || layers.last().is_some_and(|(n, _)| n == &name)
            || !matches(&stored.layer, filters.0.as_deref(), filters.1.as_deref())
        {
            continue;
        }
        layers.push((name, stored.layer));
    }
    let next = page_request.cut(&mut layers, |item| item.0.to_string());
    let items: Vec<Value> = layers
        .iter()
        .map(|(name, latest)| {
            json!({
                "LayerName": name,
                "LayerArn": latest.layer_arn,
                "LatestMatchingVersion": list_item(latest),
            })
        })
        .collect();
    let mut out = json!({ "Layers": items });
    with_next(&mut out, next);
    Ok(json(StatusCode::OK, &out))
}

/// DELETE /2018-10-31/layers/{LayerName}/versions/{VersionNumber}: idempotent.
pub(crate) async fn delete(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    version: &str,
) -> Result<Resp, ApiError> {
    let name = layer_name(ctx, name)?;
    let version = version_number(version)?;
    state
        .store
        .delete_layer_version(&ctx.caller.account, &ctx.caller.region, &name, version)
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddPermissionRequest {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    organization_id: Option<String>,
}

fn check_revision(stored: &StoredLayerVersion, revision: Option<&str>) -> Result<(), ApiError> {
    match revision {
        Some(r) if r != stored.policy_revision => Err(ApiError::PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. Call the GetLayerPolicy API to retrieve the latest Revision Id".into(),
        )),
        _ => Ok(()),
    }
}

fn statements(stored: &StoredLayerVersion) -> Vec<Value> {
    stored
        .policy
        .as_deref()
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| p["Statement"].as_array().cloned())
        .unwrap_or_default()
}

fn policy_document(statements: Vec<Value>) -> Option<String> {
    (!statements.is_empty()).then(|| {
        json!({ "Version": "2012-10-17", "Id": "default", "Statement": statements }).to_string()
    })
}

/// POST /2018-10-31/layers/{LayerName}/versions/{VersionNumber}/policy
pub(crate) async fn add_permission(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    version: &str,
    revision_id: Option<&str>,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let name = layer_name(ctx, name)?;
    let version = version_number(version)?;
    let req: AddPermissionRequest = parse_json(body)?;
    let sid = req
        .statement_id
        .ok_or_else(|| InputError::missing("statementId"))?;
    if sid.is_empty() || sid.len() > 100 || !is_name(&sid) {
        return Err(InputError::validation(
            "statementId",
            &sid,
            "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)",
        )
        .into());
    }
    let action = req.action.ok_or_else(|| InputError::missing("action"))?;
    if action != "lambda:GetLayerVersion" && action != "lambda:ListLayerVersions" {
        return Err(InputError::validation(
            "action",
            &action,
            "Member must satisfy regular expression pattern: lambda:GetLayerVersion",
        )
        .into());
    }
    let principal = req
        .principal
        .ok_or_else(|| InputError::missing("principal"))?;
    let principal_json = if principal == "*" {
        json!("*")
    } else if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        json!({ "AWS": format!("arn:aws:iam::{principal}:root") })
    } else if principal.starts_with("arn:aws:iam::") {
        json!({ "AWS": principal })
    } else {
        return Err(InputError::validation("principal", &principal, "Member must satisfy regular expression pattern: \\d{12}|\\*|arn:(aws[a-zA-Z-]*):iam::\\d{12}:root").into());
    };
    let stored = load_for_policy(state, ctx, &name, version).await?;
    check_revision(&stored, revision_id)?;
    let mut all = statements(&stored);
    if all.iter().any(|s| s["Sid"] == sid.as_str()) {
        return Err(ApiError::ResourceConflict(format!(
            "The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement."
        )));
    }
    let mut statement = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal_json,
        "Action": action,
        "Resource": stored.layer.layer_version_arn,
    });
    if let Some(org) = req.organization_id {
        statement["Condition"] = json!({ "StringEquals": { "aws:PrincipalOrgID": org } });
    }
    all.push(statement.clone());
    let new_revision = revision();
    state
        .store
        .put_layer_policy(
            &ctx.caller.account,
            &ctx.caller.region,
            &name,
            version,
            policy_document(all),
            new_revision.clone(),
        )
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "Statement": statement.to_string(), "RevisionId": new_revision }),
    ))
}

/// GET /2018-10-31/layers/{LayerName}/versions/{VersionNumber}/policy
pub(crate) async fn get_policy(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    version: &str,
) -> Result<Resp, ApiError> {
    let name = layer_name(ctx, name)?;
    let version = version_number(version)?;
    let stored = load_for_policy(state, ctx, &name, version).await?;
    let policy = stored.policy.clone().ok_or_else(|| {
        ApiError::ResourceNotFound("No policy is associated with the given resource.".into())
    })?;
    Ok(json(
        StatusCode::OK,
        &json!({ "Policy": policy, "RevisionId": stored.policy_revision }),
    ))
}

/// DELETE /2018-10-31/layers/{LayerName}/versions/{VersionNumber}/policy/{StatementId}
pub(crate) async fn remove_permission(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    version: &str,
    sid: &str,
    revision_id: Option<&str>,
) -> Result<Resp, ApiError> {
    let name = layer_name(ctx, name)?;
    let version = version_number(version)?;
    let stored = load_for_policy(state, ctx, &name, version).await?;
    check_revision(&stored, revision_id)?;
    let mut all = statements(&stored);
    let before = all.len();
    all.retain(|s| s["Sid"] != sid);
    if all.len() == before {
        return Err(ApiError::ResourceNotFound(format!(
            "Statement {sid} is not found in resource policy."
        )));
    }
    state
        .store
        .put_layer_policy(
            &ctx.caller.account,
            &ctx.caller.region,
            &name,
            version,
            policy_document(all),
            revision(),
        )
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
