//! What a first start does so that a newcomer can log in.
//!
//! * With `--demo`: clearly marked demo accounts, password `demo`, printed.
//! * Otherwise, on an empty database: one `admin` account with a random
//!   password printed once on standard output. There is never a fixed
//!   default password outside demo mode.

use crate::auth;
use crate::store::{NewUser, Store};
use signalling::Role;

pub const DEMO_PASSWORD: &str = "demo";

/// (username, display name, role, site)
pub const DEMO_ACCOUNTS: &[(&str, &str, Role, Option<&str>)] = &[
    (
        "millom-room1",
        "Millom MIU Room 1",
        Role::Station,
        Some("Millom"),
    ),
    (
        "millom-room2",
        "Millom MIU Room 2",
        Role::Station,
        Some("Millom"),
    ),
    (
        "dr-patel",
        "Dr Asha Patel (demo)",
        Role::Clinician,
        Some("Furness General"),
    ),
    (
        "dr-jones",
        "Dr Owen Jones (demo)",
        Role::Clinician,
        Some("Furness General"),
    ),
    ("manager", "Service Manager (demo)", Role::Manager, None),
    ("admin", "Administrator (demo)", Role::Admin, None),
];

pub async fn first_start(store: &Store, demo: bool, now: i64) -> anyhow::Result<()> {
    if demo {
        let hash = auth::hash_password(DEMO_PASSWORD).map_err(anyhow::Error::msg)?;
        let mut created = Vec::new();
        for (username, name, role, site) in DEMO_ACCOUNTS {
            if store.user_by_username(username).await?.is_some() {
                continue;
            }
            store
                .create_user(NewUser {
                    username,
                    display_name: name,
                    role: *role,
                    site: *site,
                    password_hash: &hash,
                    demo: true,
                    now,
                })
                .await?;
            created.push(*username);
        }
        println!("==================================================================");
        println!(
            " MIU Link DEMO MODE: demo accounts, password \"{DEMO_PASSWORD}\" (not for patients)"
        );
        for (username, name, role, _) in DEMO_ACCOUNTS {
            println!("   {username:<14} {:<10} {name}", role.as_str());
        }
        println!("==================================================================");
        if !created.is_empty() {
            tracing::warn!(accounts = ?created, "created demo accounts");
        }
        return Ok(());
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
                demo: false,
                now,
            })
            .await?;
        // On standard output only, never in the structured log.
        println!("==================================================================");
        println!(" First start: created account \"admin\" with password");
        println!("     {password}");
        println!(" It is shown once. Create accounts with `miulink user add`.");
        println!("==================================================================");
        tracing::warn!("first start: created the admin account (password printed on stdout)");
    }
    Ok(())
}
