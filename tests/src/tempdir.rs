//! A temporary directory removed on drop: daemon configs, stats files and logs live here.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A directory under the system temp dir, deleted (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/switchyard-tests-<id>-<tag>` with the given mode.
    ///
    /// The mode is explicit because the non-root test hands the directory to uid 65534.
    #[track_caller]
    pub fn new(tag: &str, mode: u32) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "switchyard-tests-{}-{tag}",
            crate::names::unique_id()
        ));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
