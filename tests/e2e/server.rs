//! The MIU Link server on port 0 with a fresh database, serving the
//! browser client built into the binary (the same shape as
//! `tests/api/helpers.rs`).

#![allow(dead_code)]

use miulink::store::{AccountFlags, NewUser, Store};
use miulink::{Application, Settings};
use serde_json::{json, Value};
use signalling::Role;
use std::sync::OnceLock;

pub const PASSWORD: &str = "test-password-123";

fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| miulink::auth::hash_password(PASSWORD).expect("hash"))
}

pub struct Server {
    pub base: String,
    pub store: Store,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    pub async fn start(adjust: impl FnOnce(&mut Settings)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("miulink.db");
        let mut settings = Settings::for_tests(format!("sqlite://{}", db.display()));
        adjust(&mut settings);
        let app = Application::build(settings).await.expect("app builds");
        let port = app.port();
        let store = app.state().store.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Server {
            base: format!("http://127.0.0.1:{port}"),
            store,
            _dir: dir,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn add_user(
        &self,
        username: &str,
        display_name: &str,
        role: Role,
        site: Option<&str>,
    ) {
        self.store
            .create_user(NewUser {
                username,
                display_name,
                role,
                site,
                password_hash: password_hash(),
                flags: AccountFlags::default(),
                now: 0,
            })
            .await
            .expect("user created");
    }

    /// A session token for this account (the API's Bearer login).
    pub async fn token(&self, username: &str) -> String {
        let res = reqwest::Client::new()
            .post(self.url("/api/login"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .expect("login request");
        assert_eq!(res.status(), 200, "login of {username}");
        let body: Value = res.json().await.expect("login json");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let res = reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.expect("json")
    }

    /// The session log as a manager reads it.
    pub async fn consults(&self) -> Value {
        if self
            .store
            .user_by_username("e2e-manager")
            .await
            .expect("db")
            .is_none()
        {
            self.add_user("e2e-manager", "Manager", Role::Manager, None)
                .await;
        }
        let token = self.token("e2e-manager").await;
        self.get_json("/api/consults", &token).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
