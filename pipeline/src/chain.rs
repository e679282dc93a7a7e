//! The worker's pipeline: a fixed chain of concrete stages run one after the
//! other over each batch (VPP-style: a stage finishes the whole batch before the
//! next one starts, so its code and tables stay warm).
//!
//! Today: parse -> guard (anti-spoofing on attached ports) -> L2 -> gateway (answers ARP and ping for each network's
//! gateway address). The route, conntrack/NAT, ACL and VXLAN stages
//! slot in as further fields, each run by one line in [`Chain::run`]; every
//! call is to a concrete type (no `dyn`, nothing allocated per packet or batch).

use crate::batch::Batch;
use crate::frame::{DomainId, FrameStore, PortId, Verdict};
use crate::gateway::{Gateway, GatewayStage};
use crate::guard::{PortBinding, SourceGuard};
use crate::l2::L2Switch;
use crate::parse::ParseStage;
use crate::router::{NeighbourEvent, RoutedNetwork, Router};
use crate::stage::{Stage, StageReport};
use crate::wire::ethertype;

/// Number of stages in the chain (the length of [`Chain::reports`]).
pub const STAGES: usize = 5;

/// The stages a worker runs, in order.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Validates frames and fills their metadata.
    pub parse: ParseStage,
    /// Anti-spoofing on ports bound to a station.
    pub guard: SourceGuard,
    /// Bridge domains: MAC learning, forwarding, flooding.
    pub l2: L2Switch,
    /// The networks' gateway addresses: ARP and ICMP echo.
    pub gateway: GatewayStage,
    /// IPv4 between networks: isolation, TTL, neighbours, new L2 header.
    pub router: Router,
}

impl Chain {
    /// The chain around an already configured L2 switch.
    pub fn new(l2: L2Switch) -> Self {
        Chain {
            parse: ParseStage::new(),
            guard: SourceGuard::new(),
            l2,
            gateway: GatewayStage::new(),
            router: Router::default(),
        }
    }

    /// Binds `port` to the station the switch assigned it (or unbinds it):
    /// frames from it with another source are dropped. Control path.
    pub fn bind_port(&mut self, port: PortId, binding: Option<PortBinding>) {
        // The station's address is a static neighbour of the router: routed
        // frames reach it without ARP. Unbinding forgets it.
        if let Some(ip) = self.guard.binding(port).and_then(|b| b.ip) {
            self.router.set_static_neighbour(ip, None);
            // Its flows and translations go with it (a new container on
            // the address, or on its published ports, starts afresh).
            if binding.is_none_or(|b| b.ip != Some(ip)) {
                if let Some(nat) = self.router.nat_mut() {
                    nat.forget_address(ip);
                }
            }
        }
        if let Some(PortBinding { mac, ip: Some(ip) }) = binding {
            self.router.set_static_neighbour(ip, Some(mac));
        }
        self.guard.bind(port, binding);
    }

    /// Gives `domain` its routed network (or none): its gateway answers and
    /// the router routes to and from it. Control path.
    pub fn set_network(&mut self, domain: DomainId, network: Option<RoutedNetwork>) {
        self.set_gateway(domain, network.map(|n| n.gateway));
        match network {
            Some(network) => self.router.set_network(network),
            None => self.router.remove_network(domain),
        }
    }

    /// Gives `domain` a gateway (or none): the L2 stage hands frames to its MAC
    /// to the gateway stage, which answers for its address. Control path.
    pub fn set_gateway(&mut self, domain: DomainId, gateway: Option<Gateway>) {
        self.l2.set_domain_gateway(domain, gateway.map(|g| g.mac));
        self.gateway.set_gateway(domain, gateway);
    }

    /// Applies a neighbour another worker's router learned; the frames that
    /// waited for it are originated into `batch` (see
    /// [`Router::apply_neighbour_event`]). Returns whether it is now known.
    pub fn apply_neighbour_event<F: FrameStore + ?Sized>(
        &mut self,
        batch: &mut Batch<'_, F>,
        event: &NeighbourEvent,
    ) -> bool {
        self.router.apply_neighbour_event(&self.l2, batch, event)
    }

    /// Runs every stage over `batch`; a stage is skipped once no frame is left
    /// for it (stages after L2 will take `ToGateway`/`Routed` frames, not only
    /// pending ones).
    pub fn run<F: FrameStore + ?Sized>(&mut self, batch: &mut Batch<'_, F>) {
        Stage::process(&mut self.parse, batch);
        if self.guard.guards_any() {
            Stage::process(&mut self.guard, batch);
        }
        if batch.any_pending() {
            Stage::process(&mut self.l2, batch);
        }
        if self.gateway.has_gateways()
            && batch.metas().iter().any(|m| {
                m.verdict == Verdict::ToGateway
                    || (m.verdict == Verdict::Flood && m.ethertype == ethertype::ARP)
            })
        {
            let routing = self.router.routes_any();
            if routing {
                self.router.learn_arp(&self.l2, batch);
            }
            Stage::process(&mut self.gateway, batch);
            if routing {
                self.router.route(&self.l2, batch);
            }
        }
    }

    /// Every stage's name, in chain order (what [`reports`](Self::reports)
    /// names them).
    pub const NAMES: [&'static str; STAGES] = [
        ParseStage::NAME,
        SourceGuard::NAME,
        L2Switch::NAME,
        GatewayStage::NAME,
        Router::NAME,
    ];

    /// Every stage's counters, in chain order.
    pub fn reports(&self) -> [StageReport; STAGES] {
        [
            StageReport::of(&self.parse),
            StageReport::of(&self.guard),
            StageReport::of(&self.l2),
            StageReport::of(&self.gateway),
            StageReport {
                name: Router::NAME,
                counters: *self.router.counters(),
            },
        ]
    }
}
