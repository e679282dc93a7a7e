//! Which worker owns a translated flow, decided from any one of its packets
//! on whichever worker receives it (VPP's nat44-ed scheme: each worker owns
//! its flows and its share of the masquerade ports).
//!
//! Every worker has its own NAT engine and conntrack table, read and written
//! without locks. Both directions of a flow must meet the one table that
//! holds it, but a flow's reply often arrives on another worker than its
//! first packet (the uplink's queues are hashed by the NIC, not symmetrically;
//! a container's port has one queue on one worker). So before routing, a
//! worker computes the packet's *owner* from the packet alone and hands the
//! frame, untouched, to that worker through the fabric when it is another one
//! (the owner runs the chain over it as if it had received it).
//!
//! The owner of a packet with tuple `t` (for an ICMP error: of the reply to
//! the packet it quotes, which travels the way the error does), in order:
//! 1. **To a published port** (`t.dst` a node address, `t.dst_port`
//!    published): a symmetric keyed hash of the client's endpoint and the
//!    container's endpoint the rule maps to. The container's replies carry
//!    exactly these two endpoints, so rule 3 finds the same worker.
//! 2. **To the masquerade address, on a port of the masquerade range**:
//!    the worker whose share of the range holds `t.dst_port` (the echo
//!    identifier for ICMP). Each worker allocates translated ports only
//!    from its own share ([`FlowOwners::share`]), so the reply to a
//!    masqueraded flow (and to a hairpin's source translation) lands where
//!    the flow was made.
//! 3. **From a masquerading network, or from a published port's
//!    container** (`t.src`, `t.src_port` the target of a rule): the
//!    symmetric hash of `t`'s two endpoints. These are the packets that
//!    make masqueraded flows (whose owner then allocates a port of its
//!    share, so rule 2 finds it for the replies) and the replies of
//!    published flows (rule 1's hash).
//! 4. **Anything else**: the receiving worker. Nothing else is ever
//!    translated (conntrack tracks only translated flows), so it needs no
//!    owner: traffic between networks, untranslated to the outside,
//!    fragments stay where they arrived.
//!
//! Why it is right: rules 1 and 3 give the same worker for the two
//! directions of a published flow, rules 3 and 2 for a masqueraded one,
//! whatever queue and worker each packet arrives on (a container's veth has
//! a queue per worker, and the kernel may move a socket's flow between
//! queues, e.g. when TCP rehashes after a timeout). A hairpin flow is found
//! by rule 1 from the client, and its server's replies, addressed to the
//! masquerade address on a port the owner allocated, by rule 2. No
//! translated port is a published port (the engine skips them), so rules 1
//! and 2 never disagree. Only config (the published ports, the range, the
//! worker count, the networks' masquerade setting) is consulted, the same on
//! every worker; a frame handed over is never handed on (the owner
//! processes what it is given), so a moment where two workers hold
//! different published ports costs at most a flow made on the wrong
//! worker, never a loop.
//!
//! Cost: with one worker, nothing. With several, one keyed hash for packets
//! to or from published ports and masquerading networks, a range check for
//! the rest; a flow's packets are handed over when they arrive on another
//! worker than its owner (as VPP's nat44 hands frames over between
//! workers).

use super::engine::Masquerade;
use super::published::PublishedPorts;
use crate::conntrack::{Packet, Tuple};
use crate::frame::PacketMeta;
use crate::keyed_hash::KeyHasher;
use crate::wire::ip_proto;
use std::net::Ipv4Addr;

/// Where a packet is in hand: what the owner rules need to know of its
/// arrival besides the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The worker that has it.
    pub worker: u16,
    /// It came from a network whose flows out are masqueraded.
    pub from_masquerading: bool,
}

/// How flows are spread over the workers (see the module docs): the same
/// value, keys included, on every worker.
#[derive(Clone, Copy, Debug)]
pub struct FlowOwners {
    workers: u16,
    keys: KeyHasher,
}

impl FlowOwners {
    /// Ownership over `workers` workers (at least one), with fresh secret
    /// hash keys (so no sender can choose flows that all land on one
    /// worker). Make it once and give every worker a copy.
    pub fn new(workers: u16) -> Self {
        FlowOwners {
            workers: workers.max(1),
            keys: KeyHasher::random(),
        }
    }

    /// Like [`new`](Self::new), with keys from `seed` (reproducible tests).
    pub fn with_seed(workers: u16, seed: u64) -> Self {
        FlowOwners {
            workers: workers.max(1),
            keys: KeyHasher::from_seed(seed),
        }
    }

    /// One worker owns everything.
    pub fn single() -> Self {
        Self::with_seed(1, 0)
    }

    /// Number of workers flows are spread over.
    pub fn workers(&self) -> u16 {
        self.workers
    }

    /// Worker `worker`'s share of the masquerade range: a contiguous slice,
    /// the shares together the whole range. Empty (`first_port` past
    /// `last_port`) when the range has fewer ports than there are workers
    /// and this one got none: its new masqueraded flows are then refused
    /// as exhausted.
    pub fn share(&self, m: Masquerade, worker: u16) -> Masquerade {
        let span = span(m);
        let w = u64::from(worker.min(self.workers - 1));
        let n = u64::from(self.workers);
        let start = |w: u64| u32::from(m.first_port) + (span * w / n) as u32;
        let first = start(w);
        let end = start(w + 1); // one past the last
        Masquerade {
            address: m.address,
            // An empty share is `first = last + 1`, which fits: `end` is at
            // most 65,536 and then `first` is below it.
            first_port: first.min(65_535) as u16,
            last_port: end.saturating_sub(1).max(first.saturating_sub(1)) as u16,
        }
    }

    /// The worker that owns the flow of the packet in `frame` (see the
    /// module docs), arrived as `arrival` says.
    pub fn owner(
        &self,
        frame: &[u8],
        meta: &PacketMeta,
        arrival: Arrival,
        masquerade: Option<Masquerade>,
        published: &PublishedPorts,
        node_addresses: &[Ipv4Addr],
    ) -> u16 {
        if self.workers == 1 {
            return 0;
        }
        let tuple = match Packet::classify(frame, meta) {
            Ok(Some(Packet::IcmpError { quoted, .. })) => quoted.invert(),
            Ok(Some(packet)) => *packet.tuple(),
            // Fragments, other protocols, malformed: untracked, stays here.
            Ok(None) | Err(_) => return arrival.worker,
        };
        self.owner_of(&tuple, arrival, masquerade, published, node_addresses)
    }

    /// [`owner`](Self::owner) from the packet's tuple.
    pub fn owner_of(
        &self,
        t: &Tuple,
        arrival: Arrival,
        masquerade: Option<Masquerade>,
        published: &PublishedPorts,
        node_addresses: &[Ipv4Addr],
    ) -> u16 {
        if self.workers == 1 {
            return 0;
        }
        if node_addresses.contains(&t.dst) {
            if let Some(target) = published.lookup(t.protocol, t.dst, t.dst_port) {
                return self.pair_owner(t.protocol, (t.src, t.src_port), target);
            }
        }
        if let Some(m) = masquerade.filter(|m| m.address == t.dst) {
            let port = if t.protocol == ip_proto::ICMP {
                t.echo_id()
            } else {
                t.dst_port
            };
            if (m.first_port..=m.last_port).contains(&port) {
                return self.port_owner(m, port);
            }
        }
        if arrival.from_masquerading
            || (t.protocol != ip_proto::ICMP && published.is_target(t.protocol, t.src, t.src_port))
        {
            return self.pair_owner(t.protocol, (t.src, t.src_port), (t.dst, t.dst_port));
        }
        arrival.worker.min(self.workers - 1)
    }

    /// The worker whose share of `m` holds `port` (in `m`'s range).
    fn port_owner(&self, m: Masquerade, port: u16) -> u16 {
        let offset = u64::from(port - m.first_port);
        let n = u64::from(self.workers);
        // The largest w with start(w) <= port: w < (offset + 1) * n / span.
        let w = ((offset + 1) * n - 1) / span(m);
        w.min(n - 1) as u16
    }

    /// The symmetric keyed hash of two endpoints, as a worker.
    fn pair_owner(&self, protocol: u8, a: (Ipv4Addr, u16), b: (Ipv4Addr, u16)) -> u16 {
        let word = |(ip, port): (Ipv4Addr, u16)| (u64::from(u32::from(ip)) << 16) | u64::from(port);
        let (a, b) = (word(a), word(b));
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let h = self
            .keys
            .hash(self.keys.hash(lo) ^ hi ^ (u64::from(protocol) << 56));
        (((h >> 32) * u64::from(self.workers)) >> 32) as u16
    }
}

/// Ports in `m`'s range (at least one: the config refuses reversed ranges).
fn span(m: Masquerade) -> u64 {
    (u64::from(m.last_port) + 1)
        .saturating_sub(u64::from(m.first_port))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::published::{Protocol, PublishRule};

    const NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const WEB: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

    fn range(first: u16, last: u16) -> Masquerade {
        Masquerade {
            address: NODE,
            first_port: first,
            last_port: last,
        }
    }

    #[test]
    fn shares_cover_the_range_once_in_order() {
        for workers in 1..=9u16 {
            for (first, last) in [
                (1024, 65_535),
                (40_000, 40_000),
                (40_000, 40_006),
                (1, 65_535),
            ] {
                let owners = FlowOwners::with_seed(workers, 1);
                let m = range(first, last);
                let mut next = u32::from(first);
                for w in 0..workers {
                    let s = owners.share(m, w);
                    assert_eq!(
                        u32::from(s.first_port),
                        next.min(65_535),
                        "{workers} {first}"
                    );
                    if s.first_port <= s.last_port {
                        for port in [s.first_port, s.last_port] {
                            assert_eq!(owners.port_owner(m, port), w, "{workers} {port}");
                        }
                        next = u32::from(s.last_port) + 1;
                    }
                }
                assert_eq!(next, u32::from(last) + 1, "{workers}: whole range");
            }
        }
    }

    #[test]
    fn both_directions_of_every_flow_have_one_owner() {
        let mut published = PublishedPorts::new();
        published
            .add(PublishRule {
                protocol: Protocol::Tcp,
                host_first: 8080,
                host_last: 8080,
                host_address: None,
                address: WEB,
                port: 80,
            })
            .unwrap();
        let m = range(32_768, 60_999);
        let nodes = [NODE];
        for workers in [2u16, 3, 16] {
            let owners = FlowOwners::with_seed(workers, 7);
            let owner = |t: Tuple, worker, from_masquerading| {
                let arrival = Arrival {
                    worker,
                    from_masquerading,
                };
                owners.owner_of(&t, arrival, Some(m), &published, &nodes)
            };
            let mut seen = vec![false; usize::from(workers)];
            for sport in 1000..1200u16 {
                // Published: the client's SYN on any worker, the server's
                // reply on any worker.
                let to_web = Tuple::tcp(CLIENT, sport, NODE, 8080);
                let from_web = Tuple::tcp(WEB, 80, CLIENT, sport);
                let o = owner(to_web, sport % workers, false);
                seen[usize::from(o)] = true;
                assert_eq!(o, owner(to_web, (sport + 1) % workers, false));
                assert_eq!(o, owner(from_web, (sport + 2) % workers, false));
                assert_eq!(o, owner(from_web, (sport + 3) % workers, true));
                // Masqueraded: its owner w wherever its packets arrive, and
                // with a port of w's share the reply finds w too.
                let out = Tuple::udp(WEB, sport, CLIENT, 53);
                let w = owner(out, 0, true);
                assert_eq!(w, owner(out, workers - 1, true));
                let s = owners.share(m, w);
                let port = s.first_port + sport % (s.last_port - s.first_port + 1);
                assert_eq!(owner(Tuple::udp(CLIENT, 53, NODE, port), w + 1, false), w);
                let echo = Tuple::echo_reply(CLIENT, NODE, port);
                assert_eq!(owner(echo, 0, false), w);
                // Untracked traffic stays where it arrived.
                let between = Tuple::udp(CLIENT, sport, Ipv4Addr::new(10, 9, 0, 2), 53);
                assert_eq!(owner(between, 1, false), 1);
            }
            assert!(seen.iter().all(|&s| s), "{workers}: published flows spread");
        }
    }
}
