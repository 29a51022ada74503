//! Every operation lamina serves, as one enum, and the router that turns method + path + query
//! into it. The full path (date prefix included) decides the operation, as in the model.

use http::Method;
use percent_encoding::percent_decode_str;

use crate::error::ApiError;

/// One API call, parsed from its method, path and query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// POST /2015-03-31/functions
    CreateFunction,
    /// GET /2015-03-31/functions
    ListFunctions {
        /// `Marker`.
        marker: Option<String>,
        /// `MaxItems`.
        max_items: Option<String>,
    },
    /// GET /2015-03-31/functions/{FunctionName}
    GetFunction {
        /// Path name (decoded).
        name: String,
        /// `Qualifier`.
        qualifier: Option<String>,
    },
    /// GET /2015-03-31/functions/{FunctionName}/configuration
    GetFunctionConfiguration {
        /// Path name (decoded).
        name: String,
        /// `Qualifier`.
        qualifier: Option<String>,
    },
    /// PUT /2015-03-31/functions/{FunctionName}/code
    UpdateFunctionCode {
        /// Path name (decoded).
        name: String,
    },
    /// PUT /2015-03-31/functions/{FunctionName}/configuration
    UpdateFunctionConfiguration {
        /// Path name (decoded).
        name: String,
    },
    /// DELETE /2015-03-31/functions/{FunctionName}
    DeleteFunction {
        /// Path name (decoded).
        name: String,
        /// `Qualifier`.
        qualifier: Option<String>,
    },
    /// POST /2015-03-31/functions/{FunctionName}/invocations
    Invoke {
        /// Path name (decoded).
        name: String,
        /// `Qualifier`.
        qualifier: Option<String>,
    },
    /// GET /2016-08-19/account-settings
    GetAccountSettings,
    /// POST /2018-10-31/layers/{LayerName}/versions
    PublishLayerVersion {
        /// Layer name or ARN.
        layer: String,
    },
    /// GET /2018-10-31/layers/{LayerName}/versions/{VersionNumber}
    GetLayerVersion {
        /// Layer name or ARN.
        layer: String,
        /// Version number.
        version: String,
    },
    /// GET /2018-10-31/layers?find=LayerVersion&Arn=...
    GetLayerVersionByArn {
        /// The layer version ARN.
        arn: Option<String>,
    },
    /// GET /2018-10-31/layers
    ListLayers {
        /// `CompatibleRuntime`, `CompatibleArchitecture` filters.
        filters: (Option<String>, Option<String>),
        /// `Marker`.
        marker: Option<String>,
        /// `MaxItems`.
        max_items: Option<String>,
    },
    /// GET /2018-10-31/layers/{LayerName}/versions
    ListLayerVersions {
        /// Layer name or ARN.
        layer: String,
        /// `CompatibleRuntime`, `CompatibleArchitecture` filters.
        filters: (Option<String>, Option<String>),
        /// `Marker`.
        marker: Option<String>,
        /// `MaxItems`.
        max_items: Option<String>,
    },
    /// DELETE /2018-10-31/layers/{LayerName}/versions/{VersionNumber}
    DeleteLayerVersion {
        /// Layer name or ARN.
        layer: String,
        /// Version number.
        version: String,
    },
    /// POST /2018-10-31/layers/{LayerName}/versions/{VersionNumber}/policy
    AddLayerVersionPermission {
        /// Layer name or ARN.
        layer: String,
        /// Version number.
        version: String,
        /// `RevisionId`.
        revision_id: Option<String>,
    },
    /// GET /2018-10-31/layers/{LayerName}/versions/{VersionNumber}/policy
    GetLayerVersionPolicy {
        /// Layer name or ARN.
        layer: String,
        /// Version number.
        version: String,
    },
    /// DELETE /2018-10-31/layers/{LayerName}/versions/{VersionNumber}/policy/{StatementId}
    RemoveLayerVersionPermission {
        /// Layer name or ARN.
        layer: String,
        /// Version number.
        version: String,
        /// Statement id.
        statement_id: String,
        /// `RevisionId`.
        revision_id: Option<String>,
    },
    /// PUT /2019-09-30/functions/{FunctionName}/provisioned-concurrency
    PutProvisionedConcurrencyConfig {
        /// Path name (decoded).
        name: String,
        /// `Qualifier`.
        qualifier: Option<String>,
    },
    /// GET /2019-09-30/functions/{FunctionName}/provisioned-concurrency
    GetProvisionedConcurrencyConfig {
        /// Path name (decoded).
        name: String,
        /// `Qualifier`.
        qualifier: Option<String>,
    },
    /// DELETE /2019-09-30/functions/{FunctionName}/provisioned-concurrency
    DeleteProvisionedConcurrencyConfig {
        /// Path name (decoded).
        name: String,
        /// `Qualifier`.
        qualifier: Option<String>,
    },
    /// GET /2019-09-30/functions/{FunctionName}/provisioned-concurrency?List=ALL
    ListProvisionedConcurrencyConfigs {
        /// Path name (decoded).
        name: String,
        /// `Marker`.
        marker: Option<String>,
        /// `MaxItems`.
        max_items: Option<String>,
    },
    /// POST /2015-03-31/functions/{FunctionName}/versions
    PublishVersion {
        /// Path name (decoded).
        name: String,
    },
    /// GET /2015-03-31/functions/{FunctionName}/versions
    ListVersionsByFunction {
        /// Path name (decoded).
        name: String,
        /// `Marker`.
        marker: Option<String>,
        /// `MaxItems`.
        max_items: Option<String>,
    },
    /// POST /2015-03-31/functions/{FunctionName}/aliases
    CreateAlias {
        /// Path name (decoded).
        name: String,
    },
    /// GET /2015-03-31/functions/{FunctionName}/aliases
    ListAliases {
        /// Path name (decoded).
        name: String,
        /// `FunctionVersion` filter.
        function_version: Option<String>,
        /// `Marker`.
        marker: Option<String>,
        /// `MaxItems`.
        max_items: Option<String>,
    },
    /// GET /2015-03-31/functions/{FunctionName}/aliases/{Name}
    GetAlias {
        /// Path name (decoded).
        name: String,
        /// Alias name.
        alias: String,
    },
    /// PUT /2015-03-31/functions/{FunctionName}/aliases/{Name}
    UpdateAlias {
        /// Path name (decoded).
        name: String,
        /// Alias name.
        alias: String,
    },
    /// DELETE /2015-03-31/functions/{FunctionName}/aliases/{Name}
    DeleteAlias {
        /// Path name (decoded).
        name: String,
        /// Alias name.
        alias: String,
    },
    /// PUT /2017-10-31/functions/{FunctionName}/concurrency
    PutFunctionConcurrency {
        /// Path name (decoded).
        name: String,
    },
    /// GET /2019-09-30/functions/{FunctionName}/concurrency
    GetFunctionConcurrency {
        /// Path name (decoded).
        name: String,
    },
    /// DELETE /2017-10-31/functions/{FunctionName}/concurrency
    DeleteFunctionConcurrency {
        /// Path name (decoded).
        name: String,
    },
    /// POST /2017-03-31/tags/{Resource}
    TagResource {
        /// The resource ARN (decoded).
        resource: String,
    },
    /// DELETE /2017-03-31/tags/{Resource}?tagKeys=...
    UntagResource {
        /// The resource ARN (decoded).
        resource: String,
        /// `tagKeys`, repeated.
        keys: Vec<String>,
    },
    /// GET /2017-03-31/tags/{Resource}
    ListTags {
        /// The resource ARN (decoded).
        resource: String,
    },
    /// PUT /2019-09-25/functions/{FunctionName}/event-invoke-config
    PutFunctionEventInvokeConfig {
        /// Path name (decoded).
        name: String,
        /// `Qualifier`.
        qualifier: Option<String>,
    },
    /// POST /2019-09-25/functions/{FunctionName}/event-invoke-config
    UpdateFunctionEventInvokeConfig {
        /// Path name (decoded).
        name: String,
        /// `Qualifier`.
        qualifier: Option<String>,
    },
    /// GET /2019-09-25/functions/{FunctionName}/event-invoke-config
    GetFunctionEventInvokeConfig {
        /// Path name (decoded).
        name: String,
        /// `Qualifier`.
        qualifier: Option<String>,
    },
    /// DELETE /2019-09-25/functions/{FunctionName}/event-invoke-config
    DeleteFunctionEventInvokeConfig {
        /// Path name (decoded).
        name: String,
        /// `Qualifier`.
        qualifier: Option<String>,
    },
    /// GET /2019-09-25/functions/{FunctionName}/event-invoke-config/list
    ListFunctionEventInvokeConfigs {
        /// Path name (decoded).
        name: String,
        /// `Marker`.
        marker: Option<String>,
        /// `MaxItems`.
        max_items: Option<String>,
    },
    /// GET /2020-06-30/functions/{FunctionName}/code-signing-config
    GetFunctionCodeSigningConfig {
        /// Path name (decoded).
        name: String,
    },
    /// GET /_lamina/code/{sha256}.zip?expires=..&signature=.. (lamina's `Code.Location`)
    DownloadCode {
        /// Hex SHA-256 of the package.
        sha256: String,
        /// Expiry, Unix seconds.
        expires: Option<String>,
        /// HMAC over hash and expiry.
        signature: Option<String>,
    },
}

impl Operation {
    /// The operation's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::CreateFunction => "CreateFunction",
            Operation::ListFunctions { .. } => "ListFunctions",
            Operation::GetFunction { .. } => "GetFunction",
            Operation::GetFunctionConfiguration { .. } => "GetFunctionConfiguration",
            Operation::UpdateFunctionCode { .. } => "UpdateFunctionCode",
            Operation::UpdateFunctionConfiguration { .. } => "UpdateFunctionConfiguration",
            Operation::DeleteFunction { .. } => "DeleteFunction",
            Operation::Invoke { .. } => "Invoke",
            Operation::GetAccountSettings => "GetAccountSettings",
            Operation::PublishLayerVersion { .. } => "PublishLayerVersion",
            Operation::GetLayerVersion { .. } => "GetLayerVersion",
            Operation::GetLayerVersionByArn { .. } => "GetLayerVersionByArn",
            Operation::ListLayers { .. } => "ListLayers",
            Operation::ListLayerVersions { .. } => "ListLayerVersions",
            Operation::DeleteLayerVersion { .. } => "DeleteLayerVersion",
            Operation::AddLayerVersionPermission { .. } => "AddLayerVersionPermission",
            Operation::GetLayerVersionPolicy { .. } => "GetLayerVersionPolicy",
            Operation::RemoveLayerVersionPermission { .. } => "RemoveLayerVersionPermission",
            Operation::PutProvisionedConcurrencyConfig { .. } => "PutProvisionedConcurrencyConfig",
            Operation::GetProvisionedConcurrencyConfig { .. } => "GetProvisionedConcurrencyConfig",
            Operation::DeleteProvisionedConcurrencyConfig { .. } => {
                "DeleteProvisionedConcurrencyConfig"
            }
            Operation::ListProvisionedConcurrencyConfigs { .. } => {
                "ListProvisionedConcurrencyConfigs"
            }
            Operation::PublishVersion { .. } => "PublishVersion",
            Operation::ListVersionsByFunction { .. } => "ListVersionsByFunction",
            Operation::CreateAlias { .. } => "CreateAlias",
            Operation::ListAliases { .. } => "ListAliases",
            Operation::GetAlias { .. } => "GetAlias",
            Operation::UpdateAlias { .. } => "UpdateAlias",
            Operation::DeleteAlias { .. } => "DeleteAlias",
            Operation::PutFunctionConcurrency { .. } => "PutFunctionConcurrency",
            Operation::GetFunctionConcurrency { .. } => "GetFunctionConcurrency",
            Operation::DeleteFunctionConcurrency { .. } => "DeleteFunctionConcurrency",
            Operation::TagResource { .. } => "TagResource",
            Operation::UntagResource { .. } => "UntagResource",
            Operation::ListTags { .. } => "ListTags",
            Operation::GetFunctionCodeSigningConfig { .. } => "GetFunctionCodeSigningConfig",
            Operation::PutFunctionEventInvokeConfig { .. } => "PutFunctionEventInvokeConfig",
            Operation::UpdateFunctionEventInvokeConfig { .. } => "UpdateFunctionEventInvokeConfig",
            Operation::GetFunctionEventInvokeConfig { .. } => "GetFunctionEventInvokeConfig",
            Operation::DeleteFunctionEventInvokeConfig { .. } => "DeleteFunctionEventInvokeConfig",
            Operation::ListFunctionEventInvokeConfigs { .. } => "ListFunctionEventInvokeConfigs",
            Operation::DownloadCode { .. } => "DownloadCode",
        }
    }

    /// Route a request. The path is split on `/` before its segments are percent-decoded, so an
    /// encoded ARN stays one segment.
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Operation, ApiError> {
        let trimmed = path.trim_start_matches('/');
        let decoded: Vec<String>;
        let seg: Vec<&str> = if trimmed.contains('%') {
            decoded = trimmed
                .split('/')
                .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
                .collect();
            decoded.iter().map(String::as_str).collect()
        } else {
            // Nothing to decode (the usual case): the segments borrow the path.
            trimmed.split('/').collect()
        };
        let q = Query::parse(query);
        let name = |s: &str| s.to_string();
        let op = match (method, seg.as_slice()) {
            (&Method::POST, ["2015-03-31", "functions"] | ["2015-03-31", "functions", ""]) => {
                Operation::CreateFunction
            }
            (&Method::GET, ["2015-03-31", "functions"] | ["2015-03-31", "functions", ""]) => {
                Operation::ListFunctions {
                    marker: q.get("Marker"),
                    max_items: q.get("MaxItems"),
                }
            }
            (&Method::GET, ["2015-03-31", "functions", f]) => Operation::GetFunction {
                name: name(f),
                qualifier: q.get("Qualifier"),
            },
            (&Method::DELETE, ["2015-03-31", "functions", f]) => Operation::DeleteFunction {
                name: name(f),
                qualifier: q.get("Qualifier"),
            },
            (&Method::GET, ["2015-03-31", "functions", f, "configuration"]) => {
                Operation::GetFunctionConfiguration {
                    name: name(f),
                    qualifier: q.get("Qualifier"),
                }
            }
            (&Method::PUT, ["2015-03-31", "functions", f, "configuration"]) => {
                Operation::UpdateFunctionConfiguration { name: name(f) }
            }
            (&Method::PUT, ["2015-03-31", "functions", f, "code"]) => {
                Operation::UpdateFunctionCode { name: name(f) }
            }
            (&Method::POST, ["2015-03-31", "functions", f, "invocations"]) => Operation::Invoke {
                name: name(f),
                qualifier: q.get("Qualifier"),
            },
            (&Method::POST, ["2015-03-31", "functions", f, "versions"]) => {
                Operation::PublishVersion { name: name(f) }
            }
            (&Method::GET, ["2015-03-31", "functions", f, "versions"]) => {
                Operation::ListVersionsByFunction {
                    name: name(f),
                    marker: q.get("Marker"),
                    max_items: q.get("MaxItems"),
                }
            }
            (&Method::POST, ["2015-03-31", "functions", f, "aliases"]) => {
                Operation::CreateAlias { name: name(f) }
            }
            (&Method::GET, ["2015-03-31", "functions", f, "aliases"]) => Operation::ListAliases {
                name: name(f),
                function_version: q.get("FunctionVersion"),
                marker: q.get("Marker"),
                max_items: q.get("MaxItems"),
            },
            (&Method::GET, ["2015-03-31", "functions", f, "aliases", a]) => Operation::GetAlias {
                name: name(f),
                alias: name(a),
            },
            (&Method::PUT, ["2015-03-31", "functions", f, "aliases", a]) => {
                Operation::UpdateAlias {
                    name: name(f),
                    alias: name(a),
                }
            }
            (&Method::DELETE, ["2015-03-31", "functions", f, "aliases", a]) => {
                Operation::DeleteAlias {
                    name: name(f),
                    alias: name(a),
                }
            }
            (&Method::PUT, ["2019-09-30", "functions", f, "provisioned-concurrency"]) => {
                Operation::PutProvisionedConcurrencyConfig {
                    name: name(f),
                    qualifier: q.get("Qualifier"),
                }
            }
            (&Method::GET, ["2019-09-30", "functions", f, "provisioned-concurrency"])
                if q.get("List").as_deref() == Some("ALL") =>
            {
                Operation::ListProvisionedConcurrencyConfigs {
                    name: name(f),
                    marker: q.get("Marker"),
                    max_items: q.get("MaxItems"),
                }
            }
            (&Method::GET, ["2019-09-30", "functions", f, "provisioned-concurrency"]) => {
                Operation::GetProvisionedConcurrencyConfig {
                    name: name(f),
                    qualifier: q.get("Qualifier"),
                }
            }
            (&Method::DELETE, ["2019-09-30", "functions", f, "provisioned-concurrency"]) => {
                Operation::DeleteProvisionedConcurrencyConfig {
                    name: name(f),
                    qualifier: q.get("Qualifier"),
                }
            }
            (&Method::POST, ["2018-10-31", "layers", l, "versions"]) => {
                Operation::PublishLayerVersion { layer: name(l) }
            }
            (&Method::GET, ["2018-10-31", "layers", l, "versions"]) => {
                Operation::ListLayerVersions {
                    layer: name(l),
                    filters: (q.get("CompatibleRuntime"), q.get("CompatibleArchitecture")),
                    marker: q.get("Marker"),
                    max_items: q.get("MaxItems"),
                }
            }
            (&Method::GET, ["2018-10-31", "layers", l, "versions", v]) => {
                Operation::GetLayerVersion {
                    layer: name(l),
                    version: name(v),
                }
            }
            (&Method::DELETE, ["2018-10-31", "layers", l, "versions", v]) => {
                Operation::DeleteLayerVersion {
                    layer: name(l),
                    version: name(v),
                }
            }
            (&Method::POST, ["2018-10-31", "layers", l, "versions", v, "policy"]) => {
                Operation::AddLayerVersionPermission {
                    layer: name(l),
                    version: name(v),
                    revision_id: q.get("RevisionId"),
                }
            }
            (&Method::GET, ["2018-10-31", "layers", l, "versions", v, "policy"]) => {
                Operation::GetLayerVersionPolicy {
                    layer: name(l),
                    version: name(v),
                }
            }
            (&Method::DELETE, ["2018-10-31", "layers", l, "versions", v, "policy", sid]) => {
                Operation::RemoveLayerVersionPermission {
                    layer: name(l),
                    version: name(v),
                    statement_id: name(sid),
                    revision_id: q.get("RevisionId"),
                }
            }
            (&Method::GET, ["2018-10-31", "layers"] | ["2018-10-31", "layers", ""])
                if q.get("find").as_deref() == Some("LayerVersion") =>
            {
                Operation::GetLayerVersionByArn { arn: q.get("Arn") }
            }
            (&Method::GET, ["2018-10-31", "layers"] | ["2018-10-31", "layers", ""]) => {
                Operation::ListLayers {
                    filters: (q.get("CompatibleRuntime"), q.get("CompatibleArchitecture")),
                    marker: q.get("Marker"),
                    max_items: q.get("MaxItems"),
                }
            }
            (&Method::PUT, ["2017-10-31", "functions", f, "concurrency"]) => {
                Operation::PutFunctionConcurrency { name: name(f) }
            }
            (&Method::GET, ["2019-09-30", "functions", f, "concurrency"]) => {
                Operation::GetFunctionConcurrency { name: name(f) }
            }
            (&Method::DELETE, ["2017-10-31", "functions", f, "concurrency"]) => {
                Operation::DeleteFunctionConcurrency { name: name(f) }
            }
            (
                &Method::GET,
                ["2016-08-19", "account-settings"] | ["2016-08-19", "account-settings", ""],
            ) => Operation::GetAccountSettings,
            (&Method::POST, ["2017-03-31", "tags", r]) => {
                Operation::TagResource { resource: name(r) }
            }
            (&Method::DELETE, ["2017-03-31", "tags", r]) => Operation::UntagResource {
                resource: name(r),
                keys: q.all("tagKeys"),
            },
            (&Method::GET, ["2017-03-31", "tags", r]) => Operation::ListTags { resource: name(r) },
            (&Method::PUT, ["2019-09-25", "functions", f, "event-invoke-config"]) => {
                Operation::PutFunctionEventInvokeConfig {
                    name: name(f),
                    qualifier: q.get("Qualifier"),
                }
            }
            (&Method::POST, ["2019-09-25", "functions", f, "event-invoke-config"]) => {
                Operation::UpdateFunctionEventInvokeConfig {
                    name: name(f),
                    qualifier: q.get("Qualifier"),
                }
            }
            (&Method::GET, ["2019-09-25", "functions", f, "event-invoke-config"]) => {
                Operation::GetFunctionEventInvokeConfig {
                    name: name(f),
                    qualifier: q.get("Qualifier"),
                }
            }
            (&Method::DELETE, ["2019-09-25", "functions", f, "event-invoke-config"]) => {
                Operation::DeleteFunctionEventInvokeConfig {
                    name: name(f),
                    qualifier: q.get("Qualifier"),
                }
            }
            (&Method::GET, ["2019-09-25", "functions", f, "event-invoke-config", "list"]) => {
                Operation::ListFunctionEventInvokeConfigs {
                    name: name(f),
                    marker: q.get("Marker"),
                    max_items: q.get("MaxItems"),
                }
            }
            (&Method::GET, ["2020-06-30", "functions", f, "code-signing-config"]) => {
                Operation::GetFunctionCodeSigningConfig { name: name(f) }
            }
            (&Method::GET, ["_lamina", "code", file]) => Operation::DownloadCode {
                sha256: file.trim_end_matches(".zip").to_string(),
                expires: q.get("expires"),
                signature: q.get("signature"),
            },
            _ => {
                return Err(ApiError::UnknownOperation(format!(
                    "lamina does not serve {method} {path}"
                )))
            }
        };
        Ok(op)
    }
}

/// A decoded query string.
#[derive(Debug, Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Query(
            query
                .unwrap_or("")
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(kv), String::new()),
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_encoded_names() {
        let op = Operation::parse(
            &Method::POST,
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/invocations",
            Some("Qualifier=%24LATEST"),
        )
        .unwrap();
        assert_eq!(
            op,
            Operation::Invoke {
                name: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
                qualifier: Some("$LATEST".into())
            }
        );
    }

    #[test]
    fn untag_keys_repeat() {
        let op = Operation::parse(
            &Method::DELETE,
            "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af",
            Some("tagKeys=a&tagKeys=b%20c"),
        )
        .unwrap();
        assert!(matches!(op, Operation::UntagResource { keys, .. } if keys == ["a", "b c"]));
    }

    #[test]
    fn versions_aliases_and_concurrency_route_on_their_date_prefix() {
        let route = |m: Method, p: &str| Operation::parse(&m, p, None).unwrap().name();
        assert_eq!(
            route(Method::POST, "/2015-03-31/functions/f/versions"),
            "PublishVersion"
        );
        assert_eq!(
            route(Method::GET, "/2015-03-31/functions/f/versions"),
            "ListVersionsByFunction"
        );
        assert_eq!(
            route(Method::PUT, "/2015-03-31/functions/f/aliases/live"),
            "UpdateAlias"
        );
        assert_eq!(
            route(Method::PUT, "/2017-10-31/functions/f/concurrency"),
            "PutFunctionConcurrency"
        );
        assert_eq!(
            route(Method::GET, "/2019-09-30/functions/f/concurrency"),
            "GetFunctionConcurrency"
        );
        assert!(
            Operation::parse(&Method::GET, "/2017-10-31/functions/f/concurrency", None).is_err()
        );
    }

    #[test]
    fn unknown_routes() {
        assert!(Operation::parse(&Method::PATCH, "/2015-03-31/functions/f", None).is_err());
        assert!(Operation::parse(&Method::GET, "/nope", None).is_err());
    }
}
