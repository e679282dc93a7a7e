//! TCP connection tracking for one entry: Linux's state machine
//! (`nf_conntrack_proto_tcp.c`: its transition table, its handling of
//! ignored and reopening segments) and its window tracking (`tcp_in_window`,
//! after Guido van Rooij's "Real Stateful TCP Packet Filtering in IP
//! Filter"), in the form of Linux 6.x with `nf_conntrack_tcp_loose = 0`
//! (only a SYN creates a connection; no mid-stream pickup) and
//! `nf_conntrack_tcp_be_liberal = 0` (out-of-window segments are INVALID).
//!
//! Per direction it keeps the highest sequence end seen (`end`), the
//! highest end the receiver's window allows (`maxend`), the largest window
//! (`maxwin`, scaled) and the highest ack (`maxack`). A segment is accepted
//! when
//! - I.   its sequence is at most the sender's `maxend` (else INVALID, "SEQ
//!   over the window of the receiver");
//! - III. its (s)ack is at most the receiver's `end` (else INVALID, "ACK of
//!   data never sent");
//! - II.  its end is at least the sender's `end` less the receiver's
//!   `maxwin`, and IV. its (s)ack at least the receiver's `end` less
//!   max(66000, `maxwin`): failing these (old retransmissions, very late
//!   acks) the segment is let through without changing anything, as Linux
//!   6.x ignores them rather than marking them INVALID.
//!
//! Simplifications, all conservative: NAT sequence adjustment is absent
//! (this switch's NAT never changes payload lengths); an RST answered for a
//! connection that never saw a reply is kept in CLOSE for its timeout rather
//! than deleted at once (it is evictable there and gone in 10 s); a SYN
//! reopening a closed connection makes the caller remove the old entry and
//! create a new one ([`TcpOutcome::Restart`], Linux's `NF_REPEAT`); the
//! retransmission count that shortens the timeout is kept, Linux's
//! separate `max_retrans` timeout is the unacknowledged one
//! ([`Timeouts::tcp_unacknowledged`](super::Timeouts::tcp_unacknowledged)),
//! and out-of-window FINs and RSTs do not shorten an assured connection's
//! timeout (Linux's `nf_tcp_handle_invalid`).

use super::key::Direction;
use super::tcp::{TcpFlags, TcpSegment};
use super::timeouts::TimeoutClass;
use super::verdict::Invalid;

/// A TCP connection's state, as Linux names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(u8)]
pub enum TcpState {
    /// Before the first segment (never seen in a table).
    #[default]
    None = 0,
    /// A SYN seen.
    SynSent = 1,
    /// The SYN-ACK seen.
    SynRecv = 2,
    /// The handshake's ACK seen: data flows.
    Established = 3,
    /// A FIN seen.
    FinWait = 4,
    /// The first FIN acknowledged.
    CloseWait = 5,
    /// FINs seen both ways.
    LastAck = 6,
    /// The last FIN acknowledged.
    TimeWait = 7,
    /// Reset.
    Close = 8,
    /// A SYN seen from each side (simultaneous open).
    SynSent2 = 9,
}

const NO: u8 = TcpState::None as u8;
const SS: u8 = TcpState::SynSent as u8;
const SR: u8 = TcpState::SynRecv as u8;
const ES: u8 = TcpState::Established as u8;
const FW: u8 = TcpState::FinWait as u8;
const CW: u8 = TcpState::CloseWait as u8;
const LA: u8 = TcpState::LastAck as u8;
const TW: u8 = TcpState::TimeWait as u8;
const CL: u8 = TcpState::Close as u8;
const S2: u8 = TcpState::SynSent2 as u8;
/// The segment is invalid in this state.
const IV: u8 = 10;
/// The segment may be valid for a connection the entry is out of sync with:
/// let it through, change nothing, remember it.
const IG: u8 = 11;

const STATES: [TcpState; 10] = [
    TcpState::None,
    TcpState::SynSent,
    TcpState::SynRecv,
    TcpState::Established,
    TcpState::FinWait,
    TcpState::CloseWait,
    TcpState::LastAck,
    TcpState::TimeWait,
    TcpState::Close,
    TcpState::SynSent2,
];

// Which of the table's rows a segment takes.
const SYN_SET: u8 = 0;
const SYNACK_SET: u8 = 1;
const FIN_SET: u8 = 2;
const ACK_SET: u8 = 3;
const RST_SET: u8 = 4;
const NONE_SET: u8 = 5;

/// Linux's `tcp_conntracks[direction][row][state]`.
#[rustfmt::skip]
const TRANSITIONS: [[[u8; 10]; 6]; 2] = [
    [
        //          NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* syn */    [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
        /* synack */ [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
        /* fin */    [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        /* ack */    [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
        /* rst */    [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* none */   [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
    [
        //          NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* syn */    [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
        /* synack */ [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
        /* fin */    [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        /* ack */    [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
        /* rst */    [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* none */   [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
];

// Per-direction flags (Linux's IP_CT_TCP_FLAG_*).
const WINDOW_SCALE: u8 = 0x01;
const SACK_PERM: u8 = 0x02;
const CLOSE_INIT: u8 = 0x04;
const DATA_UNACKNOWLEDGED: u8 = 0x10;
const MAXACK_SET: u8 = 0x20;
// In `last_flags` only.
const EXP_CHALLENGE_ACK: u8 = 0x40;
const SIMULTANEOUS_OPEN: u8 = 0x80;

/// Linux's `nf_conntrack_tcp_max_retrans`: identical ACKs in a row before
/// the connection gets the short timeout.
const MAX_RETRANS: u8 = 3;
/// Linux's `MAXACKWINCONST`: how far below the receiver's end an ack may be.
const MAX_ACK_WINDOW: u32 = 66_000;

/// True if sequence number `a` comes before `b` (RFC 1982 arithmetic).
#[inline]
pub(crate) const fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// True if sequence number `a` comes after `b`.
#[inline]
pub(crate) const fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// What one direction has sent, for window tracking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Peer {
    end: u32,
    maxend: u32,
    maxwin: u32,
    maxack: u32,
    scale: u8,
    flags: u8,
}

/// The entry's flags the state machine reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct EntryStatus {
    /// A packet went the reply way before this one.
    pub(crate) seen_reply: bool,
    /// The connection completed its handshake.
    pub(crate) assured: bool,
}

/// What a segment does to its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TcpOutcome {
    /// Valid: the entry now lives under `class`; `refresh` false keeps its
    /// old deadline (and class); `assure` marks it assured.
    Accept {
        class: TimeoutClass,
        refresh: bool,
        assure: bool,
    },
    /// Let through without changing the entry (Linux's ignored segments).
    Ignore,
    /// INVALID: dropped, the entry unchanged.
    Invalid(Invalid),
    /// A SYN reopening a closed connection: the caller removes the entry and
    /// tracks the segment again as a new connection.
    Restart,
}

/// The TCP part of an entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpConn {
    state: u8,
    seen: [Peer; 2],
    last_index: u8,
    last_dir: u8,
    retrans: u8,
    last_wscale: u8,
    last_flags: u8,
    last_win: u16,
    last_seq: u32,
    last_ack: u32,
    last_end: u32,
}

fn row(flags: TcpFlags) -> u8 {
    if flags.has(TcpFlags::RST) {
        RST_SET
    } else if flags.has(TcpFlags::SYN) {
        if flags.has(TcpFlags::ACK) {
            SYNACK_SET
        } else {
            SYN_SET
        }
    } else if flags.has(TcpFlags::FIN) {
        FIN_SET
    } else if flags.has(TcpFlags::ACK) {
        ACK_SET
    } else {
        NONE_SET
    }
}

/// The timeout class of a state.
fn state_class(state: u8) -> TimeoutClass {
    match state {
        SR => TimeoutClass::TcpSynRecv,
        ES => TimeoutClass::TcpEstablished,
        FW => TimeoutClass::TcpFinWait,
        CW => TimeoutClass::TcpCloseWait,
        LA => TimeoutClass::TcpLastAck,
        TW => TimeoutClass::TcpTimeWait,
        CL => TimeoutClass::TcpClose,
        NO | SS | S2 => TimeoutClass::TcpSynSent,
        _ => TimeoutClass::TcpSynSent,
    }
}

/// Linux's `tcp_options` on a SYN: a direction's window scale and
/// SACK-permitted, reset first when the segment has any options at all.
fn read_syn_options(peer: &mut Peer, seg: &TcpSegment) {
    if !seg.has_options {
        return;
    }
    peer.scale = 0;
    peer.flags = 0;
    if seg.sack_permitted {
        peer.flags |= SACK_PERM;
    }
    if let Some(scale) = seg.wscale {
        peer.scale = scale;
        peer.flags |= WINDOW_SCALE;
    }
}

/// Linux's `tcp_init_sender`: a direction's window from its SYN (or
/// SYN-ACK); scaling holds only if both sides offered it (RFC 7323).
fn init_sender(sender: &mut Peer, receiver: &mut Peer, seg: &TcpSegment, end: u32, dir: usize) {
    sender.end = end;
    sender.maxend = end;
    sender.maxwin = u32::from(seg.window).max(1);
    read_syn_options(sender, seg);
    if dir == 1 && !(sender.flags & WINDOW_SCALE != 0 && receiver.flags & WINDOW_SCALE != 0) {
        sender.scale = 0;
        receiver.scale = 0;
    }
}

fn peers(seen: &mut [Peer; 2], dir: usize) -> (&mut Peer, &mut Peer) {
    let [original, reply] = seen;
    if dir == 0 {
        (original, reply)
    } else {
        (reply, original)
    }
}

/// What window tracking made of a segment.
enum Window {
    Accept,
    Ignore,
    Invalid(Invalid),
}

impl TcpConn {
    /// A connection from its first segment, which must be a SYN with valid
    /// flags (no mid-stream pickup). The segment is then given to
    /// [`packet`](Self::packet) as the original direction's first.
    pub(crate) fn new(seg: &TcpSegment) -> Result<TcpConn, Invalid> {
        if !seg.flags.valid() {
            return Err(Invalid::TcpFlags);
        }
        if row(seg.flags) != SYN_SET {
            return Err(Invalid::TcpNotSyn);
        }
        let mut conn = TcpConn {
            last_index: NONE_SET,
            ..TcpConn::default()
        };
        let sender = &mut conn.seen[0];
        sender.end = seg.end();
        sender.maxend = sender.end;
        sender.maxwin = u32::from(seg.window).max(1);
        read_syn_options(sender, seg);
        Ok(conn)
    }

    /// The connection's state.
    pub(crate) fn state(&self) -> TcpState {
        STATES
            .get(usize::from(self.state))
            .copied()
            .unwrap_or_default()
    }

    /// Tracks one segment going `dir` (Linux's `nf_conntrack_tcp_packet`).
    /// `timeouts` (nanoseconds by class) decide between a state's own
    /// timeout and the short one for stalled connections.
    pub(crate) fn packet(
        &mut self,
        dir: Direction,
        seg: &TcpSegment,
        status: EntryStatus,
        timeouts: &[u64; TimeoutClass::COUNT],
    ) -> TcpOutcome {
        if !seg.flags.valid() {
            return TcpOutcome::Invalid(Invalid::TcpFlags);
        }
        let d = dir.index();
        let index = row(seg.flags);
        let mut old = self.state;
        let mut new = TRANSITIONS[d][usize::from(index)][usize::from(old.min(S2))];
        let mut check_window = true;
        match new {
            SS if old == TW || old == CL => {
                // A SYN on a closed connection: a new one, if the old one
                // really closed (a FIN was seen) or this side reset it.
                let flags = self.seen[0].flags | self.seen[1].flags;
                if flags & CLOSE_INIT != 0
                    || (usize::from(self.last_dir) == d && self.last_index == RST_SET)
                {
                    return TcpOutcome::Restart;
                }
                return self.ignore(d, index, old, seg);
            }
            IG => {
                if index == SYNACK_SET
                    && self.last_index == SYN_SET
                    && usize::from(self.last_dir) != d
                    && seg.ack == self.last_end
                {
                    // This SYN-ACK answers a SYN we ignored: both ends are in
                    // sync on a new connection, the entry was not. Resync
                    // from what the ignored SYN said.
                    let last = usize::from(self.last_dir) & 1;
                    self.last_flags &= !EXP_CHALLENGE_ACK;
                    let (last_end, last_win, last_wscale, last_flags) = (
                        self.last_end,
                        self.last_win,
                        self.last_wscale,
                        self.last_flags,
                    );
                    let syn_side = &mut self.seen[last];
                    syn_side.end = last_end;
                    syn_side.maxend = last_end;
                    syn_side.maxwin = u32::from(last_win).max(1);
                    syn_side.scale = last_wscale;
                    syn_side.flags = last_flags;
                    self.seen[d] = Peer::default();
                    old = SS;
                    new = SR;
                } else {
                    return self.ignore(d, index, old, seg);
                }
            }
            IV => return TcpOutcome::Invalid(Invalid::TcpState),
            TW if old == LA
                && index == ACK_SET
                && usize::from(self.last_dir) != d
                && self.last_index == SYN_SET
                && self.last_flags & EXP_CHALLENGE_ACK != 0 =>
            {
                // RFC 5961's challenge ACK to the SYN we let through: it does
                // not acknowledge the last FIN.
                self.last_flags &= !EXP_CHALLENGE_ACK;
                return TcpOutcome::Ignore;
            }
            S2 => self.last_flags |= SIMULTANEOUS_OPEN,
            SR if d == 1 && index == ACK_SET && self.last_flags & SIMULTANEOUS_OPEN != 0 => {
                new = ES;
            }
            CL if index == RST_SET => match self.check_rst(d, old, seg, status, &mut new) {
                Ok(check) => check_window = check,
                Err(invalid) => return invalid,
            },
            _ => {}
        }
        if check_window {
            match self.in_window(d, index, seg) {
                Window::Accept => {}
                Window::Ignore => return TcpOutcome::Ignore,
                Window::Invalid(reason) => return TcpOutcome::Invalid(reason),
            }
        }
        self.last_index = index;
        self.last_dir = d as u8;
        self.state = new;
        if old != new && new == FW {
            self.seen[d].flags |= CLOSE_INIT;
        }

        let timeout = |class: TimeoutClass| timeouts[class.index()];
        let short = timeout(TimeoutClass::TcpUnacknowledged);
        let mut class = state_class(new);
        let unacknowledged = (self.seen[0].flags | self.seen[1].flags) & DATA_UNACKNOWLEDGED != 0;
        if self.retrans >= MAX_RETRANS && timeout(class) > short {
            class = TimeoutClass::TcpUnacknowledged;
        } else if index == RST_SET {
            class = TimeoutClass::TcpClose;
        } else if (unacknowledged || self.last_win == 0) && timeout(class) > short {
            class = TimeoutClass::TcpUnacknowledged;
        }
        let mut refresh = true;
        let mut assure = false;
        if !status.seen_reply {
            if index == SYN_SET && old == SS {
                // A retransmitted SYN does not extend the entry's life, or a
                // client (or NAT) reusing the port could keep it forever.
                refresh = false;
            } else if new == ES && timeout(class) > short {
                class = TimeoutClass::TcpUnacknowledged;
            }
        } else if !status.assured && (old == SR || old == ES) && new == ES {
            assure = true;
        }
        TcpOutcome::Accept {
            class,
            refresh,
            assure,
        }
    }

    /// Linux's ignored segments: remembered, in case the other side's answer
    /// shows the entry is out of sync (see the SYN-ACK resync above).
    fn ignore(&mut self, d: usize, index: u8, old: u8, seg: &TcpSegment) -> TcpOutcome {
        self.last_index = index;
        self.last_dir = d as u8;
        self.last_seq = seg.seq;
        self.last_end = seg.end();
        self.last_win = seg.window;
        if index == SYN_SET && d == 0 {
            self.last_flags = 0;
            self.last_wscale = 0;
            if let Some(scale) = seg.wscale {
                self.last_flags |= WINDOW_SCALE;
                self.last_wscale = scale;
            }
            if seg.sack_permitted {
                self.last_flags |= SACK_PERM;
            }
            if old == LA {
                self.last_flags |= EXP_CHALLENGE_ACK;
            }
        }
        if old == SS && index == ACK_SET && d == 1 {
            self.last_ack = seg.ack;
        }
        TcpOutcome::Ignore
    }

    /// Linux's checks of an RST (the CLOSE transition): `Err` is INVALID,
    /// `Ok(false)` accepts it without the window check, `Ok(true)` goes on
    /// to the window check. May keep the old state (`new`): an RST in an
    /// established connection whose sequence is not exactly the expected one
    /// leaves room for the challenge ACK of RFC 5961.
    fn check_rst(
        &self,
        d: usize,
        old: u8,
        seg: &TcpSegment,
        status: EntryStatus,
        new: &mut u8,
    ) -> Result<bool, TcpOutcome> {
        if matches!(old, FW | CW | LA | TW | CL) {
            // Closing already: the tuple may have been reused; no checks.
            return Ok(false);
        }
        let other = self.seen[1 - d];
        if other.flags & MAXACK_SET != 0 && self.last_index != SYN_SET {
            let established = old == ES && status.assured;
            let seq = seg.seq;
            if seq == 0 && !established {
                return Ok(true);
            }
            if before(seq, other.maxack) {
                return Err(TcpOutcome::Invalid(Invalid::TcpRst));
            }
            if !established || seq == other.maxack {
                return Ok(true);
            }
            if self.last_index == ACK_SET && usize::from(self.last_dir) == d && seq == self.last_end
            {
                // The RST ends a train of data from the same side.
                return Ok(true);
            }
            *new = old;
        }
        if ((status.seen_reply && self.last_index == SYN_SET)
            || (!status.assured && self.last_index == ACK_SET))
            && seg.ack == self.last_end
        {
            // An RST answering a SYN or ACK we let through unchecked.
            return Ok(false);
        }
        if old == SS && self.last_index == ACK_SET && self.last_dir == 1 && seg.seq == self.last_ack
        {
            // An RST answering a challenge ACK we let through.
            return Ok(false);
        }
        Ok(true)
    }

    /// Linux's `tcp_in_window` (see the module docs).
    fn in_window(&mut self, d: usize, index: u8, seg: &TcpSegment) -> Window {
        let state = self.state;
        let (sender, receiver) = peers(&mut self.seen, d);
        let syn = seg.flags.has(TcpFlags::SYN);
        let has_ack = seg.flags.has(TcpFlags::ACK);
        let rst = seg.flags.has(TcpFlags::RST);
        let mut seq = seg.seq;
        let mut ack = seg.ack;
        let mut sack = ack;
        if receiver.flags & SACK_PERM != 0 {
            if let Some(edge) = seg.sack {
                if after(edge, sack) {
                    sack = edge;
                }
            }
        }
        let win_raw = seg.window;
        let mut win = u32::from(win_raw);
        let mut end = seg.end();

        if sender.maxwin == 0 {
            if syn {
                // The SYN-ACK (or the other side's SYN): this direction's
                // first segment.
                init_sender(sender, receiver, seg, end, d);
                if !has_ack {
                    return Window::Accept;
                }
            } else {
                // The other side's first segment is not a SYN (an RST or ACK
                // answering the SYN): take what it says.
                sender.end = end;
                sender.maxwin = (win << sender.scale).max(1);
                sender.maxend = end.wrapping_add(sender.maxwin);
                if receiver.maxwin == 0 {
                    receiver.end = sack;
                    receiver.maxend = sack;
                } else if sack == receiver.end.wrapping_add(1) {
                    // Likely the answer to a keepalive.
                    receiver.end = receiver.end.wrapping_add(1);
                }
            }
        } else if syn && after(end, sender.end) && (state == SS || state == SR) {
            // A SYN (or SYN-ACK) with a new initial sequence: the sender
            // restarted; take its new window and options.
            init_sender(sender, receiver, seg, end, d);
            if d == 1 && !has_ack {
                return Window::Accept;
            }
        }

        if !has_ack || (rst && ack == 0) {
            // No ack (or the broken stacks' RST with ACK and ack 0): as if it
            // acknowledged everything.
            ack = receiver.end;
            sack = ack;
        }
        if rst && seq == 0 && state == SS {
            // An RST answering a SYN.
            seq = sender.end;
            end = sender.end;
        }

        let max_ack_window = sender.maxwin.max(MAX_ACK_WINDOW);
        let above_lower_ack = after(
            sack,
            receiver.end.wrapping_sub(max_ack_window).wrapping_sub(1),
        );
        if !before(seq, sender.maxend.wrapping_add(1)) {
            // I. beyond the receiver's window. A sender overshooting it by
            // less than a window is let through (its data may well be
            // acknowledged), once its end is noted.
            let overshot = end.wrapping_sub(sender.maxend).wrapping_add(1);
            let in_receive_window = receiver.maxwin != 0
                && after(
                    end,
                    sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1),
                );
            if in_receive_window
                && above_lower_ack
                && overshot <= receiver.maxwin
                && before(sack, receiver.end.wrapping_add(1))
            {
                sender.end = end;
                sender.flags |= DATA_UNACKNOWLEDGED;
                return Window::Ignore;
            }
            return Window::Invalid(Invalid::TcpSeqOutOfWindow);
        }
        if !before(sack, receiver.end.wrapping_add(1)) {
            // III. acknowledges data the receiver never sent.
            return Window::Invalid(Invalid::TcpAckOutOfWindow);
        }
        let in_receive_window = receiver.maxwin == 0
            || after(
                end,
                sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1),
            );
        if !in_receive_window || !above_lower_ack {
            // II. or IV.: a retransmission of data already acknowledged, or
            // a very late ack. Harmless: let it through, learn nothing.
            return Window::Ignore;
        }

        if !syn {
            win <<= sender.scale;
        }
        let swin = win.wrapping_add(sack.wrapping_sub(ack));
        if sender.maxwin < swin {
            sender.maxwin = swin;
        }
        if after(end, sender.end) {
            sender.end = end;
            sender.flags |= DATA_UNACKNOWLEDGED;
        }
        if has_ack {
            if sender.flags & MAXACK_SET == 0 {
                sender.maxack = ack;
                sender.flags |= MAXACK_SET;
            } else if after(ack, sender.maxack) {
                sender.maxack = ack;
            }
        }
        if receiver.maxwin != 0 && after(end, sender.maxend) {
            receiver.maxwin = receiver
                .maxwin
                .wrapping_add(end.wrapping_sub(sender.maxend));
        }
        if after(sack.wrapping_add(win), receiver.maxend.wrapping_sub(1)) {
            receiver.maxend = sack.wrapping_add(win);
            if win == 0 {
                receiver.maxend = receiver.maxend.wrapping_add(1);
            }
        }
        if ack == receiver.end {
            receiver.flags &= !DATA_UNACKNOWLEDGED;
        }

        if index == ACK_SET {
            // The same ACK again and again: a stalled connection.
            if usize::from(self.last_dir) == d
                && self.last_seq == seq
                && self.last_ack == ack
                && self.last_end == end
                && self.last_win == win_raw
            {
                self.retrans = self.retrans.saturating_add(1);
            } else {
                self.last_dir = d as u8;
                self.last_seq = seq;
                self.last_ack = ack;
                self.last_end = end;
                self.last_win = win_raw;
                self.retrans = 0;
            }
        }
        Window::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::timeouts::Timeouts;

    const ORIG: Direction = Direction::Original;
    const REPLY: Direction = Direction::Reply;
    const F_SYN: u8 = TcpFlags::SYN;
    const F_ACK: u8 = TcpFlags::ACK;
    const F_FIN: u8 = TcpFlags::FIN;
    const F_RST: u8 = TcpFlags::RST;

    fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> TcpSegment {
        TcpSegment::new(flags, seq, ack, 1000, len)
    }

    struct Conn {
        conn: TcpConn,
        status: EntryStatus,
        timeouts: [u64; TimeoutClass::COUNT],
    }

    impl Conn {
        fn open(syn: TcpSegment) -> Conn {
            let mut c = Conn {
                conn: TcpConn::new(&syn).unwrap(),
                status: EntryStatus::default(),
                timeouts: Timeouts::LINUX.nanos(),
            };
            assert!(matches!(c.send(ORIG, syn), TcpOutcome::Accept { .. }));
            c
        }

        fn send(&mut self, dir: Direction, seg: TcpSegment) -> TcpOutcome {
            let out = self.conn.packet(dir, &seg, self.status, &self.timeouts);
            if let TcpOutcome::Accept { assure, .. } = out {
                self.status.assured |= assure;
            }
            if dir == REPLY && matches!(out, TcpOutcome::Accept { .. } | TcpOutcome::Ignore) {
                self.status.seen_reply = true;
            }
            out
        }

        fn class(&mut self, dir: Direction, seg: TcpSegment) -> TimeoutClass {
            match self.send(dir, seg) {
                TcpOutcome::Accept { class, .. } => class,
                other => panic!("{seg:?} {dir:?}: {other:?} in {:?}", self.conn.state()),
            }
        }
    }

    /// Client ISN 100, server ISN 5000, handshake done.
    fn established() -> Conn {
        let mut c = Conn::open(seg(F_SYN, 100, 0, 0));
        assert_eq!(
            c.class(REPLY, seg(F_SYN | F_ACK, 5000, 101, 0)),
            TimeoutClass::TcpSynRecv
        );
        assert_eq!(
            c.class(ORIG, seg(F_ACK, 101, 5001, 0)),
            TimeoutClass::TcpEstablished
        );
        assert!(c.status.assured);
        c
    }

    #[test]
    fn handshake_data_and_close() {
        let mut c = established();
        assert_eq!(c.conn.state(), TcpState::Established);
        // Data in flight: the short timeout until it is acknowledged.
        assert_eq!(
            c.class(ORIG, seg(F_ACK, 101, 5001, 100)),
            TimeoutClass::TcpUnacknowledged
        );
        assert_eq!(
            c.class(REPLY, seg(F_ACK, 5001, 201, 0)),
            TimeoutClass::TcpEstablished
        );
        assert_eq!(
            c.class(ORIG, seg(F_FIN | F_ACK, 201, 5001, 0)),
            TimeoutClass::TcpFinWait
        );
        assert_eq!(
            c.class(REPLY, seg(F_ACK, 5001, 202, 0)),
            TimeoutClass::TcpCloseWait
        );
        assert_eq!(
            c.class(REPLY, seg(F_FIN | F_ACK, 5001, 202, 0)),
            TimeoutClass::TcpLastAck
        );
        assert_eq!(
            c.class(ORIG, seg(F_ACK, 202, 5002, 0)),
            TimeoutClass::TcpTimeWait
        );
        assert_eq!(c.conn.state(), TcpState::TimeWait);
        // A new SYN on the same tuple: a new connection.
        assert_eq!(c.send(ORIG, seg(F_SYN, 90_000, 0, 0)), TcpOutcome::Restart);
    }

    #[test]
    fn out_of_window_segments_are_invalid() {
        let mut c = established();
        // Far beyond what the server's window (1000) allows.
        assert_eq!(
            c.send(ORIG, seg(F_ACK, 101 + 50_000, 5001, 10)),
            TcpOutcome::Invalid(Invalid::TcpSeqOutOfWindow)
        );
        // Acknowledging server data never sent.
        assert_eq!(
            c.send(ORIG, seg(F_ACK, 101, 9000, 0)),
            TcpOutcome::Invalid(Invalid::TcpAckOutOfWindow)
        );
        // An old retransmission (before what the receiver can still want):
        // let through, nothing learnt.
        let before = c.conn;
        assert_eq!(
            c.send(ORIG, seg(F_ACK, 101u32.wrapping_sub(20_000), 5001, 10)),
            TcpOutcome::Ignore
        );
        assert_eq!(c.conn, before);
        // Still tracking: in-window data works.
        assert_eq!(
            c.class(ORIG, seg(F_ACK, 101, 5001, 10)),
            TimeoutClass::TcpUnacknowledged
        );
    }

    #[test]
    fn window_scaling_follows_both_syns() {
        let mut syn = seg(F_SYN, 100, 0, 0);
        syn.has_options = true;
        syn.wscale = Some(7);
        let mut c = Conn::open(syn);
        let mut synack = seg(F_SYN | F_ACK, 5000, 101, 0);
        synack.has_options = true;
        synack.wscale = Some(7);
        c.class(REPLY, synack);
        // The client advertises 1000 << 7 = 128,000 bytes.
        c.class(ORIG, seg(F_ACK, 101, 5001, 0));
        // The server may send 100,000 bytes ahead.
        assert_eq!(
            c.class(REPLY, seg(F_ACK, 5001 + 100_000, 101, 1000)),
            TimeoutClass::TcpUnacknowledged
        );

        // Without the server's option, no scaling: the same segment is out of
        // the 1000-byte window.
        let mut c = Conn::open(syn);
        c.class(REPLY, seg(F_SYN | F_ACK, 5000, 101, 0));
        c.class(ORIG, seg(F_ACK, 101, 5001, 0));
        assert_eq!(
            c.send(REPLY, seg(F_ACK, 5001 + 100_000, 101, 1000)),
            TcpOutcome::Invalid(Invalid::TcpSeqOutOfWindow)
        );
    }

    #[test]
    fn bad_flags_and_wrong_first_segments() {
        assert_eq!(TcpConn::new(&seg(F_ACK, 1, 1, 0)), Err(Invalid::TcpNotSyn));
        assert_eq!(
            TcpConn::new(&seg(F_SYN | F_ACK, 1, 1, 0)),
            Err(Invalid::TcpNotSyn)
        );
        assert_eq!(
            TcpConn::new(&seg(F_SYN | F_FIN, 1, 0, 0)),
            Err(Invalid::TcpFlags)
        );
        let mut c = Conn::open(seg(F_SYN, 100, 0, 0));
        // The client cannot answer its own SYN, nor close before an answer.
        assert_eq!(
            c.send(ORIG, seg(F_SYN | F_ACK, 100, 1, 0)),
            TcpOutcome::Invalid(Invalid::TcpState)
        );
        assert_eq!(
            c.send(ORIG, seg(F_FIN | F_ACK, 101, 1, 0)),
            TcpOutcome::Invalid(Invalid::TcpState)
        );
        assert_eq!(
            c.send(ORIG, seg(0, 101, 0, 0)),
            TcpOutcome::Invalid(Invalid::TcpFlags)
        );
        // A retransmitted SYN is fine but does not extend the entry's life.
        assert_eq!(
            c.send(ORIG, seg(F_SYN, 100, 0, 0)),
            TcpOutcome::Accept {
                class: TimeoutClass::TcpSynSent,
                refresh: false,
                assure: false
            }
        );
        assert_eq!(c.conn.state(), TcpState::SynSent);
    }

    #[test]
    fn rst_in_window_closes_and_out_of_window_is_invalid() {
        let mut c = established();
        c.class(REPLY, seg(F_ACK, 5001, 101, 100));
        c.class(ORIG, seg(F_ACK, 101, 5101, 0));
        // Before what the client acknowledged: a blind reset attempt.
        assert_eq!(
            c.send(REPLY, seg(F_RST, 4000, 0, 0)),
            TcpOutcome::Invalid(Invalid::TcpRst)
        );
        assert_eq!(c.conn.state(), TcpState::Established);
        // Exactly where the client expects it.
        assert_eq!(
            c.class(REPLY, seg(F_RST, 5101, 0, 0)),
            TimeoutClass::TcpClose
        );
        assert_eq!(c.conn.state(), TcpState::Close);
        // The client may reopen: its own RST was not the last, but the other
        // side's was; a SYN after an RST from the same side reopens.
        let mut c = established();
        c.class(ORIG, seg(F_RST, 101, 0, 0));
        assert_eq!(c.send(ORIG, seg(F_SYN, 7000, 0, 0)), TcpOutcome::Restart);
    }

    #[test]
    fn an_rst_answering_a_syn_closes() {
        let mut c = Conn::open(seg(F_SYN, 100, 0, 0));
        assert_eq!(
            c.class(REPLY, seg(F_RST | F_ACK, 0, 101, 0)),
            TimeoutClass::TcpClose
        );
        assert_eq!(c.conn.state(), TcpState::Close);
    }

    #[test]
    fn a_syn_out_of_sync_resyncs_on_the_answer() {
        // The client lost its connection and opens a new one with the same
        // ports while the entry still believes the old one established.
        let mut c = established();
        assert_eq!(c.send(ORIG, seg(F_SYN, 777_000, 0, 0)), TcpOutcome::Ignore);
        assert_eq!(c.conn.state(), TcpState::Established);
        // The server's SYN-ACK for it: the entry resyncs to the new one.
        assert_eq!(
            c.class(REPLY, seg(F_SYN | F_ACK, 40_000, 777_001, 0)),
            TimeoutClass::TcpSynRecv
        );
        assert_eq!(
            c.class(ORIG, seg(F_ACK, 777_001, 40_001, 0)),
            TimeoutClass::TcpEstablished
        );
        assert_eq!(
            c.class(ORIG, seg(F_ACK, 777_001, 40_001, 10)),
            TimeoutClass::TcpUnacknowledged
        );
    }

    #[test]
    fn simultaneous_open_establishes() {
        let mut c = Conn::open(seg(F_SYN, 100, 0, 0));
        c.class(REPLY, seg(F_SYN, 5000, 0, 0));
        assert_eq!(c.conn.state(), TcpState::SynSent2);
        c.class(ORIG, seg(F_SYN | F_ACK, 100, 5001, 0));
        assert_eq!(c.conn.state(), TcpState::SynRecv);
        c.class(REPLY, seg(F_ACK, 5001, 101, 0));
        assert_eq!(c.conn.state(), TcpState::Established);
    }

    #[test]
    fn repeated_acks_get_the_short_timeout() {
        let mut c = established();
        for i in 0..2 {
            assert_eq!(
                c.class(ORIG, seg(F_ACK, 101, 5001, 0)),
                TimeoutClass::TcpEstablished,
                "{i}"
            );
        }
        assert_eq!(
            c.class(ORIG, seg(F_ACK, 101, 5001, 0)),
            TimeoutClass::TcpUnacknowledged
        );
    }
}
