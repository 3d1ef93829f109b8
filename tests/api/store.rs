//! The store's contract, run against both backends in the same test: a
//! SQLite file and a real PostgreSQL (started by `tests/common/postgres.rs`).
//! Whatever a caller can observe must be the same on both.

use crate::helpers::postgres::Cluster;
use crate::helpers::*;
use miulink::store::{AccountFlags, Backend, ConsultFilter, NewUser, Store};
use signalling::{
    CallId, ConsultEvent, EndReason, Event, Outcome, Party, PresenceStatus, RequestId, RingTrigger,
    Role, Side, Urgency, UserId,
};

/// A fresh store on each backend, with the directory that keeps the
/// SQLite file alive.
async fn both() -> Vec<(Store, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::open(&format!("sqlite://{}", dir.path().join("m.db").display()))
        .await
        .unwrap();
    assert_eq!(sqlite.backend(), Backend::Sqlite);
    let pg = Store::open(&Cluster::shared().fresh_database().await)
        .await
        .unwrap();
    assert_eq!(pg.backend(), Backend::Postgres);
    vec![(sqlite, dir), (pg, tempfile::tempdir().unwrap())]
}

async fn add(store: &Store, username: &str, role: Role) -> UserId {
    store
        .create_user(NewUser {
            username,
            display_name: username,
            role,
            site: Some("Millom"),
            password_hash: password_hash(),
            flags: AccountFlags::default(),
            must_change_password: false,
            now: 1_000,
        })
        .await
        .unwrap()
}

fn party(id: UserId, name: &str) -> Party {
    Party {
        user_id: id,
        display_name: name.into(),
        site: Some("Millom".into()),
    }
}

fn consult(request: u64, at: i64, event: ConsultEvent) -> Event {
    Event::Consult {
        request_id: RequestId(request),
        at,
        event,
    }
}

fn requested(station: UserId, urgency: Urgency, reason: &str) -> ConsultEvent {
    ConsultEvent::Requested {
        station: party(station, "Room 1"),
        urgency,
        reason: reason.into(),
        patient_ref: Some("MIU-123".into()),
        test_call: false,
    }
}

#[tokio::test]
async fn accounts_behave_the_same_on_both_backends() {
    for (store, _dir) in both().await {
        let b = store.backend().as_str();
        let room = add(&store, "room1", Role::Station).await;
        let doc = add(&store, "dr-a", Role::Clinician).await;
        assert_ne!(room, doc, "{b}");
        let err = store
            .create_user(NewUser {
                username: "room1",
                display_name: "Again",
                role: Role::Station,
                site: None,
                password_hash: password_hash(),
                flags: AccountFlags::default(),
                must_change_password: false,
                now: 2_000,
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{b}: {err}");
        let found = store.user_by_username("dr-a").await.unwrap().unwrap();
        assert_eq!(found.id, doc, "{b}");
        assert_eq!(found.role, Role::Clinician, "{b}");
        assert_eq!(found.site.as_deref(), Some("Millom"), "{b}");
        assert!(!found.disabled && !found.escalation_duty, "{b}");
        assert!(
            store.set_escalation_duty("dr-a", true).await.unwrap(),
            "{b}"
        );
        assert!(
            !store.set_escalation_duty("nobody", true).await.unwrap(),
            "{b}"
        );
        assert!(
            store
                .user_by_id(doc)
                .await
                .unwrap()
                .unwrap()
                .escalation_duty,
            "{b}"
        );
        let names: Vec<String> = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["dr-a", "room1"], "{b}: ordered by role, then name");
        assert_eq!(store.user_count().await.unwrap(), 2, "{b}");

        // Sessions: at most two per account here, the least recent goes.
        for (i, token) in ["t1", "t2", "t3"].iter().enumerate() {
            let now = 10_000 + i as i64;
            store
                .create_session(token, doc, now, now + 1_000_000, 2)
                .await
                .unwrap();
        }
        assert!(
            store.session_user("t1", 20_000, 0).await.unwrap().is_none(),
            "{b}"
        );
        let (user, expires) = store.session_user("t3", 20_000, 0).await.unwrap().unwrap();
        assert_eq!((user.id, expires), (doc, 10_002 + 1_000_000), "{b}");
        let tokens = vec!["t2".to_owned(), "t3".to_owned(), "t9".to_owned()];
        let live = store.live_sessions(&tokens, 30_000, 0).await.unwrap();
        assert_eq!(live.len(), 2, "{b}: {live:?}");
        // live_sessions marked them used at 30 000: an idle cut-off just
        // before keeps them, one after ends them.
        assert!(
            store
                .session_user("t2", 30_001, 29_999)
                .await
                .unwrap()
                .is_some(),
            "{b}"
        );
        assert!(
            store
                .session_user("t2", 30_001, 30_000)
                .await
                .unwrap()
                .is_none(),
            "{b}"
        );
        // Disabling an account ends its sessions at once.
        assert!(store.set_disabled("dr-a", true).await.unwrap(), "{b}");
        assert!(
            store.session_user("t3", 30_001, 0).await.unwrap().is_none(),
            "{b}"
        );
        assert_eq!(
            store.delete_expired_sessions(i64::MAX, 0).await.unwrap(),
            0,
            "{b}"
        );
        store.close().await;
    }
}

#[tokio::test]
async fn the_log_restores_what_was_open_on_both_backends() {
    for (store, _dir) in both().await {
        let b = store.backend().as_str();
        let room = add(&store, "room1", Role::Station).await;
        let room2 = add(&store, "room2", Role::Station).await;
        let doc = add(&store, "dr-a", Role::Clinician).await;
        assert_eq!(store.next_ids().await.unwrap(), (1, 1), "{b}");
        store
            .record(&[
                consult(1, 100, requested(room, Urgency::Urgent, "Wrist")),
                consult(
                    1,
                    101,
                    ConsultEvent::Rung {
                        clinicians: vec![doc],
                        trigger: RingTrigger::NewRequest,
                    },
                ),
                consult(
                    1,
                    150,
                    ConsultEvent::Accepted {
                        call_id: CallId(7),
                        clinician: party(doc, "Dr A"),
                    },
                ),
                consult(
                    1,
                    160,
                    ConsultEvent::MediaConnected {
                        call_id: CallId(7),
                        side: Side::Station,
                        both: false,
                    },
                ),
                consult(2, 200, requested(room2, Urgency::Immediate, "Chest pain")),
                Event::Presence {
                    user_id: doc,
                    role: Role::Clinician,
                    at: 90,
                    status: PresenceStatus::Available,
                },
            ])
            .await
            .unwrap();
        assert_eq!(store.next_ids().await.unwrap(), (3, 8), "{b}");

        let open = store.load_open().await.unwrap();
        assert_eq!(open.waiting.len(), 1, "{b}");
        assert_eq!(open.waiting[0].id, RequestId(2), "{b}");
        assert_eq!(open.waiting[0].requested_at, 200, "{b}: the original time");
        assert_eq!(open.waiting[0].urgency, Urgency::Immediate, "{b}");
        assert_eq!(open.calls.len(), 1, "{b}");
        assert_eq!(open.calls[0].id, CallId(7), "{b}");
        assert!(
            open.calls[0].station_media && !open.calls[0].clinician_media,
            "{b}"
        );
        assert_eq!(open.accounts.len(), 3, "{b}");

        // A batch is all or nothing: the second event names a consult that
        // does not exist, so the first is not kept either.
        let bad = store
            .record(&[
                consult(
                    1,
                    300,
                    ConsultEvent::CallEnded {
                        call_id: CallId(7),
                        reason: EndReason::HungUpByStation,
                    },
                ),
                consult(99, 301, ConsultEvent::Cancelled),
            ])
            .await;
        assert!(bad.is_err(), "{b}");
        assert_eq!(
            store.load_open().await.unwrap().calls.len(),
            1,
            "{b}: nothing of it kept"
        );

        store
            .record(&[consult(
                1,
                300,
                ConsultEvent::CallEnded {
                    call_id: CallId(7),
                    reason: EndReason::HungUpByStation,
                },
            )])
            .await
            .unwrap();
        let open = store.load_open().await.unwrap();
        assert_eq!(open.owed.len(), 1, "{b}: the outcome is owed");
        assert_eq!(open.owed[0].call_id, CallId(7), "{b}");
        store
            .record(&[
                consult(
                    1,
                    310,
                    ConsultEvent::OutcomeRecorded {
                        call_id: CallId(7),
                        outcome: Outcome::ManagedLocally,
                        note: Some("Splint".into()),
                        by: doc,
                    },
                ),
                consult(2, 320, ConsultEvent::Cancelled),
            ])
            .await
            .unwrap();
        let open = store.load_open().await.unwrap();
        assert!(
            open.waiting.is_empty() && open.calls.is_empty() && open.owed.is_empty(),
            "{b}"
        );

        let all = ConsultFilter {
            include_test_calls: true,
            ..Default::default()
        };
        let consults = store.consults(&all).await.unwrap();
        assert_eq!(consults.len(), 2, "{b}");
        let first = &consults[0];
        assert_eq!(first.status, "completed", "{b}");
        assert_eq!(first.wait_ms, Some(50), "{b}");
        assert_eq!(first.rung_count, 1, "{b}");
        assert_eq!(first.outcome.as_deref(), Some("managed_locally"), "{b}");
        assert_eq!(first.outcome_note.as_deref(), Some("Splint"), "{b}");
        assert_eq!(consults[1].status, "cancelled", "{b}");
        let paged = ConsultFilter {
            limit: Some(1),
            offset: Some(1),
            ..all.clone()
        };
        assert_eq!(store.consults(&paged).await.unwrap()[0].id, 2, "{b}");
        assert_eq!(store.consult_count(&all).await.unwrap(), 2, "{b}");
        let kinds: Vec<String> = store
            .consult_events(1)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "requested",
                "rung",
                "accepted",
                "media_connected",
                "call_ended",
                "outcome_recorded"
            ],
            "{b}"
        );
        let counts = store.row_counts().await.unwrap();
        assert!(counts.contains(&("consult_events", 8)), "{b}: {counts:?}");
        assert!(counts.contains(&("presence_log", 1)), "{b}: {counts:?}");
        store.close().await;
    }
}

#[tokio::test]
async fn the_report_cache_is_versioned_per_day_on_both_backends() {
    const DAY: i64 = 86_400_000;
    for (store, _dir) in both().await {
        let b = store.backend().as_str();
        let room = add(&store, "room1", Role::Station).await;
        let day = 20_000;
        store
            .record(&[consult(
                1,
                day * DAY + 5,
                requested(room, Urgency::Routine, "Cut"),
            )])
            .await
            .unwrap();
        let version = |store: Store| async move {
            let mut snap = store.report_snapshot().await.unwrap();
            let chunks = snap.chunks(day, day, 1).await.unwrap();
            snap.finish().await.unwrap();
            chunks
        };
        let chunks = version(store.clone()).await;
        assert_eq!(chunks.len(), 1, "{b}");
        let v1 = chunks[0].version;
        assert!(chunks[0].data.is_none(), "{b}: nothing cached yet");
        store
            .save_report_chunks(1, &[(day, v1, vec![1, 2, 3])])
            .await
            .unwrap();
        let chunks = version(store.clone()).await;
        assert_eq!(chunks[0].data.as_deref(), Some(&[1u8, 2, 3][..]), "{b}");
        // A change to the day's consult makes its blob stale.
        store
            .record(&[consult(1, day * DAY + 9, ConsultEvent::Cancelled)])
            .await
            .unwrap();
        let chunks = version(store.clone()).await;
        assert!(chunks[0].version > v1, "{b}");
        assert!(chunks[0].data.is_none(), "{b}: stale blob not served");
        // An older build never replaces a newer one.
        let v2 = chunks[0].version;
        store
            .save_report_chunks(1, &[(day, v2, vec![9])])
            .await
            .unwrap();
        store
            .save_report_chunks(1, &[(day, v1, vec![1])])
            .await
            .unwrap();
        assert_eq!(
            version(store.clone()).await[0].data.as_deref(),
            Some(&[9u8][..]),
            "{b}"
        );
        // The facts read back in the same snapshot.
        let mut snap = store.report_snapshot().await.unwrap();
        let facts = snap.facts(day * DAY, (day + 1) * DAY).await.unwrap();
        snap.finish().await.unwrap();
        assert_eq!(facts.len(), 1, "{b}");
        assert_eq!(facts[0].status, "cancelled", "{b}");
        assert_eq!(store.plain_aggregate(0, i64::MAX).await.unwrap(), 1, "{b}");
        store.clear_report_cache().await.unwrap();
        assert!(version(store.clone()).await[0].data.is_none(), "{b}");
        store.close().await;
    }
}

#[tokio::test]
async fn a_url_that_names_no_backend_is_refused_with_what_to_write() {
    let err = Store::open("mysql://root:secret@db/miulink")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("postgres://") && err.contains("sqlite://"),
        "{err}"
    );
    assert!(
        !err.contains("secret"),
        "the password is not repeated: {err}"
    );
    let err = Store::open("postgres://miulink:secret@127.0.0.1:1/miulink")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(
        !err.contains("secret"),
        "the password is not repeated: {err}"
    );
}

/// The fence's lock, on the real PostgreSQL: while a session-log
/// transaction is open the leader can still renew its lease (a writer
/// committing back to back must not starve it), but a takeover waits for
/// the transaction, and afterwards the old leader's writes are refused.
#[tokio::test]
async fn an_open_log_write_lets_the_leader_renew_but_holds_off_a_takeover() {
    use miulink::store::{Fence, StoreError};
    use std::time::Duration;
    let store = Store::open(&Cluster::shared().fresh_database().await)
        .await
        .unwrap();
    let epoch = store
        .try_acquire_lease("old", 60_000)
        .await
        .unwrap()
        .expect("first lease");
    let fence = Fence {
        holder: "old".into(),
        epoch,
    };
    let old = store.fenced(fence.clone());
    let open = old.begin_log_write().await.expect("a fenced transaction");

    let renewed = tokio::time::timeout(Duration::from_secs(5), store.renew_lease(&fence, 60_000))
        .await
        .expect("the renewal does not wait for the open log write");
    assert!(renewed.unwrap());

    // The lease runs out (handed back); a standby tries to take it while
    // the old leader's write is still open.
    store.release_lease(&fence).await.unwrap();
    let standby = store.clone();
    let takeover = tokio::spawn(async move { standby.try_acquire_lease("new", 60_000).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !takeover.is_finished(),
        "the takeover must wait for the write under way"
    );
    open.commit().await.unwrap();
    let new_epoch = tokio::time::timeout(Duration::from_secs(5), takeover)
        .await
        .expect("the takeover proceeds once the write has committed")
        .unwrap()
        .unwrap();
    assert_eq!(new_epoch, Some(epoch + 1));
    match old.begin_log_write().await {
        Err(StoreError::Deposed(e)) => assert_eq!(e, epoch),
        Err(e) => panic!("expected Deposed, got {e}"),
        Ok(_) => panic!("a deposed leader began a log write"),
    }
}
