//! A CNI invocation is untrusted input (environment and stdin from the runtime):
//! any bytes give a result or a spec error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_switch::cni::commands::execute;
use switchyard_switch::cni::env::CniEnv;

fuzz_target!(|bytes: &[u8]| {
    // First bytes pick the command and which variables are set; the rest is stdin.
    let (head, stdin) = bytes.split_at(bytes.len().min(2));
    let pick = |i: usize| head.get(i).copied().unwrap_or(0);
    let commands = ["ADD", "DEL", "CHECK", "VERSION", "GC", ""];
    let env = CniEnv {
        command: Some(commands[pick(0) as usize % commands.len()].to_string()),
        container_id: (pick(1) & 1 != 0).then(|| "c0ffee".to_string()),
        netns: (pick(1) & 2 != 0).then(|| "/run/netns/fuzz".to_string()),
        ifname: (pick(1) & 4 != 0).then(|| "eth0".to_string()),
        args: None,
        path: None,
    };
    let _ = execute(&env, stdin, |_, _, _| {
        Ok(serde_json::json!({
            "name": "c0ffee-eth0-00000000", "interface": "sy00000000", "ifname": "eth0",
            "mac": "02:53:00:00:00:01", "address": "10.0.0.2/24", "gateway": "10.0.0.1",
            "network": "web", "netns": "/run/netns/fuzz"
        }))
    });
});
