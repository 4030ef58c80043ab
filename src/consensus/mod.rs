//! Consensus: the ordering point. In a standalone server the leader is the only member
//! and a transaction commits when it is ordered; the ensemble protocol (election,
//! discovery, synchronisation, pipelined broadcast with quorum acks) grows here as a
//! pure state machine.

pub mod zxid;
