//! Switchyard's packet logic, kept free of sockets, threads and syscalls so every
//! stage can be tested and benchmarked in memory.
//!
//! Frames flow through stages as whole batches (VPP-style vectors): the driver
//! fills a [`frame::FrameStore`] plus one [`frame::PacketMeta`] per frame, each
//! [`stage::Stage`] of the worker's [`chain::Chain`] walks the [`batch::Batch`]
//! and refines the metas' [`frame::Verdict`] (rewriting, resizing or
//! originating frames where it must), and the worker turns the verdicts into
//! per-port transmit batches.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;
pub mod chain;
pub mod checksum;
pub mod conntrack;
pub mod counters;
pub mod drop_reason;
pub mod flow;
pub mod frame;
pub mod gateway;
pub mod guard;
pub mod icmp_error;
mod keyed_hash;
pub mod l2;
pub mod mac;
pub mod mac_table;
pub mod nat;
pub mod neighbour;
pub mod parking;
pub mod parse;
pub mod route;
pub mod router;
pub mod stage;
pub mod wire;

pub use batch::Batch;
pub use chain::Chain;
pub use counters::PortCounters;
pub use drop_reason::{DropCounters, DropReason};
pub use frame::{
    DomainId, FrameError, FrameStore, PacketMeta, PortId, Timestamp, Verdict, MAX_BATCH, MAX_BURST,
    MIN_HEADROOM, NO_PORT,
};
pub use gateway::{Gateway, GatewayStage, GatewayStats};
pub use guard::{PortBinding, SourceGuard};
pub use l2::{L2Config, L2Stats, L2Switch, LearnEvent};
pub use mac::{MacAddr, MacParseError};
pub use mac_table::{FdbEntry, LearnOutcome, MacTable};
pub use parse::{parse_stage, ParseStage};
pub use router::NeighbourEvent;
pub use stage::{Stage, StageCounters, StageReport};
pub use wire::{parse_frame, ParsedFrame};
