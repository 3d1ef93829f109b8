//! What a first start does so that a newcomer can log in.
//!
//! * With `--demo`: clearly marked demo accounts, password `demo`, printed.
//! * Otherwise, on an empty database: one `admin` account with a random
//!   password printed once on standard output. There is never a fixed
//!   default password outside demo mode.

use crate::auth;
use crate::store::{AccountFlags, NewUser, Store};
use anyhow::Context;
use signalling::Role;
use std::path::{Path, PathBuf};

pub const DEMO_PASSWORD: &str = "demo";

pub struct DemoAccount {
    pub username: &'static str,
    pub display_name: &'static str,
    pub role: Role,
    pub site: Option<&'static str>,
    pub escalation_duty: bool,
}

const fn demo(
    username: &'static str,
    display_name: &'static str,
    role: Role,
    site: Option<&'static str>,
    escalation_duty: bool,
) -> DemoAccount {
    DemoAccount {
        username,
        display_name,
        role,
        site,
        escalation_duty,
    }
}

const MILLOM: Option<&str> = Some("Millom");
const FGH: Option<&str> = Some("Furness General");

pub const DEMO_ACCOUNTS: &[DemoAccount] = &[
    demo(
        "millom-room1",
        "Millom MIU Room 1",
        Role::Station,
        MILLOM,
        false,
    ),
    demo(
        "millom-room2",
        "Millom MIU Room 2",
        Role::Station,
        MILLOM,
        false,
    ),
    demo(
        "dr-patel",
        "Dr Asha Patel (demo)",
        Role::Clinician,
        FGH,
        false,
    ),
    demo(
        "dr-jones",
        "Dr Owen Jones (demo)",
        Role::Clinician,
        FGH,
        false,
    ),
    demo(
        "nic",
        "A&E Nurse in Charge (demo)",
        Role::Clinician,
        FGH,
        true,
    ),
    demo(
        "manager",
        "Service Manager (demo)",
        Role::Manager,
        None,
        false,
    ),
    demo("admin", "Administrator (demo)", Role::Admin, None, false),
];

/// The file the first admin password is written to, in the data directory.
pub const ADMIN_PASSWORD_FILE: &str = "initial-admin-password.txt";

pub async fn first_start(
    store: &Store,
    demo: bool,
    data_dir: &Path,
    now: i64,
) -> anyhow::Result<()> {
    if demo {
        // Demo accounts have a known password: never on a real database.
        let (accounts, consults) = store.real_content().await?;
        if accounts > 0 || consults > 0 {
            anyhow::bail!(
                "--demo refused: this database holds {accounts} real account(s) and {consults} real \
                 consult(s). Demo mode adds accounts with the password \"demo\"; run it only on a \
                 database of its own, e.g. --database sqlite://demo.db"
            );
        }
        store.enable_demo_accounts().await?;
        let hash = auth::hash_password(DEMO_PASSWORD).map_err(anyhow::Error::msg)?;
        let mut created = Vec::new();
        for a in DEMO_ACCOUNTS {
            if store.user_by_username(a.username).await?.is_some() {
                continue;
            }
            store
                .create_user(NewUser {
                    username: a.username,
                    display_name: a.display_name,
                    role: a.role,
                    site: a.site,
                    password_hash: &hash,
                    flags: AccountFlags {
                        demo: true,
                        escalation_duty: a.escalation_duty,
                        ..AccountFlags::default()
                    },
                    must_change_password: false,
                    now,
                })
                .await?;
            created.push(a.username);
        }
        println!("==================================================================");
        println!(
            " MIU Link DEMO MODE: demo accounts, password \"{DEMO_PASSWORD}\" (not for patients)"
        );
        for a in DEMO_ACCOUNTS {
            println!(
                "   {:<14} {:<10} {}",
                a.username,
                a.role.as_str(),
                a.display_name
            );
        }
        println!("==================================================================");
        if !created.is_empty() {
            tracing::warn!(accounts = ?created, "created demo accounts");
        }
        return Ok(());
    }
    let disabled = store.disable_demo_accounts().await?;
    if !disabled.is_empty() {
        println!(
            "Started without --demo: disabled the demo accounts of this database ({}); \
             they have a known password. Create real accounts with `miulink user add`.",
            disabled.join(", ")
        );
        tracing::warn!(accounts = ?disabled, "disabled demo accounts (started without --demo)");
    }
    if store.user_count().await? == 0 {
        let password = auth::random_password();
        let hash = auth::hash_password(&password).map_err(anyhow::Error::msg)?;
        store
            .create_user(NewUser {
                username: "admin",
                display_name: "Administrator",
                role: Role::Admin,
                site: None,
                password_hash: &hash,
                flags: AccountFlags::default(),
                must_change_password: false,
                now,
            })
            .await?;
        store.set_must_change_password("admin", true).await?;
        // In a file only its owner can read, never on standard output (the
        // journal, under systemd) nor in the log.
        let path = data_dir.join(ADMIN_PASSWORD_FILE);
        write_private(&path, &format!("{password}\n"))
            .with_context(|| format!("writing the first admin password to {}", path.display()))?;
        println!("==================================================================");
        println!(" First start: created the account \"admin\". Its one-time password is in");
        println!("     {}", path.display());
        println!(" (readable only by this user). Sign in with it and choose a new");
        println!(" password; then delete the file. Create accounts with `miulink user add`.");
        println!("==================================================================");
        tracing::warn!(file = %path.display(), "first start: created the admin account; its one-time password is in the file");
    }
    Ok(())
}

/// Where the database lives (a SQLite file's directory), else the current
/// directory.
pub fn data_dir(database_url: &str) -> PathBuf {
    let path = crate::store::sqlite_path(database_url);
    match path.as_deref().and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes a file readable and writable by its owner only (mode 0600),
/// replacing any earlier one.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_directory_is_the_database_file_s() {
        assert_eq!(
            data_dir("sqlite:///var/lib/miulink/miulink.db"),
            PathBuf::from("/var/lib/miulink")
        );
        assert_eq!(data_dir("sqlite://miulink.db"), PathBuf::from("."));
        assert_eq!(
            data_dir("sqlite://data/m.db?mode=rwc"),
            PathBuf::from("data")
        );
        assert_eq!(data_dir("sqlite::memory:"), PathBuf::from("."));
    }
}
