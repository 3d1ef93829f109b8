//! A real HAProxy in front of MIU Link instances, as `deploy/haproxy.cfg`
//! sets it up: it health-checks `/healthz` and sends traffic only to the
//! instance that answers 200 (the leader). Started on a free loopback port
//! from a configuration in a temporary directory; killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Haproxy {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// HAProxy over the instances listening on `backends` (loopback ports).
    pub async fn start(backends: &[u16]) -> Haproxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, p)| format!("    server miulink{i} 127.0.0.1:{p} check\n"))
            .collect();
        // The checks are quicker than deploy/haproxy.cfg's so that a test
        // sees the switch at once; everything else is the same.
        let config = format!(
            "global\n    maxconn 2000\n\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    \
             timeout server 60s\n    timeout tunnel 1h\n    timeout http-request 10s\n\n\
             frontend miulink\n    bind 127.0.0.1:{port}\n    default_backend instances\n\n\
             backend instances\n    option httpchk GET /healthz\n    http-check expect status 200\n    \
             default-server inter 250ms fall 1 rise 1 on-marked-down shutdown-sessions\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy is installed (scripts/setup.sh installs it)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let proxy = Haproxy {
            port,
            child,
            _dir: dir,
        };
        proxy.settle().await;
        proxy
    }

    /// Until its first health checks are done, HAProxy counts every server
    /// as up: wait until the leader alone answers, several times running.
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let client = reqwest::Client::new();
        let mut in_a_row = 0;
        for _ in 0..200 {
            let ok = client
                .get(format!("{}/healthz", self.base()))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            in_a_row = if ok { in_a_row + 1 } else { 0 };
            if in_a_row >= 6 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("HAProxy on port {} found no healthy instance", self.port);
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
