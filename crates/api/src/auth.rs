//! Who is calling, from the request's SigV4 signature.
//!
//! Today this parses the `Authorization` header (or presigned `X-Amz-Credential` query
//! parameter) for the access key and the credential scope's region; every caller maps to the
//! default account. Signature verification will grow here, in this one place.

use http::HeaderMap;
use lamina_types::names::is_region;
use lamina_types::{DEFAULT_ACCOUNT_ID, DEFAULT_REGION};

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key id that signed the request, if it was signed.
    pub access_key: Option<String>,
    /// The account the caller acts in.
    pub account: String,
    /// The region from the credential scope (default `us-east-1`).
    pub region: String,
}

/// The parts of a SigV4 credential scope: `AKID/20261122/us-east-1/lambda/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential<'a> {
    /// Access key id.
    pub access_key: &'a str,
    /// `yyyymmdd`.
    pub date: &'a str,
    /// Region.
    pub region: &'a str,
    /// Service (`lambda`).
    pub service: &'a str,
}

/// Parse `AKID/date/region/service/aws4_request`.
pub fn parse_credential(s: &str) -> Option<Credential<'_>> {
    let mut parts = s.split('/');
    let c = Credential {
        access_key: parts.next()?,
        date: parts.next()?,
        region: parts.next()?,
        service: parts.next()?,
    };
    (parts.next()? == "aws4_request" && parts.next().is_none()).then_some(c)
}

/// Identify the caller of a request.
pub fn caller(headers: &HeaderMap, query: Option<&str>) -> Caller {
    let from_header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("AWS4-HMAC-SHA256"))
        .and_then(|rest| {
            rest.split(',')
                .map(str::trim)
                .find_map(|p| p.strip_prefix("Credential="))
                .map(str::to_string)
        });
    let from_query = || {
        query?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == "X-Amz-Credential").then(|| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
    };
    let credential = from_header.or_else(from_query);
    let parsed = credential.as_deref().and_then(parse_credential);
    Caller {
        access_key: parsed.as_ref().map(|c| c.access_key.to_string()),
        account: DEFAULT_ACCOUNT_ID.to_string(),
        region: parsed
            .as_ref()
            .map(|c| c.region)
            .filter(|r| is_region(r))
            .unwrap_or(DEFAULT_REGION)
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scope_of_a_signed_request() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/eu-west-2/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"
                .parse()
                .unwrap(),
        );
        let c = caller(&h, None);
        assert_eq!(c.access_key.as_deref(), Some("AKIDEXAMPLE"));
        assert_eq!(c.region, "eu-west-2");
        assert_eq!(c.account, "000000000000");
    }

    #[test]
    fn presigned_and_unsigned() {
        let c = caller(
            &HeaderMap::new(),
            Some("X-Amz-Credential=AK%2F20261122%2Fap-south-1%2Flambda%2Faws4_request&x=1"),
        );
        assert_eq!(c.region, "ap-south-1");
        let c = caller(&HeaderMap::new(), None);
        assert_eq!((c.access_key, c.region.as_str()), (None, "us-east-1"));
    }

    #[test]
    fn rejects_malformed_scopes() {
        assert!(parse_credential("AK/20261122/us-east-1/lambda").is_none());
        assert!(parse_credential("AK/20261122/us-east-1/lambda/aws4_request/x").is_none());
    }
}
