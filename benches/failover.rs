//! How long a standby takes to lead after the leader is killed.
//!
//! `cargo bench --bench failover` (or `-- --kills 10 --lease-seconds 3`)
//!
//! Two real `miulink` binaries on one real PostgreSQL (started here, as
//! the tests start it: `tests/common/postgres.rs`). Each round: the leader
//! is killed with SIGKILL while a station waits, and the clock runs from
//! the kill until the standby's `/healthz` says `"role": "leader"` and a
//! station reconnecting to it gets its waiting request back. The killed
//! instance is started again and stands by; the next round kills whichever
//! instance leads.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use common::postgres::Cluster;
use common::{msg, try_connect_at, BinaryServer};
use miulink::store::{AccountFlags, NewUser, Store};
use signalling::{Role, Urgency};
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

#[tokio::main]
async fn main() {
    let kills: usize = arg("--kills").and_then(|n| n.parse().ok()).unwrap_or(10);
    let lease = arg("--lease-seconds").unwrap_or_else(|| "3".into());
    let url = Cluster::shared().fresh_database().await;
    let store = Store::open(&url).await.expect("database");
    store
        .create_user(NewUser {
            username: "room1",
            display_name: "Room 1",
            role: Role::Station,
            site: None,
            password_hash: common::password_hash(),
            flags: AccountFlags::default(),
            must_change_password: false,
            now: 0,
        })
        .await
        .expect("user");
    store.close().await;
    let args = ["--lease-seconds", lease.as_str()];
    let mut servers = [
        BinaryServer::on(&url, &args).await,
        BinaryServer::on(&url, &args).await,
    ];
    let token = common::login_at(&servers[0].base, "room1").await;
    let mut times = Vec::new();
    for round in 0..kills {
        // Whoever leads now.
        let leader = loop {
            let mut found = None;
            for (i, s) in servers.iter().enumerate() {
                if s.health().await.1["role"] == "leader" {
                    found = Some(i);
                }
            }
            if let Some(i) = found {
                break i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let standby = 1 - leader;
        let ports = [servers[0].port(), servers[1].port()];
        let ws = |i: usize| format!("ws://127.0.0.1:{}/ws", ports[i]);
        let mut station = try_connect_at(&ws(leader), &token)
            .await
            .expect("station connects");
        if round == 0 {
            station
                .send(msg::request(Urgency::Urgent, "Failover bench"))
                .await;
        }
        let waiting = station
            .expect_where("request_update", |v| v["state"] == "waiting")
            .await;
        station.sync().await;
        servers[leader].kill_9();
        let killed = Instant::now();
        let led = loop {
            if servers[standby].health().await.1["role"] == "leader" {
                break killed.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut again = loop {
            if let Some(c) = try_connect_at(&ws(standby), &token).await {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let back = again.expect("request_update").await;
        let resumed = killed.elapsed();
        assert_eq!(
            back["request_id"], waiting["request_id"],
            "the same request"
        );
        println!(
            "kill {}: standby led after {:.2} s, station resumed after {:.2} s",
            round + 1,
            led.as_secs_f64(),
            resumed.as_secs_f64()
        );
        times.push((led, resumed));
        drop(station);
        drop(again);
        servers[leader].restart_any().await;
    }
    let mut led: Vec<f64> = times.iter().map(|t| t.0.as_secs_f64()).collect();
    let mut resumed: Vec<f64> = times.iter().map(|t| t.1.as_secs_f64()).collect();
    led.sort_by(f64::total_cmp);
    resumed.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v[v.len() / 2];
    println!(
        "\n{kills} kills, lease {lease} s: led after median {:.2} s, max {:.2} s; \
         station resumed after median {:.2} s, max {:.2} s",
        median(&led),
        led[led.len() - 1],
        median(&resumed),
        resumed[resumed.len() - 1]
    );
}
