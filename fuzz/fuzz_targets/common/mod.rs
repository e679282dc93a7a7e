//! The burst format the chain fuzz targets share: repeated
//! `[n_frames]` then per frame `[port, len, bytes..]`.

use switchyard_pipeline::PacketMeta;

/// Reads the next burst from `rest` into `frames` (cleared first) and their
/// ingress ports into `metas` (port number modulo `ports`); false when the
/// input is used up.
pub fn next_burst(
    rest: &mut &[u8],
    frames: &mut Vec<Vec<u8>>,
    metas: &mut [PacketMeta],
    ports: u8,
) -> bool {
    let [n, tail @ ..] = *rest else {
        return false;
    };
    *rest = tail;
    frames.clear();
    let n = usize::from(*n % 32);
    for k in 0..n.min(metas.len()) {
        let [port, len, tail @ ..] = *rest else { break };
        let len = usize::from(*len).min(tail.len());
        frames.push(tail[..len].to_vec());
        metas[k] = PacketMeta::new(u16::from(*port % ports));
        *rest = &tail[len..];
    }
    true
}
