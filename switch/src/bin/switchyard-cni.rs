//! `switchyard-cni`: the CNI plugin binary a container runtime executes (its
//! network config says `"type": "switchyard-cni"`).

fn main() -> std::process::ExitCode {
    switchyard_switch::cni::main()
}
