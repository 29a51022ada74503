//! Function names, qualifiers and ARNs, and the forms a caller may use to name a function.
//!
//! The Lambda model lets a caller name a function as `my-function`, `my-function:qualifier`,
//! `123456789012:function:my-function[:qualifier]` (a partial ARN) or
//! `arn:aws:lambda:us-east-1:123456789012:function:my-function[:qualifier]`. [`FunctionRef::parse`]
//! accepts all of them; [`FunctionKey`] is the identity of a function once the caller's account and
//! region are known.

use std::fmt;

use crate::validate::InputError;

/// The longest bare function name.
pub const MAX_FUNCTION_NAME_LEN: usize = 64;
/// The longest function name input in its ARN forms (the model's `FunctionName` shape).
pub const MAX_FUNCTION_REF_LEN: usize = 140;
/// The qualifier of the one mutable version.
pub const LATEST: &str = "$LATEST";

/// Which function, in which account and region: the key every function-scoped record lives under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionKey {
    /// 12-digit account id.
    pub account: String,
    /// Region name, e.g. `us-east-1`.
    pub region: String,
    /// Bare function name.
    pub name: String,
}

impl FunctionKey {
    /// The unqualified function ARN.
    pub fn arn(&self) -> String {
        self.arn_with(None)
    }

    /// The ARN with a `:qualifier` suffix.
    pub fn qualified_arn(&self, qualifier: &str) -> String {
        self.arn_with(Some(qualifier))
    }

    /// The ARN with the qualifier when there is one.
    pub fn arn_with(&self, qualifier: Option<&str>) -> String {
        // Built in one allocation without `fmt`: every invoke sends its ARN to the runtime.
        let parts = [
            "arn:aws:lambda:",
            &self.region,
            ":",
            &self.account,
            ":function:",
            &self.name,
        ];
        let len =
            parts.iter().map(|p| p.len()).sum::<usize>() + qualifier.map_or(0, |q| q.len() + 1);
        let mut arn = String::with_capacity(len);
        parts.iter().for_each(|p| arn.push_str(p));
        if let Some(q) = qualifier {
            arn.push(':');
            arn.push_str(q);
        }
        arn
    }
}

impl fmt::Display for FunctionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn())
    }
}

/// A function as a caller named it: the name, and whatever the input also said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// Bare function name.
    pub name: String,
    /// Qualifier carried in the name (`name:qualifier` or a qualified ARN).
    pub qualifier: Option<String>,
    /// Account id carried in an ARN or partial ARN.
    pub account: Option<String>,
    /// Region carried in a full ARN.
    pub region: Option<String>,
}

impl FunctionRef {
    /// Parse any of the forms the Lambda model allows for `FunctionName`.
    pub fn parse(input: &str) -> Result<Self, InputError> {
        Self::parse_field(input, "functionName")
    }

    /// Like [`FunctionRef::parse`], naming `field` in validation messages.
    pub fn parse_field(input: &str, field: &str) -> Result<Self, InputError> {
        let bad_pattern = || {
            InputError::validation(
                field,
                input,
                "Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
            )
        };
        if input.is_empty() {
            return Err(InputError::validation(
                field,
                input,
                "Member must have length greater than or equal to 1",
            ));
        }
        if input.len() > MAX_FUNCTION_REF_LEN {
            return Err(InputError::validation(
                field,
                input,
                &format!("Member must have length less than or equal to {MAX_FUNCTION_REF_LEN}"),
            ));
        }
        let tokens: Vec<&str> = input.split(':').collect();
        let mut i = 0;
        let mut region = None;
        let mut account = None;
        if tokens[0] == "arn" {
            if tokens.len() < 3 || !tokens[1].starts_with("aws") || tokens[2] != "lambda" {
                return Err(bad_pattern());
            }
            i = 3;
        }
        if i < tokens.len() && tokens.len() - i >= 2 && is_region(tokens[i]) {
            region = Some(tokens[i].to_string());
            i += 1;
        }
        if i < tokens.len() && tokens.len() - i >= 2 && is_account(tokens[i]) {
            account = Some(tokens[i].to_string());
            i += 1;
        }
        if i < tokens.len() && tokens.len() - i >= 2 && tokens[i] == "function" {
            i += 1;
        } else if tokens[0] == "arn" || account.is_some() {
            // An ARN or a partial ARN must spell out `function:`.
            return Err(bad_pattern());
        }
        let rest = &tokens[i..];
        let (name, qualifier) = match rest {
            [name] => (*name, None),
            [name, qualifier] => (*name, Some(*qualifier)),
            _ => return Err(bad_pattern()),
        };
        if !is_name(name) {
            return Err(bad_pattern());
        }
        if name.len() > MAX_FUNCTION_NAME_LEN {
            return Err(InputError::validation(
                field,
                input,
                &format!("Member must have length less than or equal to {MAX_FUNCTION_NAME_LEN}"),
            ));
        }
        if let Some(q) = qualifier {
            if !is_qualifier(q) {
                return Err(bad_pattern());
            }
        }
        Ok(FunctionRef {
            name: name.to_string(),
            qualifier: qualifier.map(str::to_string),
            account,
            region,
        })
    }

    /// Resolve against the caller's account and region. A qualifier given separately (the
    /// `Qualifier` query parameter) must agree with one carried in the name.
    pub fn resolve(
        self,
        account: &str,
        region: &str,
        separate_qualifier: Option<&str>,
    ) -> Result<(FunctionKey, Option<String>), ResolveError> {
        let key = FunctionKey {
            account: account.to_string(),
            region: region.to_string(),
            name: self.name,
        };
        if let Some(q) = separate_qualifier {
            if !is_qualifier(q) {
                return Err(ResolveError::Input(InputError::validation(
                    "qualifier",
                    q,
                    "Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)",
                )));
            }
        }
        let qualifier = match (self.qualifier, separate_qualifier) {
            (Some(a), Some(b)) if a != b => {
                return Err(ResolveError::Input(InputError::invalid(
                    "The derived qualifier from the function name does not match the specified qualifier.",
                )))
            }
            (Some(a), _) => Some(a),
            (None, b) => b.map(str::to_string),
        };
        let foreign_account = self.account.as_deref().is_some_and(|a| a != account);
        let foreign_region = self.region.as_deref().is_some_and(|r| r != region);
        if foreign_account || foreign_region {
            let named = FunctionKey {
                account: self.account.unwrap_or_else(|| account.to_string()),
                region: self.region.unwrap_or_else(|| region.to_string()),
                name: key.name,
            };
            return Err(ResolveError::Elsewhere(
                named.arn_with(qualifier.as_deref()),
            ));
        }
        Ok((key, qualifier))
    }
}

/// Why a [`FunctionRef`] could not be resolved for a caller.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The input itself is invalid.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The ARN names another account or region: to this caller the function does not exist.
    #[error("function not found: {0}")]
    Elsewhere(String),
}

/// `[a-zA-Z0-9-_]+`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `$LATEST` or `[a-zA-Z0-9-_]{1,128}`.
pub fn is_qualifier(s: &str) -> bool {
    s == LATEST || (s.len() <= 128 && is_name(s))
}

/// A published version number: digits only.
pub fn is_version_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d`: the shape of a region name.
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() == 1
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> FunctionRef {
        FunctionRef::parse(s).unwrap()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(p("f").name, "f");
        assert_eq!(p("f:$LATEST").qualifier.as_deref(), Some("$LATEST"));
        assert_eq!(p("f:prod").qualifier.as_deref(), Some("prod"));
        let r = p("123456789012:function:f:7");
        assert_eq!(
            (
                r.account.as_deref(),
                r.name.as_str(),
                r.qualifier.as_deref()
            ),
            (Some("123456789012"), "f", Some("7"))
        );
        let r = p("arn:aws:lambda:eu-west-1:123456789012:function:my-fn");
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));
        assert_eq!(r.name, "my-fn");
        assert!(r.qualifier.is_none());
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "a b",
            "a:b:c:d:e",
            "arn:aws:s3:::bucket",
            "f:bad qualifier",
            "123456789012:f",
            &"x".repeat(65),
            &"x".repeat(141),
        ] {
            assert!(
                FunctionRef::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn resolve_checks_qualifier_and_place() {
        let (key, q) = p("f:1").resolve("000000000000", "us-east-1", None).unwrap();
        assert_eq!(
            key.arn(),
            "arn:aws:lambda:us-east-1:000000000000:function:f"
        );
        assert_eq!(q.as_deref(), Some("1"));
        assert_eq!(
            key.arn_with(q.as_deref()),
            "arn:aws:lambda:us-east-1:000000000000:function:f:1"
        );
        assert_eq!(key.qualified_arn("prod"), format!("{}:prod", key.arn()));
        assert!(p("f:1")
            .resolve("000000000000", "us-east-1", Some("2"))
            .is_err());
        assert!(matches!(
            p("arn:aws:lambda:eu-west-1:000000000000:function:f").resolve(
                "000000000000",
                "us-east-1",
                None
            ),
            Err(ResolveError::Elsewhere(arn)) if arn.contains("eu-west-1")
        ));
    }

    #[test]
    fn regions() {
        assert!(is_region("us-east-1"));
        assert!(is_region("us-gov-west-1"));
        assert!(!is_region("function"));
        assert!(!is_region("us-east"));
    }
}
