//! The MD5 digests SQS returns, so clients that check them (the SDKs do) accept lamina's.

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::Value;

/// Hex MD5 of a message body.
pub(crate) fn of_body(body: &str) -> String {
    hex::encode(Md5::digest(body.as_bytes()))
}

/// Hex MD5 of message attributes as SQS computes it: for each attribute, by name, the name, the
/// data type (each as a 4-byte big-endian length and the bytes), a transport byte (1 string,
/// 2 binary) and the value (length and bytes). `None` when there are no attributes.
pub(crate) fn of_attributes(attributes: &serde_json::Map<String, Value>) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut names: Vec<&String> = attributes.keys().collect();
    names.sort();
    let mut buf = Vec::new();
    let put = |bytes: &[u8], buf: &mut Vec<u8>| {
        buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        buf.extend_from_slice(bytes);
    };
    for name in names {
        let v = &attributes[name];
        let data_type = v["DataType"].as_str().unwrap_or_default();
        put(name.as_bytes(), &mut buf);
        put(data_type.as_bytes(), &mut buf);
        if let Some(b64) = v["BinaryValue"].as_str() {
            buf.push(2);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
            put(&bytes, &mut buf);
        } else {
            buf.push(1);
            put(
                v["StringValue"].as_str().unwrap_or_default().as_bytes(),
                &mut buf,
            );
        }
    }
    Some(hex::encode(Md5::digest(&buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_digest() {
        assert_eq!(of_body("hello"), "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn attribute_digest_matches_sqs() {
        // The digest SQS (and botocore's checker) computes for one String attribute.
        let attrs = serde_json::json!({"a": {"DataType": "String", "StringValue": "b"}});
        let mut buf = Vec::new();
        buf.extend_from_slice(&[0, 0, 0, 1, b'a', 0, 0, 0, 6]);
        buf.extend_from_slice(b"String");
        buf.extend_from_slice(&[1, 0, 0, 0, 1, b'b']);
        assert_eq!(
            of_attributes(attrs.as_object().unwrap()).unwrap(),
            hex::encode(Md5::digest(&buf))
        );
        assert_eq!(of_attributes(&serde_json::Map::new()), None);
    }
}
