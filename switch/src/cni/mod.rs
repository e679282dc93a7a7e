//! The CNI plugin (being written).

/// Entry point of the `switchyard-cni` binary.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
