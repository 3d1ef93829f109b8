//! What a first start does so that a newcomer can log in.
//!
//! * With `--demo`: clearly marked demo accounts, password `demo`, printed.
//! * Otherwise, on an empty database: one `admin` account with a random
//!   password printed once on standard output. There is never a fixed
//!   default password outside demo mode.

use crate::auth;
use crate::store::{AccountFlags, NewUser, Store};
use signalling::Role;

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

pub async fn first_start(store: &Store, demo: bool, now: i64) -> anyhow::Result<()> {
    if demo {
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
