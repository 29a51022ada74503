//! The SQS operations, on the JSON protocol's input and output shapes (the query protocol is
//! converted to and from them).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use base64::Engine;
use lamina_store::{HandleOutcome, NewMessage, QueueRecord, ReceiveOptions};
use lamina_types::asynchronous::{is_queue_name, QueueKey};
use serde_json::{json, Map, Value};

use super::digest;
use crate::error::SqsError;
use crate::{ApiState, Ctx};

/// Default `VisibilityTimeout`, seconds.
const DEFAULT_VISIBILITY_S: i64 = 30;
/// Default `MessageRetentionPeriod`, seconds (4 days).
const DEFAULT_RETENTION_S: i64 = 345_600;
/// Default and largest `MaximumMessageSize`, bytes (1 MiB, which an `Event` payload needs).
const MAX_MESSAGE_BYTES: i64 = 1_048_576;
/// Most entries in a batch and messages per receive.
const MAX_BATCH: usize = 10;
/// Most message attributes per message.
const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// How often a long poll looks again when nothing woke it (visibility timeouts and delays end
/// without a wake-up; a send in this process wakes it at once).
const LONG_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A settable queue attribute: name, allowed range (`None`: free text), default.
type Settable = (&'static str, Option<(i64, i64)>, Option<i64>);

/// Settable queue attributes.
const SETTABLE: &[Settable] = &[
    ("DelaySeconds", Some((0, 900)), Some(0)),
    (
        "MaximumMessageSize",
        Some((1024, MAX_MESSAGE_BYTES)),
        Some(MAX_MESSAGE_BYTES),
    ),
    (
        "MessageRetentionPeriod",
        Some((60, 1_209_600)),
        Some(DEFAULT_RETENTION_S),
    ),
    ("ReceiveMessageWaitTimeSeconds", Some((0, 20)), Some(0)),
    (
        "VisibilityTimeout",
        Some((0, 43_200)),
        Some(DEFAULT_VISIBILITY_S),
    ),
    ("RedrivePolicy", None, None),
    ("RedriveAllowPolicy", None, None),
    ("Policy", None, None),
    ("KmsMasterKeyId", None, None),
    ("KmsDataKeyReusePeriodSeconds", Some((60, 86_400)), None),
    ("SqsManagedSseEnabled", None, None),
];

/// Attributes computed from the queue's state.
const COMPUTED: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
];

/// Run one action.
pub(crate) async fn run(
    state: &ApiState,
    ctx: &Ctx,
    action: &str,
    input: Value,
) -> Result<Value, SqsError> {
    let p = Input(input);
    match action {
        "CreateQueue" => create_queue(state, ctx, &p).await,
        "GetQueueUrl" => get_queue_url(state, ctx, &p).await,
        "ListQueues" => list_queues(state, ctx, &p).await,
        "GetQueueAttributes" => get_queue_attributes(state, ctx, &p).await,
        "SetQueueAttributes" => set_queue_attributes(state, ctx, &p).await,
        "DeleteQueue" => {
            let key = queue_key(ctx, &p)?;
            if !state.store.delete_queue(&key).await? {
                return Err(SqsError::QueueDoesNotExist);
            }
            Ok(json!({}))
        }
        "PurgeQueue" => {
            let key = queue_key(ctx, &p)?;
            state.store.purge_queue(&key).await?;
            Ok(json!({}))
        }
        "SendMessage" => send_message(state, ctx, &p).await,
        "SendMessageBatch" => send_message_batch(state, ctx, &p).await,
        "ReceiveMessage" => receive_message(state, ctx, &p).await,
        "DeleteMessage" => {
            let key = queue_key(ctx, &p)?;
            let handle = p.required_str("ReceiptHandle")?;
            match state.store.delete_message(&key, handle).await? {
                HandleOutcome::Done => Ok(json!({})),
                HandleOutcome::Invalid | HandleOutcome::NotInFlight => {
                    Err(SqsError::ReceiptHandleIsInvalid(handle.to_string()))
                }
            }
        }
        "DeleteMessageBatch" => delete_message_batch(state, ctx, &p).await,
        "ChangeMessageVisibilityBatch" => change_visibility_batch(state, ctx, &p).await,
        "ChangeMessageVisibility" => {
            let key = queue_key(ctx, &p)?;
            let handle = p.required_str("ReceiptHandle")?;
            let timeout = p.required_int("VisibilityTimeout")?;
            check_range("VisibilityTimeout", timeout, 0, 43_200)?;
            match state
                .store
                .change_visibility(&key, handle, timeout * 1000, now_ms())
                .await?
            {
                HandleOutcome::Done => Ok(json!({})),
                HandleOutcome::NotInFlight => Err(SqsError::MessageNotInflight),
                HandleOutcome::Invalid => Err(SqsError::ReceiptHandleIsInvalid(handle.into())),
            }
        }
        other => Err(SqsError::UnsupportedOperation(other.to_string())),
    }
}

/// The input document with typed accessors.
struct Input(Value);

impl Input {
    fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    fn required_str(&self, name: &str) -> Result<&str, SqsError> {
        self.str(name)
            .ok_or_else(|| SqsError::MissingParameter(name.into()))
    }

    /// An integer sent as a JSON number (JSON protocol) or a string (query protocol).
    fn int(&self, name: &str) -> Result<Option<i64>, SqsError> {
        int_of(self.0.get(name), name)
    }

    fn required_int(&self, name: &str) -> Result<i64, SqsError> {
        self.int(name)?
            .ok_or_else(|| SqsError::MissingParameter(name.into()))
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, SqsError> {
        let mut out = BTreeMap::new();
        if let Some(map) = self.0.get(name).and_then(Value::as_object) {
            for (k, v) in map {
                let v = v.as_str().ok_or_else(|| {
                    SqsError::InvalidAttributeValue(format!("Invalid value for the parameter {k}."))
                })?;
                out.insert(k.clone(), v.to_string());
            }
        }
        Ok(out)
    }
}

fn int_of(v: Option<&Value>, name: &str) -> Result<Option<i64>, SqsError> {
    let parsed = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    parsed.map(Some).ok_or_else(|| {
        SqsError::InvalidParameterValue(format!(
            "Value for parameter {name} is invalid. Reason: must be an integer."
        ))
    })
}

fn check_range(name: &str, v: i64, lo: i64, hi: i64) -> Result<(), SqsError> {
    if v < lo || v > hi {
        return Err(SqsError::InvalidParameterValue(format!(
            "Value {v} for parameter {name} is invalid. Reason: Must be between {lo} and {hi}."
        )));
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The queue a `QueueUrl` names: its last two path segments are account and name; the region
/// is the caller's.
fn queue_key(ctx: &Ctx, p: &Input) -> Result<QueueKey, SqsError> {
    let url = p.required_str("QueueUrl")?;
    key_from_url(ctx, url).ok_or(SqsError::QueueDoesNotExist)
}

pub(crate) fn key_from_url(ctx: &Ctx, url: &str) -> Option<QueueKey> {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest.split_once('/').map(|(_, p)| p).unwrap_or(""))
        .unwrap_or(url);
    let mut segments = path.trim_matches('/').rsplit('/');
    let name = segments.next()?;
    let account = segments.next()?;
    (is_queue_name(name) && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| QueueKey {
            account: account.to_string(),
            region: ctx.caller.region.clone(),
            name: name.to_string(),
        })
}

fn queue_url(ctx: &Ctx, key: &QueueKey) -> String {
    format!("http://{}/{}/{}", ctx.host, key.account, key.name)
}

async fn load(state: &ApiState, key: &QueueKey) -> Result<QueueRecord, SqsError> {
    state
        .store
        .get_queue(key)
        .await?
        .ok_or(SqsError::QueueDoesNotExist)
}

/// A settable attribute of a queue, or its default.
fn setting(q: &QueueRecord, name: &str) -> i64 {
    q.attributes
        .get(name)
        .and_then(|v| v.parse().ok())
        .or_else(|| {
            SETTABLE
                .iter()
                .find(|(n, ..)| *n == name)
                .and_then(|(.., d)| *d)
        })
        .unwrap_or(0)
}

/// Check settable attributes: names, ranges, the redrive policy's shape.
fn check_attributes(attrs: &BTreeMap<String, String>) -> Result<(), SqsError> {
    for (name, value) in attrs {
        if name == "FifoQueue" || name == "ContentBasedDeduplication" {
            if value == "false" {
                continue;
            }
            return Err(SqsError::InvalidAttributeValue(format!(
                "Invalid value for the parameter {name}. Reason: lamina serves standard queues only."
            )));
        }
        let Some((_, range, _)) = SETTABLE.iter().find(|(n, ..)| n == name) else {
            return Err(SqsError::InvalidAttributeName(name.clone()));
        };
        if let Some((lo, hi)) = range {
            let ok = value.parse::<i64>().is_ok_and(|v| v >= *lo && v <= *hi);
            if !ok {
                return Err(SqsError::InvalidAttributeValue(format!(
                    "Invalid value for the parameter {name}."
                )));
            }
        }
        if name == "RedrivePolicy" && !value.is_empty() {
            redrive_policy(value).ok_or_else(|| {
                SqsError::InvalidAttributeValue(format!(
                    "Value {value} for parameter RedrivePolicy is invalid. Reason: Redrive policy is not a valid JSON map with deadLetterTargetArn and maxReceiveCount (1-1000)."
                ))
            })?;
        }
    }
    Ok(())
}

/// `{"deadLetterTargetArn": arn, "maxReceiveCount": n}` (the count may be a number or a string).
fn redrive_policy(text: &str) -> Option<(QueueKey, u32)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let dlq = QueueKey::from_arn(v["deadLetterTargetArn"].as_str()?)?;
    let max = int_of(v.get("maxReceiveCount"), "maxReceiveCount").ok()??;
    (1..=1000).contains(&max).then_some((dlq, max as u32))
}

async fn create_queue(state: &ApiState, ctx: &Ctx, p: &Input) -> Result<Value, SqsError> {
    let name = p.required_str("QueueName")?;
    if !is_queue_name(name) || name.ends_with(".fifo") {
        return Err(SqsError::InvalidParameterValue(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
                .into(),
        ));
    }
    let attributes = p.string_map("Attributes")?;
    check_attributes(&attributes)?;
    let now = chrono::Utc::now().timestamp();
    let key = QueueKey {
        account: ctx.caller.account.clone(),
        region: ctx.caller.region.clone(),
        name: name.to_string(),
    };
    let record = QueueRecord {
        key: key.clone(),
        attributes: attributes.clone(),
        created_at_s: now,
        modified_at_s: now,
    };
    let (existing, created) = state.store.create_queue(&record).await?;
    if !created {
        // Same name and the same attributes is fine; a different value is an error.
        for (k, v) in &attributes {
            let same = existing.attributes.get(k) == Some(v)
                || (!existing.attributes.contains_key(k)
                    && v.parse::<i64>().ok() == Some(setting(&existing, k)));
            if !same {
                return Err(SqsError::QueueNameExists(k.clone()));
            }
        }
    }
    Ok(json!({ "QueueUrl": queue_url(ctx, &key) }))
}

async fn get_queue_url(state: &ApiState, ctx: &Ctx, p: &Input) -> Result<Value, SqsError> {
    let name = p.required_str("QueueName")?;
    let account = p
        .str("QueueOwnerAWSAccountId")
        .unwrap_or(&ctx.caller.account);
    if !is_queue_name(name) {
        return Err(SqsError::QueueDoesNotExist);
    }
    let key = QueueKey {
        account: account.to_string(),
        region: ctx.caller.region.clone(),
        name: name.to_string(),
    };
    load(state, &key).await?;
    Ok(json!({ "QueueUrl": queue_url(ctx, &key) }))
}

async fn list_queues(state: &ApiState, ctx: &Ctx, p: &Input) -> Result<Value, SqsError> {
    let prefix = p.str("QueueNamePrefix").unwrap_or("");
    let max = p.int("MaxResults")?;
    if let Some(m) = max {
        check_range("MaxResults", m, 1, 1000)?;
    }
    let after = p.str("NextToken").unwrap_or("");
    let mut queues: Vec<String> = state
        .store
        .list_queues(&ctx.caller.account, &ctx.caller.region, prefix)
        .await?
        .into_iter()
        .map(|q| q.key.name)
        .filter(|n| n.as_str() > after)
        .collect();
    let mut out = Map::new();
    let limit = max.unwrap_or(1000) as usize;
    if queues.len() > limit {
        queues.truncate(limit);
        if max.is_some() {
            out.insert("NextToken".into(), json!(queues[limit - 1]));
        }
    }
    let key = |name: &String| QueueKey {
        account: ctx.caller.account.clone(),
        region: ctx.caller.region.clone(),
        name: name.clone(),
    };
    if !queues.is_empty() {
        out.insert(
            "QueueUrls".into(),
            queues.iter().map(|n| queue_url(ctx, &key(n))).collect(),
        );
    }
    Ok(Value::Object(out))
}

async fn get_queue_attributes(state: &ApiState, ctx: &Ctx, p: &Input) -> Result<Value, SqsError> {
    let key = queue_key(ctx, p)?;
    let q = load(state, &key).await?;
    let names = p.strings("AttributeNames");
    for n in &names {
        let known = n == "All"
            || COMPUTED.contains(&n.as_str())
            || SETTABLE.iter().any(|(s, ..)| s == n)
            || n == "FifoQueue"
            || n == "ContentBasedDeduplication";
        if !known {
            return Err(SqsError::InvalidAttributeName(n.clone()));
        }
    }
    let all = names.iter().any(|n| n == "All");
    let wanted = |n: &str| all || names.iter().any(|x| x == n);
    let counts = state.store.queue_counts(&key, now_ms()).await?;
    let mut out = Map::new();
    let mut put = |n: &str, v: String| {
        if wanted(n) {
            out.insert(n.to_string(), Value::String(v));
        }
    };
    put("ApproximateNumberOfMessages", counts.visible.to_string());
    put(
        "ApproximateNumberOfMessagesNotVisible",
        counts.in_flight.to_string(),
    );
    put(
        "ApproximateNumberOfMessagesDelayed",
        counts.delayed.to_string(),
    );
    put("CreatedTimestamp", q.created_at_s.to_string());
    put("LastModifiedTimestamp", q.modified_at_s.to_string());
    put("QueueArn", key.arn());
    for (name, _, default) in SETTABLE {
        match (q.attributes.get(*name), default) {
            (Some(v), _) => put(name, v.clone()),
            (None, Some(d)) => put(name, d.to_string()),
            (None, None) if *name == "SqsManagedSseEnabled" => put(name, "false".into()),
            (None, None) => {}
        }
    }
    let mut result = Map::new();
    if !out.is_empty() {
        result.insert("Attributes".into(), Value::Object(out));
    }
    Ok(Value::Object(result))
}

async fn set_queue_attributes(state: &ApiState, ctx: &Ctx, p: &Input) -> Result<Value, SqsError> {
    let key = queue_key(ctx, p)?;
    let attributes = p.string_map("Attributes")?;
    check_attributes(&attributes)?;
    state
        .store
        .set_queue_attributes(&key, &attributes, chrono::Utc::now().timestamp())
        .await?;
    Ok(json!({}))
}

/// A message checked against SQS's rules, ready to store.
struct Outgoing {
    message: NewMessage,
    md5_body: String,
    md5_attributes: Option<String>,
}

/// Check one message (body, attributes, delay) of a queue.
fn outgoing(q: &QueueRecord, entry: &Value) -> Result<Outgoing, SqsError> {
    let body = entry
        .get("MessageBody")
        .and_then(Value::as_str)
        .ok_or_else(|| SqsError::MissingParameter("MessageBody".into()))?;
    if body.is_empty() {
        return Err(SqsError::MissingParameter("MessageBody".into()));
    }
    if !body.chars().all(|c| {
        matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
    }) {
        return Err(SqsError::InvalidMessageContents);
    }
    let empty = Map::new();
    let attrs = entry
        .get("MessageAttributes")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if attrs.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(SqsError::InvalidParameterValue(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_MESSAGE_ATTRIBUTES}].",
            attrs.len()
        )));
    }
    let mut size = body.len();
    for (name, v) in attrs {
        let data_type = v["DataType"].as_str().unwrap_or_default();
        let base = data_type.split('.').next().unwrap_or_default();
        let value_len = match base {
            "String" | "Number" => v["StringValue"].as_str().map(str::len),
            "Binary" => v["BinaryValue"].as_str().and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .ok()
                    .map(|d| d.len())
            }),
            _ => {
                return Err(SqsError::InvalidParameterValue(format!(
                    "The type of message (user) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
                )))
            }
        }
        .ok_or_else(|| {
            SqsError::InvalidParameterValue(format!(
                "Message (user) attribute '{name}' must contain a non-empty value of type '{base}'."
            ))
        })?;
        size += name.len() + data_type.len() + value_len;
    }
    let max = setting(q, "MaximumMessageSize") as usize;
    if size > max {
        return Err(SqsError::InvalidParameterValue(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {max} bytes."
        )));
    }
    let delay = match int_of(entry.get("DelaySeconds"), "DelaySeconds")? {
        Some(d) => {
            check_range("DelaySeconds", d, 0, 900)?;
            d
        }
        None => setting(q, "DelaySeconds"),
    };
    // Keep only the members SQS keeps.
    let stored: Map<String, Value> = attrs
        .iter()
        .map(|(k, v)| {
            let mut m = Map::new();
            for field in ["DataType", "StringValue", "BinaryValue"] {
                if let Some(x) = v.get(field) {
                    m.insert(field.into(), x.clone());
                }
            }
            (k.clone(), Value::Object(m))
        })
        .collect();
    Ok(Outgoing {
        md5_body: digest::of_body(body),
        md5_attributes: digest::of_attributes(&stored),
        message: NewMessage {
            message_id: uuid::Uuid::new_v4().to_string(),
            body: body.to_string(),
            attributes: Value::Object(stored).to_string(),
            delay_ms: delay * 1000,
        },
    })
}

async fn send_message(state: &ApiState, ctx: &Ctx, p: &Input) -> Result<Value, SqsError> {
    let key = queue_key(ctx, p)?;
    let q = load(state, &key).await?;
    let out = outgoing(&q, &p.0)?;
    state
        .store
        .send_messages(&key, std::slice::from_ref(&out.message), now_ms())
        .await?;
    let mut result = json!({
        "MessageId": out.message.message_id,
        "MD5OfMessageBody": out.md5_body,
    });
    if let Some(m) = out.md5_attributes {
        result["MD5OfMessageAttributes"] = json!(m);
    }
    Ok(result)
}

/// Check a batch's entries: 1-10, ids distinct and well-formed.
fn batch_entries<'a>(p: &'a Input, kind: &str) -> Result<&'a Vec<Value>, SqsError> {
    let entries =
        p.0.get("Entries")
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| SqsError::EmptyBatchRequest(kind.into()))?;
    if entries.len() > MAX_BATCH {
        return Err(SqsError::TooManyEntriesInBatchRequest(entries.len()));
    }
    let mut seen = HashSet::new();
    for e in entries {
        let id = e["Id"].as_str().unwrap_or_default();
        if id.is_empty()
            || id.len() > 80
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SqsError::InvalidBatchEntryId);
        }
        if !seen.insert(id) {
            return Err(SqsError::BatchEntryIdsNotDistinct(id.into()));
        }
    }
    Ok(entries)
}

fn batch_error(id: &str, e: &SqsError) -> Value {
    json!({
        "Id": id,
        "SenderFault": !e.status().is_server_error(),
        "Code": e.code(),
        "Message": e.message(),
    })
}

async fn send_message_batch(state: &ApiState, ctx: &Ctx, p: &Input) -> Result<Value, SqsError> {
    let key = queue_key(ctx, p)?;
    let q = load(state, &key).await?;
    let entries = batch_entries(p, "SendMessageBatchRequestEntry")?;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for e in entries {
        let id = e["Id"].as_str().unwrap_or_default();
        match outgoing(&q, e) {
            Ok(out) => ok.push((id.to_string(), out)),
            Err(err) => failed.push(batch_error(id, &err)),
        }
    }
    let total: usize = ok.iter().map(|(_, o)| o.message.body.len()).sum();
    let max = setting(&q, "MaximumMessageSize") as usize;
    if total > max {
        return Err(SqsError::BatchRequestTooLong(max, total));
    }
    let messages: Vec<NewMessage> = ok.iter().map(|(_, o)| o.message.clone()).collect();
    state.store.send_messages(&key, &messages, now_ms()).await?;
    let successful: Vec<Value> = ok
        .into_iter()
        .map(|(id, o)| {
            let mut v = json!({
                "Id": id,
                "MessageId": o.message.message_id,
                "MD5OfMessageBody": o.md5_body,
            });
            if let Some(m) = o.md5_attributes {
                v["MD5OfMessageAttributes"] = json!(m);
            }
            v
        })
        .collect();
    Ok(json!({ "Successful": successful, "Failed": failed }))
}

async fn delete_message_batch(state: &ApiState, ctx: &Ctx, p: &Input) -> Result<Value, SqsError> {
    let key = queue_key(ctx, p)?;
    load(state, &key).await?;
    let entries = batch_entries(p, "DeleteMessageBatchRequestEntry")?;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for e in entries {
        let id = e["Id"].as_str().unwrap_or_default();
        let handle = e["ReceiptHandle"].as_str().unwrap_or_default();
        match state.store.delete_message(&key, handle).await? {
            HandleOutcome::Done => ok.push(json!({ "Id": id })),
            HandleOutcome::Invalid | HandleOutcome::NotInFlight => failed.push(batch_error(
                id,
                &SqsError::ReceiptHandleIsInvalid(handle.into()),
            )),
        }
    }
    Ok(json!({ "Successful": ok, "Failed": failed }))
}

async fn change_visibility_batch(
    state: &ApiState,
    ctx: &Ctx,
    p: &Input,
) -> Result<Value, SqsError> {
    let key = queue_key(ctx, p)?;
    load(state, &key).await?;
    let entries = batch_entries(p, "ChangeMessageVisibilityBatchRequestEntry")?;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for e in entries {
        let id = e["Id"].as_str().unwrap_or_default();
        let handle = e["ReceiptHandle"].as_str().unwrap_or_default();
        let timeout = match int_of(e.get("VisibilityTimeout"), "VisibilityTimeout")
            .and_then(|t| t.ok_or_else(|| SqsError::MissingParameter("VisibilityTimeout".into())))
            .and_then(|t| check_range("VisibilityTimeout", t, 0, 43_200).map(|()| t))
        {
            Ok(t) => t,
            Err(err) => {
                failed.push(batch_error(id, &err));
                continue;
            }
        };
        match state
            .store
            .change_visibility(&key, handle, timeout * 1000, now_ms())
            .await?
        {
            HandleOutcome::Done => ok.push(json!({ "Id": id })),
            HandleOutcome::NotInFlight => {
                failed.push(batch_error(id, &SqsError::MessageNotInflight))
            }
            HandleOutcome::Invalid => failed.push(batch_error(
                id,
                &SqsError::ReceiptHandleIsInvalid(handle.into()),
            )),
        }
    }
    Ok(json!({ "Successful": ok, "Failed": failed }))
}

/// Whether a message attribute name is asked for (`All`, `.*`, an exact name, or `prefix.*`).
fn attribute_wanted(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| {
        p == "All"
            || p == ".*"
            || p == name
            || p.strip_suffix(".*")
                .is_some_and(|prefix| name.starts_with(prefix))
    })
}

async fn receive_message(state: &ApiState, ctx: &Ctx, p: &Input) -> Result<Value, SqsError> {
    let key = queue_key(ctx, p)?;
    let q = load(state, &key).await?;
    let max = p.int("MaxNumberOfMessages")?.unwrap_or(1);
    check_range("MaxNumberOfMessages", max, 1, MAX_BATCH as i64)?;
    let visibility = match p.int("VisibilityTimeout")? {
        Some(v) => {
            check_range("VisibilityTimeout", v, 0, 43_200)?;
            v
        }
        None => setting(&q, "VisibilityTimeout"),
    };
    let wait = match p.int("WaitTimeSeconds")? {
        Some(w) => {
            check_range("WaitTimeSeconds", w, 0, 20)?;
            w
        }
        None => setting(&q, "ReceiveMessageWaitTimeSeconds"),
    };
    let mut system = p.strings("AttributeNames");
    system.extend(p.strings("MessageSystemAttributeNames"));
    let user = p.strings("MessageAttributeNames");
    let redrive = q
        .attributes
        .get("RedrivePolicy")
        .and_then(|t| redrive_policy(t));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
    let activity = state.store.queue_activity();
    let received = loop {
        // Registered before looking, so a message sent meanwhile is not missed.
        let woken = activity.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let opts = ReceiveOptions {
            max: max as usize,
            visibility_ms: visibility * 1000,
            now_ms: now_ms(),
            retention_ms: setting(&q, "MessageRetentionPeriod") * 1000,
            redrive: redrive.clone(),
        };
        let got = state.store.receive_messages(&key, &opts).await?;
        let now = tokio::time::Instant::now();
        if !got.is_empty() || now >= deadline {
            break got;
        }
        let nap = LONG_POLL_INTERVAL.min(deadline - now);
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(nap) => {}
        }
    };
    let sender = ctx
        .caller
        .access_key
        .clone()
        .unwrap_or_else(|| ctx.caller.account.clone());
    let messages: Vec<Value> = received
        .into_iter()
        .map(|m| {
            let mut v = json!({
                "MessageId": m.message_id,
                "ReceiptHandle": m.receipt_handle,
                "MD5OfBody": digest::of_body(&m.body),
                "Body": m.body,
            });
            let mut attrs = Map::new();
            let all = system.iter().any(|n| n == "All");
            let mut put = |n: &str, val: String| {
                if all || system.iter().any(|x| x == n) {
                    attrs.insert(n.into(), Value::String(val));
                }
            };
            put("SenderId", sender.clone());
            put("SentTimestamp", m.sent_at_ms.to_string());
            put("ApproximateReceiveCount", m.receive_count.to_string());
            put(
                "ApproximateFirstReceiveTimestamp",
                m.first_received_at_ms.to_string(),
            );
            if !attrs.is_empty() {
                v["Attributes"] = Value::Object(attrs);
            }
            let stored: Map<String, Value> =
                serde_json::from_str(&m.attributes).unwrap_or_default();
            let chosen: Map<String, Value> = stored
                .into_iter()
                .filter(|(k, _)| attribute_wanted(&user, k))
                .collect();
            if let Some(md5) = digest::of_attributes(&chosen) {
                v["MD5OfMessageAttributes"] = json!(md5);
                v["MessageAttributes"] = Value::Object(chosen);
            }
            v
        })
        .collect();
    if messages.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Messages": messages }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redrive_policies() {
        let (dlq, max) = redrive_policy(
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"3"}"#,
        )
        .unwrap();
        assert_eq!((dlq.name.as_str(), max), ("dlq", 3));
        assert!(redrive_policy(r#"{"deadLetterTargetArn":"x","maxReceiveCount":3}"#).is_none());
        assert!(redrive_policy(
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":0}"#
        )
        .is_none());
    }

    #[test]
    fn attribute_patterns() {
        let p = vec!["foo.*".to_string(), "bar".to_string()];
        assert!(attribute_wanted(&p, "foo.x"));
        assert!(attribute_wanted(&p, "bar"));
        assert!(!attribute_wanted(&p, "baz"));
        assert!(attribute_wanted(&["All".to_string()], "baz"));
    }

    #[test]
    fn attribute_checks() {
        let ok = BTreeMap::from([("VisibilityTimeout".to_string(), "10".to_string())]);
        assert!(check_attributes(&ok).is_ok());
        let bad = BTreeMap::from([("VisibilityTimeout".to_string(), "-1".to_string())]);
        assert!(matches!(
            check_attributes(&bad),
            Err(SqsError::InvalidAttributeValue(_))
        ));
        let unknown = BTreeMap::from([("Color".to_string(), "red".to_string())]);
        assert!(matches!(
            check_attributes(&unknown),
            Err(SqsError::InvalidAttributeName(_))
        ));
    }
}
