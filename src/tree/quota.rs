//! Quotas, as ZooKeeper 3.8 keeps them: a quota on `/app` is the node
//! `/zookeeper/quota/app/zookeeper_limits` (the limits, written by clients such as the
//! CLI's `setquota`) beside `/zookeeper/quota/app/zookeeper_stats` (the usage, kept up to
//! date by the server on every create, delete and setData below `/app`). Both hold
//! `StatsTrack` text. Sans-IO: the tree and the ordering point use these pieces.
//!
//! What is reproduced, from ZooKeeper's `DataTree`, `StatsTrack`, `PathTrie` and
//! `ZooKeeperServer.checkQuota`:
//! - a quota root is registered when a node named `zookeeper_limits` is created under
//!   `/zookeeper/quota`, and unregistered (with every root below it, as `PathTrie.deletePath`
//!   drops the whole branch) when such a node is deleted;
//! - creating `zookeeper_stats` recounts the root's subtree (the root itself included),
//!   and so does loading a snapshot (`DataTree.setupQuota`);
//! - usage is counted against the deepest root above a path; a quota on `/` counts nothing;
//! - bytes are data lengths, null data counting 0;
//! - the stats node's data changes in place: no version, mzxid or watch moves with it;
//! - limits are checked only when `zookeeper.enforceQuota` is on, against the applied
//!   tree: a soft limit (`count`, `bytes`) is logged, a hard one (`countHardLimit`,
//!   `byteHardLimit`, which wins over the soft one of its kind) refuses the write with
//!   QuotaExceeded and counts in `<namespace>_quota_exceeded_error_per_namespace`.

use std::collections::BTreeMap;

use rpds::RedBlackTreeSetSync;

/// The parent of every quota's nodes (`Quotas.quotaZookeeper`).
pub const QUOTA_ROOT: &str = "/zookeeper/quota";
/// `Quotas.procZookeeper`: a deleted limits node is unregistered below this prefix.
const PROC_ROOT: &str = "/zookeeper";
/// `Quotas.limitNode`.
pub const LIMIT_NODE: &str = "zookeeper_limits";
/// `Quotas.statNode`.
pub const STAT_NODE: &str = "zookeeper_stats";

const COUNT: &str = "count";
const BYTES: &str = "bytes";
const COUNT_HARD_LIMIT: &str = "countHardLimit";
const BYTE_HARD_LIMIT: &str = "byteHardLimit";

/// `Quotas.limitPath`: where the limits of the quota on `root` live.
pub fn limit_path(root: &str) -> String {
    format!("{QUOTA_ROOT}{root}/{LIMIT_NODE}")
}

/// `Quotas.statPath`: where the usage of the quota on `root` lives.
pub fn stat_path(root: &str) -> String {
    format!("{QUOTA_ROOT}{root}/{STAT_NODE}")
}

/// `PathUtils.getTopNamespace`: the first component of a path, the key of the
/// per-namespace quota metrics.
pub fn top_namespace(path: &str) -> Option<&str> {
    path.split('/').nth(1)
}

/// The text of a limits or stats node (`StatsTrack`): `count=N,bytes=M`, and when other
/// keys are present, `count=N,bytes=M=;key=value;...` with the other keys sorted (the
/// extra `=` keeps pre-3.7 parsers reading count and bytes only). A missing key reads -1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaStats {
    values: BTreeMap<String, i64>,
}

impl QuotaStats {
    /// Reads `StatsTrack` text: pairs split on runs of `,` and `;`, each `key=value`.
    /// Null and empty data read as no keys. Returns None where ZooKeeper's parser throws
    /// (a pair without `=value`, a value that is not a decimal long, a leading separator).
    pub fn parse(data: Option<&[u8]>) -> Option<QuotaStats> {
        let mut stats = QuotaStats::default();
        let text = std::str::from_utf8(data?).ok()?;
        if text.is_empty() {
            return Some(stats);
        }
        let mut pairs: Vec<&str> = text.split([',', ';']).collect();
        // Java's split: a run of separators is one separator, a leading one gives an
        // empty first pair (which then fails), trailing ones are dropped.
        let first_empty = pairs.first().is_some_and(|pair| pair.is_empty());
        pairs.retain(|pair| !pair.is_empty());
        if first_empty && !pairs.is_empty() {
            return None;
        }
        for pair in pairs {
            let mut parts: Vec<&str> = pair.split('=').collect();
            while parts.len() > 1 && parts.last().is_some_and(|part| part.is_empty()) {
                parts.pop();
            }
            let value = *parts.get(1)?;
            let value = if value.is_empty() { -1 } else { value.parse::<i64>().ok()? };
            stats.values.insert(parts[0].to_owned(), value);
        }
        Some(stats)
    }

    /// The usage ZooKeeper writes when it recounts a subtree.
    pub fn usage(count: i64, bytes: i64) -> QuotaStats {
        let mut stats = QuotaStats::default();
        stats.values.insert(COUNT.to_owned(), count);
        stats.values.insert(BYTES.to_owned(), bytes);
        stats
    }

    fn get(&self, key: &str) -> i64 {
        self.values.get(key).copied().unwrap_or(-1)
    }

    pub fn count(&self) -> i64 {
        self.get(COUNT)
    }

    pub fn bytes(&self) -> i64 {
        self.get(BYTES)
    }

    pub fn count_hard_limit(&self) -> i64 {
        self.get(COUNT_HARD_LIMIT)
    }

    pub fn byte_hard_limit(&self) -> i64 {
        self.get(BYTE_HARD_LIMIT)
    }

    /// The count limit that applies: the hard one when set (`QuotaMetricsUtils.getQuotaLimit`).
    pub fn count_limit(&self) -> i64 {
        if self.count_hard_limit() > -1 {
            self.count_hard_limit()
        } else {
            self.count()
        }
    }

    /// The byte limit that applies: the hard one when set.
    pub fn byte_limit(&self) -> i64 {
        if self.byte_hard_limit() > -1 {
            self.byte_hard_limit()
        } else {
            self.bytes()
        }
    }

    /// Adds to count and bytes (`DataTree.updateQuotaStat`), keeping every other key.
    pub fn add(&mut self, count_diff: i64, bytes_diff: i64) {
        let count = self.count().wrapping_add(count_diff);
        let bytes = self.bytes().wrapping_add(bytes_diff);
        self.values.insert(COUNT.to_owned(), count);
        self.values.insert(BYTES.to_owned(), bytes);
    }

    /// `StatsTrack.toString`, as bytes for a node's data.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = format!("{COUNT}={},{BYTES}={}", self.count(), self.bytes());
        let mut extra = self.values.iter().filter(|(key, _)| *key != COUNT && *key != BYTES).peekable();
        if extra.peek().is_some() {
            text.push('=');
            for (key, value) in extra {
                text.push_str(&format!(";{key}={value}"));
            }
        }
        text.into_bytes()
    }
}

/// The registered quota roots (ZooKeeper's `PathTrie`), as component-normalised paths.
/// Persistent, as the tree is.
#[derive(Debug, Clone)]
pub struct QuotaRoots {
    roots: RedBlackTreeSetSync<String>,
}

impl Default for QuotaRoots {
    fn default() -> Self {
        QuotaRoots { roots: RedBlackTreeSetSync::new_sync() }
    }
}

/// A path as the trie stores it: its non-blank components joined by `/`.
fn normalise(path: &str) -> String {
    let mut normal = String::with_capacity(path.len());
    for component in path.split('/').filter(|component| !component.trim().is_empty()) {
        normal.push('/');
        normal.push_str(component);
    }
    normal
}

impl QuotaRoots {
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.roots.iter().map(String::as_str)
    }

    /// `PathTrie.addPath`. An empty path is refused by ZooKeeper (it throws) and ignored here.
    pub fn add(&mut self, root: &str) {
        let root = normalise(root);
        if !root.is_empty() {
            self.roots.insert_mut(root);
        }
    }

    /// `PathTrie.deletePath`: removes the trie node of `root` and so every root at or
    /// below it.
    pub fn remove(&mut self, root: &str) {
        let root = normalise(root);
        if root.is_empty() {
            return;
        }
        let below = format!("{root}/");
        let removed: Vec<String> =
            self.roots.iter().filter(|existing| **existing == root || existing.starts_with(&below)).cloned().collect();
        for existing in removed {
            self.roots.remove_mut(&existing);
        }
    }

    /// `DataTree.getMaxPrefixWithQuota`: the deepest root at or above `path`, or None
    /// (a quota on `/` is never used).
    pub fn max_prefix(&self, path: &str) -> Option<String> {
        if self.roots.is_empty() {
            return None;
        }
        let mut prefix = String::with_capacity(path.len());
        let mut deepest = None;
        for component in path.split('/').filter(|component| !component.trim().is_empty()) {
            prefix.push('/');
            prefix.push_str(component);
            if self.roots.contains(&prefix) {
                deepest = Some(prefix.clone());
            }
        }
        deepest
    }
}

/// What the tree does for a node created at `parent`/`name` under the quota nodes
/// (`DataTree.createNode`): register a root, recount one, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaNodeCreated {
    Limits { root: String },
    Stats { root: String },
}

/// The quota bookkeeping a create of `parent`/`name` implies. ZooKeeper tests the parent
/// with a plain prefix match on `/zookeeper/quota`, so this does too.
pub fn quota_node_created(parent: &str, name: &str) -> Option<QuotaNodeCreated> {
    let root = parent.strip_prefix(QUOTA_ROOT)?;
    match name {
        LIMIT_NODE => Some(QuotaNodeCreated::Limits { root: root.to_owned() }),
        STAT_NODE => Some(QuotaNodeCreated::Stats { root: root.to_owned() }),
        _ => None,
    }
}

/// The root a delete of `parent`/`name` unregisters (`DataTree.deleteNode`): a limits
/// node whose parent starts with `/zookeeper`. ZooKeeper then strips the length of
/// `/zookeeper/quota` from the parent; a shorter parent makes it throw, ignored here.
pub fn quota_root_deleted(parent: &str, name: &str) -> Option<String> {
    if name != LIMIT_NODE || !parent.starts_with(PROC_ROOT) {
        return None;
    }
    parent.get(QUOTA_ROOT.len()..).map(str::to_owned)
}

/// A limit a write went past, found while the ordering point checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// The quota root.
    pub root: String,
    /// The top namespace of the written path, for the metrics.
    pub namespace: Option<String>,
    /// "count" or "bytes".
    pub what: &'static str,
    /// The count or bytes the write would give.
    pub value: i64,
    pub limit: i64,
    /// A hard limit refuses the write; a soft one is only logged.
    pub hard: bool,
}

impl std::fmt::Display for QuotaExceeded {
    /// ZooKeeper's log line: `Quota exceeded: /app [current count=4, softCountLimit=3]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.hard { "hard" } else { "soft" };
        let limit_name = if self.what == COUNT { "CountLimit" } else { "ByteLimit" };
        write!(
            f,
            "Quota exceeded: {} [current {}={}, {kind}{limit_name}={}]",
            self.root, self.what, self.value, self.limit
        )
    }
}

/// `ZooKeeperServer.checkQuota(lastPrefix, bytesDiff, countDiff)`: a limit is checked
/// only when its figure changes and it is set (soft or hard); the count is checked before
/// the bytes. Returns every limit passed, in that order; the last one is hard when the
/// write is refused (a hard count stops before the bytes are looked at).
pub fn check(
    root: &str,
    namespace: Option<&str>,
    limits: &QuotaStats,
    usage: &QuotaStats,
    count_diff: i64,
    bytes_diff: i64,
) -> Vec<QuotaExceeded> {
    let mut exceeded = Vec::new();
    let check_count = count_diff != 0 && (limits.count() > -1 || limits.count_hard_limit() > -1);
    let check_bytes = bytes_diff != 0 && (limits.bytes() > -1 || limits.byte_hard_limit() > -1);
    let mut note = |what, value: i64, limit: i64, hard| {
        if value > limit {
            exceeded.push(QuotaExceeded {
                root: root.to_owned(),
                namespace: namespace.map(str::to_owned),
                what,
                value,
                limit,
                hard,
            });
            return hard;
        }
        false
    };
    if check_count
        && note(COUNT, usage.count().wrapping_add(count_diff), limits.count_limit(), limits.count_hard_limit() > -1)
    {
        return exceeded;
    }
    if check_bytes {
        note(BYTES, usage.bytes().wrapping_add(bytes_diff), limits.byte_limit(), limits.byte_hard_limit() > -1);
    }
    exceeded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_text_round_trips_in_both_formats() {
        // StatsTrack: the 3.4 format "count=N,bytes=M" and the 3.7+ one with hard limits
        // after an extra "=", keys sorted, ";"-separated.
        let old = QuotaStats::parse(Some(b"count=3,bytes=-1")).unwrap();
        assert_eq!((old.count(), old.bytes(), old.count_hard_limit()), (3, -1, -1));
        assert_eq!(old.to_bytes(), b"count=3,bytes=-1");
        let new = QuotaStats::parse(Some(b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=4")).unwrap();
        assert_eq!((new.count(), new.bytes(), new.count_hard_limit(), new.byte_hard_limit()), (-1, -1, 4, 10));
        assert_eq!(new.to_bytes(), b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=4");
        assert_eq!(QuotaStats::usage(2, 7).to_bytes(), b"count=2,bytes=7");
    }

    #[test]
    fn stats_text_fails_where_zookeepers_parser_throws() {
        // Long.parseLong and a pair without "=value" throw in StatsTrack's constructor;
        // empty data holds no keys and reads -1 everywhere.
        assert_eq!(QuotaStats::parse(None), None);
        assert_eq!(QuotaStats::parse(Some(b"count")), None);
        assert_eq!(QuotaStats::parse(Some(b"count=x")), None);
        assert_eq!(QuotaStats::parse(Some(b",count=1")), None);
        assert_eq!(QuotaStats::parse(Some(b"")).unwrap().count(), -1);
        assert_eq!(QuotaStats::parse(Some(b"count=1,,;bytes=2,")).unwrap().bytes(), 2);
    }

    #[test]
    fn the_deepest_root_counts_and_deleting_a_root_drops_its_branch() {
        // PathTrie.findMaxPrefix returns the deepest marked prefix; deletePath removes the
        // trie node with everything below it.
        let mut roots = QuotaRoots::default();
        roots.add("/a");
        roots.add("/a/b");
        assert_eq!(roots.max_prefix("/a/b/c").as_deref(), Some("/a/b"));
        assert_eq!(roots.max_prefix("/a/bc").as_deref(), Some("/a"));
        assert_eq!(roots.max_prefix("/x"), None);
        roots.remove("/a");
        assert!(roots.is_empty());
    }

    #[test]
    fn a_hard_limit_wins_over_the_soft_one_and_stops_the_byte_check() {
        // ZooKeeperServer.checkQuota: hard limits refuse, soft ones are only reported.
        let limits = QuotaStats::parse(Some(b"count=1,bytes=1=;byteHardLimit=-1;countHardLimit=2")).unwrap();
        let usage = QuotaStats::usage(2, 1);
        let exceeded = check("/a", Some("a"), &limits, &usage, 1, 5);
        assert_eq!(exceeded.len(), 1);
        assert!(exceeded[0].hard);
        assert_eq!(exceeded[0].to_string(), "Quota exceeded: /a [current count=3, hardCountLimit=2]");
        let soft_only = check("/a", Some("a"), &limits, &QuotaStats::usage(0, 1), 1, 5);
        assert_eq!(soft_only.len(), 1);
        assert_eq!(soft_only[0].to_string(), "Quota exceeded: /a [current bytes=6, softByteLimit=1]");
        assert!(check("/a", None, &limits, &usage, 0, 0).is_empty());
    }
}
