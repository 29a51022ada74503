//! Layers: shapes of the layer API and the parsing of layer ARNs.

use serde::{Deserialize, Serialize};

/// The most layers a function may use.
pub const MAX_LAYERS_PER_FUNCTION: usize = 5;

/// `Content` of PublishLayerVersion.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct LayerContentInput {
    pub zip_file: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_key: Option<String>,
}

/// The body of PublishLayerVersion.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct PublishLayerVersionRequest {
    pub content: Option<LayerContentInput>,
    pub description: Option<String>,
    pub compatible_runtimes: Option<Vec<String>>,
    pub compatible_architectures: Option<Vec<String>>,
    pub license_info: Option<String>,
}

/// `Content` of a layer version as returned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct LayerVersionContent {
    /// Filled in per response (a download URL on lamina); stored empty.
    pub location: String,
    pub code_sha256: String,
    pub code_size: u64,
}

/// A layer version as GetLayerVersion returns it (and as the store keeps it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct LayerVersion {
    pub content: LayerVersionContent,
    pub layer_arn: String,
    pub layer_version_arn: String,
    pub description: String,
    pub created_date: String,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compatible_runtimes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compatible_architectures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_info: Option<String>,
}

/// A layer version as the store keeps it: the API shape, its package and its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLayerVersion {
    /// The API shape.
    pub layer: LayerVersion,
    /// Lower-case hex SHA-256 of the package.
    pub code_sha256_hex: String,
    /// The resource policy document (JSON), if any statement was added.
    pub policy: Option<String>,
    /// Changes whenever the policy changes.
    pub policy_revision: String,
}

/// `arn:aws:lambda:{region}:{account}:layer:{name}[:{version}]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerArn {
    /// Region.
    pub region: String,
    /// Account id.
    pub account: String,
    /// Layer name.
    pub name: String,
    /// Version number, for a layer version ARN.
    pub version: Option<u64>,
}

impl LayerArn {
    /// Parse a layer or layer version ARN.
    pub fn parse(arn: &str) -> Option<LayerArn> {
        let parts: Vec<&str> = arn.split(':').collect();
        if parts.len() < 7
            || parts.len() > 8
            || parts[0] != "arn"
            || parts[2] != "lambda"
            || parts[5] != "layer"
        {
            return None;
        }
        if !crate::names::is_name(parts[6]) || parts[6].len() > 140 {
            return None;
        }
        let version = match parts.get(7) {
            Some(v) => Some(v.parse().ok()?),
            None => None,
        };
        Some(LayerArn {
            region: parts[3].to_string(),
            account: parts[4].to_string(),
            name: parts[6].to_string(),
            version,
        })
    }
}

/// `arn:aws:lambda:{region}:{account}:layer:{name}`.
pub fn layer_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:layer:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_layer_arns() {
        let a = LayerArn::parse("arn:aws:lambda:us-east-1:000000000000:layer:libs:3").unwrap();
        assert_eq!((a.name.as_str(), a.version), ("libs", Some(3)));
        let a = LayerArn::parse("arn:aws:lambda:us-east-1:000000000000:layer:libs").unwrap();
        assert_eq!(a.version, None);
        for bad in [
            "libs",
            "arn:aws:lambda:us-east-1:000000000000:function:f",
            "arn:aws:lambda:us-east-1:000000000000:layer:libs:x",
            "arn:aws:lambda:us-east-1:000000000000:layer:bad name:1",
        ] {
            assert!(LayerArn::parse(bad).is_none(), "{bad}");
        }
    }
}
