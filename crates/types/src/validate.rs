//! The checks AWS applies to function configuration, with AWS's error kinds and messages.
//!
//! Constraint violations of the model's shapes (lengths, patterns, enums, the model's ranges) are
//! `ValidationException`s in AWS's `1 validation error detected: ...` wording; rules Lambda applies
//! beyond the model (the 10240 MB memory ceiling, the 900 s timeout, the 4 KB environment,
//! reserved variables, runtimes lamina cannot run) are `InvalidParameterValueException`s.

use std::collections::BTreeMap;

use crate::function::{
    CreateFunctionRequest, EphemeralStorage, LoggingConfig, TracingConfig,
    UpdateFunctionConfigurationRequest,
};
use crate::runtime::{self, MODEL_RUNTIMES, SERVED_RUNTIMES};

/// Lambda's memory ceiling for ordinary functions, MB.
pub const MAX_MEMORY_MB: i64 = 10_240;
/// The model's memory floor, MB.
pub const MIN_MEMORY_MB: i64 = 128;
/// Lambda's timeout ceiling, seconds.
pub const MAX_TIMEOUT_S: i64 = 900;
/// All environment variables together, as JSON, at most this many bytes.
pub const MAX_ENVIRONMENT_BYTES: usize = 4096;

/// Variables the platform sets; a function may not set them.
pub const RESERVED_VARIABLES: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// A request that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// `ValidationException` (400): a model constraint.
    #[error("{0}")]
    Validation(String),
    /// `InvalidParameterValueException` (400): a Lambda rule.
    #[error("{0}")]
    InvalidParameterValue(String),
}

impl InputError {
    /// AWS's wording for one constraint violation.
    pub fn validation(field: &str, value: &str, constraint: &str) -> Self {
        InputError::Validation(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ))
    }

    /// A value that must be present.
    pub fn missing(field: &str) -> Self {
        InputError::Validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    }

    /// An `InvalidParameterValueException`.
    pub fn invalid(message: impl Into<String>) -> Self {
        InputError::InvalidParameterValue(message.into())
    }
}

type Result<T> = std::result::Result<T, InputError>;

/// Check the configuration parts of a CreateFunction request (the code is checked separately).
pub fn check_create(req: &CreateFunctionRequest) -> Result<()> {
    let package_type = req.package_type.as_deref().unwrap_or("Zip");
    match package_type {
        "Zip" => {}
        "Image" => {
            return Err(InputError::invalid(
                "lamina runs deployment packages (PackageType Zip); container images (PackageType Image) are not supported",
            ))
        }
        other => {
            return Err(InputError::validation(
                "packageType",
                other,
                "Member must satisfy enum value set: [Zip, Image]",
            ))
        }
    }
    let role = req
        .role
        .as_deref()
        .ok_or_else(|| InputError::missing("role"))?;
    check_role(role)?;
    if req.runtime.is_none() || req.handler.is_none() {
        return Err(InputError::invalid(
            "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
        ));
    }
    check_common(
        req.runtime.as_deref(),
        req.handler.as_deref(),
        req.description.as_deref(),
        req.timeout,
        req.memory_size,
        req.environment.as_ref().map(|e| &e.variables),
        req.ephemeral_storage.as_ref(),
        req.tracing_config.as_ref(),
        req.logging_config.as_ref(),
        req.layers.as_deref(),
    )?;
    if let Some(archs) = &req.architectures {
        check_architectures(archs)?;
    }
    if let Some(tags) = &req.tags {
        check_tags(tags)?;
    }
    check_dead_letter(req.dead_letter_config.as_ref())?;
    Ok(())
}

/// `DeadLetterConfig.TargetArn`: empty (no dead-letter queue) or an SQS queue ARN, the only
/// dead-letter target lamina delivers to.
pub fn check_dead_letter(config: Option<&serde_json::Value>) -> Result<()> {
    let Some(arn) = config.and_then(|c| c.get("TargetArn")) else {
        return Ok(());
    };
    let arn = arn.as_str().unwrap_or_default();
    if arn.is_empty() || crate::asynchronous::QueueKey::from_arn(arn).is_some() {
        return Ok(());
    }
    Err(InputError::invalid(format!(
        "The DeadLetterConfig target ARN {arn} is not supported: lamina's dead-letter queues are SQS queues (arn:aws:sqs:...)"
    )))
}

/// Check an UpdateFunctionConfiguration request.
pub fn check_update(req: &UpdateFunctionConfigurationRequest) -> Result<()> {
    check_dead_letter(req.dead_letter_config.as_ref())?;
    if let Some(role) = &req.role {
        check_role(role)?;
    }
    check_common(
        req.runtime.as_deref(),
        req.handler.as_deref(),
        req.description.as_deref(),
        req.timeout,
        req.memory_size,
        req.environment.as_ref().map(|e| &e.variables),
        req.ephemeral_storage.as_ref(),
        req.tracing_config.as_ref(),
        req.logging_config.as_ref(),
        req.layers.as_deref(),
    )
}

#[allow(clippy::too_many_arguments)]
fn check_common(
    runtime: Option<&str>,
    handler: Option<&str>,
    description: Option<&str>,
    timeout: Option<i64>,
    memory: Option<i64>,
    variables: Option<&BTreeMap<String, String>>,
    ephemeral: Option<&EphemeralStorage>,
    tracing: Option<&TracingConfig>,
    logging: Option<&LoggingConfig>,
    layers: Option<&[String]>,
) -> Result<()> {
    if let Some(r) = runtime {
        check_runtime(r)?;
    }
    if let Some(h) = handler {
        check_handler(h)?;
    }
    if let Some(d) = description {
        if d.chars().count() > 256 {
            return Err(InputError::validation(
                "description",
                d,
                "Member must have length less than or equal to 256",
            ));
        }
    }
    if let Some(t) = timeout {
        check_timeout(t)?;
    }
    if let Some(m) = memory {
        check_memory(m)?;
    }
    if let Some(vars) = variables {
        check_variables(vars)?;
    }
    if let Some(e) = ephemeral {
        if !(512..=10_240).contains(&e.size) {
            let bound = if e.size < 512 {
                "Member must have value greater than or equal to 512"
            } else {
                "Member must have value less than or equal to 10240"
            };
            return Err(InputError::validation(
                "ephemeralStorage.size",
                &e.size.to_string(),
                bound,
            ));
        }
    }
    if let Some(t) = tracing {
        if t.mode != "Active" && t.mode != "PassThrough" {
            return Err(InputError::validation(
                "tracingConfig.mode",
                &t.mode,
                "Member must satisfy enum value set: [Active, PassThrough]",
            ));
        }
    }
    if let Some(l) = logging {
        if let Some(f) = &l.log_format {
            if f != "JSON" && f != "Text" {
                return Err(InputError::validation(
                    "loggingConfig.logFormat",
                    f,
                    "Member must satisfy enum value set: [JSON, Text]",
                ));
            }
        }
    }
    if let Some(layers) = layers {
        if layers.len() > crate::layer::MAX_LAYERS_PER_FUNCTION {
            return Err(InputError::invalid("Cannot reference more than 5 layers."));
        }
        if layers
            .iter()
            .any(|arn| crate::layer::LayerArn::parse(arn).is_none_or(|a| a.version.is_none()))
        {
            return Err(InputError::validation(
                "layers",
                &format!("[{}]", layers.join(", ")),
                "Member must satisfy constraint: [Member must have length less than or equal to 140, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+]",
            ));
        }
    }
    Ok(())
}

/// The role must match the model's `RoleArn` pattern,
/// `arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+` (lamina does not assume it).
pub fn check_role(role: &str) -> Result<()> {
    let path_char = |b: u8| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b);
    let ok = role
        .strip_prefix("arn:")
        .and_then(|r| r.split_once(":iam::"))
        .filter(|(partition, _)| {
            partition.is_empty()
                || partition
                    .strip_prefix("aws")
                    .is_some_and(|p| p.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'))
        })
        .and_then(|(_, rest)| rest.split_once(":role"))
        .is_some_and(|(account, path)| {
            account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && !path.is_empty()
                && path.bytes().all(path_char)
        });
    if ok {
        Ok(())
    } else {
        Err(InputError::validation(
            "role",
            role,
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        ))
    }
}

/// A model enum value that lamina can run.
pub fn check_runtime(r: &str) -> Result<()> {
    if !MODEL_RUNTIMES.contains(&r) {
        return Err(InputError::validation(
            "runtime",
            r,
            &format!(
                "Member must satisfy enum value set: [{}] or be a valid ARN",
                MODEL_RUNTIMES.join(", ")
            ),
        ));
    }
    if runtime::family(r).is_none() {
        return Err(InputError::invalid(format!(
            "The runtime parameter of {r} is not supported by lamina. Supported runtimes: {}.",
            SERVED_RUNTIMES.join(", ")
        )));
    }
    Ok(())
}

/// `[^\s]+`, at most 128 characters.
pub fn check_handler(h: &str) -> Result<()> {
    if h.chars().count() > 128 {
        return Err(InputError::validation(
            "handler",
            h,
            "Member must have length less than or equal to 128",
        ));
    }
    if h.is_empty() || h.chars().any(char::is_whitespace) {
        return Err(InputError::validation(
            "handler",
            h,
            "Member must satisfy regular expression pattern: [^\\s]+",
        ));
    }
    Ok(())
}

/// 1 to 900 seconds.
pub fn check_timeout(t: i64) -> Result<()> {
    if t < 1 {
        return Err(InputError::validation(
            "timeout",
            &t.to_string(),
            "Member must have value greater than or equal to 1",
        ));
    }
    if t > MAX_TIMEOUT_S {
        return Err(InputError::invalid(format!(
            "'Timeout' value failed to satisfy constraint: Member must have value less than or equal to {MAX_TIMEOUT_S}"
        )));
    }
    Ok(())
}

/// 128 to 10240 MB.
pub fn check_memory(m: i64) -> Result<()> {
    if m < MIN_MEMORY_MB {
        return Err(InputError::validation(
            "memorySize",
            &m.to_string(),
            "Member must have value greater than or equal to 128",
        ));
    }
    if m > MAX_MEMORY_MB {
        return Err(InputError::invalid(format!(
            "'MemorySize' value failed to satisfy constraint: Member must have value less than or equal to {MAX_MEMORY_MB}"
        )));
    }
    Ok(())
}

/// A function's own choice of isolation level (`process` or `namespace`); lamina honours it
/// only where it is stricter than the server's.
pub const ISOLATION_VARIABLE: &str = "LAMINA_ISOLATION";
/// A function's own choice of network (`host` or `none`); honoured only where stricter.
pub const NETWORK_VARIABLE: &str = "LAMINA_NETWORK";

/// Key pattern, reserved keys, lamina's own variables' values, and the 4 KB limit.
pub fn check_variables(vars: &BTreeMap<String, String>) -> Result<()> {
    let key_ok = |k: &str| {
        let b = k.as_bytes();
        b.len() >= 2
            && b[0].is_ascii_alphabetic()
            && b[1..]
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    if vars.keys().any(|k| !key_ok(k)) {
        return Err(InputError::Validation(
            "1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]".into(),
        ));
    }
    let reserved: Vec<&str> = vars
        .keys()
        .map(String::as_str)
        .filter(|k| RESERVED_VARIABLES.contains(k))
        .collect();
    if !reserved.is_empty() {
        return Err(InputError::invalid(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    for (key, allowed) in [
        (ISOLATION_VARIABLE, ["process", "namespace"]),
        (NETWORK_VARIABLE, ["host", "none"]),
    ] {
        if let Some(value) = vars.get(key) {
            if !allowed.contains(&value.as_str()) {
                return Err(InputError::invalid(format!(
                    "Environment variable {key} must be one of {}; got '{value}'",
                    allowed.join(", ")
                )));
            }
        }
    }
    let measured = serde_json::to_string(vars).unwrap_or_default();
    if measured.len() > MAX_ENVIRONMENT_BYTES {
        return Err(InputError::invalid(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {measured}"
        )));
    }
    Ok(())
}

/// Exactly one of `x86_64`, `arm64`.
pub fn check_architectures(archs: &[String]) -> Result<()> {
    if archs.len() != 1 {
        return Err(InputError::validation(
            "architectures",
            &format!("[{}]", archs.join(", ")),
            "Member must have length less than or equal to 1 and greater than or equal to 1",
        ));
    }
    if archs[0] != "x86_64" && archs[0] != "arm64" {
        return Err(InputError::validation(
            "architectures",
            &archs[0],
            "Member must satisfy enum value set: [x86_64, arm64]",
        ));
    }
    Ok(())
}

/// Tag keys 1-128 characters, values at most 256.
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(InputError::invalid(format!(
                "Tag key '{k}' must be between 1 and 128 characters long"
            )));
        }
        if k.starts_with("aws:") {
            return Err(InputError::invalid(format!(
                "Tag key '{k}' uses the reserved prefix aws:"
            )));
        }
        if v.chars().count() > 256 {
            return Err(InputError::invalid(format!(
                "Tag value for key '{k}' must be at most 256 characters long"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create() -> CreateFunctionRequest {
        CreateFunctionRequest {
            function_name: Some("f".into()),
            runtime: Some("python3.12".into()),
            role: Some("arn:aws:iam::123456789012:role/lambda".into()),
            handler: Some("app.handler".into()),
            ..Default::default()
        }
    }

    #[test]
    fn accepts_a_plain_request() {
        check_create(&create()).unwrap();
    }

    #[test]
    fn limits() {
        assert!(check_memory(127).is_err());
        assert!(check_memory(128).is_ok());
        assert!(check_memory(10_240).is_ok());
        assert!(matches!(
            check_memory(10_241),
            Err(InputError::InvalidParameterValue(_))
        ));
        assert!(check_timeout(0).is_err());
        assert!(check_timeout(900).is_ok());
        assert!(check_timeout(901).is_err());
    }

    #[test]
    fn runtimes() {
        assert!(matches!(
            check_runtime("cobol9"),
            Err(InputError::Validation(_))
        ));
        assert!(matches!(
            check_runtime("java21"),
            Err(InputError::InvalidParameterValue(_))
        ));
        assert!(check_runtime("nodejs20.x").is_ok());
    }

    #[test]
    fn variables() {
        let mut v = BTreeMap::new();
        v.insert("GOOD_1".to_string(), "x".to_string());
        assert!(check_variables(&v).is_ok());
        v.insert("1BAD".to_string(), "x".to_string());
        assert!(matches!(
            check_variables(&v),
            Err(InputError::Validation(_))
        ));
        v.remove("1BAD");
        v.insert("AWS_REGION".to_string(), "x".to_string());
        let err = check_variables(&v).unwrap_err().to_string();
        assert!(err.contains("AWS_REGION"), "{err}");
        v.remove("AWS_REGION");
        v.insert("BIG".to_string(), "x".repeat(4096));
        assert!(check_variables(&v).unwrap_err().to_string().contains("4KB"));
    }

    #[test]
    fn missing_handler_or_role() {
        let mut r = create();
        r.handler = None;
        assert!(check_create(&r).is_err());
        let mut r = create();
        r.role = None;
        assert!(matches!(check_create(&r), Err(InputError::Validation(m)) if m.contains("role")));
        let mut r = create();
        r.role = Some("not-a-role".into());
        assert!(check_create(&r).is_err());
    }

    #[test]
    fn role_pattern() {
        for good in [
            "arn:aws:iam::123456789012:role/lambda",
            "arn:aws:iam::123456789012:role/service-role/x",
            "arn:aws-us-gov:iam::123456789012:role/x",
            "arn::iam::123456789012:role/x",
            "arn:aws:iam::123456789012:roleX",
            "arn:aws:iam::123456789012:role/",
        ] {
            assert!(check_role(good).is_ok(), "{good}");
        }
        for bad in [
            "not-a-role",
            "arn:aws:iam::123456789012:role",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::1234:role/x",
            "arn:gcp:iam::123456789012:role/x",
            "arn:aws1:iam::123456789012:role/x",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(check_role(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn handler_pattern() {
        assert!(check_handler("a b").is_err());
        assert!(check_handler(&"h".repeat(129)).is_err());
        assert!(check_handler("src/app.handler").is_ok());
    }
}
