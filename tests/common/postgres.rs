//! A real PostgreSQL for the tests: `initdb` and `pg_ctl` in a temporary
//! directory, as the `postgres` user when the tests run as root, on a free
//! loopback port. One cluster per test process, started on first use; each
//! test gets a database of its own in it. A watchdog process stops the
//! cluster and removes its directory when the test process ends, however
//! it ends (even `kill -9`), so nothing is left running.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Which backend the tests' servers use: `MIULINK_TEST_BACKEND=postgres`
/// runs them on PostgreSQL, anything else (or nothing) on SQLite.
pub fn backend_is_postgres() -> bool {
    std::env::var("MIULINK_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A database URL for a fresh, empty database on the backend the tests
/// run on: a new PostgreSQL database, or a SQLite file in `dir`.
pub async fn fresh_database_url(dir: &Path) -> String {
    if backend_is_postgres() {
        Cluster::shared().fresh_database().await
    } else {
        format!("sqlite://{}", dir.join("miulink.db").display())
    }
}

pub struct Cluster {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
}

/// The directory holding `initdb` and `pg_ctl`: on the PATH, or Debian's
/// versioned directory (the newest there).
fn pg_bin_dir() -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return dir;
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL is not installed (no initdb on the PATH or in /usr/lib/postgresql/*/bin): \
         run scripts/setup.sh",
    )
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command for a PostgreSQL program, run as `postgres` when we are root
/// (PostgreSQL refuses to run as root).
fn pg_command(bin: &Path, program: &str) -> Command {
    let path = bin.join(program);
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Cluster {
    /// The test process's cluster, started on first use.
    pub fn shared() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(Cluster::start)
    }

    fn start() -> Cluster {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("miulink-pg-")
            .tempdir_in("/tmp")
            .expect("temp dir")
            .keep();
        let data = dir.join("data");
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(status.success(), "cannot give {dir:?} to the postgres user");
        }
        let out = pg_command(&bin, "initdb")
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        // Loopback only, the socket in our directory, and no flush to disk:
        // the tests kill MIU Link, never this PostgreSQL.
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c full_page_writes=off \
             -c max_connections=300",
            dir.display()
        );
        let out = pg_command(&bin, "pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.join("postgres.log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "PostgreSQL did not start: {} (log in {})",
            String::from_utf8_lossy(&out.stderr),
            dir.join("postgres.log").display()
        );
        // The watchdog: when this process is gone, stop the cluster and
        // remove its directory.
        let runas = if running_as_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let stop_line = format!(
            "{runas}{} -D {} -m immediate stop",
            bin.join("pg_ctl").display(),
            data.display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop_line} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = dir.display()
        );
        // Never waited for on purpose: it outlives this process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("watchdog starts");
        Cluster { port, bin, dir }
    }

    /// The URL of a database on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub async fn fresh_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!(
            "miulink_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.create_database(&name).await;
        self.url(&name)
    }

    pub async fn create_database(&self, name: &str) {
        use sqlx::Connection;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut admin = loop {
            match sqlx::PgConnection::connect(&self.url("postgres")).await {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!(
                    "cannot reach the test PostgreSQL on port {}: {e}",
                    self.port
                ),
            }
        };
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        let _ = admin.close().await;
    }

    /// Where the cluster keeps its files and its log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of the PostgreSQL programs this cluster runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }
}
