//! What this build can run: settings the config crate accepts (so files are
//! checked now and later issues only have to turn them on) but that do nothing
//! yet are refused at load time, located at their value, so that every setting
//! a running daemon accepted does what it says.

use switchyard_config::{ConfigIssue, NodeConfig, PortDriver};

/// Every accepted-but-unimplemented setting of `config`, one issue each.
pub fn unsupported_issues(config: &NodeConfig) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for (i, network) in config.networks.iter().enumerate() {
        let mut refuse = |key: &str, message: &str| {
            let field = format!("network[{i}].{key}");
            issues.push(ConfigIssue::new(
                config.location_of(&field).or(Some(network.location)),
                field,
                message.to_string(),
            ));
        };
        if network.vni.is_some() {
            refuse(
                "vni",
                "vni is not supported yet (no VXLAN in this build); remove it",
            );
        }
    }
    for (i, port) in config.ports.iter().enumerate() {
        if port.driver == PortDriver::VhostUser {
            let field = format!("port[{i}].driver");
            issues.push(ConfigIssue::new(
                config.location_of(&field).or(Some(port.location)),
                field,
                "the vhost-user driver is not supported yet; use \"af_xdp\"",
            ));
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An issue as (field, line and column, message).
    type Found = (String, Option<(usize, usize)>, String);

    fn issues(text: &str) -> Vec<Found> {
        let config = switchyard_config::parse_str(text, "n.toml").expect("valid syntax");
        unsupported_issues(&config)
            .into_iter()
            .map(|i| {
                (
                    i.field.clone(),
                    i.location.map(|l| (l.line, l.column)),
                    i.message.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn later_features_are_refused_at_their_value() {
        let text = "[uplink]\ninterface = \"eth1\"\naddress = \"192.0.2.10/24\"\n[[network]]\nname = \"a\"\nsubnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.1\"\nmasquerade = true\nisolated = true\nvni = 7\n\n[[port]]\nname = \"vm\"\ndriver = \"vhost-user\"\nsocket = \"/run/vm.sock\"\nnetwork = \"a\"\n";
        let got = issues(text);
        let fields: Vec<_> = got
            .iter()
            .map(|(f, l, _)| (f.as_str(), l.unwrap()))
            .collect();
        assert_eq!(
            fields,
            [("network[0].vni", (10, 7)), ("port[0].driver", (14, 10)),]
        );
        assert!(
            got.iter().all(|(_, _, m)| m.contains("not supported yet")),
            "{got:#?}"
        );
    }

    /// `mac_table_size` up to its documented maximum gives a table that size:
    /// the config's limit is the table's own, so nothing is silently clamped.
    #[test]
    fn the_largest_accepted_mac_table_size_is_honoured() {
        use switchyard_config::SwitchConfig;
        use switchyard_pipeline::MacTable;
        assert_eq!(SwitchConfig::MAX_MAC_TABLE_SIZE, MacTable::MAX_CAPACITY);
        let max = SwitchConfig::MAX_MAC_TABLE_SIZE;
        let text = format!("[switch]\nmac_table_size = {max}\n");
        let config = switchyard_config::parse_str(&text, "n.toml").unwrap();
        let table = MacTable::new(config.switch.mac_table_size, 1_000_000_000);
        assert_eq!(table.capacity(), max);
    }

    #[test]
    fn defaults_and_explicit_off_are_accepted() {
        let text = "[[network]]\nname = \"a\"\nmasquerade = false\nisolated = false\n\n[[network]]\nname = \"b\"\nisolated = true\n";
        assert_eq!(issues(text), []);
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/examples/node.toml");
        let config = switchyard_config::load(std::path::Path::new(example)).unwrap();
        assert!(
            unsupported_issues(&config).is_empty(),
            "the example must pass `switchyard check`"
        );
    }
}
