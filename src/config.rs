//! Server configuration read from a ZooKeeper `zoo.cfg`, so an operator's file works as
//! is. Sans-IO: `Config::parse` takes the file's text.

use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub client_port: u16,
    pub client_port_address: IpAddr,
    pub data_dir: PathBuf,
    pub data_log_dir: Option<PathBuf>,
    pub tick_time_ms: u32,
    /// Defaults to 2 ticks, as in ZooKeeper.
    pub min_session_timeout_ms: Option<u32>,
    /// Defaults to 20 ticks, as in ZooKeeper.
    pub max_session_timeout_ms: Option<u32>,
    /// Connections per client address; 0 means unlimited.
    pub max_client_connections: u32,
    /// `jute.maxbuffer`: the largest frame accepted.
    pub jute_max_buffer_bytes: usize,
    /// `4lw.commands.whitelist`.
    pub four_letter_whitelist: Vec<String>,
    /// `globalOutstandingLimit`: requests in flight across all sessions before reading
    /// pauses.
    pub global_outstanding_limit: u32,
    /// `forceSync`: fdatasync the log before acknowledging writes. Off trades durability
    /// for speed, as in ZooKeeper.
    pub force_sync: bool,
    /// `preAllocSize` (given in KiB, as ZooKeeper): the size of each log segment.
    pub segment_size_bytes: u64,
    /// `snapCount`: about this many transactions between snapshots (each server takes
    /// its next one after a random count between half and all of it, as ZooKeeper).
    pub snap_count: u64,
    /// `autopurge.snapRetainCount`: snapshots kept by purge (at least 3).
    pub snap_retain_count: usize,
    /// `autopurge.purgeInterval` in hours; 0 disables purging.
    pub purge_interval_hours: u64,
    /// `extendedTypesEnabled` (ZooKeeper's `zookeeper.extendedTypesEnabled` property):
    /// allows TTL nodes.
    pub extended_types_enabled: bool,
    /// `znode.container.checkIntervalMs`: how often containers and TTL nodes are reaped.
    pub container_check_interval_ms: u64,
    /// `znode.container.maxPerMinute`: the most nodes reaped per minute.
    pub container_max_per_minute: u64,
    /// `DigestAuthenticationProvider.superDigest`: `super:<base64 sha1>`; a client that
    /// authenticates with the matching digest holds every permission.
    pub super_digest: Option<String>,
    /// `skipACL=yes`: no ACL is checked (for trusted deployments; off by default).
    pub skip_acl: bool,
    /// `enforceQuota` (ZooKeeper's `zookeeper.enforceQuota` property, which ZooKeeper
    /// also takes from zoo.cfg as `enforceQuota`): quota limits are checked, a hard one
    /// refusing writes with QuotaExceeded and a soft one logged. Off by default.
    pub enforce_quota: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            client_port: 2181,
            client_port_address: IpAddr::from([127, 0, 0, 1]),
            data_dir: PathBuf::from("ringkeeper-data"),
            data_log_dir: None,
            tick_time_ms: 2000,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            max_client_connections: 60,
            jute_max_buffer_bytes: 0xfffff,
            four_letter_whitelist: vec!["srvr".to_owned()],
            global_outstanding_limit: 1000,
            force_sync: true,
            segment_size_bytes: crate::log::segment::SEGMENT_SIZE_BYTES_DEFAULT,
            snap_count: 100_000,
            snap_retain_count: 3,
            purge_interval_hours: 0,
            extended_types_enabled: false,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 10_000,
            super_digest: None,
            skip_acl: false,
            enforce_quota: false,
        }
    }
}

/// A configuration problem that stops the server from starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Keys ZooKeeper knows that we accept and ignore, because they concern features that
/// either do not apply to a standalone server or have no equivalent here.
const IGNORED_KEYS: [&str; 7] = [
    "initLimit",
    "syncLimit",
    "admin.enableServer",
    "admin.serverPort",
    "standaloneEnabled",
    "reconfigEnabled",
    "metricsProvider.className",
];

/// A zoo.cfg that names two or more servers asks for a replicated ensemble, which this
/// build does not run yet. Starting anyway would make each server a separate standalone:
/// clients spread over them would each see only their own server's writes. So it refuses,
/// rather than ignore the lines. One `server.N` line is a standalone server, as ZooKeeper
/// runs it (`standaloneEnabled`, true by default).
fn refuse_ensemble(server_lines: &[usize], warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    match server_lines {
        [] => Ok(()),
        [line] => {
            warnings.push(format!("line {line}: a single server.N entry; running standalone"));
            Ok(())
        }
        [first, ..] => Err(ConfigError {
            line: *first,
            key: "server.N".into(),
            message: format!(
                "{} servers are configured, but Ringkeeper runs standalone only (replication is not built \
                 yet); each would serve alone and never see the others' writes. Remove the server.N lines to \
                 run one standalone server",
                server_lines.len()
            ),
        }),
    }
}

impl Config {
    /// Parses a zoo.cfg. Returns the configuration and warnings for keys we do not know.
    pub fn parse(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let mut config = Config::default();
        let mut warnings = Vec::new();
        // The line numbers of `server.N` entries: an ensemble's members.
        let mut server_lines = Vec::new();
        for (index, raw_line) in text.lines().enumerate() {
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let line_number = index + 1;
            let Some((key, value)) = line.split_once(['=', ':']) else {
                return Err(ConfigError {
                    line: line_number,
                    key: line.to_owned(),
                    message: "expected key=value".into(),
                });
            };
            let (key, value) = (key.trim(), value.trim());
            let error = |message: String| ConfigError { line: line_number, key: key.to_owned(), message };
            let number = |value: &str| -> Result<u64, ConfigError> {
                value.parse::<u64>().map_err(|_| error(format!("'{value}' is not a non-negative integer")))
            };
            match key {
                "clientPort" => {
                    config.client_port =
                        u16::try_from(number(value)?).map_err(|_| error(format!("'{value}' is not a port")))?
                }
                "clientPortAddress" => {
                    config.client_port_address =
                        value.parse().map_err(|_| error(format!("'{value}' is not an IP address")))?
                }
                "dataDir" => config.data_dir = PathBuf::from(value),
                "dataLogDir" => config.data_log_dir = Some(PathBuf::from(value)),
                "tickTime" => {
                    let tick = number(value)?;
                    if tick == 0 || tick > 600_000 {
                        return Err(error(format!("'{value}' must be between 1 and 600000 ms")));
                    }
                    config.tick_time_ms = tick as u32;
                }
                "minSessionTimeout" => config.min_session_timeout_ms = Some(to_u32(number(value)?, &error)?),
                "maxSessionTimeout" => config.max_session_timeout_ms = Some(to_u32(number(value)?, &error)?),
                "maxClientCnxns" => config.max_client_connections = to_u32(number(value)?, &error)?,
                "jute.maxbuffer" => {
                    let bytes =
                        parse_jute_max_buffer(value).ok_or_else(|| error(format!("'{value}' is not a size")))?;
                    config.jute_max_buffer_bytes = bytes;
                }
                "4lw.commands.whitelist" => {
                    config.four_letter_whitelist =
                        value.split(',').map(|word| word.trim().to_owned()).filter(|w| !w.is_empty()).collect();
                }
                "globalOutstandingLimit" => config.global_outstanding_limit = to_u32(number(value)?, &error)?,
                "forceSync" => {
                    config.force_sync = match value {
                        "yes" => true,
                        "no" => false,
                        _ => return Err(error(format!("'{value}' must be yes or no"))),
                    }
                }
                "snapCount" => {
                    let count = number(value)?;
                    if count < 2 {
                        return Err(error(format!("'{value}' must be at least 2")));
                    }
                    config.snap_count = count;
                }
                "autopurge.snapRetainCount" => {
                    // ZooKeeper raises values below 3 to 3.
                    config.snap_retain_count = (number(value)? as usize).max(3);
                }
                "autopurge.purgeInterval" => config.purge_interval_hours = number(value)?,
                "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                    config.extended_types_enabled = match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(error(format!("'{value}' must be true or false"))),
                    }
                }
                "enforceQuota" | "zookeeper.enforceQuota" => {
                    // Boolean.parseBoolean: "true" in any case is true, anything else false.
                    config.enforce_quota = value.eq_ignore_ascii_case("true");
                }
                "znode.container.checkIntervalMs" => {
                    config.container_check_interval_ms = number(value)?.max(1);
                }
                "DigestAuthenticationProvider.superDigest" | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                    if value.split(':').count() != 2 {
                        return Err(error(format!("'{value}' is not user:base64digest")));
                    }
                    config.super_digest = Some(value.to_owned());
                }
                "skipACL" | "zookeeper.skipACL" => {
                    config.skip_acl = match value {
                        "yes" | "true" => true,
                        "no" | "false" => false,
                        _ => return Err(error(format!("'{value}' must be yes or no"))),
                    }
                }
                "znode.container.maxPerMinute" => config.container_max_per_minute = number(value)?.max(1),
                "preAllocSize" => {
                    let kib = number(value)?;
                    if !(1..=4 * 1024 * 1024).contains(&kib) {
                        return Err(error(format!("'{value}' KiB must be between 1 and 4194304")));
                    }
                    config.segment_size_bytes = kib * 1024;
                }
                key if key.starts_with("server.") => server_lines.push(line_number),
                key if IGNORED_KEYS.contains(&key) => {}
                _ => warnings.push(format!("line {line_number}: unknown key '{key}' ignored")),
            }
        }
        refuse_ensemble(&server_lines, &mut warnings)?;
        config.validate()?;
        Ok((config, warnings))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.min_session_timeout_ms() > self.max_session_timeout_ms() {
            return Err(ConfigError {
                line: 0,
                key: "minSessionTimeout".into(),
                message: format!(
                    "minSessionTimeout {} is larger than maxSessionTimeout {}",
                    self.min_session_timeout_ms(),
                    self.max_session_timeout_ms()
                ),
            });
        }
        Ok(())
    }

    pub fn min_session_timeout_ms(&self) -> u32 {
        self.min_session_timeout_ms.unwrap_or(self.tick_time_ms * 2)
    }

    pub fn max_session_timeout_ms(&self) -> u32 {
        self.max_session_timeout_ms.unwrap_or(self.tick_time_ms * 20)
    }

    /// The session timeout a client gets for the one it asked for
    /// (`ZooKeeperServer.processConnectRequest`).
    pub fn negotiate_timeout_ms(&self, requested_ms: i32) -> i32 {
        let min = self.min_session_timeout_ms() as i64;
        let max = self.max_session_timeout_ms() as i64;
        (requested_ms as i64).clamp(min, max) as i32
    }

    /// The directory holding dataLogDir's or dataDir's files, laid out as ZooKeeper's:
    /// `version-2` below the configured directory.
    pub fn log_dir(&self) -> PathBuf {
        self.data_log_dir.as_deref().unwrap_or(&self.data_dir).join("version-2")
    }
}

fn to_u32(value: u64, error: &dyn Fn(String) -> ConfigError) -> Result<u32, ConfigError> {
    u32::try_from(value).map_err(|_| error(format!("{value} is too large")))
}

/// jute.maxbuffer takes decimal or 0x-prefixed hexadecimal, as Java's `Integer.decode`.
fn parse_jute_max_buffer(value: &str) -> Option<usize> {
    let bytes = match value.strip_prefix("0x").or_else(|| value.strip_prefix("0X")) {
        Some(hex) => usize::from_str_radix(hex, 16).ok()?,
        None => value.parse().ok()?,
    };
    (bytes > 0 && bytes <= i32::MAX as usize).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zookeeper_zoo_cfg_parses() {
        let text = "# comment\ntickTime=1000\ndataDir=/var/lib/zk\nclientPort=2182\ninitLimit=5\n\
                    4lw.commands.whitelist=srvr, ruok\njute.maxbuffer=0x100000\nfoo=bar\n";
        let (config, warnings) = Config::parse(text).unwrap();
        assert_eq!(config.tick_time_ms, 1000);
        assert_eq!(config.client_port, 2182);
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/zk"));
        assert_eq!(config.four_letter_whitelist, vec!["srvr", "ruok"]);
        assert_eq!(config.jute_max_buffer_bytes, 0x100000);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("foo"));
    }

    #[test]
    fn an_ensemble_configuration_is_refused_not_served_as_separate_standalones() {
        // Two or more server.N lines ask for replication, which this build lacks: starting
        // would split the ensemble into standalones, so the configuration is an error that
        // names its first server line. One server.N line is a standalone, as in ZooKeeper.
        let ensemble = "tickTime=2000\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n\
                        server.3=127.0.0.1:2890:3890\n";
        let error = Config::parse(ensemble).unwrap_err();
        assert_eq!((error.line, error.key.as_str()), (2, "server.N"));
        assert!(error.message.contains("3 servers") && error.message.contains("standalone only"), "{error}");
        let (_, warnings) = Config::parse("server.1=127.0.0.1:2888:3888\n").unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("running standalone"));
    }

    #[test]
    fn enforce_quota_reads_as_javas_parse_boolean() {
        // ZooKeeper sets unknown zoo.cfg keys as `zookeeper.<key>` system properties and
        // reads zookeeper.enforceQuota with Boolean.parseBoolean (default false).
        assert!(!Config::parse("").unwrap().0.enforce_quota);
        assert!(Config::parse("enforceQuota=TRUE\n").unwrap().0.enforce_quota);
        assert!(Config::parse("zookeeper.enforceQuota=true\n").unwrap().0.enforce_quota);
        assert!(!Config::parse("enforceQuota=yes\n").unwrap().0.enforce_quota);
    }

    #[test]
    fn a_malformed_value_names_its_key() {
        let error = Config::parse("clientPort=abc\n").unwrap_err();
        assert_eq!(error.key, "clientPort");
        assert_eq!(error.line, 1);
    }

    #[test]
    fn session_timeouts_clamp_to_two_and_twenty_ticks() {
        let config = Config { tick_time_ms: 2000, ..Config::default() };
        assert_eq!(config.negotiate_timeout_ms(1000), 4000);
        assert_eq!(config.negotiate_timeout_ms(10_000), 10_000);
        assert_eq!(config.negotiate_timeout_ms(100_000), 40_000);
    }
}
