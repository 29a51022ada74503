//! The query protocol: form parameters (`Attribute.1.Name=...`) to the JSON protocol's input,
//! and the JSON protocol's output to SQS's XML responses (flattened lists, `Attribute` and
//! `MessageAttribute` name/value pairs).

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};

use crate::error::SqsError;

/// The namespace of SQS's XML responses.
const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// Decode a form body into the action and the JSON input. A queue URL path (`/{account}/{name}`)
/// stands for `QueueUrl` when the form has none.
pub(super) fn to_input(body: &[u8], path: &str) -> (Option<String>, Value) {
    let text = String::from_utf8_lossy(body);
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut tree = Map::new();
    let mut action = None;
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k), decode(v));
        match k.as_str() {
            "Action" => action = Some(v),
            "Version" => {}
            _ => insert(&mut tree, &k.split('.').collect::<Vec<_>>(), v),
        }
    }
    let mut input = normalize(Value::Object(tree));
    if input.get("QueueUrl").is_none() && path != "/" {
        input["QueueUrl"] = Value::String(path.to_string());
    }
    (action, input)
}

fn insert(map: &mut Map<String, Value>, path: &[&str], value: String) {
    match path {
        [] => {}
        [last] => {
            map.insert((*last).to_string(), Value::String(value));
        }
        [first, rest @ ..] => {
            let child = map
                .entry((*first).to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Some(m) = child.as_object_mut() {
                insert(m, rest, value);
            }
        }
    }
}

/// Objects keyed `1`, `2`, ... become arrays; the query names become the JSON ones.
fn normalize(v: Value) -> Value {
    let Value::Object(map) = v else {
        return v;
    };
    if !map.is_empty() && map.keys().all(|k| k.parse::<u32>().is_ok()) {
        let mut items: Vec<(u32, Value)> = map
            .into_iter()
            .map(|(k, v)| (k.parse().unwrap_or(0), normalize(v)))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        return Value::Array(items.into_iter().map(|(_, v)| v).collect());
    }
    let mut out = Map::new();
    for (k, v) in map {
        let v = normalize(v);
        match k.as_str() {
            "Attribute" => {
                out.insert("Attributes".into(), pairs(v, |val| val));
            }
            "MessageAttribute" => {
                out.insert("MessageAttributes".into(), pairs(v, |val| val));
            }
            "AttributeName" | "MessageAttributeName" | "MessageSystemAttributeName" => {
                out.insert(format!("{k}s"), v);
            }
            "SendMessageBatchRequestEntry"
            | "DeleteMessageBatchRequestEntry"
            | "ChangeMessageVisibilityBatchRequestEntry" => {
                out.insert("Entries".into(), v);
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

/// `[{Name, Value}, ...]` → `{Name: Value}`.
fn pairs(v: Value, f: impl Fn(Value) -> Value) -> Value {
    let mut out = Map::new();
    if let Value::Array(items) = v {
        for item in items {
            if let (Some(name), Some(value)) = (
                item.get("Name").and_then(Value::as_str),
                item.get("Value").cloned(),
            ) {
                out.insert(name.to_string(), f(value));
            }
        }
    }
    Value::Object(out)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => escape(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The element name of each item of a list member.
fn item_name(action: &str, member: &str) -> String {
    match member {
        "Messages" => "Message".into(),
        "QueueUrls" => "QueueUrl".into(),
        "Successful" => format!("{}ResultEntry", action),
        "Failed" => "BatchResultErrorEntry".into(),
        other => other.trim_end_matches('s').to_string(),
    }
}

fn members(action: &str, map: &Map<String, Value>, out: &mut String) {
    for (k, v) in map {
        match (k.as_str(), v) {
            ("Attributes", Value::Object(m)) => {
                for (name, value) in m {
                    out.push_str(&format!(
                        "<Attribute><Name>{}</Name><Value>{}</Value></Attribute>",
                        escape(name),
                        scalar(value)
                    ));
                }
            }
            ("MessageAttributes", Value::Object(m)) => {
                for (name, value) in m {
                    out.push_str(&format!(
                        "<MessageAttribute><Name>{}</Name><Value>",
                        escape(name)
                    ));
                    if let Value::Object(fields) = value {
                        members(action, fields, out);
                    }
                    out.push_str("</Value></MessageAttribute>");
                }
            }
            (_, Value::Array(items)) => {
                let name = item_name(action, k);
                for item in items {
                    out.push_str(&format!("<{name}>"));
                    match item {
                        Value::Object(m) => members(action, m, out),
                        other => out.push_str(&scalar(other)),
                    }
                    out.push_str(&format!("</{name}>"));
                }
            }
            (_, Value::Object(m)) => {
                out.push_str(&format!("<{k}>"));
                members(action, m, out);
                out.push_str(&format!("</{k}>"));
            }
            (_, other) => out.push_str(&format!("<{k}>{}</{k}>", scalar(other))),
        }
    }
}

/// The XML response of an action.
pub(super) fn to_xml(action: &str, output: &Value, request_id: &str) -> String {
    let mut out = format!("<?xml version=\"1.0\"?><{action}Response xmlns=\"{XMLNS}\">");
    // `BatchActionResult` names its list members after the action: SendMessageBatch →
    // SendMessageBatchResultEntry.
    if let Value::Object(m) = output {
        out.push_str(&format!("<{action}Result>"));
        members(action, m, &mut out);
        out.push_str(&format!("</{action}Result>"));
    }
    out.push_str(&format!(
        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        escape(request_id)
    ));
    out
}

/// The XML error document.
pub(super) fn error_xml(e: &SqsError, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message><Detail/></Error><RequestId>{}</RequestId></ErrorResponse>",
        e.fault(),
        e.query_code(),
        escape(&e.message()),
        escape(request_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_to_input() {
        let body = b"Action=SendMessageBatch&QueueUrl=http%3A%2F%2Fh%2F000000000000%2Fq\
&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=hi+there\
&SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=k\
&SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String\
&SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=v\
&SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=x";
        let (action, input) = to_input(body, "/");
        assert_eq!(action.as_deref(), Some("SendMessageBatch"));
        assert_eq!(input["QueueUrl"], "http://h/000000000000/q");
        assert_eq!(input["Entries"][0]["MessageBody"], "hi there");
        assert_eq!(
            input["Entries"][0]["MessageAttributes"]["k"]["StringValue"],
            "v"
        );
        assert_eq!(input["Entries"][1]["Id"], "b");
        let (_, input) = to_input(
            b"Action=GetQueueAttributes&AttributeName.1=All",
            "/000000000000/q",
        );
        assert_eq!(input["AttributeNames"][0], "All");
        assert_eq!(input["QueueUrl"], "/000000000000/q");
    }

    #[test]
    fn output_to_xml() {
        let out = serde_json::json!({"Messages": [{"Body": "<b>", "Attributes": {"SentTimestamp": "1"}}]});
        let xml = to_xml("ReceiveMessage", &out, "rid");
        assert!(!xml.contains("<Attributes>"));
        assert!(xml.contains("<Message><Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute><Body>&lt;b&gt;</Body></Message>"));
        assert!(xml.contains("<RequestId>rid</RequestId>"));
    }
}
