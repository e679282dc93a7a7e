//! What conntrack says about a packet ([`Track`]), why it calls one INVALID
//! ([`Invalid`], counted by reason), and what it reports when it removes an
//! entry ([`Removed`]), so that whoever keeps state beside an entry (NAT's
//! translated ports) can release it.

use super::key::{Direction, EntryId, Tuple};
use crate::drop_reason::DropReason;
use serde::ser::{Serialize, SerializeMap, Serializer};

macro_rules! invalid_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why conntrack marked a packet INVALID, as Linux would. The caller
        /// drops it ([`DropReason::CtInvalid`]); the table counts it here.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Invalid {
            $(#[doc = $doc] $variant,)*
        }

        impl Invalid {
            /// Every reason, in counter order.
            pub const ALL: &'static [Invalid] = &[$(Invalid::$variant,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// Stable snake_case name used in stats output.
            pub const fn name(self) -> &'static str {
                match self { $(Invalid::$variant => $name,)* }
            }
        }
    };
}

invalid_reasons! {
    Malformed => "malformed", "A TCP header conntrack could not read, or a packet whose kind does not match its entry's protocol.";
    TcpFlags => "tcp_flags", "A TCP flag combination no TCP sends (NULL, SYN-FIN, FIN without ACK, ...).";
    TcpNotSyn => "tcp_not_syn", "A TCP segment other than a SYN for no known connection (no mid-stream pickup, Linux's nf_conntrack_tcp_loose = 0).";
    TcpState => "tcp_state", "A segment the state machine refuses in its connection's state (a SYN-ACK from the client, a FIN before the handshake, ...).";
    TcpSeqOutOfWindow => "tcp_seq_out_of_window", "A TCP sequence beyond the receiver's window.";
    TcpAckOutOfWindow => "tcp_ack_out_of_window", "A TCP acknowledgement of data the other side never sent.";
    TcpRst => "tcp_rst", "An RST whose sequence is before what the other side already acknowledged.";
    EchoReplyUnmatched => "echo_reply_unmatched", "An ICMP echo reply answering no tracked request.";
    IcmpUnrelated => "icmp_unrelated", "An ICMP error quoting a packet of no tracked flow.";
    IcmpBadQuote => "icmp_bad_quote", "An ICMP error whose quoted IPv4 header and first 8 bytes cannot be read.";
    IcmpWrongDestination => "icmp_wrong_destination", "An ICMP error sent to another address than the quoted packet's source.";
    TupleClash => "tuple_clash", "A new flow whose reply tuple is already another entry's (Linux's insert_failed).";
}

impl Invalid {
    /// The drop reason a stage counts for an INVALID packet.
    pub const fn drop_reason(self) -> DropReason {
        DropReason::CtInvalid
    }
}

/// One counter per [`Invalid`] reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvalidCounters {
    counts: [u64; Invalid::COUNT],
}

impl InvalidCounters {
    /// Counts one INVALID packet.
    #[inline]
    pub fn count(&mut self, reason: Invalid) {
        self.counts[reason as usize] += 1;
    }

    /// The count for one reason.
    pub fn get(&self, reason: Invalid) -> u64 {
        self.counts[reason as usize]
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other`'s counts (totals over several workers' tables).
    pub fn add(&mut self, other: &InvalidCounters) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
    }
}

impl Serialize for InvalidCounters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Invalid::COUNT))?;
        for reason in Invalid::ALL {
            map.serialize_entry(reason.name(), &self.get(*reason))?;
        }
        map.end()
    }
}

/// Conntrack's verdict on one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    /// The packet created entry `id` (its direction is the original).
    New(EntryId),
    /// The packet belongs to entry `id`, going `dir`; the entry's state and
    /// timeout were updated as the packet warranted.
    Existing {
        /// Its entry.
        id: EntryId,
        /// Which of the entry's tuples it carries.
        dir: Direction,
    },
    /// An ICMP error about a packet of entry `id`. `dir` is the direction the
    /// error itself travels (the opposite of the quoted packet's), as Linux's
    /// `IP_CT_RELATED` and `IP_CT_RELATED_REPLY`: NAT rewrites its outer
    /// header as a packet of `dir` and the quoted header as one of the other
    /// direction. The entry is not changed.
    Related {
        /// The flow the quoted packet belongs to.
        id: EntryId,
        /// The error's own direction.
        dir: Direction,
    },
    /// INVALID: drop the packet (counted by reason).
    Invalid(Invalid),
    /// A new flow found the table full with nothing evictable: drop the
    /// packet (counted). Established and replied flows keep working.
    Full,
    /// Only from [`ConntrackTable::update`](super::ConntrackTable::update):
    /// the entry was a closed connection that this SYN reopens, and has been
    /// removed (reported as [`RemoveReason::Reopened`]). Track the packet
    /// again as a new flow (Linux's `NF_REPEAT`).
    Restart,
}

impl Track {
    /// The drop reason of a packet conntrack refused, `None` for one it let
    /// through.
    pub const fn drop_reason(&self) -> Option<DropReason> {
        match self {
            Track::Invalid(reason) => Some(reason.drop_reason()),
            Track::Full => Some(DropReason::CtTableFull),
            Track::New(_) | Track::Existing { .. } | Track::Related { .. } | Track::Restart => None,
        }
    }

    /// The entry and direction of a packet that belongs to one.
    pub const fn entry(&self) -> Option<(EntryId, Direction)> {
        match *self {
            Track::New(id) => Some((id, Direction::Original)),
            Track::Existing { id, dir } | Track::Related { id, dir } => Some((id, dir)),
            Track::Invalid(_) | Track::Full | Track::Restart => None,
        }
    }
}

/// Why an entry left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveReason {
    /// Its timeout passed without a packet.
    Expired,
    /// Evicted to make room for a new flow (early drop).
    EarlyDrop,
    /// A closed TCP connection reopened by a new SYN on its tuple.
    Reopened,
    /// Removed by the caller.
    Removed,
}

/// An entry the table removed, reported to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    /// Its handle (no longer valid).
    pub id: EntryId,
    /// Its original tuple.
    pub original: Tuple,
    /// Its reply tuple (where a NAT's translation shows).
    pub reply: Tuple,
    /// Why it left.
    pub reason: RemoveReason,
}
