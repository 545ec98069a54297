//! The S3 target against a real S3-compatible server: Garage (`cargo install --locked garage`,
//! installed by `.ci/run` when missing), started here in single-node mode on free loopback
//! ports with a temporary directory, and stopped at the end.
//!
//! The binary is `$GARAGE_BIN`, else `garage` on `PATH`, else `~/.cargo/bin/garage`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{build_store, cheap_keys, dump, passphrase};
use tresor_backend::MemoryBackend;
use tresor_backup::target::{BackupTarget, DirTarget, ErasureTarget, S3Target};
use tresor_backup::{BackupOptions, NoProgress, Repository, RetentionPolicy};
use tresor_crypto::KeyHeader;

const KEY_ID: &str = "GK0123456789abcdef01234567";
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const BUCKET: &str = "tresor-test";

/// The Garage binary, when the S3 tests are asked for. They run only with `TRESOR_S3_TESTS=1`
/// (and a `garage` binary on PATH, in ~/.cargo/bin, or in `GARAGE_BIN`): the Garage CLI steps
/// below have not yet been run against a real Garage on this project's machines, so they are
/// kept out of the default run and CI until they have; otherwise the test prints why it did
/// not run.
fn garage_bin() -> Option<PathBuf> {
    if std::env::var_os("TRESOR_S3_TESTS").is_none() {
        println!("SKIPPED: S3 tests run with TRESOR_S3_TESTS=1 and a garage binary");
        return None;
    }
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
    if candidate.is_file() {
        return Some(candidate);
    }
    panic!("TRESOR_S3_TESTS is set but there is no garage binary: cargo install --locked garage");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A single-node Garage in a temporary directory; killed on drop.
struct Garage {
    child: Child,
    bin: PathBuf,
    config: PathBuf,
    s3_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Garage {
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "garage {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start(bin: PathBuf) -> Garage {
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
        let garage = Garage {
            child,
            bin,
            config,
            s3_port: s3,
            _dir: dir,
        };
        // Wait for the node, then give it a layout, a bucket and a key.
        let started = Instant::now();
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
        garage
    }

    fn target(&self, prefix: &str) -> S3Target {
        S3Target::with_credentials(
            BUCKET,
            prefix,
            &format!("http://127.0.0.1:{}", self.s3_port),
            "garage",
            KEY_ID,
            SECRET,
        )
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_on_a_real_s3_server() {
    let Some(bin) = garage_bin() else {
        return;
    };
    let garage = tokio::task::spawn_blocking(move || Garage::start(bin))
        .await
        .unwrap();

    // The target contract: put, get, list by prefix, delete.
    let t = garage.target("contract");
    assert_eq!(t.get("config").await.unwrap(), None);
    t.put("chunks/b", b"2".to_vec()).await.unwrap();
    t.put("chunks/a", b"1".to_vec()).await.unwrap();
    t.put("config", b"c".to_vec()).await.unwrap();
    assert_eq!(t.get("chunks/a").await.unwrap().unwrap(), b"1");
    let names: Vec<String> = t
        .list("chunks/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["chunks/a", "chunks/b"]);
    assert_eq!(t.list("conf").await.unwrap().len(), 1);
    t.delete("chunks/a").await.unwrap();
    t.delete("chunks/a").await.unwrap();
    assert_eq!(t.list("chunks/").await.unwrap().len(), 1);
    assert_eq!(t.describe(), format!("s3://{BUCKET}/contract"));

    // A repository: two backups, list, verify, restore on a "new device", forget, prune.
    let k = cheap_keys();
    let keys = Arc::new(
        KeyHeader::decode(&k.key_header)
            .unwrap()
            .unlock(&passphrase())
            .unwrap()
            .store_keys(),
    );
    let a = build_store(&k, 200, 60).await;
    let b = build_store(&k, 202, 60).await;
    let target: Arc<dyn BackupTarget> = Arc::new(garage.target("repo"));
    let repo = Repository::open_or_init(Arc::clone(&target), keys, &k.key_header)
        .await
        .unwrap();
    repo.backup(&a, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    let second = repo
        .backup(&b, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(second.info.added_chunks < second.info.chunks);
    let fresh = Repository::open(Arc::new(garage.target("repo")), &passphrase())
        .await
        .unwrap();
    assert_eq!(fresh.list().await.unwrap().len(), 2);
    fresh.verify(None, None, &NoProgress).await.unwrap();
    let restored = MemoryBackend::new();
    fresh
        .restore("latest", &restored, &NoProgress)
        .await
        .unwrap();
    assert_eq!(dump(&restored, &k.keys).await, dump(&b, &k.keys).await);
    fresh
        .forget(&RetentionPolicy::keep_last(1), false)
        .await
        .unwrap();
    let pruned = fresh.prune().await.unwrap();
    assert_eq!(pruned.backups, 1);
    fresh.verify(None, None, &NoProgress).await.unwrap();

    // An erasure-coded set mixing S3 prefixes and a directory: survives losing one.
    let dir = tempfile::tempdir().unwrap();
    let members: Vec<Arc<dyn BackupTarget>> = vec![
        Arc::new(garage.target("ec0")),
        Arc::new(garage.target("ec1")),
        Arc::new(DirTarget::new(dir.path().join("ec2"))),
    ];
    let ec: Arc<dyn BackupTarget> = Arc::new(ErasureTarget::new(2, 1, members).unwrap());
    let keys = Arc::new(
        KeyHeader::decode(&k.key_header)
            .unwrap()
            .unlock(&passphrase())
            .unwrap()
            .store_keys(),
    );
    let repo = Repository::open_or_init(Arc::clone(&ec), keys, &k.key_header)
        .await
        .unwrap();
    repo.backup(&a, &BackupOptions::default(), &NoProgress)
        .await
        .unwrap();
    std::fs::remove_dir_all(dir.path().join("ec2")).unwrap();
    let restored = MemoryBackend::new();
    Repository::open(ec, &passphrase())
        .await
        .unwrap()
        .restore("latest", &restored, &NoProgress)
        .await
        .unwrap();
    assert_eq!(dump(&restored, &k.keys).await, dump(&a, &k.keys).await);
    drop(garage);
}
