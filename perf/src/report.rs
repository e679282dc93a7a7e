//! Where results go: a JSON document per subcommand in `perf/results/`, written
//! atomically so a crashed or interrupted run never leaves half a file behind.

use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The default results directory: `perf/results` in the source tree this
/// binary was built from, so results land next to the code that produced them.
pub fn default_results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("results")
}

/// Writes `document` as pretty JSON to `<dir>/<subcommand>-latest.json` and
/// returns the path.
pub fn write_latest<T: Serialize>(dir: &Path, subcommand: &str, document: &T) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{subcommand}-latest.json"));
    let tmp = path.with_extension("json.tmp");
    let mut bytes = serde_json::to_vec_pretty(document)?;
    bytes.push(b'\n');
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(path)
}

/// Seconds since the Unix epoch, to date a result.
pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
