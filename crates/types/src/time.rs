//! AWS's timestamp formats.

use chrono::{DateTime, Utc};

/// `2020-04-10T19:06:32.563+0000`: the format of `FunctionConfiguration.LastModified` and the
/// other string timestamps of the Lambda API.
pub fn lambda_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

/// `2020-04-10T19:06:32.563Z`: ISO 8601 with milliseconds, as the timeout message and
/// destination records use it.
pub fn iso_millis(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats() {
        let t = Utc.timestamp_millis_opt(1_586_545_592_563).unwrap();
        assert_eq!(lambda_timestamp(t), "2020-04-10T19:06:32.563+0000");
        assert_eq!(iso_millis(t), "2020-04-10T19:06:32.563Z");
    }
}
