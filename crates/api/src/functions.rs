//! Function operations: CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions,
//! UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction, GetAccountSettings,
//! GetFunctionCodeSigningConfig, and the download behind `Code.Location`.
//!
//! State machine: a create or update is stored as `State: Pending` (create) or
//! `LastUpdateStatus: InProgress` (update) and answered at once; [`settle`] then checks that the
//! package can run and moves it to `Active`/`Successful` or `Failed` with a reason. Functions left
//! unsettled by a crash are settled at the next start ([`settle_all`]).

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use hmac::{Hmac, Mac};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use lamina_store::code::{self, CodeError, PackageInfo};
use lamina_store::StoreError;
use lamina_types::function::{
    state, update_status, CreateFunctionRequest, EphemeralStorage, FunctionConfiguration,
    FunctionVersion, LoggingConfig, SnapStartResponse, TracingConfig, UpdateFunctionCodeRequest,
    UpdateFunctionConfigurationRequest, DEFAULT_EPHEMERAL_MB, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S,
};
use lamina_types::function::{FunctionLayer, LayerCode};
use lamina_types::layer::LayerArn;
use lamina_types::names::{is_version_number, FunctionKey, FunctionRef, LATEST};
use lamina_types::time::lambda_timestamp;
use lamina_types::validate::{self, InputError};
use serde_json::json;
use sha2::Sha256;

use crate::error::ApiError;
use crate::page::{with_next, Page};
use crate::{empty, json, parse_json, ApiState, Ctx, Resp};

/// How long a `Code.Location` URL stays valid.
const CODE_URL_LIFETIME_S: i64 = 600;

/// Resolve a path's function name for the caller; the qualifier may come from the name or the
/// query.
pub(crate) fn resolve(
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
) -> Result<(FunctionKey, Option<String>), ApiError> {
    let r = FunctionRef::parse(name)?;
    Ok(r.resolve(&ctx.caller.account, &ctx.caller.region, qualifier)?)
}

/// Resolve a name that must not carry a qualifier.
pub(crate) fn resolve_unqualified(ctx: &Ctx, name: &str) -> Result<FunctionKey, ApiError> {
    let (key, qualifier) = resolve(ctx, name, None)?;
    if qualifier.is_some() {
        // AWS's wording (it does not name the input).
        return Err(ApiError::InvalidParameterValue(
            "This operation is permitted on Lambda functions only. Aliases and versions do not support this operation. Please specify either a function name or an unqualified function ARN.".into(),
        ));
    }
    Ok(key)
}

pub(crate) fn not_found(key: &FunctionKey, qualifier: Option<&str>) -> ApiError {
    ApiError::ResourceNotFound(format!("Function not found: {}", key.arn_with(qualifier)))
}

/// Load the version a qualifier names: `$LATEST` when none, a version number, or the main
/// version of an alias.
pub(crate) async fn load(
    state: &ApiState,
    key: &FunctionKey,
    qualifier: Option<&str>,
) -> Result<FunctionVersion, ApiError> {
    let version = match qualifier {
        None => LATEST.to_string(),
        Some(q) if q == LATEST || is_version_number(q) => q.to_string(),
        Some(alias) => {
            state
                .store
                .get_alias(key, alias)
                .await?
                .ok_or_else(|| not_found(key, qualifier))?
                .function_version
        }
    };
    state
        .store
        .get_version(key, &version)
        .await?
        .ok_or_else(|| not_found(key, qualifier))
}

/// The configuration as returned for a request with `qualifier`.
fn presented(v: &FunctionVersion, qualifier: Option<&str>) -> FunctionConfiguration {
    let mut c = v.config.clone();
    c.function_arn = v.key.arn_with(qualifier);
    c
}

/// Decode, check and store a package; blocking work runs off the async threads.
pub(crate) async fn accept_package(
    state: &ApiState,
    zip_file: Option<&str>,
    s3: bool,
    image: bool,
) -> Result<PackageInfo, ApiError> {
    if image {
        return Err(ApiError::InvalidParameterValue(
            "lamina runs deployment packages (ZipFile); container images (ImageUri) are not supported".into(),
        ));
    }
    let Some(b64) = zip_file else {
        return Err(ApiError::InvalidParameterValue(if s3 {
            "lamina has no S3 to read code from; upload the package as ZipFile".into()
        } else {
            "Please provide a source for function code.".into()
        }));
    };
    let zip = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| {
            ApiError::InvalidParameterValue(
                "Could not unzip uploaded file. Please check your file, then try to upload again. (ZipFile is not valid base64)".into(),
            )
        })?;
    if zip.len() as u64 > code::MAX_ZIPPED_BYTES {
        return Err(ApiError::RequestTooLarge(format!(
            "Zipped size must be smaller than {} bytes",
            code::MAX_ZIPPED_BYTES
        )));
    }
    let blobs = state.blobs.clone();
    tokio::task::spawn_blocking(move || {
        let info = code::inspect(&zip, code::MAX_UNZIPPED_BYTES).map_err(code_error)?;
        blobs.put(&zip, &info)?;
        Ok::<_, ApiError>(info)
    })
    .await
    .map_err(|e| ApiError::Service(e.to_string()))?
}

fn code_error(e: CodeError) -> ApiError {
    match e {
        CodeError::NotAZip(reason) => ApiError::InvalidParameterValue(format!(
            "Could not unzip uploaded file. Please check your file, then try to upload again. ({reason})"
        )),
        CodeError::ZippedTooLarge { limit, .. } => {
            ApiError::RequestTooLarge(format!("Zipped size must be smaller than {limit} bytes"))
        }
        CodeError::UnzippedTooLarge { limit, .. } => ApiError::InvalidParameterValue(format!(
            "Unzipped size must be smaller than {limit} bytes"
        )),
        e @ CodeError::UnsafeEntry { .. } => ApiError::InvalidParameterValue(format!(
            "Could not unzip uploaded file. Please check your file, then try to upload again. ({e})"
        )),
        e @ CodeError::Io { .. } => ApiError::Service(e.to_string()),
    }
}

pub(crate) fn revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Look up a function's layer version ARNs (in order) and check the package plus its layers
/// unzip to at most 250 MB.
async fn resolve_layers(
    state: &ApiState,
    key: &FunctionKey,
    arns: &[String],
    code_dir: &std::path::Path,
) -> Result<(Vec<FunctionLayer>, Vec<LayerCode>), ApiError> {
    let mut layers = Vec::new();
    let mut code = Vec::new();
    let mut names: Vec<(String, &String)> = Vec::new();
    for arn in arns {
        let missing =
            || ApiError::InvalidParameterValue(format!("Layer version {arn} does not exist."));
        let parsed = LayerArn::parse(arn).ok_or_else(missing)?;
        let version = parsed.version.ok_or_else(missing)?;
        if parsed.region != key.region {
            return Err(ApiError::InvalidParameterValue(format!(
                "Layers are not in the same region as the function. Layers are expected to be in region {}.",
                key.region
            )));
        }
        if parsed.account != key.account {
            return Err(missing());
        }
        if let Some((_, other)) = names.iter().find(|(n, _)| n == &parsed.name) {
            return Err(ApiError::InvalidParameterValue(format!(
                "Two different versions of the same layer are not allowed to be referenced in the same function. {other} and {arn} are versions of the same layer."
            )));
        }
        names.push((parsed.name.clone(), arn));
        let stored = state
            .store
            .get_layer_version(&key.account, &key.region, &parsed.name, version)
            .await?
            .ok_or_else(missing)?;
        layers.push(FunctionLayer {
            arn: arn.clone(),
            code_size: stored.layer.content.code_size,
        });
        code.push(LayerCode {
            dir: state.blobs.code_dir(&stored.code_sha256_hex),
            sha256_hex: stored.code_sha256_hex,
        });
    }
    check_unzipped_size(code_dir, &code).await?;
    Ok((layers, code))
}

/// The function's package and its layers together unzip to at most 250 MB.
async fn check_unzipped_size(
    code_dir: &std::path::Path,
    layers: &[LayerCode],
) -> Result<(), ApiError> {
    if layers.is_empty() {
        return Ok(());
    }
    let dirs: Vec<std::path::PathBuf> = std::iter::once(code_dir.to_path_buf())
        .chain(layers.iter().map(|l| l.dir.clone()))
        .collect();
    let total = tokio::task::spawn_blocking(move || dirs.iter().map(|d| tree_size(d)).sum::<u64>())
        .await
        .map_err(|e| ApiError::Service(e.to_string()))?;
    if total > code::MAX_UNZIPPED_BYTES {
        return Err(ApiError::InvalidParameterValue(format!(
            "Function code combined with layers exceeds the maximum allowed size of {} bytes. The actual size is {total} bytes.",
            code::MAX_UNZIPPED_BYTES
        )));
    }
    Ok(())
}

/// Bytes of the regular files under `dir`.
fn tree_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// POST /2015-03-31/functions
pub(crate) async fn create(state: &ApiState, ctx: &Ctx, body: &[u8]) -> Result<Resp, ApiError> {
    let req: CreateFunctionRequest = parse_json(body)?;
    let name = req
        .function_name
        .as_deref()
        .ok_or_else(|| InputError::missing("functionName"))?;
    let (key, qualifier) = resolve(ctx, name, None)?;
    if qualifier.is_some() {
        return Err(ApiError::InvalidParameterValue(format!(
            "CreateFunction takes an unqualified function name, not {name}"
        )));
    }
    validate::check_create(&req)?;
    let code = req.code.clone().unwrap_or_default();
    if state.store.get_function(&key).await?.is_some() {
        return Err(StoreError::AlreadyExists(key.name).into());
    }
    let info = accept_package(
        state,
        code.zip_file.as_deref(),
        code.s3_bucket.is_some() || code.s3_key.is_some(),
        code.image_uri.is_some(),
    )
    .await?;
    let code_dir = state.blobs.code_dir(&info.sha256_hex());
    let (layers, layer_code) = resolve_layers(
        state,
        &key,
        req.layers.as_deref().unwrap_or_default(),
        &code_dir,
    )
    .await?;
    let config = FunctionConfiguration {
        function_name: key.name.clone(),
        function_arn: key.arn(),
        runtime: req.runtime.clone(),
        role: req.role.clone().unwrap_or_default(),
        handler: req.handler.clone(),
        code_size: info.zipped_size,
        description: req.description.clone().unwrap_or_default(),
        timeout: req.timeout.map_or(DEFAULT_TIMEOUT_S, |t| t as u32),
        memory_size: req.memory_size.map_or(DEFAULT_MEMORY_MB, |m| m as u32),
        last_modified: lambda_timestamp(Utc::now()),
        code_sha256: info.sha256_base64(),
        version: LATEST.into(),
        environment: req.environment.clone().filter(|e| !e.variables.is_empty()),
        tracing_config: req.tracing_config.clone().unwrap_or(TracingConfig {
            mode: "PassThrough".into(),
        }),
        revision_id: revision(),
        state: Some(state::PENDING.into()),
        state_reason: Some("The function is being created.".into()),
        state_reason_code: Some("Creating".into()),
        last_update_status: None,
        last_update_status_reason: None,
        last_update_status_reason_code: None,
        package_type: "Zip".into(),
        architectures: req
            .architectures
            .clone()
            .unwrap_or_else(|| vec!["x86_64".into()]),
        ephemeral_storage: req.ephemeral_storage.unwrap_or(EphemeralStorage {
            size: DEFAULT_EPHEMERAL_MB,
        }),
        snap_start: SnapStartResponse {
            apply_on: "None".into(),
            optimization_status: "Off".into(),
        },
        logging_config: logging(req.logging_config.clone(), &key.name),
        dead_letter_config: req.dead_letter_config.clone(),
        vpc_config: req.vpc_config.clone(),
        kms_key_arn: req.kms_key_arn.clone(),
        file_system_configs: req.file_system_configs.clone(),
        image_config_response: None,
        layers,
    };
    let version = FunctionVersion {
        code_dir,
        layers: layer_code,
        code_sha256_hex: info.sha256_hex(),
        key: key.clone(),
        config,
    };
    state
        .store
        .create_function(&version, &req.tags.clone().unwrap_or_default())
        .await?;
    spawn_settle(
        state,
        key.clone(),
        LATEST,
        version.config.revision_id.clone(),
    );
    if req.publish == Some(true) {
        // AWS answers with version 1's configuration under the unqualified ARN.
        let mut published = crate::versions::publish_latest(state, &key, None, None).await?;
        published.config.function_arn = key.arn();
        return Ok(json(StatusCode::CREATED, &published.config));
    }
    Ok(json(StatusCode::CREATED, &version.config))
}

fn logging(given: Option<LoggingConfig>, name: &str) -> LoggingConfig {
    let mut l = given.unwrap_or_default();
    l.log_format.get_or_insert_with(|| "Text".into());
    l.log_group
        .get_or_insert_with(|| lamina_types::function::default_log_group(name));
    l
}

/// GET /2015-03-31/functions/{FunctionName}
pub(crate) async fn get(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Resp, ApiError> {
    let (key, qualifier) = resolve(ctx, name, qualifier)?;
    let record = state
        .store
        .get_function(&key)
        .await?
        .ok_or_else(|| not_found(&key, qualifier.as_deref()))?;
    let version = match qualifier.as_deref() {
        None | Some(LATEST) => record.latest,
        Some(q) => load(state, &key, Some(q)).await?,
    };
    let mut out = json!({
        "Configuration": presented(&version, qualifier.as_deref()),
        "Code": {
            "RepositoryType": "S3",
            "Location": code_url(state, ctx, &version.code_sha256_hex),
        },
    });
    if !record.tags.is_empty() {
        out["Tags"] = json!(record.tags);
    }
    if let Some(reserved) = record.reserved_concurrency {
        out["Concurrency"] = json!({ "ReservedConcurrentExecutions": reserved });
    }
    Ok(json(StatusCode::OK, &out))
}

/// GET /2015-03-31/functions/{FunctionName}/configuration
pub(crate) async fn get_configuration(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Resp, ApiError> {
    let (key, qualifier) = resolve(ctx, name, qualifier)?;
    let version = load(state, &key, qualifier.as_deref()).await?;
    Ok(json(
        StatusCode::OK,
        &presented(&version, qualifier.as_deref()),
    ))
}

/// GET /2015-03-31/functions
pub(crate) async fn list(
    state: &ApiState,
    ctx: &Ctx,
    marker: Option<String>,
    max_items: Option<String>,
) -> Result<Resp, ApiError> {
    let page_request = Page::parse(marker.as_deref(), max_items.as_deref())?;
    let (limit, after) = (page_request.limit, page_request.after.clone());
    let mut page = state
        .store
        .list_functions(
            &ctx.caller.account,
            &ctx.caller.region,
            after.as_deref(),
            limit + 1,
        )
        .await?;
    let next = page_request.cut(&mut page, |item| item.key.name.to_string());
    let functions: Vec<FunctionConfiguration> = page
        .into_iter()
        .map(|v| {
            // AWS leaves the state fields out of ListFunctions.
            let mut c = v.config;
            c.state = None;
            c.state_reason = None;
            c.state_reason_code = None;
            c.last_update_status = None;
            c.last_update_status_reason = None;
            c.last_update_status_reason_code = None;
            c
        })
        .collect();
    let mut out = json!({ "Functions": functions });
    with_next(&mut out, next);
    Ok(json(StatusCode::OK, &out))
}

/// Refuse an update while the function is still being created or updated, or when the
/// request's `RevisionId` is not the current one.
fn check_updatable(current: &FunctionVersion, revision_id: Option<&str>) -> Result<(), ApiError> {
    if let Some(rev) = revision_id {
        if rev != current.config.revision_id {
            return Err(StoreError::RevisionMismatch {
                arn: current.key.arn(),
                stored: current.config.revision_id.clone(),
            }
            .into());
        }
    }
    if current.config.state.as_deref() == Some(state::PENDING) {
        return Err(ApiError::ResourceConflict(
            "The operation cannot be performed at this time. The function is currently in the following state: Pending".into(),
        ));
    }
    if current.config.last_update_status.as_deref() == Some(update_status::IN_PROGRESS) {
        return Err(ApiError::ResourceConflict(format!(
            "The operation cannot be performed at this time. An update is in progress for resource: {}",
            current.key.arn()
        )));
    }
    Ok(())
}

/// Mark a new revision of `$LATEST` as being updated.
fn begin_update(v: &mut FunctionVersion) {
    v.config.revision_id = revision();
    v.config.last_modified = lambda_timestamp(Utc::now());
    v.config.last_update_status = Some(update_status::IN_PROGRESS.into());
    v.config.last_update_status_reason = Some("The function is being updated.".into());
    v.config.last_update_status_reason_code = None;
}

/// Store an updated `$LATEST` based on `previous`, then settle it.
async fn commit_update(
    state: &ApiState,
    previous_revision: &str,
    asked_revision: Option<&str>,
    v: FunctionVersion,
    publish: bool,
) -> Result<Resp, ApiError> {
    match state.store.put_version(&v, Some(previous_revision)).await {
        Ok(()) => {}
        Err(StoreError::RevisionMismatch { .. }) if asked_revision.is_none() => {
            return Err(ApiError::ResourceConflict(format!(
                "The operation cannot be performed at this time. An update is in progress for resource: {}",
                v.key.arn()
            )))
        }
        Err(e) => return Err(e.into()),
    }
    spawn_settle(state, v.key.clone(), LATEST, v.config.revision_id.clone());
    if publish {
        let published = crate::versions::publish_latest(state, &v.key, None, None).await?;
        return Ok(json(StatusCode::OK, &published.config));
    }
    Ok(json(StatusCode::OK, &v.config))
}

/// PUT /2015-03-31/functions/{FunctionName}/code
pub(crate) async fn update_code(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    let req: UpdateFunctionCodeRequest = parse_json(body)?;
    if let Some(archs) = &req.architectures {
        validate::check_architectures(archs)?;
    }
    let current = load(state, &key, None).await?;
    check_updatable(&current, req.revision_id.as_deref())?;
    let info = accept_package(
        state,
        req.zip_file.as_deref(),
        req.s3_bucket.is_some() || req.s3_key.is_some(),
        req.image_uri.is_some(),
    )
    .await?;
    let previous = current.config.revision_id.clone();
    let mut v = current;
    v.config.code_sha256 = info.sha256_base64();
    v.config.code_size = info.zipped_size;
    v.code_sha256_hex = info.sha256_hex();
    v.code_dir = state.blobs.code_dir(&v.code_sha256_hex);
    check_unzipped_size(&v.code_dir, &v.layers).await?;
    if let Some(archs) = req.architectures {
        v.config.architectures = archs;
    }
    if req.dry_run == Some(true) {
        // Checked and reported, not applied.
        return Ok(json(StatusCode::OK, &v.config));
    }
    begin_update(&mut v);
    commit_update(
        state,
        &previous,
        req.revision_id.as_deref(),
        v,
        req.publish == Some(true),
    )
    .await
}

/// PUT /2015-03-31/functions/{FunctionName}/configuration
pub(crate) async fn update_configuration(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    body: &[u8],
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    let req: UpdateFunctionConfigurationRequest = parse_json(body)?;
    validate::check_update(&req)?;
    let current = load(state, &key, None).await?;
    check_updatable(&current, req.revision_id.as_deref())?;
    let previous = current.config.revision_id.clone();
    let mut v = current;
    let c = &mut v.config;
    if let Some(r) = req.runtime {
        c.runtime = Some(r);
    }
    if let Some(r) = req.role {
        c.role = r;
    }
    if let Some(h) = req.handler {
        c.handler = Some(h);
    }
    if let Some(d) = req.description {
        c.description = d;
    }
    if let Some(t) = req.timeout {
        c.timeout = t as u32;
    }
    if let Some(m) = req.memory_size {
        c.memory_size = m as u32;
    }
    if let Some(e) = req.environment {
        c.environment = (!e.variables.is_empty()).then_some(e);
    }
    if let Some(d) = req.dead_letter_config {
        c.dead_letter_config = Some(d);
    }
    if let Some(t) = req.tracing_config {
        c.tracing_config = t;
    }
    if let Some(e) = req.ephemeral_storage {
        c.ephemeral_storage = e;
    }
    if let Some(l) = req.logging_config {
        c.logging_config = logging(Some(l), &key.name);
    }
    if let Some(vpc) = req.vpc_config {
        c.vpc_config = Some(vpc);
    }
    if let Some(k) = req.kms_key_arn {
        c.kms_key_arn = Some(k);
    }
    if let Some(f) = req.file_system_configs {
        c.file_system_configs = Some(f);
    }
    if let Some(arns) = req.layers {
        let (layers, code) = resolve_layers(state, &key, &arns, &v.code_dir).await?;
        v.config.layers = layers;
        v.layers = code;
    }
    begin_update(&mut v);
    commit_update(state, &previous, req.revision_id.as_deref(), v, false).await
}

/// DELETE /2015-03-31/functions/{FunctionName}
pub(crate) async fn delete(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Resp, ApiError> {
    let (key, qualifier) = resolve(ctx, name, qualifier)?;
    match qualifier.as_deref() {
        None => {}
        Some(LATEST) => {
            return Err(ApiError::InvalidParameterValue(
                "$LATEST version cannot be deleted without deleting the function.".into(),
            ))
        }
        Some(q) if is_version_number(q) => {
            // Deleting a version that is already gone succeeds, as on AWS; the function
            // itself must exist.
            if !state.store.delete_version(&key, q).await?
                && state.store.get_function(&key).await?.is_none()
            {
                return Err(not_found(&key, None));
            }
            return Ok(empty(StatusCode::NO_CONTENT));
        }
        Some(q) => {
            return Err(ApiError::InvalidParameterValue(format!(
                "DeleteFunction deletes a function or one of its versions, not an alias: {}; use DeleteAlias",
                key.qualified_arn(q)
            )))
        }
    }
    if !state.store.delete_function(&key).await? {
        return Err(not_found(&key, None));
    }
    state.invoker.drain(&key);
    Ok(empty(StatusCode::NO_CONTENT))
}

/// GET /2016-08-19/account-settings
pub(crate) async fn account_settings(state: &ApiState, ctx: &Ctx) -> Result<Resp, ApiError> {
    let usage = state
        .store
        .account_usage(&ctx.caller.account, &ctx.caller.region)
        .await?;
    let limit = state.invoker.concurrency_limit();
    let reserved = state
        .store
        .total_reserved(&ctx.caller.account, &ctx.caller.region, None)
        .await?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "AccountLimit": {
                "TotalCodeSize": 80_530_636_800u64,
                "CodeSizeUnzipped": code::MAX_UNZIPPED_BYTES,
                "CodeSizeZipped": code::MAX_ZIPPED_BYTES,
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": u64::from(limit).saturating_sub(reserved),
            },
            "AccountUsage": {
                "TotalCodeSize": usage.total_code_size,
                "FunctionCount": usage.function_count,
            },
        }),
    ))
}

/// GET /2020-06-30/functions/{FunctionName}/code-signing-config
pub(crate) async fn code_signing_config(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
) -> Result<Resp, ApiError> {
    let key = resolve_unqualified(ctx, name)?;
    load(state, &key, None).await?;
    Ok(json(
        StatusCode::OK,
        &json!({ "CodeSigningConfigArn": "", "FunctionName": key.name }),
    ))
}

fn url_signature(state: &ApiState, sha256: &str, expires: i64) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&state.url_key).expect("HMAC accepts any key length");
    mac.update(format!("{sha256}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A URL on lamina from which the package downloads for the next ten minutes.
pub(crate) fn code_url(state: &ApiState, ctx: &Ctx, sha256: &str) -> String {
    let expires = Utc::now().timestamp() + CODE_URL_LIFETIME_S;
    format!(
        "http://{}/_lamina/code/{sha256}.zip?expires={expires}&signature={}",
        ctx.host,
        url_signature(state, sha256, expires)
    )
}

/// GET /_lamina/code/{sha256}.zip: the package behind `Code.Location`. Like a presigned S3
/// URL, a link that is not signed by this server or is past its expiry is refused with 403.
pub(crate) async fn download_code(
    state: &ApiState,
    sha256: &str,
    expires: Option<&str>,
    signature: Option<&str>,
) -> Result<Resp, ApiError> {
    let expires: Option<i64> = expires.and_then(|e| e.parse().ok());
    let signed = sha256.len() == 64
        && sha256.bytes().all(|b| b.is_ascii_hexdigit())
        && expires.is_some_and(|expires| {
            signature.is_some_and(|s| {
                // Compare in constant time.
                let expected = url_signature(state, sha256, expires);
                s.len() == expected.len()
                    && s.bytes()
                        .zip(expected.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            })
        });
    let Some(expires) = expires.filter(|_| signed) else {
        return Err(ApiError::AccessDenied(format!(
            "The download link for code {sha256} does not carry a valid signature"
        )));
    };
    if expires < Utc::now().timestamp() {
        return Err(ApiError::AccessDenied(format!(
            "The download link for code {sha256} has expired"
        )));
    }
    let path = state.blobs.zip_path(sha256);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::ResourceNotFound(format!("No stored package has code {sha256}")))?;
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/zip"));
    Ok(resp)
}

pub(crate) fn spawn_settle(state: &ApiState, key: FunctionKey, version: &str, revision: String) {
    let version = version.to_string();
    let store = state.store.clone();
    let invoker = state.invoker.clone();
    tokio::spawn(async move {
        if let Err(e) = settle(store.as_ref(), &invoker, &key, &version, &revision).await {
            tracing::warn!(function = %key, error = %e, "cannot settle the function's state");
        }
    });
}

/// Move a `Pending` / `InProgress` version of `revision` to its settled state.
pub async fn settle(
    store: &dyn lamina_store::Store,
    invoker: &lamina_invoke::Invoker,
    key: &FunctionKey,
    version: &str,
    revision: &str,
) -> Result<(), StoreError> {
    let Some(mut v) = store.get_version(key, version).await? else {
        return Ok(());
    };
    if v.config.revision_id != revision {
        return Ok(());
    }
    let problem = invoker.cannot_run(&v);
    let c = &mut v.config;
    let mut changed = false;
    if c.state.as_deref() == Some(state::PENDING) {
        changed = true;
        match &problem {
            None => {
                c.state = Some(state::ACTIVE.into());
                c.state_reason = None;
                c.state_reason_code = None;
                c.last_update_status = Some(update_status::SUCCESSFUL.into());
            }
            Some((code, reason)) => {
                c.state = Some(state::FAILED.into());
                c.state_reason = Some(reason.clone());
                c.state_reason_code = Some((*code).into());
                c.last_update_status = Some(update_status::FAILED.into());
                c.last_update_status_reason = Some(reason.clone());
                c.last_update_status_reason_code = Some((*code).into());
            }
        }
    } else if c.last_update_status.as_deref() == Some(update_status::IN_PROGRESS) {
        changed = true;
        match &problem {
            None => {
                c.state = Some(state::ACTIVE.into());
                c.state_reason = None;
                c.state_reason_code = None;
                c.last_update_status = Some(update_status::SUCCESSFUL.into());
                c.last_update_status_reason = None;
                c.last_update_status_reason_code = None;
            }
            Some((code, reason)) => {
                c.last_update_status = Some(update_status::FAILED.into());
                c.last_update_status_reason = Some(reason.clone());
                c.last_update_status_reason_code = Some((*code).into());
            }
        }
    }
    if !changed {
        return Ok(());
    }
    match store.put_version(&v, Some(revision)).await {
        Ok(()) => {
            if problem.is_none() {
                // The new revision is the one invocations get from now on.
                invoker.retire_older(key, version, revision);
            }
            Ok(())
        }
        // Another update came first; it will be settled on its own.
        Err(StoreError::RevisionMismatch { .. }) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Settle every version a crash left `Pending` or `InProgress` (at start-up).
pub async fn settle_all(
    store: Arc<dyn lamina_store::Store>,
    invoker: &lamina_invoke::Invoker,
) -> Result<usize, StoreError> {
    let unsettled = store.unsettled().await?;
    let n = unsettled.len();
    for v in unsettled {
        settle(
            store.as_ref(),
            invoker,
            &v.key,
            &v.config.version,
            &v.config.revision_id,
        )
        .await?;
    }
    Ok(n)
}
