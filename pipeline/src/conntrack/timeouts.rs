//! How long an entry lives after its last packet, per protocol state, with
//! Linux's defaults (`net.netfilter.nf_conntrack_*_timeout*`), and the
//! timeout classes the table keeps one expiry list for.
//!
//! Every entry of a class has the same timeout, so the class's list, kept in
//! order of last packet, has the next entry to expire at its head: expiry
//! looks at one entry per class, never at the table.

/// Timeouts in seconds, each Linux's default unless configured otherwise.
/// A zero is raised to one second (an entry always outlives its own packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP after a SYN (Linux `tcp_timeout_syn_sent`: 120 s; also
    /// simultaneous open's SYN_SENT2).
    pub tcp_syn_sent: u32,
    /// TCP after the SYN-ACK (`tcp_timeout_syn_recv`: 60 s).
    pub tcp_syn_recv: u32,
    /// TCP established (`tcp_timeout_established`: 432,000 s, 5 days).
    pub tcp_established: u32,
    /// TCP after the first FIN (`tcp_timeout_fin_wait`: 120 s).
    pub tcp_fin_wait: u32,
    /// TCP after the first FIN was acknowledged (`tcp_timeout_close_wait`: 60 s).
    pub tcp_close_wait: u32,
    /// TCP after FINs both ways (`tcp_timeout_last_ack`: 30 s).
    pub tcp_last_ack: u32,
    /// TCP after the last ACK (`tcp_timeout_time_wait`: 120 s).
    pub tcp_time_wait: u32,
    /// TCP after an RST (`tcp_timeout_close`: 10 s).
    pub tcp_close: u32,
    /// TCP with data in flight not yet acknowledged, a zero window, or
    /// retransmissions without progress, when its state's own timeout is
    /// longer (`tcp_timeout_unacknowledged` and `tcp_timeout_max_retrans`,
    /// both 300 s): a peer that vanished mid-transfer is forgotten in minutes,
    /// not days.
    pub tcp_unacknowledged: u32,
    /// UDP before any reply (`udp_timeout`: 30 s).
    pub udp_unreplied: u32,
    /// UDP once replied (`udp_timeout_stream`: 120 s).
    pub udp_assured: u32,
    /// ICMP echo (`icmp_timeout`: 30 s).
    pub icmp: u32,
}

impl Timeouts {
    /// Linux's defaults.
    pub const LINUX: Timeouts = Timeouts {
        tcp_syn_sent: 120,
        tcp_syn_recv: 60,
        tcp_established: 432_000,
        tcp_fin_wait: 120,
        tcp_close_wait: 60,
        tcp_last_ack: 30,
        tcp_time_wait: 120,
        tcp_close: 10,
        tcp_unacknowledged: 300,
        udp_unreplied: 30,
        udp_assured: 120,
        icmp: 30,
    };

    /// The timeout of `class`, in seconds (at least 1).
    pub const fn secs(&self, class: TimeoutClass) -> u32 {
        let s = match class {
            TimeoutClass::TcpSynSent => self.tcp_syn_sent,
            TimeoutClass::TcpSynRecv => self.tcp_syn_recv,
            TimeoutClass::TcpEstablished => self.tcp_established,
            TimeoutClass::TcpFinWait => self.tcp_fin_wait,
            TimeoutClass::TcpCloseWait => self.tcp_close_wait,
            TimeoutClass::TcpLastAck => self.tcp_last_ack,
            TimeoutClass::TcpTimeWait => self.tcp_time_wait,
            TimeoutClass::TcpClose => self.tcp_close,
            TimeoutClass::TcpUnacknowledged => self.tcp_unacknowledged,
            TimeoutClass::UdpUnreplied => self.udp_unreplied,
            TimeoutClass::UdpAssured => self.udp_assured,
            TimeoutClass::Icmp => self.icmp,
        };
        if s == 0 {
            1
        } else {
            s
        }
    }

    /// Every class's timeout in nanoseconds, indexed by class.
    pub(crate) fn nanos(&self) -> [u64; TimeoutClass::COUNT] {
        TimeoutClass::ALL.map(|c| u64::from(self.secs(c)) * 1_000_000_000)
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::LINUX
    }
}

/// The expiry lists: one per distinct timeout an entry can be under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum TimeoutClass {
    /// TCP SYN_SENT and SYN_SENT2.
    TcpSynSent,
    /// TCP SYN_RECV.
    TcpSynRecv,
    /// TCP ESTABLISHED with nothing in flight.
    TcpEstablished,
    /// TCP FIN_WAIT.
    TcpFinWait,
    /// TCP CLOSE_WAIT.
    TcpCloseWait,
    /// TCP LAST_ACK.
    TcpLastAck,
    /// TCP TIME_WAIT.
    TcpTimeWait,
    /// TCP CLOSE, and any TCP entry whose last packet was an RST.
    TcpClose,
    /// TCP in a long-lived state with unacknowledged data, a zero window or
    /// stalled retransmissions.
    TcpUnacknowledged,
    /// UDP without a reply yet.
    UdpUnreplied,
    /// UDP replied.
    UdpAssured,
    /// ICMP echo.
    Icmp,
}

impl TimeoutClass {
    /// Number of classes.
    pub const COUNT: usize = 12;
    /// Every class, in index order.
    pub const ALL: [TimeoutClass; Self::COUNT] = [
        TimeoutClass::TcpSynSent,
        TimeoutClass::TcpSynRecv,
        TimeoutClass::TcpEstablished,
        TimeoutClass::TcpFinWait,
        TimeoutClass::TcpCloseWait,
        TimeoutClass::TcpLastAck,
        TimeoutClass::TcpTimeWait,
        TimeoutClass::TcpClose,
        TimeoutClass::TcpUnacknowledged,
        TimeoutClass::UdpUnreplied,
        TimeoutClass::UdpAssured,
        TimeoutClass::Icmp,
    ];

    /// Its list's index.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// True if an entry of this class may be evicted to make room for a new
    /// flow (Linux's early drop): flows that never completed their handshake
    /// or never got a reply (`!ASSURED`), ICMP, and TCP connections already
    /// closing (Linux's `tcp_can_early_drop`). Established TCP and replied UDP
    /// are never evicted for new flows.
    pub const fn evictable(self) -> bool {
        !matches!(
            self,
            TimeoutClass::TcpEstablished
                | TimeoutClass::TcpUnacknowledged
                | TimeoutClass::UdpAssured
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_in_index_order() {
        for (i, c) in TimeoutClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn zero_is_raised_to_a_second() {
        let t = Timeouts {
            icmp: 0,
            ..Timeouts::LINUX
        };
        assert_eq!(t.secs(TimeoutClass::Icmp), 1);
        assert_eq!(
            t.nanos()[TimeoutClass::TcpEstablished.index()],
            432_000 * 1_000_000_000
        );
    }
}
