//! Java's `String.hashCode` and the iteration order of a `java.util.HashSet` of strings,
//! where ZooKeeper lets them show in its answers: the ids `whoAmI` lists
//! (`session::auth`) and the order in which a closed session's ephemeral nodes are
//! deleted, which is the order of their events.

/// `String.hashCode`: 31-based polynomial over the UTF-16 code units, wrapping.
pub fn string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// A `HashMap`'s bucket for a key: `HashMap.hash` folds the high half of the hash code
/// into the low half, and the table's capacity (a power of two) masks it.
fn bucket(text: &str, capacity: usize) -> usize {
    assert!(capacity.is_power_of_two());
    let hash = string_hash(text) as u32;
    (hash ^ (hash >> 16)) as usize & (capacity - 1)
}

/// The capacity of a `HashMap` that grew by doubling from the default 16 until `len`
/// entries stayed within its 0.75 load factor.
fn grown_capacity(len: usize) -> usize {
    let mut capacity = 16;
    while len > capacity / 4 * 3 {
        capacity *= 2;
    }
    capacity
}

/// The capacity `HashMap.clone` gives a copy of `len` entries (Java 17's `putMapEntries`:
/// the power of two at or above `(int) (len / 0.75f + 1)`).
fn cloned_capacity(len: usize) -> usize {
    ((len as f32 / 0.75 + 1.0) as usize).next_power_of_two()
}

/// The order in which ZooKeeper's `PrepRequestProcessor` lists a closing session's
/// ephemeral nodes: it clones the session's `HashSet` (`DataTree.getEphemerals`), which
/// re-inserts the entries in the set's own iteration order into a table sized for them,
/// then adds the session's ephemerals that are ordered but not yet applied. A `HashMap`
/// iterates by bucket, and within a bucket in insertion order; a resize keeps that
/// relative order. `held` is in the order the set was filled (creation order), `added` in
/// the order the ordering point made them, and `peak` is the most entries the set ever
/// held: it grew for them and never shrinks. Not modelled, so the order can differ from
/// ZooKeeper's there: a bucket of eight or more entries (Java turns it into a tree), and
/// sets rebuilt by a restart (ZooKeeper fills them in its snapshot's order).
pub fn closed_session_order(held: Vec<String>, added: Vec<String>, peak: usize) -> Vec<String> {
    assert!(peak >= held.len());
    let original_capacity = grown_capacity(peak);
    let mut order = held;
    order.sort_by_cached_key(|path| bucket(path, original_capacity));
    let mut capacity = cloned_capacity(order.len());
    order.extend(added);
    while order.len() > capacity / 4 * 3 {
        capacity *= 2;
    }
    order.sort_by_cached_key(|path| bucket(path, capacity));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_hashes_are_javas() {
        // "".hashCode(), "abc".hashCode() and "digest".hashCode() on the JDK.
        assert_eq!(string_hash(""), 0);
        assert_eq!(string_hash("abc"), 96354);
        assert_eq!(string_hash("digest"), -1331913276);
    }

    #[test]
    fn capacities_follow_javas_hash_map() {
        assert_eq!((grown_capacity(0), grown_capacity(12), grown_capacity(13), grown_capacity(25)), (16, 16, 32, 64));
        // new HashMap(m) for 3 entries: (int) (3 / 0.75f + 1) = 5, table 8.
        assert_eq!((cloned_capacity(0), cloned_capacity(3), cloned_capacity(12), cloned_capacity(13)), (1, 8, 32, 32));
    }

    #[test]
    fn a_closed_sessions_ephemerals_come_in_zookeepers_order() {
        // What ZooKeeper 3.8 on Java 17 sent for three ephemerals created as x1, x2, x3
        // (tests/differential/facts.py, close_session_events).
        let held = ["/f-k/x1", "/f-k/x2", "/f-k/x3"].map(String::from).to_vec();
        assert_eq!(closed_session_order(held, Vec::new(), 3), ["/f-k/x2", "/f-k/x3", "/f-k/x1"]);
    }

    #[test]
    fn a_set_that_once_held_more_keeps_the_order_of_its_larger_table() {
        // What ZooKeeper sent (differential seed 5 on an ensemble): the session's set had
        // grown to 64 slots, where /a/s-0000000013 (bucket 24) comes before /0000000028
        // (bucket 40); in a copy of 8 slots both fall in bucket 0 and keep that order.
        let held = ["/0000000028", "/a/s-0000000013", "/0000000029"].map(String::from).to_vec();
        let expected = ["/a/s-0000000013", "/0000000028", "/0000000029"];
        assert_eq!(closed_session_order(held.clone(), Vec::new(), 30), expected);
        assert_ne!(closed_session_order(held, Vec::new(), 3), expected, "a set of 16 slots orders them otherwise");
    }
}
