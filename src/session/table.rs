//! The global session table, kept by the ordering point: every session's timeout,
//! password, expiry deadline and owning core. Sans-IO: time comes in as arguments.
//!
//! Expiry follows ZooKeeper's ExpiryQueue: deadlines are rounded up to the next tick, and
//! a session expires when a tick passes its deadline without a touch.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use crate::proto::connect::PASSWORD_SIZE_BYTES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    pub timeout_ms: i32,
    pub password: [u8; PASSWORD_SIZE_BYTES],
    pub expires_at_ms: u64,
    /// Set once a closeSession is ordered, so the session is not closed twice.
    pub closing: bool,
    /// The connection that holds the session, as (member, connection) (ZooKeeper's session
    /// owner); None for a session restored from the log until a connection writes for it.
    pub owner: Option<Owner>,
}

/// A connection by member and connection id: where a session is held.
pub type Owner = (u64, u64);

pub struct SessionTable {
    sessions: HashMap<i64, SessionEntry>,
    next_id: i64,
    tick_ms: u64,
    /// Keys for deriving passwords; random per process.
    password_keys: std::collections::hash_map::RandomState,
}

impl SessionTable {
    /// Session ids start from the clock, shifted as ZooKeeper does
    /// (`SessionTrackerImpl.initializeNextSessionId`), with the server id in the top byte.
    pub fn new(server_id: u8, now_ms: u64, tick_ms: u64) -> SessionTable {
        assert!(tick_ms > 0);
        let base = ((now_ms << 24) >> 8) as i64;
        let next_id = base | ((server_id as i64) << 56);
        SessionTable {
            sessions: HashMap::new(),
            next_id: if next_id == 0 { 1 } else { next_id },
            tick_ms,
            password_keys: std::collections::hash_map::RandomState::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (i64, &SessionEntry)> {
        self.sessions.iter().map(|(&session_id, entry)| (session_id, entry))
    }

    pub fn get(&self, session_id: i64) -> Option<&SessionEntry> {
        self.sessions.get(&session_id)
    }

    fn deadline(&self, now_ms: u64, timeout_ms: i32) -> u64 {
        let raw = now_ms + timeout_ms.max(0) as u64;
        (raw / self.tick_ms + 1) * self.tick_ms
    }

    fn password_for(&self, session_id: i64) -> [u8; PASSWORD_SIZE_BYTES] {
        let mut password = [0; PASSWORD_SIZE_BYTES];
        for (half, chunk) in password.chunks_mut(8).enumerate() {
            let mut hasher = self.password_keys.build_hasher();
            hasher.write_i64(session_id);
            hasher.write_usize(half);
            chunk.copy_from_slice(&hasher.finish().to_be_bytes());
        }
        password
    }

    /// Opens a session and returns its id and password.
    pub fn create(&mut self, timeout_ms: i32, now_ms: u64, owner: Owner) -> (i64, [u8; PASSWORD_SIZE_BYTES]) {
        let session_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        assert!(!self.sessions.contains_key(&session_id), "session id {session_id:#x} reused");
        let password = self.password_for(session_id);
        let expires_at_ms = self.deadline(now_ms, timeout_ms);
        let entry = SessionEntry { timeout_ms, password, expires_at_ms, closing: false, owner: Some(owner) };
        self.sessions.insert(session_id, entry);
        (session_id, password)
    }

    /// Restores a session found in the log after a restart. It gets a whole timeout from
    /// now to reconnect, as ZooKeeper gives sessions loaded from disk.
    pub fn restore(&mut self, session_id: i64, timeout_ms: i32, password: [u8; PASSWORD_SIZE_BYTES], now_ms: u64) {
        let expires_at_ms = self.deadline(now_ms, timeout_ms);
        let entry = SessionEntry { timeout_ms, password, expires_at_ms, closing: false, owner: None };
        self.sessions.insert(session_id, entry);
        if session_id >= self.next_id {
            self.next_id = session_id.wrapping_add(1);
        }
    }

    /// Re-attaches a session to a new connection if it is open and the password matches;
    /// the connection becomes its owner.
    pub fn reattach(&mut self, session_id: i64, password: &[u8], now_ms: u64, owner: Owner) -> bool {
        let Some(entry) = self.sessions.get(&session_id) else { return false };
        if entry.closing || entry.password.as_slice() != password {
            return false;
        }
        let deadline = self.deadline(now_ms, entry.timeout_ms);
        let entry = self.sessions.get_mut(&session_id).expect("looked up above");
        entry.expires_at_ms = entry.expires_at_ms.max(deadline);
        entry.owner = Some(owner);
        true
    }

    /// Whether a request of the session through `connection` may be ordered; if not, the
    /// owner it has (ZooKeeper's `checkSession` with the request's owner). A session
    /// without an owner is claimed by the first connection that writes for it; an unknown
    /// session is left to the caller.
    pub fn claim(&mut self, session_id: i64, connection: Owner) -> Result<(), Owner> {
        let Some(entry) = self.sessions.get_mut(&session_id) else { return Ok(()) };
        let owner = *entry.owner.get_or_insert(connection);
        if owner == connection {
            Ok(())
        } else {
            Err(owner)
        }
    }

    /// Records activity: the session lives for another timeout from now.
    pub fn touch(&mut self, session_id: i64, now_ms: u64) {
        let Some(timeout_ms) = self.sessions.get(&session_id).map(|entry| entry.timeout_ms) else {
            return;
        };
        let deadline = self.deadline(now_ms, timeout_ms);
        let entry = self.sessions.get_mut(&session_id).expect("looked up above");
        entry.expires_at_ms = entry.expires_at_ms.max(deadline);
    }

    /// Moves every deadline `by_ms` later: time in which no touch could be heard.
    pub fn postpone_all(&mut self, by_ms: u64) {
        for entry in self.sessions.values_mut() {
            entry.expires_at_ms = entry.expires_at_ms.saturating_add(by_ms);
        }
    }

    /// Marks a session as closing; false if it was unknown or already closing.
    pub fn begin_close(&mut self, session_id: i64) -> bool {
        match self.sessions.get_mut(&session_id) {
            Some(entry) if !entry.closing => {
                entry.closing = true;
                true
            }
            _ => false,
        }
    }

    pub fn remove(&mut self, session_id: i64) {
        self.sessions.remove(&session_id);
    }

    /// Sessions whose deadline has passed and that are not closing yet, in id order.
    pub fn expired(&self, now_ms: u64) -> Vec<i64> {
        let mut expired: Vec<i64> = self
            .sessions
            .iter()
            .filter(|(_, entry)| !entry.closing && entry.expires_at_ms <= now_ms)
            .map(|(&id, _)| id)
            .collect();
        expired.sort_unstable();
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_expires_a_timeout_after_its_last_touch_rounded_to_a_tick() {
        let mut table = SessionTable::new(0, 1_000_000, 100);
        let (id, _) = table.create(1000, 0, (1, 1));
        assert!(table.expired(1000).is_empty());
        assert_eq!(table.expired(1100), vec![id]);
        table.touch(id, 900);
        assert!(table.expired(1100).is_empty());
        assert_eq!(table.expired(2000), vec![id]);
    }

    #[test]
    fn time_in_which_no_touch_could_be_heard_counts_against_no_session() {
        let mut table = SessionTable::new(0, 1_000_000, 100);
        let (id, _) = table.create(1000, 0, (1, 1));
        table.postpone_all(5000);
        assert!(table.expired(6000).is_empty(), "the deadline moved by the hold");
        assert_eq!(table.expired(6100), vec![id]);
    }

    #[test]
    fn reattach_needs_the_password() {
        let mut table = SessionTable::new(0, 1_000_000, 100);
        let (id, password) = table.create(1000, 0, (1, 1));
        assert!(!table.reattach(id, &[0; 16], 10, (1, 1)));
        assert!(table.reattach(id, &password, 10, (1, 1)));
        assert!(table.begin_close(id));
        assert!(!table.reattach(id, &password, 10, (1, 1)));
    }

    #[test]
    fn session_ids_are_distinct_and_non_zero() {
        let mut table = SessionTable::new(0, 0, 100);
        let (a, _) = table.create(1000, 0, (1, 1));
        let (b, _) = table.create(1000, 0, (1, 1));
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn only_the_connection_holding_a_session_may_write_for_it() {
        // ZooKeeper's checkSession: a request through the session's old connection is
        // refused once the session re-attached elsewhere, on another member or this one.
        let mut table = SessionTable::new(0, 1_000_000, 100);
        let (id, password) = table.create(1000, 0, (1, 10));
        assert_eq!(table.claim(id, (1, 10)), Ok(()));
        assert!(table.reattach(id, &password, 10, (2, 20)));
        assert_eq!(table.claim(id, (1, 10)), Err((2, 20)));
        assert!(table.reattach(id, &password, 10, (2, 21)));
        assert_eq!(table.claim(id, (2, 20)), Err((2, 21)));
        assert_eq!(table.claim(id, (2, 21)), Ok(()));
        // Restored from the log: the first connection to write for it owns it.
        table.restore(7, 1000, password, 20);
        assert_eq!(table.claim(7, (3, 30)), Ok(()));
        assert_eq!(table.claim(7, (1, 10)), Err((3, 30)));
    }
}
