//! Stamps the build's date into the binary, as ZooKeeper's `srvr` shows it ("built on
//! 2024-12-29 17:54 UTC"). `SOURCE_DATE_EPOCH` fixes it for reproducible builds.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs()));
    println!("cargo:rustc-env=RINGKEEPER_BUILD_DATE={}", utc_minutes(seconds));
}

// The crate's own calendar arithmetic (no dependencies), shared with `dump`'s dates.
include!("src/calendar.rs");

/// "YYYY-MM-DD HH:MM UTC" for seconds since the epoch.
fn utc_minutes(seconds: u64) -> String {
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let minute_of_day = (seconds % 86_400) / 60;
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", minute_of_day / 60, minute_of_day % 60)
}
