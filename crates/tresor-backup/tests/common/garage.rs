//! A single-node Garage (S3-compatible server) for tests, started on free loopback ports in a
//! temporary directory and killed on drop. Shared by `tresor-backup`'s and `tresor-cli`'s S3
//! tests (included with `#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key id the tests import (Garage's format: `GK` and 24 hex digits).
pub const KEY_ID: &str = "GK0123456789abcdef01234567";
/// Its secret (64 hex digits; also the RPC secret).
pub const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The bucket the tests use.
pub const BUCKET: &str = "tresor-test";
/// The region Garage is configured with.
pub const REGION: &str = "garage";

/// The Garage binary: `$GARAGE_BIN`, else `garage` on `PATH`, else `~/.cargo/bin/garage`.
/// When none exists the S3 tests print why they did not run and pass, except with
/// `TRESOR_S3_TESTS=1` (set by `.ci/run`, which installs Garage), where a missing binary
/// fails the test.
pub fn garage_bin() -> Option<PathBuf> {
    let found = find_garage();
    if found.is_none() {
        assert!(
            std::env::var_os("TRESOR_S3_TESTS").is_none(),
            "TRESOR_S3_TESTS is set but there is no garage binary: cargo install --locked garage"
        );
        println!("SKIPPED: no garage binary (cargo install --locked garage, or GARAGE_BIN)");
    }
    found
}

fn find_garage() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("GARAGE_BIN") {
        return Some(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("garage");
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let candidate = Path::new(&home).join(".cargo/bin/garage");
    candidate.is_file().then_some(candidate)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A single-node Garage in a temporary directory; killed on drop.
pub struct Garage {
    child: Child,
    bin: PathBuf,
    config: PathBuf,
    s3_port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Garage {
    /// Runs a `garage` admin command, retrying for up to 60 s while the node is still
    /// coming up (its RPC port may refuse connections for a moment after the key file and
    /// the process exist), and panics with the command's output if it keeps failing.
    fn cli(&self, args: &[&str]) -> String {
        let started = Instant::now();
        loop {
            let out = Command::new(&self.bin)
                .arg("-c")
                .arg(&self.config)
                .args(args)
                .output()
                .unwrap();
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            let transient = stderr.contains("Connection refused")
                || stderr.contains("Unable to connect")
                || stderr.contains("Could not connect");
            assert!(
                transient && started.elapsed() < Duration::from_secs(60),
                "garage {}: {}{}\n(server log: {})",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                stderr,
                std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts a node on free loopback ports. The ports are found by binding port 0 and
    /// closing it, so another process may take one before Garage binds it; a server that
    /// exits during start-up is therefore started again on new ports (up to 5 times).
    pub fn start(bin: PathBuf) -> Garage {
        for attempt in 1.. {
            match Garage::try_start(bin.clone()) {
                Ok(garage) => return garage,
                Err(log) => assert!(attempt < 5, "garage exited during start-up: {log}"),
            }
        }
        unreachable!("the loop above returns or panics")
    }

    fn try_start(bin: PathBuf) -> Result<Garage, String> {
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{SECRET}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("garage.log")).unwrap();
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut garage = Garage {
            child,
            bin,
            config,
            s3_port: s3,
            dir,
        };
        // Wait for the node's RPC port, then give it a layout, a bucket and a key.
        let started = Instant::now();
        loop {
            if garage.child.try_wait().unwrap().is_some() {
                return Err(
                    std::fs::read_to_string(garage.dir.path().join("garage.log"))
                        .unwrap_or_default(),
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", rpc)).is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "garage did not listen on its RPC port within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let node = loop {
            let out = Command::new(&garage.bin)
                .arg("-c")
                .arg(&garage.config)
                .args(["node", "id", "-q"])
                .output()
                .unwrap();
            if out.status.success() {
                let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                break id.split('@').next().unwrap().to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "garage did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&["bucket", "create", BUCKET]);
        garage.cli(&["key", "import", "--yes", "-n", "tresor", KEY_ID, SECRET]);
        garage.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID,
        ]);
        while std::net::TcpStream::connect(("127.0.0.1", garage.s3_port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "garage did not listen on its S3 port within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(garage)
    }

    /// The S3 endpoint URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }
}
