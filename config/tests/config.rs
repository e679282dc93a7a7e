//! End-to-end tests of `switchyard-config`: the example parses to the
//! expected values, every invalid case yields the expected located issue,
//! and all issues of a file are reported together.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use switchyard_config::{
    load, parse_str, ConfigError, ConfigIssue, Ipv4Cidr, Location, NetworkConfig, NodeConfig,
    PortConfig, PortDriver, SwitchConfig, XdpMode,
};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node.toml")
}

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

fn parse_err(text: &str) -> ConfigError {
    match parse_str(text, "node.toml") {
        Ok(cfg) => panic!("expected an error, got {cfg:#?}\n--- input ---\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn example_parses_with_expected_values() {
    let cfg = load(&example_path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.origin, example_path().display().to_string());
    assert_eq!(
        cfg.switch,
        SwitchConfig {
            workers: vec![1, 2],
            ..SwitchConfig::default()
        }
    );
    let up = cfg.uplink.as_ref().expect("the example has an [uplink]");
    assert_eq!(up.interface, "eth1");
    assert_eq!(up.address, cidr("192.0.2.10/24"));
    assert_eq!(up.gateway, Some(Ipv4Addr::new(192, 0, 2, 1)));
    assert!(up.neighbours.is_empty());

    assert_eq!(cfg.networks.len(), 2);
    let web = cfg.network("web").unwrap();
    assert_eq!(web.subnet, Some(cidr("172.30.0.0/24")));
    assert_eq!(web.gateway, Some(Ipv4Addr::new(172, 30, 0, 1)));
    assert!(!web.masquerade && web.isolated && web.vni.is_none());
    let storage = cfg.network("storage").unwrap();
    assert_eq!(
        (
            storage.subnet,
            storage.gateway,
            storage.masquerade,
            storage.isolated,
            storage.vni
        ),
        (None, None, false, true, None),
        "a network with only a name is plain L2 with defaults"
    );

    let names: Vec<_> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web1", "web2", "nas"]);
    let web2 = cfg.port("web2").unwrap();
    assert_eq!(web2.driver, PortDriver::AfXdp);
    assert_eq!(web2.interface.as_deref(), Some("veth-web2"));
    assert_eq!(web2.network, "web");
    assert_eq!(web2.socket, None);
    assert_eq!(web2.xdp_mode, Some(XdpMode::Generic));
    assert_eq!(web2.effective_xdp_mode(&cfg.switch), XdpMode::Generic);
    assert_eq!(
        cfg.port("web1").unwrap().effective_xdp_mode(&cfg.switch),
        XdpMode::Auto
    );
    assert_eq!(cfg.port("nas").unwrap().network, "storage");
    // Locations point into the file: the table header and the interface value.
    let text = std::fs::read_to_string(example_path()).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let web1 = cfg.port("web1").unwrap();
    let interface_line = line_of("interface = \"veth-web1\"");
    assert_eq!(web1.location, Location::new(interface_line - 3, 1));
    assert_eq!(
        web1.interface_location,
        Some(Location::new(interface_line, 13))
    );
    assert_eq!(
        web.location,
        Location::new(line_of("name = \"web\"") - 1, 1)
    );
    assert_eq!(cfg.validate(), Ok(()));
}

/// `[uplink]`, `masquerade`, `isolated` and `vni` are parsed and validated for
/// the issues that will use them (the daemon refuses them until then).
#[test]
fn later_features_still_parse_with_their_values() {
    let text = r#"[uplink]
interface = "eth1"
address = "192.0.2.10/24"
gateway = "192.0.2.1"

[[network]]
name = "web"
subnet = "172.30.0.0/24"
gateway = "172.30.0.1"
masquerade = true
isolated = true
vni = 4242
"#;
    let cfg = parse_str(text, "later.toml").unwrap_or_else(|e| panic!("{e}"));
    let up = cfg.uplink.as_ref().unwrap();
    assert_eq!(up.interface, "eth1");
    assert_eq!(up.address, cidr("192.0.2.10/24"));
    assert_eq!(up.gateway, Some(Ipv4Addr::new(192, 0, 2, 1)));
    let web = cfg.network("web").unwrap();
    assert!(web.masquerade && web.isolated);
    assert_eq!(web.vni, Some(4242));
    assert_eq!(cfg.location_of("uplink"), Some(Location::new(1, 1)));
    assert_eq!(
        cfg.location_of("network[0].masquerade"),
        Some(Location::new(10, 14))
    );
}

#[test]
fn defaults_for_empty_file() {
    let cfg = parse_str("", "empty.toml").unwrap();
    assert_eq!(cfg.switch, SwitchConfig::default());
    let s = &cfg.switch;
    assert_eq!(s.workers, [0]);
    assert_eq!(s.control_socket, Path::new("/run/switchyard/ctl.sock"));
    assert_eq!(s.mac_table_size, 65_536);
    assert_eq!(s.mac_aging_secs, 300);
    assert_eq!(s.xdp_mode, XdpMode::Auto);
    assert_eq!(s.stats_interval_secs, 10);
    assert_eq!(s.burst_size, 64);
    assert_eq!(s.ring_size, 2048);
    assert_eq!(s.umem_frames, 16_384);
    assert!(cfg.uplink.is_none() && cfg.networks.is_empty() && cfg.ports.is_empty());
}

#[test]
fn vhost_user_port_and_inline_tables() {
    let text = r#"
switch = { workers = [3], xdp_mode = "native", stats_interval_secs = 0 }
network = [{ name = "vms" }]
[[port]]
name = "vm1"
driver = "vhost-user"
socket = "/run/switchyard/vm1.sock"
network = "vms"
"#;
    let cfg = parse_str(text, "n.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.switch.workers, [3]);
    assert_eq!(cfg.switch.xdp_mode, XdpMode::Native);
    assert_eq!(cfg.switch.stats_interval_secs, 0);
    assert_eq!(cfg.networks[0].location, Location::new(3, 12));
    let vm1 = &cfg.ports[0];
    assert_eq!(vm1.driver, PortDriver::VhostUser);
    assert_eq!(
        vm1.socket.as_deref(),
        Some(Path::new("/run/switchyard/vm1.sock"))
    );
    assert_eq!(
        (vm1.interface.as_deref(), vm1.interface_location),
        (None, None)
    );
}

/// One invalid input and the single issue it must produce.
struct Case {
    name: &'static str,
    text: &'static str,
    field: &'static str,
    at: (usize, usize),
    /// A substring of the message.
    says: &'static str,
}

const fn case(
    name: &'static str,
    text: &'static str,
    field: &'static str,
    at: (usize, usize),
    says: &'static str,
) -> Case {
    Case {
        name,
        text,
        field,
        at,
        says,
    }
}

const NET: &str = "[[network]]\nname = \"web\"\n";

/// Each case produces exactly one issue (so no follow-up noise either).
/// Line 1 is the first line of `text`.
const CASES: &[Case] = &[
    // --- TOML syntax and shapes ---
    case("syntax error", "[switch]\nworkers = [1,\n", "", (3, 1), "TOML syntax error"),
    case("unclosed string", "[switch]\ncontrol_socket = \"/x\n", "", (2, 21), "TOML syntax error"),
    case("duplicate key", "[switch]\nring_size = 64\nring_size = 128\n", "", (3, 1), "duplicate key"),
    case("unknown top-level", "[switch]\n[bridge]\nx = 1\n", "bridge", (2, 2), "unknown field `bridge`; expected one of `switch`, `uplink`, `host`, `network`, `port`, `conntrack`, `publish`"),
    case("unknown switch field", "[switch]\nworker = [1]\n", "switch.worker", (2, 1), "unknown field `worker`"),
    case("unknown network field", "[[network]]\nname = \"a\"\nsubnett = \"10.0.0.0/8\"\n", "network[0].subnett", (3, 1), "unknown field `subnett`"),
    case("unknown port field", "[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"e\"\nnetwork = \"web\"\nmtu = 9000\n[[network]]\nname = \"web\"\n", "port[0].mtu", (6, 1), "unknown field `mtu`"),
    case("switch not a table", "switch = 3\n", "switch", (1, 10), "expected a table ([switch]), found an integer"),
    case("network single brackets", "[network]\nname = \"web\"\n", "network", (1, 1), "write [[network]]"),
    case("uplink as array", "[[uplink]]\ninterface = \"eth0\"\n", "uplink", (1, 1), "expected a table"),
    case("network element not a table", "network = [{ name = \"a\" }, 5]\n", "network[1]", (1, 28), "expected a table, found an integer"),
    case("datetime value", "[switch]\nmac_aging_secs = 1979-05-27\n", "switch.mac_aging_secs", (2, 18), "found a date-time"),
    // --- wrong types and missing fields ---
    case("workers not array", "[switch]\nworkers = 1\n", "switch.workers", (2, 11), "expected an array of CPU core numbers, found an integer"),
    case("worker string", "[switch]\nworkers = [1, \"2\"]\n", "switch.workers", (2, 15), "expected a non-negative integer, found a string"),
    case("negative worker", "[switch]\nworkers = [-1]\n", "switch.workers", (2, 12), "must not be negative"),
    case("ring_size float", "[switch]\nring_size = 64.0\n", "switch.ring_size", (2, 13), "found a float"),
    case("ring_size beyond u32", "[switch]\nring_size = 99999999999\n", "switch.ring_size", (2, 13), "out of range"),
    case("bool as string", "[[network]]\nname = \"a\"\nmasquerade = \"yes\"\n", "network[0].masquerade", (3, 14), "expected a boolean"),
    case("bad xdp_mode", "[switch]\nxdp_mode = \"fast\"\n", "switch.xdp_mode", (2, 12), "unknown XDP mode \"fast\""),
    case("network missing name", "[[network]]\nsubnet = \"10.0.0.0/24\"\n", "network[0].name", (1, 1), "missing required field `name`"),
    case("port missing driver", "[[port]]\nname = \"p\"\ninterface = \"e\"\nnetwork = \"web\"\n[[network]]\nname = \"web\"\n", "port[0].driver", (1, 1), "missing required field `driver`"),
    case("port missing network", "[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"e\"\n", "port[0].network", (1, 1), "missing required field `network`"),
    case("bad driver", "[[port]]\nname = \"p\"\ndriver = \"tap\"\ninterface = \"e\"\nnetwork = \"web\"\n[[network]]\nname = \"web\"\n", "port[0].driver", (3, 10), "unknown port driver \"tap\""),
    case("uplink missing interface", "[uplink]\naddress = \"192.0.2.10/24\"\n", "uplink.interface", (1, 1), "missing required field `interface`"),
    // --- switch ranges ---
    case("workers empty", "[switch]\nworkers = []\n", "switch.workers", (2, 11), "at least one worker"),
    case("workers duplicate", "[switch]\nworkers = [1, 2, 1]\n", "switch.workers", (2, 18), "core 1 is listed twice"),
    case("worker beyond CPU_SETSIZE", "[switch]\nworkers = [1024]\n", "switch.workers", (2, 12), "out of range"),
    case("mac_table_size zero", "[switch]\nmac_table_size = 0\n", "switch.mac_table_size", (2, 18), "0 is out of range (1 to 1048576)"),
    case("mac_table_size too big", "[switch]\nmac_table_size = 1048577\n", "switch.mac_table_size", (2, 18), "1048577 is out of range (1 to 1048576)"),
    case("mac_aging zero", "[switch]\nmac_aging_secs = 0\n", "switch.mac_aging_secs", (2, 18), "at least 1"),
    case("burst zero", "[switch]\nburst_size = 0\n", "switch.burst_size", (2, 14), "out of range (1 to 256)"),
    case("burst too big", "[switch]\nburst_size = 257\n", "switch.burst_size", (2, 14), "out of range"),
    case("burst above ring", "[switch]\nring_size = 64\numem_frames = 128\nburst_size = 128\n", "switch.burst_size", (4, 14), "larger than ring_size"),
    case("ring not power of two", "[switch]\nring_size = 3000\n", "switch.ring_size", (2, 13), "not a power of two"),
    case("ring too small", "[switch]\nring_size = 32\n", "switch.ring_size", (2, 13), "out of range (64 to 16384)"),
    case("ring too big", "[switch]\nring_size = 32768\numem_frames = 65536\n", "switch.ring_size", (2, 13), "out of range"),
    case("umem not power of two", "[switch]\numem_frames = 10000\n", "switch.umem_frames", (2, 15), "not a power of two"),
    case("umem below 2x ring", "[switch]\nring_size = 4096\numem_frames = 4096\n", "switch.umem_frames", (3, 15), "need at least 8192"),
    case("umem too big", "[switch]\numem_frames = 2097152\n", "switch.umem_frames", (2, 15), "too large"),
    case("control socket relative", "[switch]\ncontrol_socket = \"ctl.sock\"\n", "switch.control_socket", (2, 18), "must be absolute"),
    case("control socket too long", "[switch]\ncontrol_socket = \"/run/switchyard/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"\n", "switch.control_socket", (2, 18), "at most 107"),
    // --- networks ---
    case("cidr prefix 33", "[[network]]\nname = \"a\"\nsubnet = \"172.30.0.0/33\"\n", "network[0].subnet", (3, 10), "prefix length \"33\" is invalid"),
    case("cidr garbage", "[[network]]\nname = \"a\"\nsubnet = \"abc\"\n", "network[0].subnet", (3, 10), "not in CIDR notation"),
    case("cidr bad address", "[[network]]\nname = \"a\"\nsubnet = \"172.30.0/24\"\n", "network[0].subnet", (3, 10), "not a valid IPv4 address"),
    case("cidr host bits", "[[network]]\nname = \"a\"\nsubnet = \"172.30.0.1/24\"\n", "network[0].subnet", (3, 10), "has host bits set; a subnet is a network address, did you mean \"172.30.0.0/24\""),
    case("subnet too small", "[[network]]\nname = \"a\"\nsubnet = \"172.30.0.0/31\"\n", "network[0].subnet", (3, 10), "no room"),
    case("overlapping subnets", "[[network]]\nname = \"a\"\nsubnet = \"10.0.0.0/16\"\n[[network]]\nname = \"b\"\nsubnet = \"10.0.4.0/24\"\n", "network[1].subnet", (6, 10), "overlaps 10.0.0.0/16 of network \"a\""),
    case("gateway without subnet", "[[network]]\nname = \"a\"\ngateway = \"10.0.0.1\"\n", "network[0].gateway", (3, 11), "gateway needs a subnet"),
    case("gateway outside subnet", "[[network]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.1.1\"\n", "network[0].gateway", (4, 11), "outside subnet 10.0.0.0/24"),
    case("gateway is network address", "[[network]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.0\"\n", "network[0].gateway", (4, 11), "network address"),
    case("gateway is broadcast", "[[network]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.255\"\n", "network[0].gateway", (4, 11), "broadcast address"),
    case("gateway with prefix", "[[network]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.1/24\"\n", "network[0].gateway", (4, 11), "without a prefix length"),
    case("vni zero", "[[network]]\nname = \"a\"\nvni = 0\n", "network[0].vni", (3, 7), "out of range (1 to 16777215"),
    case("vni too big", "[[network]]\nname = \"a\"\nvni = 16777216\n", "network[0].vni", (3, 7), "out of range"),
    case("vni duplicate", "[[network]]\nname = \"a\"\nvni = 7\n[[network]]\nname = \"b\"\nvni = 7\n", "network[1].vni", (6, 7), "vni 7 is already used by network \"a\""),
    case("duplicate network", "[[network]]\nname = \"web\"\n[[network]]\nname = \"web\"\n", "network[1].name", (4, 8), "duplicate network name \"web\" (already used by network[0] at 1:1)"),
    case("network name empty", "[[network]]\nname = \"\"\n", "network[0].name", (2, 8), "must not be empty"),
    case("network name bad char", "[[network]]\nname = \"my net\"\n", "network[0].name", (2, 8), "contains ' '"),
    case("network name too long", "[[network]]\nname = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n", "network[0].name", (2, 8), "at most 32"),
    case("masquerade without subnet", "[uplink]\ninterface = \"eth0\"\naddress = \"192.0.2.10/24\"\n[[network]]\nname = \"a\"\nmasquerade = true\n", "network[0].masquerade", (6, 14), "needs a subnet and a gateway"),
    case("masquerade without uplink", "[[network]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.1\"\nmasquerade = true\n", "network[0].masquerade", (5, 14), "needs an [uplink]"),
    case("control_group empty", "[switch]\ncontrol_group = \"\"\n", "switch.control_group", (2, 17), "must not be empty"),
    case("control_group bad char", "[switch]\ncontrol_group = \"a b\"\n", "switch.control_group", (2, 17), "contains ' '"),
    case("control_group dash", "[switch]\ncontrol_group = \"-x\"\n", "switch.control_group", (2, 17), "starts with '-'"),
    case("control_group number", "[switch]\ncontrol_group = 7\n", "switch.control_group", (2, 17), "expected a string"),
    // --- uplink ---
    case("uplink bad interface", "[uplink]\ninterface = \"eth 0\"\naddress = \"192.0.2.10/24\"\n", "uplink.interface", (2, 13), "contains ' '"),
    case("uplink gateway outside", "[uplink]\ninterface = \"eth0\"\naddress = \"192.0.2.10/24\"\ngateway = \"198.51.100.1\"\n", "uplink.gateway", (4, 11), "not inside the uplink address's prefix 192.0.2.0/24"),
    case("uplink address is network", "[uplink]\ninterface = \"eth0\"\naddress = \"192.0.2.0/24\"\n", "uplink.address", (3, 11), "network address"),
    // --- ports ---
    case("port on missing network", "[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"e\"\nnetwork = \"db\"\n", "port[0].network", (5, 11), "network \"db\" is not defined"),
    case("af_xdp without interface", "[[network]]\nname = \"web\"\n[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\nnetwork = \"web\"\n", "port[0].interface", (3, 1), "needs `interface`"),
    case("af_xdp with socket", "[[network]]\nname = \"web\"\n[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"e\"\nsocket = \"/run/p.sock\"\nnetwork = \"web\"\n", "port[0].socket", (7, 10), "`socket` is for vhost-user ports"),
    case("vhost-user without socket", "[[network]]\nname = \"web\"\n[[port]]\nname = \"vm\"\ndriver = \"vhost-user\"\nnetwork = \"web\"\n", "port[0].socket", (3, 1), "needs `socket`"),
    case("vhost-user with interface", "[[network]]\nname = \"web\"\n[[port]]\nname = \"vm\"\ndriver = \"vhost-user\"\nsocket = \"/run/vm.sock\"\ninterface = \"e\"\nnetwork = \"web\"\n", "port[0].interface", (7, 13), "`interface` is for af_xdp ports"),
    case("vhost-user with xdp_mode", "[[network]]\nname = \"web\"\n[[port]]\nname = \"vm\"\ndriver = \"vhost-user\"\nsocket = \"/run/vm.sock\"\nnetwork = \"web\"\nxdp_mode = \"native\"\n", "port[0].xdp_mode", (8, 12), "only applies to af_xdp"),
    case("vhost-user relative socket", "[[network]]\nname = \"web\"\n[[port]]\nname = \"vm\"\ndriver = \"vhost-user\"\nsocket = \"vm.sock\"\nnetwork = \"web\"\n", "port[0].socket", (6, 10), "must be absolute"),
    case("vhost-user socket is control socket", "[[network]]\nname = \"web\"\n[[port]]\nname = \"vm\"\ndriver = \"vhost-user\"\nsocket = \"/run/switchyard/ctl.sock\"\nnetwork = \"web\"\n", "port[0].socket", (6, 10), "control_socket"),
    case("interface empty", "[[network]]\nname = \"web\"\n[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"\"\nnetwork = \"web\"\n", "port[0].interface", (6, 13), "must not be empty"),
    case("interface too long", "[[network]]\nname = \"web\"\n[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"veth-0123456789a\"\nnetwork = \"web\"\n", "port[0].interface", (6, 13), "16 bytes long; Linux allows at most 15"),
    case("interface with slash", "[[network]]\nname = \"web\"\n[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"a/b\"\nnetwork = \"web\"\n", "port[0].interface", (6, 13), "contains '/'"),
    case("interface with colon", "[[network]]\nname = \"web\"\n[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"eth0:1\"\nnetwork = \"web\"\n", "port[0].interface", (6, 13), "contains ':'"),
    case("interface with tab", "[[network]]\nname = \"web\"\n[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"eth\\t0\"\nnetwork = \"web\"\n", "port[0].interface", (6, 13), "contains '\\t'"),
    case("interface dot-dot", "[[network]]\nname = \"web\"\n[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"..\"\nnetwork = \"web\"\n", "port[0].interface", (6, 13), "not a valid interface name"),
    case("interface is uplink", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[[network]]\nname = \"web\"\n[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"eth1\"\nnetwork = \"web\"\n", "port[0].interface", (9, 13), "is the uplink"),
    case("uplink without address", "[uplink]\ninterface = \"eth1\"\n", "uplink.address", (1, 1), "missing required field `address`"),
    case("uplink /31", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/31\"\n", "uplink.address", (3, 11), "/30 or shorter"),
    case("uplink neighbour key", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[uplink.neighbours]\n\"192.0.2\" = \"02:00:00:00:00:01\"\n", "uplink.neighbours.192.0.2", (5, 1), "not an IPv4 address"),
    case("uplink neighbour mac", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[uplink.neighbours]\n\"192.0.2.1\" = \"ff:ff:ff:ff:ff:ff\"\n", "uplink.neighbours.192.0.2.1", (5, 15), "multicast or broadcast"),
    case("uplink neighbour off link", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[uplink.neighbours]\n\"198.51.100.1\" = \"02:00:00:00:00:01\"\n", "uplink.neighbours.198.51.100.1", (5, 18), "not inside the uplink address's prefix"),
    case("uplink neighbour is self", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[uplink.neighbours]\n\"192.0.2.10\" = \"02:00:00:00:00:01\"\n", "uplink.neighbours.192.0.2.10", (5, 16), "the uplink's own address"),
    case("network overlaps uplink", "[uplink]\ninterface = \"eth1\"\naddress = \"10.0.0.10/16\"\n[[network]]\nname = \"a\"\nsubnet = \"10.0.5.0/24\"\n", "network[0].subnet", (6, 10), "overlaps the uplink's prefix 10.0.0.0/16"),
    case("host without address", "[host]\n", "host.address", (1, 1), "missing required field `address`"),
    case("host /31", "[host]\naddress = \"10.9.0.1/31\"\n", "host.address", (2, 11), "/30 or shorter"),
    case("host switch address off link", "[host]\naddress = \"10.9.0.1/30\"\nswitch_address = \"10.9.0.5\"\n", "host.switch_address", (3, 18), "another host address of 10.9.0.0/30"),
    case("host interface is a port", "[host]\ninterface = \"veth1\"\naddress = \"10.9.0.1/30\"\n[[network]]\nname = \"a\"\n[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"veth1\"\nnetwork = \"a\"\n", "host.interface", (2, 13), "a port or the uplink"),
    case("network overlaps host", "[host]\naddress = \"10.9.0.1/30\"\n[[network]]\nname = \"a\"\nsubnet = \"10.9.0.0/24\"\n", "network[0].subnet", (5, 10), "overlaps the host port's prefix 10.9.0.0/30"),
    case("flat without uplink", "[[network]]\nname = \"lan\"\nsubnet = \"10.0.0.0/24\"\nuplink = true\n", "network[0].uplink", (4, 10), "add an [uplink] section"),
    case("flat outside the uplink prefix", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[[network]]\nname = \"lan\"\nsubnet = \"10.0.0.0/24\"\nuplink = true\n", "network[0].subnet", (6, 10), "must lie inside 192.0.2.0/24"),
    case("flat pool holds the node", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[[network]]\nname = \"lan\"\nsubnet = \"192.0.2.0/25\"\nuplink = true\n", "network[0].subnet", (6, 10), "contains the node's uplink address"),
    case("flat gateway off the LAN", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[[network]]\nname = \"lan\"\nsubnet = \"192.0.2.128/25\"\ngateway = \"10.0.0.1\"\nuplink = true\n", "network[0].gateway", (7, 11), "not a host address of the uplink's LAN"),
    case("two flat networks", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[[network]]\nname = \"a\"\nsubnet = \"192.0.2.128/26\"\nuplink = true\n[[network]]\nname = \"b\"\nsubnet = \"192.0.2.192/26\"\nuplink = true\n", "network[1].uplink", (11, 10), "only one network"),
    case("conntrack too small", "[switch]\nconntrack_size = 10\n", "switch.conntrack_size", (2, 18), "out of range"),
    case("nat ports reversed", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\nnat_ports = \"2000-1000\"\n", "uplink.nat_ports", (4, 13), "ends before it starts"),
    case("nat ports fewer than workers", "[switch]\nworkers = [0, 1]\n[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\nnat_ports = \"40000-40000\"\n[[network]]\nname = \"web\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.1\"\nmasquerade = true\n", "uplink.nat_ports", (6, 13), "1 port(s) for 2 workers"),
    case("publish without uplink", "[[network]]\nname = \"web\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.1\"\n[[publish]]\nprotocol = \"tcp\"\nhost_port = 8080\naddress = \"10.0.0.5\"\nport = 80\n", "publish[0].host_port", (7, 13), "add [uplink]"),
    case("publish bad protocol", "[[publish]]\nprotocol = \"sctp\"\nhost_port = 8080\naddress = \"10.0.0.5\"\n", "publish[0].protocol", (2, 12), "expected \"tcp\" or \"udp\""),
    case("publish to no network", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[[publish]]\nprotocol = \"tcp\"\nhost_port = 8080\naddress = \"10.0.0.5\"\n", "publish[0].address", (7, 11), "in no routed network"),
    case("publish overlap", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[[network]]\nname = \"web\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.1\"\n[[publish]]\nprotocol = \"tcp\"\nhost_port = \"8080-8090\"\naddress = \"10.0.0.5\"\n[[publish]]\nprotocol = \"tcp\"\nhost_port = 8085\naddress = \"10.0.0.6\"\n", "publish[1].host_port", (14, 13), "already published by publish[0]"),
    case("publish range past 65535", "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[[network]]\nname = \"web\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.1\"\n[[publish]]\nprotocol = \"udp\"\nhost_port = \"100-200\"\naddress = \"10.0.0.5\"\nport = 65500\n", "publish[0].port", (12, 8), "run past 65535"),
    case("conntrack zero timeout", "[conntrack]\nudp_unreplied = 0\n", "conntrack.udp_unreplied", (2, 17), "out of range"),
    case("conntrack unknown key", "[conntrack]\nudp = 5\n", "conntrack.udp", (2, 1), "unknown field `udp`"),
    case("reserved network name", "[[network]]\nname = \"uplink\"\n", "network[0].name", (2, 8), "is reserved"),
    case("two ports one interface", "[[network]]\nname = \"web\"\n[[port]]\nname = \"a\"\ndriver = \"af_xdp\"\ninterface = \"e\"\nnetwork = \"web\"\n[[port]]\nname = \"b\"\ndriver = \"af_xdp\"\ninterface = \"e\"\nnetwork = \"web\"\n", "port[1].interface", (11, 13), "interface \"e\" is already used by port \"a\" (port[0])"),
    case("duplicate port", "[[network]]\nname = \"web\"\n[[port]]\nname = \"a\"\ndriver = \"af_xdp\"\ninterface = \"e1\"\nnetwork = \"web\"\n[[port]]\nname = \"a\"\ndriver = \"af_xdp\"\ninterface = \"e2\"\nnetwork = \"web\"\n", "port[1].name", (9, 8), "duplicate port name \"a\" (already used by port[0] at 3:1)"),
    case("port name bad char", "[[network]]\nname = \"web\"\n[[port]]\nname = \"a/b\"\ndriver = \"af_xdp\"\ninterface = \"e\"\nnetwork = \"web\"\n", "port[0].name", (4, 8), "contains '/'"),
];

#[test]
fn invalid_cases_report_located_issue() {
    let mut failures = Vec::new();
    for c in CASES {
        let err = match parse_str(c.text, "node.toml") {
            Ok(_) => {
                failures.push(format!("{}: parsed without error", c.name));
                continue;
            }
            Err(e) => e,
        };
        let want_loc = Some(Location::new(c.at.0, c.at.1));
        let ok = err.issues.len() == 1
            && err.issues[0].field == c.field
            && err.issues[0].location == want_loc
            && err.issues[0].message.contains(c.says);
        if !ok {
            failures.push(format!(
                "{}: want one issue {}:{}: {}: ...{}...\n  got:\n{err}",
                c.name, c.at.0, c.at.1, c.field, c.says
            ));
        }
        assert_eq!(err.origin, "node.toml");
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn base_network_snippet_is_valid() {
    // The cases above rely on small snippets like this being valid on their
    // own, so an issue can only come from the line under test.
    parse_str(NET, "n.toml").unwrap();
}

#[test]
fn all_issues_are_reported_in_file_order() {
    let text = r#"[switch]
workers = [1, 1]
ring_size = 100
bogus = true

[[network]]
name = "web"
subnet = "172.30.0.1/24"

[[network]]
name = "web"
gateway = "10.0.0.1"
vni = 0

[[port]]
name = "p1"
driver = "af_xdp"
network = "db"

[[port]]
name = "p 2"
driver = "vhost-user"
network = "web"
"#;
    let err = parse_err(text);
    let got: Vec<(Option<Location>, &str)> = err
        .issues
        .iter()
        .map(|i| (i.location, i.field.as_str()))
        .collect();
    let at = |l, c| Some(Location::new(l, c));
    assert_eq!(
        got,
        [
            (at(2, 15), "switch.workers"),
            (at(3, 13), "switch.ring_size"),
            (at(4, 1), "switch.bogus"),
            (at(8, 10), "network[0].subnet"),
            (at(11, 8), "network[1].name"),
            (at(12, 11), "network[1].gateway"),
            (at(13, 7), "network[1].vni"),
            (at(15, 1), "port[0].interface"),
            (at(18, 11), "port[0].network"),
            (at(20, 1), "port[1].socket"),
            (at(21, 8), "port[1].name"),
        ],
        "\n{err}"
    );
}

#[test]
fn display_is_one_located_line_per_issue() {
    let text = "[[network]]\nname = \"web\"\n\n[[port]]\nname = \"p\"\ndriver = \"af_xdp\"\ninterface = \"eth0\"\nnetwork = \"db\"\nspeed = 10\n";
    let err = parse_err(text);
    assert_eq!(
        err.to_string(),
        "node.toml:8:11: port[0].network: network \"db\" is not defined\n\
         node.toml:9:1: port[0].speed: unknown field `speed`; expected one of \
         `name`, `driver`, `interface`, `socket`, `network`, `xdp_mode`"
    );
    assert_eq!(
        err.issues[0].to_string(),
        "8:11: port[0].network: network \"db\" is not defined"
    );
}

#[test]
fn display_escapes_control_characters() {
    // A quoted value with a newline must not break "one line per issue".
    let err = parse_err("[[network]]\nname = \"a\\nb\"\n");
    assert_eq!(
        err.to_string(),
        "node.toml:2:8: network[0].name: network name \"a\\nb\" contains '\\n'; \
         use only letters, digits, '_', '.' and '-'"
    );
}

#[test]
fn load_reports_missing_file() {
    let err = load(Path::new("/nonexistent/switchyard/node.toml")).unwrap_err();
    assert_eq!(err.origin, "/nonexistent/switchyard/node.toml");
    assert_eq!(err.issues.len(), 1);
    assert_eq!(err.issues[0].location, None);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/switchyard/node.toml: cannot read file: "),
        "{err}"
    );
}

#[test]
fn single_reports_runtime_problem_at_stored_location() {
    let cfg = load(&example_path()).unwrap();
    let port = cfg.port("nas").unwrap();
    let err = ConfigError::single(
        &cfg.origin,
        port.interface_location,
        "port[2].interface",
        "interface \"veth-nas\" does not exist",
    );
    let loc = port.interface_location.unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:{}:{}: port[2].interface: interface \"veth-nas\" does not exist",
            cfg.origin, loc.line, loc.column
        )
    );
    assert_eq!(
        err.issues,
        [ConfigIssue::new(
            Some(loc),
            "port[2].interface",
            "interface \"veth-nas\" does not exist"
        )]
    );
}

#[test]
fn validate_checks_configs_built_in_code() {
    let at = Location::new(7, 1);
    let cfg = NodeConfig {
        origin: "api".into(),
        switch: SwitchConfig {
            workers: vec![],
            ..SwitchConfig::default()
        },
        uplink: None,
        host: None,
        publish: vec![],
        conntrack: Default::default(),
        networks: vec![NetworkConfig {
            name: "web".into(),
            subnet: Some(cidr("10.0.0.0/24")),
            gateway: Some(Ipv4Addr::new(10, 0, 1, 1)),
            masquerade: false,
            isolated: false,
            vni: None,
            uplink: false,
            location: at,
        }],
        ports: vec![PortConfig {
            name: "p".into(),
            driver: PortDriver::AfXdp,
            interface: Some("eth0".into()),
            socket: None,
            network: "nope".into(),
            xdp_mode: None,
            location: Location::new(9, 1),
            interface_location: None,
        }],
        value_locations: Default::default(),
    };
    let err = cfg.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "api:7:1: network[0].gateway: 10.0.1.1 is outside subnet 10.0.0.0/24\n\
         api:9:1: port[0].network: network \"nope\" is not defined\n\
         api: switch.workers: at least one worker core is needed (e.g. workers = [0])"
    );
}

#[test]
fn enums_display_and_serialize_as_written() {
    for (mode, s) in [
        (XdpMode::Auto, "auto"),
        (XdpMode::Native, "native"),
        (XdpMode::Generic, "generic"),
    ] {
        assert_eq!(mode.to_string(), s);
        assert_eq!(s.parse::<XdpMode>(), Ok(mode));
        assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{s}\""));
        assert_eq!(
            serde_json::from_str::<XdpMode>(&format!("\"{s}\"")).unwrap(),
            mode
        );
    }
    for (driver, s) in [
        (PortDriver::AfXdp, "af_xdp"),
        (PortDriver::VhostUser, "vhost-user"),
    ] {
        assert_eq!(driver.to_string(), s);
        assert_eq!(s.parse::<PortDriver>(), Ok(driver));
        assert_eq!(serde_json::to_string(&driver).unwrap(), format!("\"{s}\""));
    }
}

#[test]
fn pipeline_and_idle_modes_parse_and_bad_values_are_located() {
    let cfg = parse_str(
        "[switch]\npipeline = \"empty\"\nidle = \"busy-poll\"\n",
        "modes.toml",
    )
    .expect("valid");
    assert_eq!(cfg.switch.pipeline, switchyard_config::PipelineMode::Empty);
    assert_eq!(cfg.switch.idle, switchyard_config::IdleMode::BusyPoll);
    let defaults = parse_str("", "empty.toml").expect("valid");
    assert_eq!(
        defaults.switch.pipeline,
        switchyard_config::PipelineMode::L2
    );
    assert_eq!(defaults.switch.idle, switchyard_config::IdleMode::Backoff);

    let err = parse_err("[switch]\npipeline = \"fast\"\nidle = \"nap\"\n");
    let fields: Vec<&str> = err.issues.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(fields, ["switch.pipeline", "switch.idle"], "{err}");
    assert_eq!(
        err.issues[0].location.map(|l| (l.line, l.column)),
        Some((2, 12))
    );
    assert!(err.issues[1].message.contains("busy-poll"), "{err}");
}

#[test]
fn mac_table_size_accepts_exactly_the_documented_maximum() {
    let max = SwitchConfig::MAX_MAC_TABLE_SIZE;
    assert_eq!(max, 1 << 20, "README and node.toml document 1..=1048576");
    let cfg = parse_str(&format!("[switch]\nmac_table_size = {max}\n"), "n.toml").unwrap();
    assert_eq!(cfg.switch.mac_table_size, max);
    parse_err(&format!("[switch]\nmac_table_size = {}\n", max + 1));
}

#[test]
fn control_group_parses_and_value_locations_are_kept() {
    let cfg = parse_str(
        "[switch]\ncontrol_group = \"switchyard\"\n[[network]]\nname = \"a\"\nvni = 7\n",
        "n.toml",
    )
    .unwrap();
    assert_eq!(cfg.switch.control_group.as_deref(), Some("switchyard"));
    assert_eq!(
        cfg.location_of("switch.control_group"),
        Some(Location::new(2, 17))
    );
    assert_eq!(cfg.location_of("network[0].vni"), Some(Location::new(5, 7)));
    assert_eq!(parse_str("", "e.toml").unwrap().switch.control_group, None);
}
