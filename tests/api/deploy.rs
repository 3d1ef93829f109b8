//! What deploy/ gives a trust's IT team, checked with the real tools: the
//! Prometheus alert rules load and fire when they should (`promtool test
//! rules`), and a scrape of a running server is valid exposition that
//! `promtool` accepts.

use crate::helpers::*;
use signalling::{Role, Urgency};
use std::path::Path;
use std::process::Command;

fn promtool() -> Command {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("promtool").is_file()));
    assert!(
        found,
        "promtool is not installed: run scripts/setup.sh (installs Debian's prometheus)"
    );
    Command::new("promtool")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_load_and_fire_when_they_should() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let said = run(promtool()
        .current_dir(&dir)
        .args(["check", "rules", "miulink-alerts.yml"]));
    assert!(said.contains("SUCCESS"), "{said}");
    // Each alert fires when it should and not before (the test file).
    run(promtool()
        .current_dir(&dir)
        .args(["test", "rules", "miulink-alerts.test.yml"]));
    run(promtool()
        .current_dir(&dir)
        .args(["check", "config", "--syntax-only", "prometheus.yml"]));
}

#[tokio::test]
async fn a_scrape_during_a_consult_is_what_prometheus_reads() {
    let app = TestApp::spawn_with(|s| s.metrics_listen = Some("127.0.0.1:0".into())).await;
    let mut station = app.user("room1", "Millom Room 1", Role::Station).await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    doc.expect("queue").await;
    station
        .send(msg::request(Urgency::Immediate, "Chest pain"))
        .await;
    let waiting = station
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    doc.send(msg::accept(&waiting["request_id"])).await;
    doc.expect("call_start").await;
    let at = app.metrics.expect("metrics listener");
    let text = reqwest::get(format!("http://{at}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut child = promtool()
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n{text}"
    );
}
