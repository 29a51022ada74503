//! The function configuration: the request shapes that create and update it, the
//! `FunctionConfiguration` AWS returns, and [`FunctionVersion`], the immutable snapshot the pool runs.
//!
//! Request shapes ignore fields they do not know (newer clients send newer fields). Settings lamina
//! accepts but does not act on (`VpcConfig`, `KMSKeyArn`, `FileSystemConfigs`, `SnapStart`, ...) are
//! kept as JSON and echoed back unchanged, so tools such as Terraform see no drift.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::{FunctionKey, LATEST};

/// Default `Timeout`, seconds.
pub const DEFAULT_TIMEOUT_S: u32 = 3;
/// Default `MemorySize`, MB.
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Default `EphemeralStorage.Size`, MB.
pub const DEFAULT_EPHEMERAL_MB: u32 = 512;

/// `Code` of CreateFunction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionCode {
    /// Base64 of the deployment zip.
    pub zip_file: Option<String>,
    /// S3 location (not supported by lamina: there is no S3 to read from).
    pub s3_bucket: Option<String>,
    /// S3 key.
    pub s3_key: Option<String>,
    /// Container image (not supported by lamina).
    pub image_uri: Option<String>,
}

/// `Environment` of a request.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Environment {
    /// The function's own variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// `EphemeralStorage`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorage {
    /// Size of `/tmp` in MB.
    pub size: u32,
}

/// `TracingConfig`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TracingConfig {
    /// `Active` or `PassThrough`.
    pub mode: String,
}

/// `LoggingConfig`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingConfig {
    /// `Text` or `JSON`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// Application log level (JSON format only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_log_level: Option<String>,
    /// System log level (JSON format only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_log_level: Option<String>,
    /// Log group name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
}

/// `SnapStart` (accepted and echoed).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SnapStartResponse {
    /// `None` or `PublishedVersions`.
    pub apply_on: String,
    /// `On` or `Off`.
    pub optimization_status: String,
}

/// The body of CreateFunction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct CreateFunctionRequest {
    pub function_name: Option<String>,
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub code: Option<FunctionCode>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub publish: Option<bool>,
    pub package_type: Option<String>,
    pub environment: Option<Environment>,
    pub dead_letter_config: Option<Value>,
    pub tracing_config: Option<TracingConfig>,
    pub tags: Option<BTreeMap<String, String>>,
    pub layers: Option<Vec<String>>,
    pub architectures: Option<Vec<String>>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    pub logging_config: Option<LoggingConfig>,
    pub vpc_config: Option<Value>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub file_system_configs: Option<Value>,
    pub image_config: Option<Value>,
    pub snap_start: Option<Value>,
    pub code_signing_config_arn: Option<String>,
}

/// The body of UpdateFunctionConfiguration: every field optional; what is sent replaces what was
/// there (`Environment.Variables` as a whole).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct UpdateFunctionConfigurationRequest {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<Environment>,
    pub dead_letter_config: Option<Value>,
    pub tracing_config: Option<TracingConfig>,
    pub layers: Option<Vec<String>>,
    pub ephemeral_storage: Option<EphemeralStorage>,
    pub logging_config: Option<LoggingConfig>,
    pub vpc_config: Option<Value>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub file_system_configs: Option<Value>,
    pub image_config: Option<Value>,
    pub snap_start: Option<Value>,
    pub revision_id: Option<String>,
}

/// The body of UpdateFunctionCode.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct UpdateFunctionCodeRequest {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
    pub image_uri: Option<String>,
    pub publish: Option<bool>,
    pub dry_run: Option<bool>,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
}

/// `FunctionConfiguration` as the Lambda API returns it. This is also what the store keeps for
/// each version, so what a client reads back is exactly what was stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct FunctionConfiguration {
    pub function_name: String,
    pub function_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    pub code_size: u64,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub last_modified: String,
    pub code_sha256: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    pub tracing_config: TracingConfig,
    pub revision_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_reason_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_status_reason_code: Option<String>,
    pub package_type: String,
    pub architectures: Vec<String>,
    pub ephemeral_storage: EphemeralStorage,
    pub snap_start: SnapStartResponse,
    pub logging_config: LoggingConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<Value>,
    #[serde(rename = "KMSKeyArn", skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_system_configs: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_config_response: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<FunctionLayer>,
}

/// One entry of `FunctionConfiguration.Layers`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionLayer {
    /// The layer version ARN.
    pub arn: String,
    /// Size of the layer's package.
    pub code_size: u64,
}

/// `State` values lamina uses.
pub mod state {
    /// Created, package still being prepared.
    pub const PENDING: &str = "Pending";
    /// Ready to invoke.
    pub const ACTIVE: &str = "Active";
    /// Cannot run; `StateReason` says why.
    pub const FAILED: &str = "Failed";
}

/// `LastUpdateStatus` values.
pub mod update_status {
    /// An update is being applied.
    pub const IN_PROGRESS: &str = "InProgress";
    /// The last update was applied.
    pub const SUCCESSFUL: &str = "Successful";
    /// The last update could not be applied.
    pub const FAILED: &str = "Failed";
}

/// One version of a function, as the store keeps it and the pool runs it. A version with a given
/// `RevisionId` never changes: every update writes a new revision.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionVersion {
    /// Which function.
    pub key: FunctionKey,
    /// The configuration as returned to clients (`Version` says which version this is).
    pub config: FunctionConfiguration,
    /// Lower-case hex SHA-256 of the deployment zip: the name of its blob and unpacked tree.
    pub code_sha256_hex: String,
    /// Where the store unpacked the code (read-only, shared by every environment of this code).
    pub code_dir: PathBuf,
    /// The layers' packages, in the function's order (later ones win in `/opt`).
    pub layers: Vec<LayerCode>,
}

/// The package of one of a version's layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerCode {
    /// Lower-case hex SHA-256 of the layer's zip.
    pub sha256_hex: String,
    /// Where the store unpacked it.
    pub dir: PathBuf,
}

impl FunctionVersion {
    /// `$LATEST` or the version number.
    pub fn version(&self) -> &str {
        &self.config.version
    }

    /// Whether this is `$LATEST`.
    pub fn is_latest(&self) -> bool {
        self.config.version == LATEST
    }

    /// The function's own environment variables.
    pub fn variables(&self) -> impl Iterator<Item = (&String, &String)> {
        self.config
            .environment
            .iter()
            .flat_map(|e| e.variables.iter())
    }

    /// The log group (from `LoggingConfig.LogGroup`, else `/aws/lambda/{name}`).
    pub fn log_group(&self) -> String {
        self.config
            .logging_config
            .log_group
            .clone()
            .unwrap_or_else(|| default_log_group(&self.key.name))
    }
}

impl FunctionVersion {
    /// What identifies the code and configuration of this version, ignoring what changes on
    /// every write (`RevisionId`, `LastModified`, states) and what names it (`Version`, ARN).
    /// PublishVersion compares it to decide whether anything changed since the last version.
    pub fn fingerprint(&self) -> String {
        let mut c = self.config.clone();
        c.function_arn.clear();
        c.version.clear();
        c.revision_id.clear();
        c.last_modified.clear();
        c.state = None;
        c.state_reason = None;
        c.state_reason_code = None;
        c.last_update_status = None;
        c.last_update_status_reason = None;
        c.last_update_status_reason_code = None;
        format!(
            "{}\n{}",
            self.code_sha256_hex,
            serde_json::to_string(&c).unwrap_or_default()
        )
    }
}

/// `AliasRoutingConfiguration`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AliasRoutingConfiguration {
    /// Version → share of invocations it gets (the alias's main version gets the rest).
    #[serde(default)]
    pub additional_version_weights: BTreeMap<String, f64>,
}

/// `AliasConfiguration` as the API returns it and the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct AliasConfiguration {
    pub alias_arn: String,
    pub name: String,
    pub function_version: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_config: Option<AliasRoutingConfiguration>,
    pub revision_id: String,
}

impl AliasConfiguration {
    /// The versions this alias routes to: the main one and any additional one.
    pub fn versions(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.function_version.as_str()).chain(
            self.routing_config
                .iter()
                .flat_map(|r| r.additional_version_weights.keys().map(String::as_str)),
        )
    }
}

/// The body of CreateAlias.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct CreateAliasRequest {
    pub name: Option<String>,
    pub function_version: Option<String>,
    pub description: Option<String>,
    pub routing_config: Option<AliasRoutingConfiguration>,
}

/// The body of UpdateAlias.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct UpdateAliasRequest {
    pub function_version: Option<String>,
    pub description: Option<String>,
    pub routing_config: Option<AliasRoutingConfiguration>,
    pub revision_id: Option<String>,
}

/// The body of PublishVersion.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct PublishVersionRequest {
    pub code_sha256: Option<String>,
    pub description: Option<String>,
    pub revision_id: Option<String>,
}

/// A provisioned concurrency configuration of one version or alias, as the API returns it
/// (`FunctionArn` is added by ListProvisionedConcurrencyConfigs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ProvisionedConcurrencyConfig {
    #[serde(skip)]
    pub qualifier: String,
    pub requested_provisioned_concurrent_executions: u32,
    pub available_provisioned_concurrent_executions: u32,
    pub allocated_provisioned_concurrent_executions: u32,
    /// `IN_PROGRESS`, `READY` or `FAILED`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub last_modified: String,
}

/// `/aws/lambda/{name}`.
pub fn default_log_group(name: &str) -> String {
    format!("/aws/lambda/{name}")
}

/// Tags of a function.
pub type Tags = BTreeMap<String, String>;

/// What the store reports about a stored function: its `$LATEST` and its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRecord {
    /// `$LATEST`.
    pub latest: FunctionVersion,
    /// Function-wide tags.
    pub tags: Tags,
    /// Reserved concurrency, when set.
    pub reserved_concurrency: Option<u32>,
}
