//! Connection tracking: which flow every IPv4 TCP, UDP and ICMP echo packet
//! belongs to, in which direction, and whether it is valid for that flow's
//! state, as Linux's `nf_conntrack` decides it; the base NAT builds on.
//!
//! Flows:
//! - **TCP** follows Linux's state machine (SYN_SENT, SYN_RECV, ESTABLISHED,
//!   FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, and SYN_SENT2 for
//!   simultaneous open) with its window tracking per direction (sequence,
//!   ack and window, scaled by the SYNs' window-scale options); segments out
//!   of window, with flag combinations no TCP sends, or other than a SYN for
//!   no known connection (Linux with `nf_conntrack_tcp_loose = 0`) are
//!   [`Invalid`]. An RST in window closes; a SYN on a closed (TIME_WAIT or
//!   CLOSE) connection replaces it with a new one. See `tcp_conn.rs`.
//! - **UDP** is unreplied until a datagram goes the reply way, then assured,
//!   with the longer timeout.
//! - **ICMP echo** is keyed by its identifier: a request creates, its reply
//!   matches.
//! - **ICMP errors** (unreachable, time exceeded, ...) are matched to the flow
//!   of the packet they quote ([`Track::Related`]) without changing it.
//!
//! Fragments, other protocols and other ICMP messages are not tracked
//! ([`Packet::classify`] says `None`): the caller decides what they get.
//!
//! Entries hold an **original** tuple (the first packet's) and a **reply**
//! tuple (what replies carry). Without NAT the reply is the original
//! inverted ([`ConntrackTable::track`]); a NAT creates entries with its
//! translated reply tuple ([`ConntrackTable::insert`]), may change it until
//! the first reply ([`ConntrackTable::set_reply`]), and finds entries from
//! either side ([`ConntrackTable::lookup`] gives the entry and the
//! [`Direction`]).
//!
//! The table ([`ConntrackTable`]) is bounded and allocates nothing after
//! construction:
//! - a slab of `max_entries` entries allocated once, with a free list;
//! - one index of both tuples of every entry: open addressing with a
//!   secret-keyed hash, allocated at its bound (2 keys per entry, load at most
//!   50 %), no tombstones, never a rehash, so lookups are O(1) and nothing
//!   stalls;
//! - one intrusive LRU list per timeout class ([`TimeoutClass`]: TCP's
//!   states, stalled TCP, UDP unreplied and assured, ICMP), linked by slab
//!   index. A packet moves its entry to the tail of its class's list in
//!   O(1) (at most once per [`REFRESH_GRANULARITY`], 1 s, per entry: a busy
//!   flow's packets in between touch only its index slot and entry, and
//!   deadlines are that precise); since all entries of a class share one
//!   timeout, each head is the next of its class to expire. [`ConntrackTable::expire`] pops at most a
//!   budget of expired heads per call and reports each (NAT releases the
//!   translated port), never scanning the table, and no timer exists per
//!   flow (OVS's per-timeout-policy expiry lists, VPP NAT's per-thread LRU
//!   lists). An entry found past its deadline counts as gone at once, whatever
//!   expiry's budget left behind.
//! - Early drop: a new flow in a full table first takes the slot of an
//!   expired entry, else evicts the least recently seen *evictable* entry
//!   (unassured: TCP before its handshake completed, UDP never replied, ICMP;
//!   and TCP already closing, as Linux's `tcp_can_early_drop`), else is
//!   refused ([`Track::Full`], counted). Established TCP and replied UDP are
//!   never evicted for new flows, so a flood of SYNs or UDP from random ports
//!   only churns the evictable share while established flows keep working.
//!
//! Each entry also keeps when it was created and, per direction, the packets
//! and bytes (IP total length) tracked as the flow's, as Linux's
//! `nf_conntrack_acct` does ([`FlowCounters`], shown by dumps with the age):
//! two adds per packet in the entry the lookup already touched.
//!
//! Time is the caller's [`Timestamp`](crate::frame::Timestamp) (one clock
//! read per batch); the table's clock never goes back.
//!
//! The table is single-owner (`&mut self`, no locks): one per worker, or
//! whatever the NAT stage's wiring decides (both directions of a flow must
//! reach the same table).

mod index;
mod key;
mod lru;
mod packet;
mod table;
mod tcp;
mod tcp_conn;
mod timeouts;
mod verdict;

pub use key::{Direction, EntryId, Tuple};
pub use packet::{quoted_tuple, Packet, QuoteError};
pub use table::{
    ConntrackConfig, ConntrackEntry, ConntrackError, ConntrackStats, ConntrackTable,
    DirectionCounters, FlowCounters, FlowState, PREFETCH_AHEAD, REFRESH_GRANULARITY,
};
pub use tcp::{TcpFlags, TcpParseError, TcpSegment, MAX_WSCALE};
pub use tcp_conn::TcpState;
pub use timeouts::{TimeoutClass, Timeouts};
pub use verdict::{Invalid, InvalidCounters, RemoveReason, Removed, Track};
