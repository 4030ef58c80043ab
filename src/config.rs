//! Server configuration read from a ZooKeeper `zoo.cfg`, so an operator's file works as
//! is. Sans-IO: `Config::parse` takes the file's text.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::tls::TlsSettings;

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
    /// `zookeeper.nio.sessionlessCnxnTimeout`: a connection that has not completed its
    /// handshake (or a four-letter word) by then is closed. 10 s by default, as ZooKeeper.
    pub sessionless_connection_timeout_ms: u64,
    /// The `server.N` lines: the ensemble's members (empty or one: standalone).
    pub servers: Vec<ServerSpec>,
    /// `initLimit`, in ticks: how long a new leader waits for a quorum to sync before
    /// giving up, and how long a member waits to be synced.
    pub init_limit_ticks: u32,
    /// `syncLimit`, in ticks: how long a member may go without hearing from its leader
    /// (or a leader from a quorum) before it looks for another.
    pub sync_limit_ticks: u32,
    /// This member's id, from `dataDir/myid` (0 standalone).
    pub my_id: u64,
    /// `readonlymode.enabled` (ZooKeeper's system property of that name, taken from
    /// zoo.cfg here): a member without a quorum serves clients that asked for read-only
    /// sessions (reads; writes fail with NotReadOnly) instead of refusing everyone.
    pub read_only_mode: bool,
    /// `syncRetainedBytes` (Ringkeeper's): bytes of recent committed records a member
    /// keeps in memory to bring a lagging follower up to date (DIFF); one further behind
    /// is sent a snapshot (SNAP). ZooKeeper decides the same with its in-memory
    /// committedLog and `zookeeper.snapshotSizeFactor`.
    pub sync_retained_bytes: usize,
    /// `zxidCounterLimit` (Ringkeeper's, for tests): the counter at which an ensemble's
    /// leader opens its next epoch, leaving room for a whole batch before the 32-bit
    /// counter would run out (a batch is at most 4 MiB of records of 64 bytes or more).
    pub zxid_counter_limit: u32,
    /// `admin.enableServer`, `admin.serverAddress`, `admin.serverPort`,
    /// `admin.commandURL`: the AdminServer's HTTP endpoint (on by default, as ZooKeeper's).
    pub admin: HttpEndpoint,
    pub admin_command_url: String,
    /// `metricsProvider.className` naming ZooKeeper's Prometheus provider turns on
    /// `/metrics` at `metricsProvider.httpHost`:`metricsProvider.httpPort`.
    pub metrics: HttpEndpoint,
    /// `digest.enabled` (ZooKeeper's `zookeeper.digest.enabled`, on by default): the tree's
    /// digest is logged every 128 zxids for the `hash` command.
    pub digest_enabled: bool,
    /// The zoo.cfg text as given, for the `initial_configuration` admin command.
    pub initial_text: String,
    /// `secureClientPort`: TLS clients connect here, beside the plain `clientPort`.
    pub secure_client_port: Option<u16>,
    /// `secureClientPortAddress`; when not given, `clientPortAddress` (127.0.0.1 by
    /// default, as the plain port; ZooKeeper listens on every address for both).
    pub secure_client_port_address: Option<IpAddr>,
    /// `client.portUnification`: the plain client port also takes TLS clients, told
    /// apart by their first byte (for moving clients to TLS one by one).
    pub client_port_unification: bool,
    /// `ssl.*`: the secure client port's certificate, trust store and protocols.
    pub client_tls: TlsSettings,
    /// `sslQuorum=true`: members talk to each other over TLS, set up by `ssl.quorum.*`.
    pub ssl_quorum: bool,
    pub quorum_tls: TlsSettings,
    /// `client.certReload` (ZooKeeper 3.9's) and `sslQuorumReloadCertFiles`: certificate
    /// files are reloaded when they change. On by default here, unlike ZooKeeper: a
    /// renewed certificate should not need a restart.
    pub client_certificate_reload: bool,
    pub quorum_certificate_reload: bool,
    /// The `x509` scheme exists, so ACLs may name certificate subjects and a TLS client
    /// with a certificate holds `x509:<its subject>`: set by
    /// `authProvider.N=org.apache.zookeeper.server.auth.X509AuthenticationProvider`, and by
    /// `secureClientPort` itself (ZooKeeper's `QuorumPeerConfig.configureSSLAuth`).
    pub x509_auth: bool,
    /// `X509AuthenticationProvider.superUser`: the subject that holds every permission.
    pub x509_super_user: Option<String>,
}

/// The class ZooKeeper configures for the `x509` scheme.
pub const X509_PROVIDER: &str = "org.apache.zookeeper.server.auth.X509AuthenticationProvider";

/// A zoo.cfg key of the TLS settings: whether it is a quorum key, and its name after the
/// `ssl.` or `ssl.quorum.` prefix (with or without the `zookeeper.` system-property one).
fn tls_key(key: &str) -> Option<(bool, &str)> {
    let key = key.strip_prefix("zookeeper.").unwrap_or(key);
    let name = key.strip_prefix("ssl.")?;
    Some(match name.strip_prefix("quorum.") {
        Some(quorum_name) => (true, quorum_name),
        None => (false, name),
    })
}

/// An HTTP listener of the operations surface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEndpoint {
    pub enabled: bool,
    pub address: IpAddr,
    pub port: u16,
}

/// `metricsProvider.className` that turns on the Prometheus endpoint.
pub const PROMETHEUS_PROVIDER: &str = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

/// One `server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    pub host: String,
    /// Members talk to each other here (ZooKeeper's quorum port).
    pub quorum_port: u16,
    /// Accepted for compatibility: Ringkeeper runs its elections over the quorum port.
    pub election_port: u16,
    pub observer: bool,
    /// The client address from the line's `;[clientHost:]clientPort` part, if any.
    pub client_port: Option<u16>,
    pub client_host: Option<String>,
}

impl ServerSpec {
    /// Parses the part after `server.N=`.
    pub fn parse(id: u64, value: &str) -> Result<ServerSpec, String> {
        let (address, client) = match value.split_once(';') {
            Some((address, client)) => (address.trim(), Some(client.trim())),
            None => (value.trim(), None),
        };
        let fields: Vec<&str> = address.split(':').collect();
        if !(3..=4).contains(&fields.len()) || fields[0].is_empty() {
            return Err(format!("'{value}' is not host:quorumPort:electionPort[:participant|:observer]"));
        }
        let port = |text: &str| text.parse::<u16>().map_err(|_| format!("'{text}' is not a port"));
        let observer = match fields.get(3) {
            None | Some(&"participant") => false,
            Some(&"observer") => true,
            Some(other) => return Err(format!("'{other}' is neither participant nor observer")),
        };
        let (client_host, client_port) = match client {
            None => (None, None),
            Some(client) => match client.rsplit_once(':') {
                Some((host, client_port)) => (Some(host.to_owned()), Some(port(client_port)?)),
                None => (None, Some(port(client)?)),
            },
        };
        Ok(ServerSpec {
            id,
            host: fields[0].to_owned(),
            quorum_port: port(fields[1])?,
            election_port: port(fields[2])?,
            observer,
            client_port,
            client_host,
        })
    }

    pub fn quorum_address(&self) -> Result<std::net::SocketAddr, String> {
        use std::net::ToSocketAddrs;
        (self.host.as_str(), self.quorum_port)
            .to_socket_addrs()
            .map_err(|error| format!("server.{}: cannot resolve {}: {error}", self.id, self.host))?
            .next()
            .ok_or_else(|| format!("server.{}: {} has no address", self.id, self.host))
    }
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
            sessionless_connection_timeout_ms: 10_000,
            servers: Vec::new(),
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            my_id: 0,
            read_only_mode: false,
            sync_retained_bytes: 64 * 1024 * 1024,
            zxid_counter_limit: 0xffff_0000,
            admin: HttpEndpoint { enabled: true, address: IpAddr::from([0, 0, 0, 0]), port: 8080 },
            admin_command_url: "/commands".to_owned(),
            metrics: HttpEndpoint { enabled: false, address: IpAddr::from([0, 0, 0, 0]), port: 7000 },
            digest_enabled: true,
            initial_text: String::new(),
            secure_client_port: None,
            secure_client_port_address: None,
            client_port_unification: false,
            client_tls: TlsSettings::default(),
            ssl_quorum: false,
            quorum_tls: TlsSettings::default(),
            client_certificate_reload: true,
            quorum_certificate_reload: true,
            x509_auth: false,
            x509_super_user: None,
        }
    }
}

/// `Long.hashCode` spread as Java's `HashMap.hash` spreads it.
fn java_long_hash(value: u64) -> u32 {
    let hash = (value ^ (value >> 32)) as u32;
    hash ^ (hash >> 16)
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
/// `serverCnxnFactory` chooses ZooKeeper's Netty connection factory, which TLS needs
/// there; every port here is served the same way.
const IGNORED_KEYS: [&str; 5] = [
    "standaloneEnabled",
    "reconfigEnabled",
    "metricsProvider.exportJvmInfo",
    "serverCnxnFactory",
    "zookeeper.serverCnxnFactory",
];

impl Config {
    /// Parses a zoo.cfg. Returns the configuration and warnings for keys we do not know.
    pub fn parse(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let mut config = Config { initial_text: text.to_owned(), ..Config::default() };
        let mut warnings = Vec::new();
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
            if let Some((quorum, name)) = tls_key(key) {
                let settings = if quorum { &mut config.quorum_tls } else { &mut config.client_tls };
                if settings.apply(name, value).map_err(error)? {
                    continue;
                }
                match name {
                    // ZooKeeper's secure port authenticates with the provider this names.
                    "authProvider" if value == "x509" => {}
                    "authProvider" => return Err(error(format!("'{value}': only the x509 provider is supported"))),
                    // CRL and OCSP checks would need the JVM's revocation fetching.
                    "crl" | "ocsp" if !value.eq_ignore_ascii_case("true") => {}
                    "crl" | "ocsp" => return Err(error("certificate revocation checks are not supported".into())),
                    _ => warnings.push(format!("line {line_number}: unknown key '{key}' ignored")),
                }
                continue;
            }
            let boolean = |value: &str| value.eq_ignore_ascii_case("true");
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
                "nio.sessionlessCnxnTimeout" | "zookeeper.nio.sessionlessCnxnTimeout" => {
                    config.sessionless_connection_timeout_ms = number(value)?.max(1);
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
                "syncRetainedBytes" => {
                    config.sync_retained_bytes =
                        usize::try_from(number(value)?.max(1)).map_err(|_| error(format!("'{value}' is too large")))?
                }
                "readonlymode.enabled" => {
                    config.read_only_mode = match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(error(format!("'{value}' must be true or false"))),
                    }
                }
                "zxidCounterLimit" => config.zxid_counter_limit = to_u32(number(value)?, &error)?.clamp(2, 0xffff_0000),
                "initLimit" => config.init_limit_ticks = to_u32(number(value)?, &error)?.max(1),
                "syncLimit" => config.sync_limit_ticks = to_u32(number(value)?, &error)?.max(1),
                key if key.starts_with("server.") => {
                    let id = number(&key["server.".len()..])?;
                    if config.servers.iter().any(|server| server.id == id) {
                        return Err(error("a server id is listed twice".into()));
                    }
                    config.servers.push(ServerSpec::parse(id, value).map_err(error)?);
                }
                "admin.enableServer" | "zookeeper.admin.enableServer" => {
                    // Boolean.parseBoolean, as ZooKeeper reads the property.
                    config.admin.enabled = value.eq_ignore_ascii_case("true");
                }
                "admin.serverAddress" | "zookeeper.admin.serverAddress" => {
                    config.admin.address =
                        value.parse().map_err(|_| error(format!("'{value}' is not an IP address")))?
                }
                "admin.serverPort" | "zookeeper.admin.serverPort" => {
                    config.admin.port = to_u16(number(value)?, &error)?;
                }
                "admin.commandURL" | "zookeeper.admin.commandURL" => {
                    if !value.starts_with('/') {
                        return Err(error(format!("'{value}' is not a path")));
                    }
                    config.admin_command_url = value.trim_end_matches('/').to_owned();
                }
                "metricsProvider.className" => {
                    // Any other provider (ZooKeeper's default is the null one) exports nothing.
                    config.metrics.enabled = value == PROMETHEUS_PROVIDER;
                }
                "metricsProvider.httpHost" => {
                    config.metrics.address =
                        value.parse().map_err(|_| error(format!("'{value}' is not an IP address")))?
                }
                "metricsProvider.httpPort" => config.metrics.port = to_u16(number(value)?, &error)?,
                "digest.enabled" | "zookeeper.digest.enabled" => {
                    config.digest_enabled = value.eq_ignore_ascii_case("true");
                }
                "secureClientPort" => config.secure_client_port = Some(to_u16(number(value)?, &error)?),
                "secureClientPortAddress" => {
                    config.secure_client_port_address =
                        Some(value.parse().map_err(|_| error(format!("'{value}' is not an IP address")))?)
                }
                // Boolean.parseBoolean, as ZooKeeper reads these.
                "sslQuorum" => config.ssl_quorum = boolean(value),
                "sslQuorumReloadCertFiles" => config.quorum_certificate_reload = boolean(value),
                "client.portUnification" | "zookeeper.client.portUnification" => {
                    config.client_port_unification = boolean(value)
                }
                "client.certReload" | "zookeeper.client.certReload" => {
                    config.client_certificate_reload = boolean(value)
                }
                key if key.strip_prefix("zookeeper.").unwrap_or(key).starts_with("authProvider.") => {
                    if value == X509_PROVIDER {
                        config.x509_auth = true;
                    } else {
                        warnings.push(format!(
                            "line {line_number}: authentication provider '{value}' is not supported; ignored"
                        ));
                    }
                }
                "X509AuthenticationProvider.superUser" | "zookeeper.X509AuthenticationProvider.superUser" => {
                    config.x509_super_user = Some(value.to_owned())
                }
                key if IGNORED_KEYS.contains(&key) => {}
                _ => warnings.push(format!("line {line_number}: unknown key '{key}' ignored")),
            }
        }
        if config.secure_client_port.is_some() || config.client_port_unification {
            config.x509_auth = true;
        }
        config.servers.sort_by_key(|server| server.id);
        if config.servers.len() == 1 {
            warnings.push("a single server.N entry; running standalone".into());
        }
        config.validate()?;
        Ok((config, warnings))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let tls_error = |key: &str, message: String| ConfigError { line: 0, key: key.into(), message };
        if self.secure_client_port.is_none() && self.secure_client_port_address.is_some() {
            return Err(tls_error("secureClientPortAddress", "is set but secureClientPort is not".into()));
        }
        if self.client_port_unification && !self.client_tls.is_configured() {
            return Err(tls_error(
                "client.portUnification",
                "needs ssl.keyStore.location: the server's certificate".into(),
            ));
        }
        if let Some(secure_port) = self.secure_client_port {
            if secure_port == self.client_port {
                // Both would bind (SO_REUSEPORT) and split the connections between them.
                return Err(tls_error("secureClientPort", format!("{secure_port} is clientPort too")));
            }
            if !self.client_tls.is_configured() {
                return Err(tls_error(
                    "secureClientPort",
                    "needs ssl.keyStore.location: the server's certificate".into(),
                ));
            }
            self.client_tls.versions().map_err(|message| tls_error("ssl.enabledProtocols", message))?;
        }
        if self.ssl_quorum {
            if !self.quorum_tls.is_configured() {
                return Err(tls_error(
                    "sslQuorum",
                    "needs ssl.quorum.keyStore.location: this member's certificate".into(),
                ));
            }
            self.quorum_tls.versions().map_err(|message| tls_error("ssl.quorum.enabledProtocols", message))?;
        }
        if self.is_ensemble() && self.servers.iter().all(|server| server.observer) {
            return Err(ConfigError {
                line: 0,
                key: "server.N".into(),
                message: "every server is an observer: an ensemble needs voting members".into(),
            });
        }
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

    /// Two or more `server.N` lines: an ensemble (one is a standalone, as ZooKeeper's
    /// standaloneEnabled runs it).
    pub fn is_ensemble(&self) -> bool {
        self.servers.len() >= 2
    }

    /// Reads `dataDir/myid` and takes this member's client port and address from its
    /// `server.N` line where the line gives them (as ZooKeeper's dynamic-config form).
    pub fn identify_member(&mut self) -> Result<u64, String> {
        let path = self.data_dir.join("myid");
        let text =
            std::fs::read_to_string(&path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let id: u64 =
            text.trim().parse().map_err(|_| format!("{}: '{}' is not a server id", path.display(), text.trim()))?;
        let spec = self
            .servers
            .iter()
            .find(|server| server.id == id)
            .ok_or_else(|| format!("{}: server.{id} is not in the configuration", path.display()))?
            .clone();
        self.my_id = id;
        if let Some(port) = spec.client_port {
            self.client_port = port;
        }
        if let Some(host) = &spec.client_host {
            self.client_port_address =
                host.parse().map_err(|_| format!("server.{id}: client address '{host}' is not an IP address"))?;
        }
        Ok(id)
    }

    /// The membership as ZooKeeper writes it into `/zookeeper/config`
    /// (`QuorumMaj.toString`): a `server.N=host:quorumPort:electionPort:role[;host:port]`
    /// line per member, the client part only where the member's own line gave one (a bare
    /// port there is `0.0.0.0:port`), then `version=` and the configuration's version in
    /// hex, 0 for a static configuration. ZooKeeper lists the members in the order of its
    /// `HashMap<Long, _>`: by id modulo the table's size (16 up to 12 members), which is
    /// ascending id for the ids ensembles use.
    pub fn membership_text(&self) -> String {
        // HashMap's table doubles from 16 once it is over three quarters full.
        let mut table_size = 16usize;
        while self.servers.len() * 4 > table_size * 3 {
            table_size *= 2;
        }
        let mut members: Vec<&ServerSpec> = self.servers.iter().collect();
        members.sort_by_key(|server| (java_long_hash(server.id) as usize & (table_size - 1), server.id));
        let mut text = String::new();
        for server in members {
            let role = if server.observer { "observer" } else { "participant" };
            let _ = write!(
                text,
                "server.{}={}:{}:{}:{role}",
                server.id, server.host, server.quorum_port, server.election_port
            );
            if let Some(port) = server.client_port {
                let _ = write!(text, ";{}:{port}", server.client_host.as_deref().unwrap_or("0.0.0.0"));
            }
            text.push('\n');
        }
        text.push_str("version=0");
        text
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

fn to_u16(value: u64, error: &dyn Fn(String) -> ConfigError) -> Result<u16, ConfigError> {
    u16::try_from(value).map_err(|_| error(format!("{value} is not a port")))
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
    fn tls_keys_are_read_with_and_without_the_zookeeper_prefix() {
        let text = "secureClientPort=2281\nssl.keyStore.location=/k.pem\nzookeeper.ssl.trustStore.location=/t.pem\n\
                    ssl.clientAuth=want\nsslQuorum=true\nssl.quorum.keyStore.location=/q.pem\n\
                    authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n\
                    X509AuthenticationProvider.superUser=CN=admin\nserverCnxnFactory=x\n";
        let (config, warnings) = Config::parse(text).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.secure_client_port, Some(2281));
        assert_eq!(config.client_tls.key_store.path, Some(PathBuf::from("/k.pem")));
        assert_eq!(config.client_tls.trust_store.path, Some(PathBuf::from("/t.pem")));
        assert_eq!(config.client_tls.client_auth, crate::tls::settings::ClientAuth::Want);
        assert!(config.ssl_quorum);
        assert_eq!(config.quorum_tls.key_store.path, Some(PathBuf::from("/q.pem")));
        assert_eq!(config.quorum_tls.client_auth, crate::tls::settings::ClientAuth::Need);
        assert!(config.x509_auth);
        assert_eq!(config.x509_super_user.as_deref(), Some("CN=admin"));
    }

    #[test]
    fn a_secure_port_turns_the_x509_scheme_on_as_zookeeper_does() {
        let (config, _) = Config::parse("secureClientPort=2281\nssl.keyStore.location=/k.pem\n").unwrap();
        assert!(config.x509_auth);
        assert!(!Config::parse("clientPort=2181\n").unwrap().0.x509_auth);
    }

    #[test]
    fn a_secure_port_must_differ_from_the_plain_one_and_have_an_address_only_with_a_port() {
        let error = Config::parse("clientPort=2181\nsecureClientPort=2181\nssl.keyStore.location=/k\n").unwrap_err();
        assert_eq!(error.key, "secureClientPort");
        let error = Config::parse("secureClientPortAddress=127.0.0.1\n").unwrap_err();
        assert_eq!(error.key, "secureClientPortAddress");
    }

    #[test]
    fn port_unification_needs_a_certificate_and_turns_the_x509_scheme_on() {
        let error = Config::parse("client.portUnification=true\n").unwrap_err();
        assert_eq!(error.key, "client.portUnification");
        let (config, _) = Config::parse("client.portUnification=true\nssl.keyStore.location=/k.pem\n").unwrap();
        assert!(config.client_port_unification && config.x509_auth);
    }

    #[test]
    fn a_secure_port_without_a_certificate_is_refused() {
        let error = Config::parse("secureClientPort=2281\n").unwrap_err();
        assert!(error.message.contains("ssl.keyStore.location"), "{error}");
        let error =
            Config::parse("secureClientPort=2281\nssl.keyStore.location=/k\nssl.enabledProtocols=SSLv3\n").unwrap_err();
        assert!(error.message.contains("SSLv3"), "{error}");
    }

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
    fn the_membership_reads_as_zookeepers_zookeeper_config_node() {
        // QuorumServer.toString: the role always, the client part only when the member's
        // line gave one; members in HashMap order (id 17 lands in bucket 1, after 16's 0).
        let text = "server.2=127.0.0.1:2889:3889:participant;2182\nserver.1=127.0.0.1:2888:3888\n\
                    server.3=host3:2890:3890:observer;10.0.0.3:2183\nserver.17=h17:2891:3891\nserver.16=h:1:2\n";
        let (config, _) = Config::parse(text).unwrap();
        assert_eq!(
            config.membership_text(),
            "server.16=h:1:2:participant\nserver.1=127.0.0.1:2888:3888:participant\n\
             server.17=h17:2891:3891:participant\n\
             server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\n\
             server.3=host3:2890:3890:observer;10.0.0.3:2183\nversion=0"
        );
    }

    #[test]
    fn an_ensembles_server_lines_parse_as_zookeeper_writes_them() {
        let text = "tickTime=500\ninitLimit=10\nsyncLimit=4\nserver.1=127.0.0.1:2888:3888\n\
                    server.2=127.0.0.1:2889:3889:participant;2182\nserver.3=host3:2890:3890:observer;0.0.0.0:2183\n";
        let (config, _) = Config::parse(text).unwrap();
        assert!(config.is_ensemble());
        assert_eq!((config.init_limit_ticks, config.sync_limit_ticks), (10, 4));
        assert_eq!(config.servers.len(), 3);
        assert_eq!(config.servers[0].quorum_port, 2888);
        assert_eq!(config.servers[1].client_port, Some(2182));
        assert!(!config.servers[1].observer);
        assert!(config.servers[2].observer);
        assert_eq!(config.servers[2].client_host.as_deref(), Some("0.0.0.0"));
        let (_, warnings) = Config::parse("server.1=127.0.0.1:2888:3888\n").unwrap();
        assert!(warnings[0].contains("running standalone"));
    }

    #[test]
    fn a_malformed_server_line_names_its_key() {
        let error = Config::parse("server.1=127.0.0.1:2888\n").unwrap_err();
        assert_eq!((error.line, error.key.as_str()), (1, "server.1"));
        let error = Config::parse("server.1=a:1:2:leader\n").unwrap_err();
        assert!(error.message.contains("neither participant nor observer"), "{error}");
        let error = Config::parse("server.x=a:1:2\n").unwrap_err();
        assert_eq!(error.key, "server.x");
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
