//! The Debian package a trust installs (`cargo deb`, configured in
//! Cargo.toml's `[package.metadata.deb]`): built from the binary this
//! suite already has, then taken apart with `dpkg-deb`, and its
//! maintainer scripts run against stand-ins for the system's commands.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(cmd: &mut Command) -> String {
    let out: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo deb` refuses the dev profile, and a release build is many
/// minutes of compiling; `--no-build` packages whatever is at
/// `$CARGO_TARGET_DIR/release/miulink`, so the test binary goes there
/// (without its debug info: a quarter of the size, and quick to compress).
fn build_package(dir: &Path) -> PathBuf {
    let installed = cargo()
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "cargo-deb is not installed: run scripts/setup.sh \
         (cargo install cargo-deb --locked --version 3.8.0)"
    );
    fs::create_dir(dir.join("release")).unwrap();
    let bin = dir.join("release/miulink");
    let stripped = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(env!("CARGO_BIN_EXE_miulink"))
        .arg(&bin)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        fs::copy(env!("CARGO_BIN_EXE_miulink"), &bin).unwrap();
    }
    let deb = dir.join("miulink.deb");
    run(cargo()
        .args(["deb", "--no-build", "--no-strip", "--fast", "--output"])
        .arg(&deb)
        .env("CARGO_TARGET_DIR", dir)
        .current_dir(ROOT));
    deb
}

/// `dpkg-deb --contents`: path -> (mode, owner).
fn contents(deb: &Path) -> BTreeMap<String, (String, String)> {
    run(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f[5].to_owned(), (f[0].to_owned(), f[1].to_owned()))
        })
        .collect()
}

fn field(deb: &Path, name: &str) -> String {
    run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
        .trim()
        .to_owned()
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l.trim() == line)
}

/// A shell script without its comments.
fn code(script: &str) -> String {
    script
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn sh_syntax_ok(script: &Path) {
    run(Command::new("sh").arg("-n").arg(script));
}

/// Stand-ins for the commands the maintainer scripts may call: each logs
/// its arguments. `getent` knows the accounts that `addgroup`/`adduser`
/// made; `deb-systemd-helper` says no to every question (never enabled);
/// `dpkg-statoverride` knows no overrides. A script run with only these
/// on its PATH fails if it calls anything else (say `rm` or `deluser`).
fn stub_commands(dir: &Path) -> PathBuf {
    let bin = dir.join("stubs");
    fs::create_dir(&bin).unwrap();
    let log = r#"PATH=/usr/bin:/bin; echo "$(basename "$0") $*" >>"$STUB_LOG""#;
    let stubs = [
        (
            "getent",
            r#"grep -qx "$1 $2" "$STUB_STATE" 2>/dev/null || exit 2"#,
        ),
        ("addgroup", r#"echo "group $3" >>"$STUB_STATE""#),
        (
            "adduser",
            r#"for a; do u=$a; done; echo "passwd $u" >>"$STUB_STATE""#,
        ),
        ("install", ""),
        ("chown", ""),
        ("chmod", ""),
        ("dpkg-statoverride", "exit 1"),
        ("deb-systemd-helper", "exit 1"),
        ("deb-systemd-invoke", ""),
        ("systemctl", ""),
    ];
    for (name, body) in stubs {
        let path = bin.join(name);
        fs::write(&path, format!("#!/bin/sh\n{log}\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// Runs a maintainer script as dpkg would, with only the stand-ins on
/// the PATH; returns what they logged.
fn run_script(script: &Path, stubs: &Path, args: &[&str]) -> String {
    let log = stubs.with_file_name("calls.log");
    let _ = fs::remove_file(&log);
    run(Command::new("/bin/sh")
        .arg(script)
        .args(args)
        .env_clear()
        .env("PATH", stubs)
        .env("STUB_LOG", &log)
        .env("STUB_STATE", stubs.with_file_name("accounts")));
    fs::read_to_string(&log).unwrap_or_default()
}

fn assert_never_starts_or_enables(calls: &str) {
    for call in calls.lines() {
        assert!(
            !call.starts_with("deb-systemd-invoke start")
                && !call.starts_with("deb-systemd-helper enable")
                && !call.starts_with("systemctl start")
                && !call.starts_with("systemctl enable"),
            "the service must not be enabled or started by installing: {call}\n{calls}"
        );
    }
}

#[test]
fn the_debian_package_installs_the_service_without_starting_it() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build_package(dir.path());

    // The control file.
    assert_eq!(field(&deb, "Package"), "miulink");
    assert!(
        field(&deb, "Version").starts_with(env!("CARGO_PKG_VERSION")),
        "{}",
        field(&deb, "Version")
    );
    let depends = field(&deb, "Depends");
    // adduser for postinst, procps for the unit's /bin/kill (ExecReload).
    for needed in ["adduser", "procps"] {
        assert!(
            depends.split(", ").any(|d| d == needed),
            "Depends lacks {needed}: {depends}"
        );
    }
    if Command::new("dpkg-shlibdeps")
        .arg("--version")
        .output()
        .is_ok()
    {
        assert!(depends.contains("libc6"), "$auto: {depends}");
    }
    assert!(!field(&deb, "Maintainer").is_empty());
    let description = field(&deb, "Description");
    assert!(
        description.contains("Minor Injuries Unit") && description.contains("A&E"),
        "{description}"
    );

    // What it installs, owned by root, with these modes.
    let files = contents(&deb);
    let expect = [
        ("./usr/bin/miulink", "-rwxr-xr-x"),
        ("./usr/lib/systemd/system/miulink.service", "-rw-r--r--"),
        ("./etc/miulink.env", "-rw-r-----"),
        ("./usr/share/doc/miulink/README.md", "-rw-r--r--"),
        ("./usr/share/doc/miulink/DEPLOYING.md", "-rw-r--r--"),
        ("./usr/share/doc/miulink/copyright", "-rw-r--r--"),
        (
            "./usr/share/doc/miulink/examples/turnserver.conf",
            "-rw-r--r--",
        ),
        ("./usr/share/doc/miulink/examples/haproxy.cfg", "-rw-r--r--"),
        (
            "./usr/share/doc/miulink/examples/nginx-miulink.conf",
            "-rw-r--r--",
        ),
        (
            "./usr/share/doc/miulink/examples/miulink-postgres.env",
            "-rw-r--r--",
        ),
        (
            "./usr/share/doc/miulink/examples/miulink-backup.timer",
            "-rw-r--r--",
        ),
        (
            "./usr/share/doc/miulink/examples/miulink-probe.timer",
            "-rw-r--r--",
        ),
        (
            "./usr/share/doc/miulink/examples/prometheus/miulink-alerts.yml",
            "-rw-r--r--",
        ),
    ];
    for (path, mode) in expect {
        let got = files.get(path);
        assert_eq!(
            got.map(|(m, _)| m.as_str()),
            Some(mode),
            "{path} in {files:#?}"
        );
    }
    for (path, (_, owner)) in &files {
        assert_eq!(owner, "0/0", "{path}");
        // postinst makes the data directory; the package must not own it,
        // or removing the package would try to remove the database's home.
        assert!(!path.starts_with("./var/"), "{path}");
    }

    // The files as installed are the ones in deploy/, and the binary runs.
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let version = run(Command::new(root.join("usr/bin/miulink")).arg("--version"));
    assert!(version.starts_with("miulink "), "{version}");
    let unit = fs::read_to_string(root.join("usr/lib/systemd/system/miulink.service")).unwrap();
    assert_eq!(
        unit,
        fs::read_to_string(Path::new(ROOT).join("deploy/miulink.service")).unwrap()
    );
    for line in [
        "User=miulink",
        "Group=miulink",
        "EnvironmentFile=/etc/miulink.env",
        "ExecStart=/usr/bin/miulink serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=always",
        "UMask=0077",
        "StateDirectory=miulink",
        "StateDirectoryMode=0700",
        "ReadWritePaths=/var/lib/miulink",
        "NoNewPrivileges=true",
        "ProtectSystem=strict",
        "ProtectHome=true",
        "PrivateTmp=true",
        "MemoryDenyWriteExecute=true",
    ] {
        assert!(has_line(&unit, line), "miulink.service lacks {line}");
    }
    let env = fs::read_to_string(root.join("etc/miulink.env")).unwrap();
    assert_eq!(
        env,
        fs::read_to_string(Path::new(ROOT).join("deploy/miulink.env")).unwrap()
    );
    for line in [
        "MIULINK_DATABASE_URL=sqlite:///var/lib/miulink/miulink.db",
        "MIULINK_DATA_DIR=/var/lib/miulink",
    ] {
        assert!(has_line(&env, line), "miulink.env lacks {line}");
    }
    for name in [
        "MIULINK_TLS_CERT",
        "MIULINK_TLS_KEY",
        "MIULINK_REDIRECT_HTTP",
        "MIULINK_METRICS_LISTEN",
        "MIULINK_RETENTION_DAYS",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(&format!("#{name}="))),
            "miulink.env has no commented example of {name}"
        );
    }

    // The control archive: the conffile and the maintainer scripts.
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    assert_eq!(
        fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/miulink.env\n"
    );
    for name in ["postinst", "prerm", "postrm"] {
        let script = control.join(name);
        let mode = fs::metadata(&script).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{name}");
        sh_syntax_ok(&script);
        let text = fs::read_to_string(&script).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{name}");
        assert!(has_line(&text, "set -e"), "{name}");
        assert!(!text.contains("#DEBHELPER#"), "{name}");
    }
    // cargo-deb replaces every #DEBHELPER#, comments included: exactly one
    // in each script of ours, or its systemd part lands twice.
    for name in ["postinst", "postrm"] {
        let source = Path::new(ROOT).join("deploy/debian").join(name);
        sh_syntax_ok(&source);
        let text = fs::read_to_string(&source).unwrap();
        assert_eq!(text.matches("#DEBHELPER#").count(), 1, "{name}");
    }
    let postinst = fs::read_to_string(control.join("postinst")).unwrap();
    assert_eq!(postinst.matches("adduser --system").count(), 1);
    assert!(postinst.contains("install -d -o miulink -g miulink -m 0700 /var/lib/miulink"));
    // The systemd part cargo-deb adds: enable only what the admin had
    // enabled, and on an upgrade restart only a running service.
    assert!(postinst.contains("deb-systemd-helper debian-installed miulink.service"));
    assert!(postinst.contains("deb-systemd-invoke try-restart miulink.service"));
    for never in [
        "deb-systemd-invoke start",
        "_dh_action=start",
        "systemctl start",
        "systemctl enable",
    ] {
        assert!(!code(&postinst).contains(never), "postinst: {never}");
    }
    let prerm = fs::read_to_string(control.join("prerm")).unwrap();
    assert!(prerm.contains("deb-systemd-invoke stop miulink.service"));
    let postrm = fs::read_to_string(control.join("postrm")).unwrap();
    for never in ["rm -", "deluser", "delgroup", "userdel", "groupdel"] {
        assert!(
            !code(&postrm).contains(never),
            "postrm must keep data and user: {never}"
        );
    }

    // Run them. A first install makes the group, the user and the private
    // data directory, and fixes the config file's owner; running it again
    // (a reconfigure, an upgrade) makes no second user; neither enables or
    // starts anything.
    let stubs = stub_commands(dir.path());
    let postinst = control.join("postinst");
    let first = run_script(&postinst, &stubs, &["configure"]);
    for call in [
        "addgroup --system --quiet miulink",
        "adduser --system --quiet --ingroup miulink --home /var/lib/miulink \
         --no-create-home --shell /usr/sbin/nologin miulink",
        "install -d -o miulink -g miulink -m 0700 /var/lib/miulink",
    ] {
        assert!(has_line(&first, call), "no `{call}` in:\n{first}");
    }
    assert_never_starts_or_enables(&first);
    let again = run_script(&postinst, &stubs, &["configure", "0.1.0-1"]);
    assert!(
        !again.contains("addgroup") && !again.contains("adduser"),
        "{again}"
    );
    assert!(has_line(
        &again,
        "install -d -o miulink -g miulink -m 0700 /var/lib/miulink"
    ));
    assert_never_starts_or_enables(&again);

    // Removing and purging run with nothing but the stand-ins: no rm or
    // deluser on the PATH, so the data and the user stay (calling one
    // would fail the script).
    run_script(&control.join("prerm"), &stubs, &["remove"]);
    for action in ["remove", "purge"] {
        run_script(&control.join("postrm"), &stubs, &[action]);
    }
}
