//! The command line: accounts, and a first start that leaves a newcomer
//! able to log in.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn miulink(db: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_miulink"))
        .arg("--database")
        .arg(db)
        .args(args)
        .env("MIULINK_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run miulink");
    if let Some(input) = stdin {
        // The command may refuse and exit before reading; that is its answer.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn accounts_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let (ok, out, err) = miulink(
        &db,
        &[
            "user",
            "add",
            "--username",
            "millom-room2",
            "--display-name",
            "Millom MIU Room 2",
            "--role",
            "station",
            "--site",
            "Millom",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("created station account"), "{out}");
    let (ok, _, err) = miulink(
        &db,
        &[
            "user",
            "add",
            "--username",
            "millom-room2",
            "--display-name",
            "X",
            "--role",
            "station",
            "--site",
            "Millom",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
    let (ok, _, err) = miulink(
        &db,
        &[
            "user",
            "add",
            "--username",
            "room9",
            "--display-name",
            "X",
            "--role",
            "station",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("--site"), "a station needs a site: {err}");
    let (ok, _, err) = miulink(
        &db,
        &[
            "user",
            "add",
            "--username",
            "dr-a",
            "--display-name",
            "Dr A",
            "--role",
            "clinician",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!ok);
    assert!(err.contains("at least"), "{err}");
    let (ok, out, _) = miulink(
        &db,
        &[
            "user",
            "add",
            "--username",
            "nic",
            "--display-name",
            "Nurse in charge",
            "--role",
            "clinician",
            "--escalation-duty",
        ],
        None,
    );
    assert!(ok);
    assert!(
        out.contains("password (shown once)"),
        "a generated password is printed: {out}"
    );
    let (ok, out, _) = miulink(
        &db,
        &["user", "disable", "--username", "millom-room2"],
        None,
    );
    assert!(ok, "{out}");
    let (_, out, _) = miulink(&db, &["user", "list", "--json"], None);
    let users: Value = serde_json::from_str(&out).unwrap();
    let room = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "millom-room2")
        .unwrap();
    assert_eq!(room["disabled"], true);
    assert_eq!(room["site"], "Millom");
    assert!(
        room.get("password_hash").is_none(),
        "hashes never leave the database"
    );
    let nic = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "nic")
        .unwrap();
    assert_eq!(nic["escalation_duty"], true);
    let (ok, _, err) = miulink(&db, &["user", "disable", "--username", "nobody"], None);
    assert!(!ok);
    assert!(err.contains("no account named"), "{err}");
}

/// Issue 10, finding 13: the first admin password goes to a file only its
/// owner can read (never standard output, the journal under systemd), and
/// must be changed at the first sign-in.
#[tokio::test]
async fn first_start_writes_a_one_time_admin_password_to_a_private_file_and_forces_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_miulink"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &db])
        .env("MIULINK_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = String::new();
    let mut address = None;
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(30)) {
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("MIU Link is running at ") {
            address = Some(rest.trim().trim_end_matches('/').to_owned());
            break;
        }
    }
    let address = address.expect("an address printed");
    let file = dir.path().join(miulink::bootstrap::ADMIN_PASSWORD_FILE);
    assert!(
        printed.contains(&file.display().to_string()),
        "the file's path is printed: {printed}"
    );
    let password = std::fs::read_to_string(&file)
        .expect("password file")
        .trim()
        .to_owned();
    assert!(password.len() >= 20, "a strong password");
    assert!(
        !printed.contains(&password),
        "the password is not on standard output: {printed}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only its owner can read it");

    let http = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let res = http
        .post(format!("{address}/api/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the password in the file logs in");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["must_change_password"], true);
    assert!(
        body.get("token").is_none(),
        "a browser login does not repeat the token"
    );
    let me = http.get(format!("{address}/api/me")).send().await.unwrap();
    assert_eq!(
        me.status(),
        403,
        "nothing else until the password is changed"
    );
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["error"], "password_change_required");
    let weak = http
        .post(format!("{address}/api/password"))
        .json(&json!({"current_password": password, "new_password": "password1234"}))
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), 400);
    let weak: Value = weak.json().await.unwrap();
    assert_eq!(weak["error"], "weak_password");
    let changed = http
        .post(format!("{address}/api/password"))
        .json(&json!({"current_password": password, "new_password": "heather bracken scree"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let me = http.get(format!("{address}/api/me")).send().await.unwrap();
    let status = me.status();
    let old = reqwest::Client::new()
        .post(format!("{address}/api/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap()
        .status();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "the same session carries on after the change");
    assert_eq!(old, 401, "the generated password no longer works");
}

/// Issue 12: an installation moves from SQLite to PostgreSQL with all of
/// its history; the target must be empty, and the moved one runs.
#[tokio::test]
async fn an_installation_moves_from_sqlite_to_postgres_whole() {
    use crate::helpers::postgres::Cluster;
    let dir = tempfile::tempdir().unwrap();
    let from = format!("sqlite://{}", dir.path().join("old.db").display());
    let (ok, _, err) = miulink(
        &from,
        &[
            "user",
            "add",
            "--username",
            "mgr",
            "--display-name",
            "Manager",
            "--role",
            "manager",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = miulink(&from, &["seed", "--consults", "700", "--days", "20"], None);
    assert!(ok, "{out}{err}");
    let to = Cluster::shared().fresh_database().await;
    let (ok, out, err) = miulink(&from, &["migrate-db", "--from", &from, "--to", &to], None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("row counts match"), "{out}");
    let old = miulink::store::Store::open(&from).await.unwrap();
    let new = miulink::store::Store::open(&to).await.unwrap();
    let counts = old.row_counts().await.unwrap();
    assert_eq!(counts, new.row_counts().await.unwrap());
    assert!(counts.contains(&("consults", 700)), "{counts:?}");
    assert_eq!(old.next_ids().await.unwrap(), new.next_ids().await.unwrap());
    let all = miulink::store::ConsultFilter {
        include_test_calls: true,
        ..Default::default()
    };
    assert_eq!(
        old.consults(&all).await.unwrap(),
        new.consults(&all).await.unwrap(),
        "every consult the same, field for field"
    );
    // New rows after the move take fresh ids (the identity counters moved).
    let id = new
        .create_user(miulink::store::NewUser {
            username: "room9",
            display_name: "Room 9",
            role: signalling::Role::Station,
            site: None,
            password_hash: "x",
            flags: Default::default(),
            must_change_password: false,
            now: 0,
        })
        .await
        .unwrap();
    assert!(old.user_by_username("mgr").await.unwrap().unwrap().id < id);
    old.close().await;
    new.close().await;
    // Never into a database that holds anything.
    let (ok, _, err) = miulink(&from, &["migrate-db", "--from", &from, "--to", &to], None);
    assert!(!ok);
    assert!(err.contains("not empty"), "{err}");
}
