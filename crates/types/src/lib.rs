//! lamina's domain vocabulary, shared by every other crate. No I/O.
//!
//! - [`names`]: function names, qualifiers, ARNs, and the forms a caller may use to name a function.
//! - [`runtime`]: the runtimes lamina knows and how each one starts.
//! - [`function`]: the function configuration as AWS returns it (`FunctionConfiguration`), the request
//!   shapes that create and update it, and [`function::FunctionVersion`], the immutable snapshot the
//!   pool runs.
//! - [`validate`]: the checks AWS applies to those requests, with AWS's error kinds and messages.
//! - [`invoke`]: what an invocation carries and how it can end.
//! - [`time`]: AWS's timestamp formats.
//! - [`asynchronous`]: event invoke configs (retries, event age, destinations), SQS queue keys.

pub mod asynchronous;
pub mod function;
pub mod invoke;
pub mod layer;
pub mod names;
pub mod runtime;
pub mod time;
pub mod validate;

/// The account id every caller maps to until access keys arrive.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
/// The region used when a request carries no SigV4 credential scope.
pub const DEFAULT_REGION: &str = "us-east-1";
