//! Podman (4, CNI backend) as a real container runtime driving `switchyard-cni`.
//!
//! Each [`Podman`] is a private podman installation in a temp dir, so a test
//! touches none of the machine's podman state: its own `--root`, `--runroot`
//! (`vfs` storage: no overlay mounts), a `containers.conf` (pointed at by
//! `CONTAINERS_CONF`) with its own `tmp_dir` and file locks, a network config
//! dir holding one hand-written conflist naming `switchyard-cni` (podman
//! refuses `network create -d switchyard-cni`), and `cni_plugin_dirs` with the
//! built plugin's directory. No image registry is needed: containers run from
//! a busybox-static root file system (`--rootfs`).
//!
//! Cleanup on drop, also when a test panics: `podman rm -f` of every container
//! it started (their DEL reaches the daemon, which must still run: create the
//! `Podman` after the lab so it drops first), then podman's CNI cache of the
//! test's network under `/var/lib/cni/results`, then namespaces podman left,
//! then mounts below the temp dir, then the temp dir.

use std::fmt::Write as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::cmd::{self, CmdOutput};
use crate::control::switchyard_cni_bin;
use crate::names;
use crate::tempdir::TempDir;

/// Bound on one podman command (a container start with a CNI network takes
/// about a second here; the first one also initialises the storage).
pub const PODMAN_TIMEOUT: Duration = Duration::from_secs(90);

/// Where podman's CNI library caches results (not configurable in podman 4).
pub const CNI_CACHE: &str = "/var/lib/cni/results";

/// The busybox applets the root file system links to `/bin/busybox`.
const APPLETS: [&str; 8] = ["sh", "ip", "ping", "nc", "httpd", "sleep", "cat", "echo"];

/// The programs a podman test needs, each with where it comes from.
const NEEDED: [(&str, &str); 4] = [
    ("podman", "podman"),
    ("runc", "runc"),
    ("conmon", "conmon"),
    ("/bin/busybox", "busybox-static"),
];

/// Why podman tests cannot run here (a program is missing), or `None`.
pub fn missing_podman() -> Option<String> {
    let found = |program: &str| {
        if program.starts_with('/') {
            return Path::new(program).is_file();
        }
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
    };
    let missing: Vec<String> = NEEDED
        .iter()
        .filter(|(program, _)| !found(program))
        .map(|(program, package)| format!("{program} (package {package})"))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "podman tests need {} (scripts/install-deps.sh installs them)",
            missing.join(", ")
        )
    })
}

/// Returns true when podman tests may run; otherwise skips or fails the test
/// as [`crate::require_root`] does: under `CI=true` a missing runtime is a
/// failure, elsewhere it prints `SKIP: ...` and returns false.
#[track_caller]
pub fn require_podman() -> bool {
    match missing_podman() {
        None => true,
        Some(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{why}; CI=true, so this is a failure, not a skip");
            }
            eprintln!("SKIP: {why}");
            false
        }
    }
}

/// `return`s from the calling test (after printing `SKIP: ...`) unless
/// podman, runc, conmon and busybox-static are installed (see [`require_podman`]).
#[macro_export]
macro_rules! require_podman {
    () => {
        if !$crate::podman::require_podman() {
            return;
        }
    };
}

/// A container a [`Podman`] started.
#[derive(Debug, Clone)]
pub struct Container {
    /// Its name (`syt<id>-<suffix>`).
    pub name: String,
    /// Its 64-hex-digit ID (the plugin's `CNI_CONTAINERID`).
    pub id: String,
    /// Its network namespace's name under `/run/netns` (podman's `netns-<uuid>`).
    pub netns: String,
}

/// A private podman whose one network is a switchyard network.
#[derive(Debug)]
pub struct Podman {
    // Field order is drop order after `Drop::drop` ran.
    started: Mutex<Vec<String>>,
    namespaces: Mutex<Vec<String>>,
    network: String,
    id: String,
    dir: TempDir,
}

impl Podman {
    /// Sets up podman in a new temp dir, with CNI network `syt<lab_id>-net`
    /// (its default network) served by `switchyard-cni` joining switchyard
    /// network `network` through the daemon at `control_socket`, with the
    /// `portMappings` capability (so `-p` reaches the plugin).
    #[track_caller]
    pub fn new(lab_id: &str, network: &str, control_socket: &Path) -> Podman {
        let dir = TempDir::new("podman", 0o700);
        let podman = Podman {
            started: Mutex::new(Vec::new()),
            namespaces: Mutex::new(Vec::new()),
            network: format!("{}{lab_id}-net", names::PREFIX),
            id: lab_id.to_string(),
            dir,
        };
        podman.write_rootfs();
        let plugin_dir = switchyard_cni_bin()
            .parent()
            .expect("the plugin has a directory")
            .to_path_buf();
        let net_dir = podman.path("net");
        mkdir(&net_dir);
        mkdir(&podman.path("tmp"));
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": podman.network,
            "plugins": [{
                "type": "switchyard-cni",
                "network": network,
                "controlSocket": control_socket.to_string_lossy(),
                "capabilities": {"portMappings": true},
            }],
        });
        write(
            &net_dir.join(format!("{}.conflist", podman.network)),
            &serde_json::to_string_pretty(&conflist).expect("conflist serialises"),
        );
        let toml = |s: &str| serde_json::to_string(s).expect("string serialises");
        let mut conf = String::new();
        // The settings this machine needs: see /work/shared/PODMAN-NOTES.md
        // (no CAP_SYS_RESOURCE for higher ulimits, no systemd, crun cannot run
        // on its cgroup setup).
        let _ = writeln!(
            conf,
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\n\
             tmp_dir = {}\nlock_type = \"file\"\n\n\
             [network]\nnetwork_backend = \"cni\"\ndefault_network = {}\n\
             cni_plugin_dirs = [{}, \"/usr/lib/cni\"]\nnetwork_config_dir = {}",
            toml(&podman.path("tmp").to_string_lossy()),
            toml(&podman.network),
            toml(&plugin_dir.to_string_lossy()),
            toml(&net_dir.to_string_lossy()),
        );
        write(&podman.path("containers.conf"), &conf);
        podman
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `bin/busybox` plus applet links, and the directories podman mounts over.
    fn write_rootfs(&self) {
        let root = self.rootfs();
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "www"] {
            mkdir(&root.join(d));
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .unwrap_or_else(|e| panic!("copy /bin/busybox: {e}"));
        for applet in APPLETS {
            symlink("busybox", root.join("bin").join(applet))
                .unwrap_or_else(|e| panic!("symlink {applet}: {e}"));
        }
    }

    /// The containers' root file system (busybox-static; `/www` is empty for
    /// the test to fill).
    pub fn rootfs(&self) -> PathBuf {
        self.path("rootfs")
    }

    /// The CNI network's name (also the prefix of its CNI cache files).
    pub fn network(&self) -> &str {
        &self.network
    }

    /// `syt<id>-<suffix>`: a container name unique to the test.
    pub fn container_name(&self, suffix: &str) -> String {
        names::netns_name(&self.id, suffix)
    }

    /// `podman --root ... --runroot ... --storage-driver vfs args...` with
    /// `CONTAINERS_CONF` set, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.path("containers.conf"))
            .arg("--root")
            .arg(self.path("root"))
            .arg("--runroot")
            .arg(self.path("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        c
    }

    /// Runs `podman args...` (bounded by [`PODMAN_TIMEOUT`]); a non-zero exit
    /// is returned, not a panic.
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> CmdOutput {
        cmd::run_timeout(&mut self.command(args), PODMAN_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `podman run -d --name <name> options... --rootfs <rootfs> /bin/busybox
    /// argv...` (every option must come before `--rootfs`). The name is
    /// recorded for cleanup before podman runs, so a half-made container goes
    /// too. Returns the failed command when podman refuses.
    #[track_caller]
    pub fn try_start(
        &self,
        name: &str,
        options: &[&str],
        argv: &[&str],
    ) -> Result<Container, CmdOutput> {
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_string());
        let rootfs = self.rootfs().to_string_lossy().into_owned();
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(options);
        args.extend_from_slice(&["--rootfs", &rootfs, "/bin/busybox"]);
        args.extend_from_slice(argv);
        let out = self.run(&args);
        if !out.success() {
            return Err(out);
        }
        let inspect = self.inspect(name);
        let id = inspect["Id"]
            .as_str()
            .unwrap_or_else(|| panic!("podman inspect {name}: no Id in {inspect}"))
            .to_string();
        let sandbox = inspect["NetworkSettings"]["SandboxKey"]
            .as_str()
            .unwrap_or_else(|| panic!("podman inspect {name}: no SandboxKey in {inspect}"));
        let netns = sandbox
            .strip_prefix("/run/netns/")
            .unwrap_or_else(|| panic!("{name}'s namespace {sandbox:?} is not under /run/netns"))
            .to_string();
        self.namespaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(netns.clone());
        Ok(Container {
            name: name.to_string(),
            id,
            netns,
        })
    }

    /// [`Podman::try_start`], panicking when podman refuses.
    #[track_caller]
    pub fn start(&self, name: &str, options: &[&str], argv: &[&str]) -> Container {
        self.try_start(name, options, argv)
            .unwrap_or_else(|out| panic!("podman run failed:\n{out}"))
    }

    /// `podman inspect <name>`'s object.
    #[track_caller]
    pub fn inspect(&self, name: &str) -> Value {
        let out = self.run(&["inspect", name]).expect_success();
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("podman inspect printed no JSON ({e}):\n{out}"));
        v.get(0)
            .cloned()
            .unwrap_or_else(|| panic!("podman inspect {name}: empty answer {v}"))
    }

    /// `podman exec <name> argv...` (no `-i`: stdin is empty).
    #[track_caller]
    pub fn exec(&self, name: &str, argv: &[&str]) -> CmdOutput {
        let mut args = vec!["exec", name];
        args.extend_from_slice(argv);
        self.run(&args)
    }

    /// `podman rm -f -t 0 <name>` (its DEL runs before this returns); panics
    /// unless podman succeeds.
    #[track_caller]
    pub fn remove(&self, name: &str) {
        self.run(&["rm", "-f", "-t", "0", name]).expect_success();
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|n| n != name);
    }

    /// Podman's CNI cache files for this test's network (one per attachment
    /// it holds: `<network>-<container id>-<ifname>`).
    pub fn cni_cache_files(&self) -> Vec<PathBuf> {
        let prefix = format!("{}-", self.network);
        std::fs::read_dir(CNI_CACHE)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let started: Vec<String> = self
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        if !started.is_empty() {
            let mut args = vec!["rm", "-f", "-t", "0", "--ignore"];
            args.extend(started.iter().map(String::as_str));
            match cmd::run_timeout(&mut self.command(&args), PODMAN_TIMEOUT) {
                Ok(out) if out.success() => {}
                Ok(out) => eprintln!("podman cleanup failed: {out}"),
                Err(e) => eprintln!("podman cleanup failed: {e}"),
            }
        }
        for file in self.cni_cache_files() {
            if let Err(e) = std::fs::remove_file(&file) {
                eprintln!("cannot remove {}: {e}", file.display());
            }
        }
        for ns in self
            .namespaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            if Path::new("/run/netns").join(&ns).exists() {
                cmd::cleanup(&["netns", "del", &ns]);
            }
        }
        unmount_below(self.dir.path());
    }
}

/// Lazily unmounts whatever podman left mounted below `dir` (deepest first),
/// so removing the temp dir cannot reach into a mounted file system.
fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        eprintln!("unmounting leftover podman mount {point}");
        let mut c = Command::new("umount");
        c.args(["-l", point]);
        if let Err(e) = cmd::run_timeout(&mut c, cmd::DEFAULT_TIMEOUT) {
            eprintln!("umount {point}: {e}");
        }
    }
}

fn mkdir(path: &Path) {
    std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
