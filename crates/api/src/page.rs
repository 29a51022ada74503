//! Pagination shared by every List operation: `MaxItems` and an opaque `Marker` in, a page and
//! `NextMarker` out. Callers fetch one item more than the page to know whether another follows.

use base64::Engine;
use lamina_types::validate::InputError;
use serde_json::{json, Value};

use crate::error::ApiError;

/// List operations never return more than this per page.
const MAX_PAGE: usize = 50;

/// A requested page: its size and the key after which it starts.
#[derive(Debug)]
pub(crate) struct Page {
    /// Items on the page.
    pub(crate) limit: usize,
    /// The key of the last item of the previous page.
    pub(crate) after: Option<String>,
}

impl Page {
    /// Parse `Marker` and `MaxItems`.
    pub(crate) fn parse(marker: Option<&str>, max_items: Option<&str>) -> Result<Page, ApiError> {
        Ok(Page {
            limit: page_limit(max_items)?,
            after: match marker {
                None | Some("") => None,
                Some(m) => Some(decode_marker(m)?),
            },
        })
    }

    /// Cut `items` (up to `limit + 1` of them) to the page; the `NextMarker` if more follow,
    /// made from the key of the page's last item.
    pub(crate) fn cut<T>(&self, items: &mut Vec<T>, key: impl Fn(&T) -> String) -> Option<String> {
        (items.len() > self.limit).then(|| {
            items.truncate(self.limit);
            encode_marker(&key(&items[self.limit - 1]))
        })
    }
}

/// Add `NextMarker` to a list response when there is one.
pub(crate) fn with_next(out: &mut Value, next: Option<String>) {
    if let Some(next) = next {
        out["NextMarker"] = json!(next);
    }
}

/// `MaxItems` (1-10000) as a page size, at most [`MAX_PAGE`].
fn page_limit(max_items: Option<&str>) -> Result<usize, ApiError> {
    Ok(match max_items {
        None => MAX_PAGE,
        Some(m) => match m.parse::<i64>() {
            Ok(n) if (1..=10_000).contains(&n) => (n as usize).min(MAX_PAGE),
            Ok(n) if n > 10_000 => {
                return Err(InputError::validation(
                    "maxItems",
                    m,
                    "Member must have value less than or equal to 10000",
                )
                .into())
            }
            Ok(_) => {
                return Err(InputError::validation(
                    "maxItems",
                    m,
                    "Member must have value greater than or equal to 1",
                )
                .into())
            }
            Err(_) => {
                return Err(ApiError::InvalidParameterValue(format!(
                    "MaxItems must be an integer: {m}"
                )))
            }
        },
    })
}

fn encode_marker(name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name)
}

fn decode_marker(marker: &str) -> Result<String, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(marker)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::InvalidParameterValue(format!("Invalid Marker: {marker}")))
}
