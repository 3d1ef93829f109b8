//! The switchboard's rules, driven with a fake clock and no sockets.

mod common;

use common::*;
use serde_json::json;
use signalling::*;

const STATION: Role = Role::Station;
const CLINICIAN: Role = Role::Clinician;

#[test]
fn welcome_comes_first_on_every_connection() {
    let mut h = Harness::new();
    for (id, role) in [(1, STATION), (2, CLINICIAN), (3, Role::Manager)] {
        let conn = h.connect(id, role, "X");
        let msgs = h.take(conn);
        assert!(
            matches!(
                msgs.first(),
                Some(ServerMessage::Welcome {
                    protocol_version: PROTOCOL_VERSION,
                    ..
                })
            ),
            "{msgs:?}"
        );
    }
}

#[test]
fn a_whole_consult_with_wait_time_and_log() {
    let mut h = Harness::new();
    let station = h.connect(1, STATION, "Millom MIU Room 2");
    let doc = h.connect(10, CLINICIAN, "Dr Patel");
    h.take(station);
    h.take(doc);
    h.take_events();

    let request_id = h.request(station, Urgency::Urgent, "Head injury, on warfarin");
    let msgs = h.take(doc);
    assert_eq!(rings(&msgs), vec![request_id], "the clinician is rung");
    let (queue, available) = last_queue(&msgs).unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].station, "Millom MIU Room 2");
    assert_eq!(queue[0].site.as_deref(), Some("Millom"));
    assert_eq!(available, 1);
    let msgs = h.take(station);
    assert!(msgs.iter().any(|m| matches!(
        m,
        ServerMessage::RequestUpdate {
            state: RequestState::Waiting,
            position: Some(1),
            clinicians_available: 1,
            ..
        }
    )));

    // 95 seconds later the clinician answers.
    h.advance(95_000);
    let call_id = h.accept(doc, request_id).expect("call starts");
    let msgs = h.take(station);
    assert!(
        msgs.iter().any(|m| matches!(
            m,
            ServerMessage::RequestUpdate {
                state: RequestState::Accepted,
                waited_ms: 95_000,
                ..
            }
        )),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| matches!(m,
        ServerMessage::CallStart { offerer: true, resumed: false, peer, .. } if peer.display_name == "Dr Patel")));
    let msgs = h.take(doc);
    assert!(msgs
        .iter()
        .any(|m| matches!(m, ServerMessage::CallStart { offerer: false, .. })));
    let (queue, available) = last_queue(&msgs).unwrap();
    assert!(queue.is_empty());
    assert_eq!(available, 0, "a clinician in a call is not available");

    // Signals are relayed, both ways, untouched.
    let offer = json!({"sdp": {"type": "offer", "sdp": "v=0..."}});
    h.send(
        station,
        ClientMessage::Signal {
            call_id,
            data: offer.clone().into(),
        },
    );
    assert_eq!(
        h.take(doc),
        vec![ServerMessage::Signal {
            call_id,
            data: offer.clone().into()
        }]
    );
    let answer = json!({"sdp": {"type": "answer", "sdp": "v=0..."}});
    h.send(
        doc,
        ClientMessage::Signal {
            call_id,
            data: answer.clone().into(),
        },
    );
    assert_eq!(
        h.take(station),
        vec![ServerMessage::Signal {
            call_id,
            data: answer.clone().into()
        }]
    );

    h.advance(300);
    h.send(station, ClientMessage::CallConnected { call_id });
    h.advance(50);
    h.send(doc, ClientMessage::CallConnected { call_id });
    h.advance(6 * 60_000);
    h.send(doc, ClientMessage::HangUp { call_id });
    let msgs = h.take(doc);
    assert!(msgs.iter().any(|m| matches!(
        m,
        ServerMessage::CallEnd {
            reason: EndReason::HungUpByClinician,
            outcome_required: true,
            ..
        }
    )));
    let msgs = h.take(station);
    assert!(msgs.iter().any(|m| matches!(
        m,
        ServerMessage::CallEnd {
            outcome_required: false,
            ..
        }
    )));
    assert!(msgs.iter().any(|m| matches!(
        m,
        ServerMessage::RequestUpdate {
            state: RequestState::Ended,
            ..
        }
    )));

    h.send(
        doc,
        ClientMessage::RecordOutcome {
            call_id,
            outcome: Outcome::ManagedLocally,
            note: Some("Glue, advice".into()),
        },
    );
    let msgs = h.take(station);
    assert!(msgs.iter().any(|m| matches!(
        m,
        ServerMessage::RequestUpdate {
            state: RequestState::Completed,
            outcome: Some(Outcome::ManagedLocally),
            ..
        }
    )));
    let msgs = h.take(doc);
    assert!(msgs
        .iter()
        .any(|m| matches!(m, ServerMessage::OutcomeRecorded { .. })));
    assert!(msgs.iter().any(|m| matches!(
        m,
        ServerMessage::Presence {
            status: Availability::Available,
            engaged: None
        }
    )));

    let events = h.take_events();
    assert_eq!(
        consult_kinds(&events),
        vec![
            "requested",
            "rung",
            "accepted",
            "media_connected",
            "media_connected",
            "call_ended",
            "outcome_recorded"
        ]
    );
    let at = |kind: &str| {
        events.iter().find_map(|e| match e {
            Event::Consult { at, event, .. } if event.kind() == kind => Some(*at),
            _ => None,
        })
    };
    assert_eq!(at("accepted").unwrap() - at("requested").unwrap(), 95_000);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Consult {
            event: ConsultEvent::MediaConnected {
                both: true,
                side: Side::Clinician,
                ..
            },
            ..
        }
    )));
}

#[test]
fn queue_is_urgency_then_arrival() {
    let mut h = Harness::new();
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let s: Vec<ConnId> = (1..=4)
        .map(|i| h.connect(i, STATION, &format!("Room {i}")))
        .collect();
    let r1 = h.request(s[0], Urgency::Routine, "Ankle");
    h.advance(1000);
    let r2 = h.request(s[1], Urgency::Urgent, "Burn, child");
    h.advance(1000);
    let r3 = h.request(s[2], Urgency::Routine, "Wrist");
    h.advance(1000);
    let r4 = h.request(s[3], Urgency::Immediate, "Head injury, vomiting");
    let (queue, _) = last_queue(&h.take(doc)).unwrap();
    let order: Vec<RequestId> = queue.iter().map(|e| e.request_id).collect();
    assert_eq!(order, vec![r4, r2, r1, r3]);
    assert_eq!(queue[2].waited_ms, 3000);

    // The station that was first is now third, and was told so.
    let pos = |msgs: &[ServerMessage]| {
        msgs.iter().rev().find_map(|m| match m {
            ServerMessage::RequestUpdate { position, .. } => *position,
            _ => None,
        })
    };
    assert_eq!(pos(&h.take(s[0])), Some(3));
    assert_eq!(pos(&h.take(s[3])), Some(1));
    assert_eq!(pos(&h.take(s[2])), Some(4));
}

#[test]
fn accept_race_has_exactly_one_winner() {
    let mut h = Harness::new();
    let station = h.connect(1, STATION, "Room 1");
    let a = h.connect(10, CLINICIAN, "Dr A");
    let b = h.connect(11, CLINICIAN, "Dr B");
    let r = h.request(station, Urgency::Urgent, "Laceration");
    h.take(a);
    h.take(b);
    // Both clicked; the switchboard sees one first.
    h.send(a, ClientMessage::Accept { request_id: r });
    h.send(b, ClientMessage::Accept { request_id: r });
    let ma = h.take(a);
    let mb = h.take(b);
    assert!(ma
        .iter()
        .any(|m| matches!(m, ServerMessage::CallStart { .. })));
    assert!(!mb
        .iter()
        .any(|m| matches!(m, ServerMessage::CallStart { .. })));
    assert_eq!(errors(&mb), vec![ErrorCode::AlreadyTaken]);
    let (queue, available) = last_queue(&mb).unwrap();
    assert!(queue.is_empty());
    assert_eq!(available, 1);
    let accepted = h
        .take_events()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Consult {
                    event: ConsultEvent::Accepted { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(accepted, 1);
}

#[test]
fn every_request_rings_every_available_clinician_but_not_busy_ones() {
    let mut h = Harness::new();
    let s1 = h.connect(1, STATION, "Room 1");
    let s2 = h.connect(2, STATION, "Room 2");
    let s3 = h.connect(3, STATION, "Room 3");
    let a = h.connect(10, CLINICIAN, "Dr A");
    let b = h.connect(11, CLINICIAN, "Dr B");
    let c = h.connect(12, CLINICIAN, "Dr C");
    h.send(
        c,
        ClientMessage::SetAvailability {
            status: Availability::Away,
        },
    );
    let r1 = h.request(s1, Urgency::Routine, "One");
    let r2 = h.request(s2, Urgency::Routine, "Two");
    assert_eq!(rings(&h.take(a)), vec![r1, r2]);
    assert_eq!(rings(&h.take(b)), vec![r1, r2]);
    assert!(rings(&h.take(c)).is_empty(), "away clinicians are not rung");
    // A takes r1; r3 arrives: only B is rung.
    h.accept(a, r1).unwrap();
    h.take(a);
    h.take(b);
    let r3 = h.request(s3, Urgency::Urgent, "Three");
    assert!(
        rings(&h.take(a)).is_empty(),
        "a clinician in a call is not rung"
    );
    assert_eq!(rings(&h.take(b)), vec![r3]);
    // C comes back: rung for everything waiting, most urgent first.
    h.take_events();
    h.send(
        c,
        ClientMessage::SetAvailability {
            status: Availability::Available,
        },
    );
    assert_eq!(rings(&h.take(c)), vec![r3, r2]);
    assert!(h.take_events().iter().any(|e| matches!(
        e,
        Event::Consult {
            event: ConsultEvent::Rung {
                trigger: RingTrigger::ClinicianAvailable,
                ..
            },
            ..
        }
    )));
}

#[test]
fn one_open_request_per_station_and_cancel() {
    let mut h = Harness::new();
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let r = h.request(s, Urgency::Routine, "Ankle");
    h.send(
        s,
        ClientMessage::RequestConsult {
            urgency: Urgency::Urgent,
            reason: "Again".into(),
            patient_ref: None,
            test: false,
            direct_to: None,
        },
    );
    assert_eq!(errors(&h.take(s)), vec![ErrorCode::RequestOpen]);
    let (q, _) = last_queue(&h.take(doc)).unwrap();
    assert_eq!(q.len(), 1);
    h.send(
        s,
        ClientMessage::CancelRequest {
            request_id: RequestId(999),
        },
    );
    assert_eq!(errors(&h.take(s)), vec![ErrorCode::UnknownRequest]);
    h.send(s, ClientMessage::CancelRequest { request_id: r });
    assert!(h.take(s).iter().any(|m| matches!(
        m,
        ServerMessage::RequestUpdate {
            state: RequestState::Cancelled,
            ..
        }
    )));
    assert!(last_queue(&h.take(doc)).unwrap().0.is_empty());
    h.send(doc, ClientMessage::Accept { request_id: r });
    assert_eq!(errors(&h.take(doc)), vec![ErrorCode::UnknownRequest]);
    // A new request is allowed again.
    h.request(s, Urgency::Routine, "Ankle again");
}

#[test]
fn signals_only_flow_between_the_two_parties() {
    let mut h = Harness::new();
    let s1 = h.connect(1, STATION, "Room 1");
    let s2 = h.connect(2, STATION, "Room 2");
    let a = h.connect(10, CLINICIAN, "Dr A");
    let b = h.connect(11, CLINICIAN, "Dr B");
    let m = h.connect(20, Role::Manager, "Manager");
    let r1 = h.request(s1, Urgency::Urgent, "One");
    let r2 = h.request(s2, Urgency::Urgent, "Two");
    let c1 = h.accept(a, r1).unwrap();
    let _c2 = h.accept(b, r2).unwrap();
    for conn in [s1, s2, a, b, m] {
        h.take(conn);
    }
    let data = json!({"candidate": "evil"});
    // B, s2 and the manager try to inject into call 1.
    for intruder in [b, s2, m] {
        h.send(
            intruder,
            ClientMessage::Signal {
                call_id: c1,
                data: data.clone().into(),
            },
        );
        assert_eq!(errors(&h.take(intruder)), vec![ErrorCode::NotInCall]);
        h.send(intruder, ClientMessage::HangUp { call_id: c1 });
        assert_eq!(errors(&h.take(intruder)), vec![ErrorCode::NotInCall]);
    }
    h.send(
        b,
        ClientMessage::RecordOutcome {
            call_id: c1,
            outcome: Outcome::Ambulance,
            note: None,
        },
    );
    assert_eq!(errors(&h.take(b)), vec![ErrorCode::NotInCall]);
    h.send(
        a,
        ClientMessage::Signal {
            call_id: CallId(4242),
            data: data.clone().into(),
        },
    );
    assert_eq!(errors(&h.take(a)), vec![ErrorCode::UnknownCall]);
    // Nothing reached anyone else.
    for conn in [s1, s2, a, b, m] {
        assert!(h.take(conn).is_empty(), "conn {conn} got something");
    }
    // And the call is intact.
    h.send(
        s1,
        ClientMessage::Signal {
            call_id: c1,
            data: data.clone().into(),
        },
    );
    assert_eq!(h.take(a).len(), 1);
}

#[test]
fn roles_are_enforced() {
    let mut h = Harness::new();
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let m = h.connect(20, Role::Manager, "Manager");
    let r = h.request(s, Urgency::Urgent, "One");
    h.take(s);
    h.send(s, ClientMessage::Accept { request_id: r });
    assert_eq!(errors(&h.take(s)), vec![ErrorCode::ForbiddenRole]);
    h.send(
        s,
        ClientMessage::SetAvailability {
            status: Availability::Available,
        },
    );
    assert_eq!(errors(&h.take(s)), vec![ErrorCode::ForbiddenRole]);
    h.send(
        doc,
        ClientMessage::RequestConsult {
            urgency: Urgency::Urgent,
            reason: "x".into(),
            patient_ref: None,
            test: false,
            direct_to: None,
        },
    );
    h.send(doc, ClientMessage::CancelRequest { request_id: r });
    assert_eq!(
        errors(&h.take(doc)),
        vec![ErrorCode::ForbiddenRole, ErrorCode::ForbiddenRole]
    );
    h.send(m, ClientMessage::Accept { request_id: r });
    assert_eq!(errors(&h.take(m)), vec![ErrorCode::ForbiddenRole]);
    let call = h.accept(doc, r).unwrap();
    h.send(
        s,
        ClientMessage::RecordOutcome {
            call_id: call,
            outcome: Outcome::ManagedLocally,
            note: None,
        },
    );
    assert_eq!(errors(&h.take(s)), vec![ErrorCode::ForbiddenRole]);
}

#[test]
fn a_lost_station_keeps_its_request_for_the_grace_period_then_abandons() {
    let mut h = Harness::with_config(Config {
        disconnect_grace_ms: 30_000,
        ..Config::default()
    });
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    h.send(
        doc,
        ClientMessage::SetAvailability {
            status: Availability::Busy,
        },
    );
    let r = h.request(s, Urgency::Urgent, "One");
    h.advance(5_000);
    h.disconnect(s);
    let (q, _) = last_queue(&h.take(doc)).unwrap();
    assert_eq!(q.len(), 1, "still in the queue");
    assert!(!q[0].station_connected, "shown as reconnecting");
    assert_eq!(h.sb.poll_timeout(), Some(T0 + 5_000 + 30_000));
    h.advance(29_999);
    assert_eq!(h.sb.queue_entries().len(), 1);
    h.take_events();
    h.advance(1);
    assert!(h.sb.queue_entries().is_empty());
    let events = h.take_events();
    assert_eq!(consult_kinds(&events), vec!["abandoned"]);
    assert!(
        matches!(events[0], Event::Consult { request_id, at, .. } if request_id == r && at == T0 + 35_000)
    );
    assert!(last_queue(&h.take(doc)).unwrap().0.is_empty());
    assert_eq!(h.sb.poll_timeout(), None);
}

#[test]
fn a_station_that_reconnects_in_time_keeps_its_place() {
    let mut h = Harness::new();
    let s1 = h.connect(1, STATION, "Room 1");
    let s2 = h.connect(2, STATION, "Room 2");
    let r1 = h.request(s1, Urgency::Urgent, "One");
    h.advance(10);
    h.request(s2, Urgency::Urgent, "Two");
    h.disconnect(s1);
    h.advance(20_000);
    let again = h.connect(1, STATION, "Room 1");
    let msgs = h.take(again);
    assert!(matches!(msgs[0], ServerMessage::Welcome { .. }));
    assert!(msgs.iter().any(|m| matches!(m,
        ServerMessage::RequestUpdate { request_id, state: RequestState::Waiting, position: Some(1), waited_ms: 20_010, .. } if *request_id == r1)),
        "{msgs:?}");
    h.advance(120_000);
    assert_eq!(h.sb.queue_entries().len(), 2, "nothing abandoned");
    assert_eq!(h.sb.queue_entries()[0].request_id, r1);
}

#[test]
fn a_newer_connection_replaces_the_older_one() {
    let mut h = Harness::new();
    let first = h.connect(10, CLINICIAN, "Dr A");
    let second = h.connect(10, CLINICIAN, "Dr A");
    assert_eq!(h.closed, vec![(first, ErrorCode::Replaced)]);
    assert_eq!(h.sb.connection_count(), 1);
    // A late message or close from the old connection does nothing.
    h.send(
        first,
        ClientMessage::SetAvailability {
            status: Availability::Away,
        },
    );
    h.disconnect(first);
    assert_eq!(h.sb.clinicians_available(), 1);
    assert!(h.take(first).iter().all(|m| matches!(
        m,
        ServerMessage::Welcome { .. }
            | ServerMessage::Presence { .. }
            | ServerMessage::Queue { .. }
    )));
    let _ = second;
}

#[test]
fn a_clinician_lost_in_a_call_ends_it_after_the_grace_period() {
    let mut h = Harness::with_config(Config {
        disconnect_grace_ms: 10_000,
        ..Config::default()
    });
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let r = h.request(s, Urgency::Urgent, "One");
    let call = h.accept(doc, r).unwrap();
    h.take(s);
    h.disconnect(doc);
    assert!(h.take(s).contains(&ServerMessage::PeerStatus {
        call_id: call,
        connected: false
    }));
    h.advance(10_000);
    let msgs = h.take(s);
    assert!(msgs.iter().any(|m| matches!(
        m,
        ServerMessage::CallEnd {
            reason: EndReason::ClinicianDisconnected,
            ..
        }
    )));
    // The station is free to ask again.
    h.request(s, Urgency::Urgent, "Again");
}

#[test]
fn a_clinician_who_reconnects_gets_the_call_back() {
    let mut h = Harness::new();
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let r = h.request(s, Urgency::Urgent, "One");
    let call = h.accept(doc, r).unwrap();
    h.disconnect(doc);
    h.take(s);
    h.advance(3_000);
    let again = h.connect(10, CLINICIAN, "Dr A");
    let msgs = h.take(again);
    assert!(msgs.iter().any(|m| matches!(m, ServerMessage::CallStart { call_id, resumed: true, offerer: false, .. } if *call_id == call)));
    assert!(h.take(s).contains(&ServerMessage::PeerStatus {
        call_id: call,
        connected: true
    }));
}

#[test]
fn outcome_is_required_before_becoming_available_again() {
    let mut h = Harness::new();
    let s1 = h.connect(1, STATION, "Room 1");
    let s2 = h.connect(2, STATION, "Room 2");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let r1 = h.request(s1, Urgency::Urgent, "One");
    let call = h.accept(doc, r1).unwrap();
    h.send(s1, ClientMessage::HangUp { call_id: call });
    let r2 = h.request(s2, Urgency::Urgent, "Two");
    let msgs = h.take(doc);
    assert!(
        rings(&msgs).iter().all(|r| *r != r2),
        "wrap-up is not ringable"
    );
    h.send(
        doc,
        ClientMessage::SetAvailability {
            status: Availability::Available,
        },
    );
    h.send(doc, ClientMessage::Accept { request_id: r2 });
    assert_eq!(
        errors(&h.take(doc)),
        vec![ErrorCode::OutcomeRequired, ErrorCode::OutcomeRequired]
    );
    h.send(
        doc,
        ClientMessage::RecordOutcome {
            call_id: call,
            outcome: Outcome::TransferToEd,
            note: None,
        },
    );
    let msgs = h.take(doc);
    assert_eq!(rings(&msgs), vec![r2], "rung as soon as the outcome is in");
    // A second outcome for the same call is refused.
    h.send(
        doc,
        ClientMessage::RecordOutcome {
            call_id: call,
            outcome: Outcome::Ambulance,
            note: None,
        },
    );
    assert_eq!(errors(&h.take(doc)), vec![ErrorCode::UnknownCall]);
}

/// A clinician owing an outcome is not rung, but is told what waits: the
/// queue (with each entry's escalation level), on every change and again
/// on reconnecting, so the outcome form can show it and sound for it.
#[test]
fn a_clinician_owing_an_outcome_still_gets_the_queue_but_no_ring() {
    let mut h = Harness::with_config(urgent_policy());
    let s1 = h.connect(1, STATION, "Room 1");
    let s2 = h.connect(2, STATION, "Room 2");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let r1 = h.request(s1, Urgency::Urgent, "One");
    let call = h.accept(doc, r1).unwrap();
    h.send(s1, ClientMessage::HangUp { call_id: call });
    h.take(doc);

    let r2 = h.request(s2, Urgency::Immediate, "Chest pain");
    let msgs = h.take(doc);
    assert!(rings(&msgs).is_empty(), "owing an outcome: not rung");
    let (queue, available) = last_queue(&msgs).expect("the queue, while owing an outcome");
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].request_id, r2);
    assert_eq!(queue[0].urgency, Urgency::Immediate);
    assert_eq!(queue[0].station, "Room 2");
    assert_eq!(available, 0, "nobody else is there to answer it");

    // Re-alerted: no ring for the engaged clinician, but the queue says so.
    h.advance(60_000);
    let msgs = h.take(doc);
    assert!(rings(&msgs).is_empty());
    let (queue, _) = last_queue(&msgs).expect("the queue with the escalation level");
    assert_eq!(queue[0].escalation, Some(EscalationLevel::Realerted));

    // A reconnect while still owing: the owed call and the queue again.
    h.disconnect(doc);
    let again = h.connect(10, CLINICIAN, "Dr A");
    let msgs = h.take(again);
    assert!(msgs.iter().any(|m| matches!(
        m,
        ServerMessage::CallEnd { call_id, outcome_required: true, .. } if *call_id == call
    )));
    let (queue, _) = last_queue(&msgs).expect("the queue after reconnecting");
    assert_eq!(queue[0].request_id, r2);
    assert!(rings(&msgs).is_empty());

    // The outcome in: rung at once.
    h.send(
        again,
        ClientMessage::RecordOutcome {
            call_id: call,
            outcome: Outcome::ManagedLocally,
            note: None,
        },
    );
    assert_eq!(rings(&h.take(again)), vec![r2]);
}

#[test]
fn outcome_may_be_recorded_during_the_call() {
    let mut h = Harness::new();
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let r = h.request(s, Urgency::Urgent, "One");
    let call = h.accept(doc, r).unwrap();
    h.send(
        doc,
        ClientMessage::RecordOutcome {
            call_id: call,
            outcome: Outcome::ManagedLocally,
            note: None,
        },
    );
    h.send(doc, ClientMessage::HangUp { call_id: call });
    let msgs = h.take(doc);
    assert!(msgs.iter().any(|m| matches!(
        m,
        ServerMessage::CallEnd {
            outcome_required: false,
            ..
        }
    )));
    assert!(h.take(s).iter().any(|m| matches!(
        m,
        ServerMessage::RequestUpdate {
            state: RequestState::Completed,
            outcome: Some(Outcome::ManagedLocally),
            ..
        }
    )));
    assert_eq!(h.sb.clinicians_available(), 1);
}

#[test]
fn ids_continue_from_the_configured_start() {
    let mut h = Harness::with_config(Config {
        first_request_id: 500,
        first_call_id: 70,
        ..Config::default()
    });
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let r = h.request(s, Urgency::Urgent, "One");
    assert_eq!(r, RequestId(500));
    assert_eq!(h.accept(doc, r), Some(CallId(70)));
}

#[test]
fn clock_going_backwards_does_not_make_negative_waits() {
    let mut h = Harness::new();
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    h.request(s, Urgency::Urgent, "One");
    h.now -= 60_000;
    h.send(doc, ClientMessage::Ping { nonce: None });
    let q = h.sb.queue_entries();
    assert!(q[0].waited_ms >= 0);
}

#[test]
fn a_directed_test_call_rings_only_its_clinician() {
    let mut h = Harness::new();
    h.monitoring = vec![1];
    let probe_station = h.connect(1, STATION, "Probe station");
    let probe_doc = h.connect(10, CLINICIAN, "Probe clinician");
    let real_doc = h.connect(11, CLINICIAN, "Dr Real");
    h.take(probe_doc);
    h.take(real_doc);
    h.take_events();
    h.send(
        probe_station,
        ClientMessage::RequestConsult {
            urgency: Urgency::Routine,
            reason: "Monitoring probe".into(),
            patient_ref: None,
            test: true,
            direct_to: Some("probe-clinician".into()),
        },
    );
    let r = match h.take(probe_station).last() {
        Some(ServerMessage::RequestUpdate { request_id, .. }) => *request_id,
        other => panic!("{other:?}"),
    };
    let msgs = h.take(probe_doc);
    assert_eq!(rings(&msgs), vec![r]);
    // Its clinician also sees it in its queue (a person's screen lists
    // it there to answer), marked as a test call.
    let (q, _) = last_queue(&msgs).expect("a queue for the directed clinician");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].request_id, r);
    assert!(q[0].test);
    // ... and on reconnecting.
    let again = h.connect(10, CLINICIAN, "Probe clinician");
    let (q, _) = last_queue(&h.take(again)).expect("a queue on connecting");
    assert_eq!(q.iter().map(|e| e.request_id).collect::<Vec<_>>(), vec![r]);
    let real = h.take(real_doc);
    assert!(
        rings(&real).is_empty(),
        "a real clinician is never rung for a probe"
    );
    assert!(
        last_queue(&real).is_none_or(|(q, _)| q.is_empty()),
        "nor sees it"
    );
    h.send(real_doc, ClientMessage::Accept { request_id: r });
    assert_eq!(errors(&h.take(real_doc)), vec![ErrorCode::UnknownRequest]);
    assert!(h.accept(again, r).is_some());
    assert!(h.take_events().iter().any(|e| matches!(
        e,
        Event::Consult {
            event: ConsultEvent::Requested {
                test_call: true,
                ..
            },
            ..
        }
    )));
}

#[test]
fn a_directed_test_call_takes_its_place_in_its_clinicians_queue() {
    let mut h = Harness::new();
    let room1 = h.connect(1, STATION, "Room 1");
    let room2 = h.connect(2, STATION, "Room 2");
    h.monitoring = vec![3];
    let probe_station = h.connect(3, STATION, "Probe station");
    let person = h.connect(10, CLINICIAN, "Dr Person");
    let other = h.connect(11, CLINICIAN, "Dr Other");
    let routine = h.request(room1, Urgency::Routine, "Sprain");
    h.advance(1_000);
    h.send(
        probe_station,
        ClientMessage::RequestConsult {
            urgency: Urgency::Urgent,
            reason: "Test call".into(),
            patient_ref: None,
            test: true,
            direct_to: Some("dr-person".into()),
        },
    );
    h.advance(1_000);
    let immediate = h.request(room2, Urgency::Immediate, "Chest pain");
    let ids = |q: Vec<QueueEntry>| q.iter().map(|e| e.request_id).collect::<Vec<_>>();
    let (mine, _) = last_queue(&h.take(person)).expect("a queue");
    let mine = ids(mine);
    assert_eq!(mine.len(), 3);
    assert_eq!(mine[0], immediate);
    assert_eq!(
        mine[2], routine,
        "urgency first, the test call in its place"
    );
    let (theirs, _) = last_queue(&h.take(other)).expect("a queue");
    assert_eq!(ids(theirs), vec![immediate, routine], "nobody else sees it");
}

/// The default policy (urgent: re-alert at 150 s, escalate at 300 s).
fn urgent_policy() -> Config {
    let config = Config::default();
    assert_eq!(
        config.escalation_for(Urgency::Urgent),
        EscalationPolicy {
            realert_after_ms: 150_000,
            escalate_after_ms: 300_000
        }
    );
    config
}

fn escalations(events: &[Event]) -> Vec<(EscalationLevel, Vec<UserId>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Consult {
                event: ConsultEvent::Escalated { level, notified },
                ..
            } => Some((*level, notified.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_unanswered_request_is_realerted_then_escalated_on_time() {
    let mut h = Harness::with_config(urgent_policy());
    h.duty = vec![30];
    let s = h.connect(1, STATION, "Room 1");
    let b = h.connect(11, CLINICIAN, "Dr B");
    let away = h.connect(12, CLINICIAN, "Dr Away");
    let nic = h.connect(30, CLINICIAN, "Nurse in charge");
    h.send(
        away,
        ClientMessage::SetAvailability {
            status: Availability::Away,
        },
    );
    h.send(
        nic,
        ClientMessage::SetAvailability {
            status: Availability::Busy,
        },
    );
    let r = h.request(s, Urgency::Urgent, "Burn, child");
    for c in [s, b, away, nic] {
        h.take(c);
    }
    h.take_events();
    assert_eq!(h.sb.poll_timeout(), Some(T0 + 150_000));

    h.advance(149_999);
    assert!(h.take(b).is_empty(), "nothing before the threshold");
    h.advance(1);
    // Step 1: every available clinician is rung again; the nurse is told.
    let msgs = h.take(b);
    assert_eq!(rings(&msgs), vec![r]);
    assert!(msgs.iter().any(|m| matches!(m, ServerMessage::Ring { request } if request.escalation == Some(EscalationLevel::Realerted))));
    assert!(h
        .take(away)
        .iter()
        .all(|m| !matches!(m, ServerMessage::Ring { .. })));
    assert!(
        h.take(nic)
            .iter()
            .all(|m| !matches!(m, ServerMessage::Escalation { .. })),
        "no duty alert yet"
    );
    assert!(h.take(s).iter().any(|m| matches!(
        m,
        ServerMessage::RequestUpdate {
            state: RequestState::Waiting,
            escalation: Some(EscalationLevel::Realerted),
            ..
        }
    )));
    assert_eq!(
        escalations(&h.take_events()),
        vec![(EscalationLevel::Realerted, vec![UserId(11)])]
    );
    assert_eq!(h.sb.poll_timeout(), Some(T0 + 300_000));

    // Step 2: the nurse in charge is alerted even though busy.
    h.advance(150_000);
    let msgs = h.take(nic);
    assert!(
        msgs.iter()
            .any(|m| matches!(m, ServerMessage::Escalation { request } if request.request_id == r)),
        "{msgs:?}"
    );
    assert_eq!(
        rings(&h.take(b)),
        vec![r],
        "available clinicians rung again"
    );
    assert!(h.take(away).iter().all(|m| !matches!(
        m,
        ServerMessage::Ring { .. } | ServerMessage::Escalation { .. }
    )));
    assert!(h.take(s).iter().any(|m| matches!(
        m,
        ServerMessage::RequestUpdate {
            escalation: Some(EscalationLevel::Escalated),
            ..
        }
    )));
    let steps = escalations(&h.take_events());
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].0, EscalationLevel::Escalated);
    let mut notified = steps[0].1.clone();
    notified.sort();
    assert_eq!(notified, vec![UserId(11), UserId(30)]);
    assert_eq!(h.sb.poll_timeout(), None, "nothing more to do");
    // The queue shows the level to clinicians.
    assert_eq!(
        h.sb.queue_entries()[0].escalation,
        Some(EscalationLevel::Escalated)
    );
    // Answering it still works.
    assert!(h.accept(b, r).is_some());
}

#[test]
fn an_answered_or_cancelled_request_is_not_escalated() {
    let mut h = Harness::with_config(urgent_policy());
    let s1 = h.connect(1, STATION, "Room 1");
    let s2 = h.connect(2, STATION, "Room 2");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let r1 = h.request(s1, Urgency::Immediate, "One");
    let r2 = h.request(s2, Urgency::Routine, "Two");
    h.advance(59_000);
    h.accept(doc, r1).unwrap();
    h.send(s2, ClientMessage::CancelRequest { request_id: r2 });
    assert_eq!(h.sb.poll_timeout(), None);
    h.advance(1_000_000);
    assert!(escalations(&h.take_events()).is_empty());
}

#[test]
fn test_calls_are_never_escalated() {
    let mut h = Harness::with_config(urgent_policy());
    h.monitoring = vec![1];
    let s = h.connect(1, STATION, "Room 1");
    h.send(
        s,
        ClientMessage::RequestConsult {
            urgency: Urgency::Immediate,
            reason: "Checking the kit".into(),
            patient_ref: None,
            test: true,
            direct_to: None,
        },
    );
    assert_eq!(h.sb.poll_timeout(), None);
    h.advance(10 * 60_000);
    assert!(escalations(&h.take_events()).is_empty());
}

#[test]
fn quality_reports_are_logged_for_parties_only() {
    let mut h = Harness::new();
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let other = h.connect(11, CLINICIAN, "Dr B");
    let r = h.request(s, Urgency::Urgent, "One");
    let call = h.accept(doc, r).unwrap();
    h.take_events();
    let sample = QualitySample {
        rtt_ms: Some(40.0),
        packet_loss_pct: Some(0.5),
        ..QualitySample::default()
    };
    h.send(
        s,
        ClientMessage::CallQuality {
            call_id: call,
            sample,
        },
    );
    h.send(
        other,
        ClientMessage::CallQuality {
            call_id: call,
            sample,
        },
    );
    assert_eq!(errors(&h.take(other)), vec![ErrorCode::NotInCall]);
    let events = h.take_events();
    assert_eq!(events.len(), 1);
    assert!(matches!(
        &events[0],
        Event::Consult {
            event: ConsultEvent::QualityReported {
                side: Side::Station,
                ..
            },
            ..
        }
    ));
}

fn ident(user: i64, role: Role, name: &str) -> Identity {
    Identity {
        user_id: UserId(user),
        username: name.to_lowercase().replace(' ', "-"),
        display_name: name.into(),
        role,
        site: (role == Role::Station).then(|| "Millom".to_owned()),
        escalation_duty: false,
        monitoring: false,
    }
}

fn restored(id: u64, station: i64, at: Millis, test: bool) -> RestoredRequest {
    RestoredRequest {
        id: RequestId(id),
        station: UserId(station),
        urgency: Urgency::Urgent,
        reason: "Restored".into(),
        patient_ref: None,
        requested_at: at,
        test,
        escalation: None,
    }
}

#[test]
fn state_is_restored_after_a_restart_and_resumed_by_reconnecting_clients() {
    let mut h = Harness::with_config(Config {
        disconnect_grace_ms: 30_000,
        ..Config::default()
    });
    let notes = h.sb.restore(Restore {
        accounts: vec![
            ident(1, STATION, "Room 1"),
            ident(2, STATION, "Room 2"),
            ident(3, STATION, "Room 3"),
            ident(10, CLINICIAN, "Dr A"),
            ident(11, CLINICIAN, "Dr B"),
        ],
        waiting: vec![
            restored(40, 1, T0 - 20_000, false),
            restored(41, 3, T0 - 5_000, true),
        ],
        calls: vec![RestoredCall {
            id: CallId(7),
            request: restored(39, 2, T0 - 90_000, false),
            clinician: UserId(10),
            accepted_at: T0 - 60_000,
            station_media: true,
            clinician_media: true,
            outcome: None,
        }],
        owed: vec![RestoredOwed {
            call_id: CallId(6),
            request_id: RequestId(38),
            station: UserId(3),
            clinician: UserId(11),
            reason: EndReason::HungUpByStation,
            requested_at: T0 - 200_000,
            accepted_at: T0 - 190_000,
        }],
    });
    assert_eq!(notes.len(), 1, "{notes:?}");
    h.input(Input::Timeout); // drains the restore's outputs through the harness
    let events = h.take_events();
    assert_eq!(
        consult_kinds(&events),
        vec!["abandoned"],
        "the waiting test call is ended, not dropped"
    );
    h.sb.check_invariants().unwrap();
    assert_eq!(h.sb.queue_entries().len(), 1);
    assert_eq!(
        h.sb.queue_entries()[0].requested_at,
        T0 - 20_000,
        "original request time kept"
    );

    // The station comes back: same request, same wait clock.
    h.advance(2_000);
    let s1 = h.connect(1, STATION, "Room 1");
    assert!(h.take(s1).iter().any(|m| matches!(
        m,
        ServerMessage::RequestUpdate {
            request_id: RequestId(40),
            state: RequestState::Waiting,
            waited_ms: 22_000,
            ..
        }
    )));
    // The clinician in the call comes back to it; the station of that call too.
    let a = h.connect(10, CLINICIAN, "Dr A");
    assert!(h.take(a).iter().any(|m| matches!(
        m,
        ServerMessage::CallStart {
            call_id: CallId(7),
            resumed: true,
            ..
        }
    )));
    let s2 = h.connect(2, STATION, "Room 2");
    assert!(h.take(s2).iter().any(|m| matches!(
        m,
        ServerMessage::CallStart {
            call_id: CallId(7),
            resumed: true,
            offerer: true,
            ..
        }
    )));
    // The clinician who owed an outcome is asked for it.
    let b = h.connect(11, CLINICIAN, "Dr B");
    assert!(h.take(b).iter().any(|m| matches!(
        m,
        ServerMessage::CallEnd {
            call_id: CallId(6),
            outcome_required: true,
            ..
        }
    )));
    h.send(
        b,
        ClientMessage::RecordOutcome {
            call_id: CallId(6),
            outcome: Outcome::ManagedLocally,
            note: None,
        },
    );
    assert!(h
        .take(b)
        .iter()
        .any(|m| matches!(m, ServerMessage::OutcomeRecorded { .. })));
    // The call ends normally and is logged.
    h.take_events();
    h.send(a, ClientMessage::HangUp { call_id: CallId(7) });
    assert_eq!(consult_kinds(&h.take_events()), vec!["call_ended"]);
    // New ids never reuse restored ones.
    let r = h.request(s2, Urgency::Routine, "New");
    assert_eq!(r, RequestId(42));
}

#[test]
fn restored_parties_who_never_come_back_are_ended_after_the_grace_period() {
    let mut h = Harness::with_config(Config {
        disconnect_grace_ms: 30_000,
        ..Config::default()
    });
    h.sb.restore(Restore {
        accounts: vec![
            ident(1, STATION, "Room 1"),
            ident(2, STATION, "Room 2"),
            ident(10, CLINICIAN, "Dr A"),
        ],
        waiting: vec![restored(40, 1, T0 - 20_000, false)],
        calls: vec![RestoredCall {
            id: CallId(7),
            request: restored(39, 2, T0 - 90_000, false),
            clinician: UserId(10),
            accepted_at: T0 - 60_000,
            station_media: true,
            clinician_media: false,
            outcome: None,
        }],
        owed: vec![],
    });
    assert_eq!(h.sb.poll_timeout(), Some(T0 + 30_000));
    h.advance(30_000);
    let kinds = consult_kinds(&h.take_events());
    assert!(
        kinds.contains(&"abandoned") && kinds.contains(&"call_ended"),
        "{kinds:?}"
    );
    assert!(h.sb.queue_entries().is_empty());
    assert_eq!(h.sb.call_count(), 0);
}

#[test]
fn a_monitoring_account_is_not_a_person() {
    let mut h = Harness::new();
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    // A probe's clinician and station accounts.
    h.monitoring = vec![20, 21];
    let probe_doc = h.connect(20, CLINICIAN, "Probe clinician");
    let probe_station = h.connect(21, STATION, "Probe station");
    assert_eq!(h.sb.clinicians_available(), 1, "the probe is not counted");
    h.take(probe_doc);
    // A real request rings the real clinician only.
    let r = h.request(s, Urgency::Urgent, "Wrist");
    assert_eq!(rings(&h.take(doc)), vec![r]);
    let probe_msgs = h.take(probe_doc);
    assert!(
        rings(&probe_msgs).is_empty(),
        "a probe is never rung for a patient"
    );
    assert!(
        last_queue(&probe_msgs).is_none_or(|(q, _)| q.is_empty()),
        "nor shown one"
    );
    // ... and cannot take one.
    h.send(probe_doc, ClientMessage::Accept { request_id: r });
    assert_eq!(errors(&h.take(probe_doc)), vec![ErrorCode::UnknownRequest]);
    assert_eq!(h.sb.waiting_count(), 1, "the patient's request still waits");
    // The probe station cannot place a real request...
    h.send(
        probe_station,
        ClientMessage::RequestConsult {
            urgency: Urgency::Routine,
            reason: "Probe".into(),
            patient_ref: None,
            test: false,
            direct_to: None,
        },
    );
    assert_eq!(
        errors(&h.take(probe_station)),
        vec![ErrorCode::ForbiddenRole]
    );
    // ... but its directed test call rings the probe clinician.
    h.send(
        probe_station,
        ClientMessage::RequestConsult {
            urgency: Urgency::Routine,
            reason: "Probe".into(),
            patient_ref: None,
            test: true,
            direct_to: Some("probe-clinician".into()),
        },
    );
    let rung = rings(&h.take(probe_doc));
    assert_eq!(rung.len(), 1);
    assert!(rings(&h.take(doc)).is_empty());
}

#[test]
fn a_quality_report_racing_the_hang_up_is_still_recorded() {
    let mut h = Harness::new();
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let other = h.connect(11, CLINICIAN, "Dr B");
    let r = h.request(s, Urgency::Urgent, "One");
    let call = h.accept(doc, r).unwrap();
    h.send(s, ClientMessage::HangUp { call_id: call });
    h.take_events();
    let sample = QualitySample {
        rtt_ms: Some(40.0),
        ..QualitySample::default()
    };
    h.send(
        doc,
        ClientMessage::CallQuality {
            call_id: call,
            sample,
        },
    );
    assert!(errors(&h.take(doc)).is_empty());
    assert!(matches!(
        h.take_events()[..],
        [Event::Consult {
            event: ConsultEvent::QualityReported {
                side: Side::Clinician,
                ..
            },
            ..
        }]
    ));
    h.send(
        other,
        ClientMessage::CallQuality {
            call_id: call,
            sample,
        },
    );
    assert_eq!(
        errors(&h.take(other)),
        vec![ErrorCode::NotInCall],
        "strangers still refused"
    );
    // Past the window the call is gone: a late report is refused and
    // nothing is recorded.
    h.take_events();
    h.advance(60_001);
    h.send(
        doc,
        ClientMessage::CallQuality {
            call_id: call,
            sample,
        },
    );
    assert_eq!(errors(&h.take(doc)), vec![ErrorCode::UnknownCall]);
    assert!(
        !h.take_events().iter().any(|e| matches!(
            e,
            Event::Consult {
                event: ConsultEvent::QualityReported { .. },
                ..
            }
        )),
        "a report after the window is not recorded"
    );
}

/// Issue 10, finding 12: a station that is not a monitoring account cannot
/// hide a real request from the reports (`test`) or ring one chosen
/// clinician (`direct_to`), except for a test call to the test line.
#[test]
fn only_monitoring_accounts_and_the_test_line_take_test_and_directed_requests() {
    let mut h = Harness::with_config(Config {
        test_line: Some("probe-clinician".into()),
        ..Config::default()
    });
    let room = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    h.take(doc);
    h.take_events();
    let ask = |test: bool, direct_to: Option<&str>| ClientMessage::RequestConsult {
        urgency: Urgency::Urgent,
        reason: "Wrist".into(),
        patient_ref: None,
        test,
        direct_to: direct_to.map(str::to_owned),
    };
    for (test, direct_to) in [
        (true, None),
        (false, Some("dr-a")),
        (true, Some("dr-a")),
        (false, Some("probe-clinician")),
    ] {
        h.send(room, ask(test, direct_to));
        assert_eq!(
            errors(&h.take(room)),
            vec![ErrorCode::ForbiddenRole],
            "test {test}, direct_to {direct_to:?}"
        );
    }
    assert!(rings(&h.take(doc)).is_empty(), "nobody was rung");
    assert!(h.take_events().is_empty(), "nothing was logged");
    // The station's own test call to the test line goes.
    h.send(room, ask(true, Some("probe-clinician")));
    assert!(errors(&h.take(room)).is_empty());
}

type AlertedTold = (Option<EscalationLevel>, Option<u32>, Option<u32>);

/// The latest (escalation, alerted, duty_alerted) told to a station.
fn alerted_told(msgs: &[ServerMessage]) -> Option<AlertedTold> {
    msgs.iter().rev().find_map(|m| match m {
        ServerMessage::RequestUpdate {
            state: RequestState::Waiting,
            escalation,
            alerted,
            duty_alerted,
            ..
        } => Some((*escalation, *alerted, *duty_alerted)),
        _ => None,
    })
}

/// Issue 11, safety defect 1: the station is told how many people each
/// escalation step actually alerted, so it never claims the senior was
/// alerted when nobody was connected.
#[test]
fn the_station_is_told_how_many_were_actually_alerted_at_each_step() {
    let mut h = Harness::with_config(urgent_policy());
    h.duty = vec![30];
    let s = h.connect(1, STATION, "Room 1");
    let r = h.request(s, Urgency::Urgent, "Burn, child");
    assert_eq!(
        alerted_told(&h.take(s)),
        Some((None, None, None)),
        "nothing claimed before a step"
    );
    // Nobody signed in at all: both steps alert nobody, and say so.
    h.advance(150_000);
    assert_eq!(
        alerted_told(&h.take(s)),
        Some((Some(EscalationLevel::Realerted), Some(0), None))
    );
    h.advance(150_000);
    assert_eq!(
        alerted_told(&h.take(s)),
        Some((Some(EscalationLevel::Escalated), Some(0), Some(0))),
        "no senior on line: the station must not claim one"
    );
    assert!(h.accept(s, r).is_none(), "a station cannot accept");

    // With a busy duty holder and one available clinician: 1, then 2.
    let mut h = Harness::with_config(urgent_policy());
    h.duty = vec![30];
    let s = h.connect(1, STATION, "Room 1");
    let _b = h.connect(11, CLINICIAN, "Dr B");
    let nic = h.connect(30, CLINICIAN, "Nurse in charge");
    h.send(
        nic,
        ClientMessage::SetAvailability {
            status: Availability::Busy,
        },
    );
    h.request(s, Urgency::Urgent, "Burn, child");
    h.take(s);
    h.advance(150_000);
    assert_eq!(
        alerted_told(&h.take(s)),
        Some((Some(EscalationLevel::Realerted), Some(1), None))
    );
    h.advance(150_000);
    assert_eq!(
        alerted_told(&h.take(s)),
        Some((Some(EscalationLevel::Escalated), Some(2), Some(1)))
    );
}

/// At `escalated`, available clinicians are rung again but no senior on
/// duty is signed in: the station hears how many were alerted and that no
/// duty holder was among them.
#[test]
fn an_escalation_without_a_senior_on_line_says_so() {
    let mut h = Harness::with_config(urgent_policy());
    h.duty = vec![30];
    let s = h.connect(1, STATION, "Room 1");
    let _b = h.connect(11, CLINICIAN, "Dr B");
    h.request(s, Urgency::Urgent, "Burn, child");
    h.take(s);
    h.advance(300_000);
    assert_eq!(
        alerted_told(&h.take(s)),
        Some((Some(EscalationLevel::Escalated), Some(1), Some(0)))
    );
}

/// Issue 11, finding 10: a station that signs out while waiting withdraws
/// its request (cancelled, logged), leaving no ghost a doctor could try to
/// answer; a plain connection loss still keeps it for the grace period.
#[test]
fn a_station_signing_out_withdraws_its_waiting_request() {
    let mut h = Harness::new();
    let s = h.connect(1, STATION, "Room 1");
    let doc = h.connect(10, CLINICIAN, "Dr A");
    let r = h.request(s, Urgency::Urgent, "Wrist");
    h.take(doc);
    h.take_events();
    h.sign_out(s);
    let (q, _) = last_queue(&h.take(doc)).expect("the queue is updated");
    assert!(q.is_empty(), "no ghost request left: {q:?}");
    assert!(h.take_events().iter().any(|e| matches!(
        e,
        Event::Consult {
            event: ConsultEvent::Cancelled,
            ..
        }
    )));
    h.send(doc, ClientMessage::Accept { request_id: r });
    assert_eq!(errors(&h.take(doc)), vec![ErrorCode::UnknownRequest]);

    // A blip is not a sign-out: the request waits for the station.
    let s = h.connect(2, STATION, "Room 2");
    let r2 = h.request(s, Urgency::Urgent, "Ankle");
    h.disconnect(s);
    let (q, _) = last_queue(&h.take(doc)).expect("the queue is updated");
    assert_eq!(q.iter().map(|e| e.request_id).collect::<Vec<_>>(), vec![r2]);
}

fn queues(msgs: &[ServerMessage]) -> usize {
    msgs.iter()
        .filter(|m| matches!(m, ServerMessage::Queue { .. }))
        .count()
}

fn set_availability(h: &mut Harness, conn: ConnId, status: Availability) {
    h.send(conn, ClientMessage::SetAvailability { status });
}

#[test]
fn an_unchanged_queue_is_not_sent_again_and_a_count_alone_waits_its_turn() {
    let mut h = Harness::new();
    let station = h.connect(1, STATION, "Millom MIU Room 2");
    let a = h.connect(10, CLINICIAN, "Dr Patel");
    let b = h.connect(11, CLINICIAN, "Dr Okafor");
    let request_id = h.request(station, Urgency::Urgent, "Wrist");
    h.take(a);
    h.take(b);

    // A new request changes what the queue holds: everyone sees it at once.
    let station2 = h.connect(2, STATION, "Millom MIU Room 3");
    h.request(station2, Urgency::Immediate, "Chest pain");
    let msgs = h.take(b);
    assert_eq!(last_queue(&msgs).map(|(q, n)| (q.len(), n)), Some((2, 2)));

    // Time passing changes only the waited times, which clients count
    // themselves: nothing is sent.
    h.advance(30_000);
    h.send(station, ClientMessage::Ping { nonce: None });
    assert_eq!(queues(&h.take(b)), 0);

    // Dr Patel steps away: only the count of available clinicians
    // changed, so Dr Okafor hears of it within the second, not at once.
    set_availability(&mut h, a, Availability::Away);
    assert_eq!(queues(&h.take(b)), 0, "a count alone is held back");
    set_availability(&mut h, a, Availability::Busy);
    assert_eq!(queues(&h.take(b)), 0);
    assert_eq!(h.sb.poll_timeout(), Some(h.now + 1_000));
    h.advance(1_000);
    let msgs = h.take(b);
    assert_eq!(queues(&msgs), 1, "one update for both changes: {msgs:?}");
    assert_eq!(last_queue(&msgs).map(|(_, n)| n), Some(1));

    // Answering a request changes the queue: at once, with the count.
    h.accept(b, request_id).expect("call starts");
    let msgs = h.take(a);
    assert_eq!(last_queue(&msgs).map(|(q, n)| (q.len(), n)), Some((1, 0)));
}

#[test]
fn a_reconnected_clinician_is_sent_the_queue_again() {
    let mut h = Harness::new();
    let station = h.connect(1, STATION, "Millom MIU Room 2");
    let doc = h.connect(10, CLINICIAN, "Dr Patel");
    h.request(station, Urgency::Urgent, "Wrist");
    assert_eq!(last_queue(&h.take(doc)).map(|(q, _)| q.len()), Some(1));
    h.disconnect(doc);
    let doc = h.connect(10, CLINICIAN, "Dr Patel");
    assert_eq!(last_queue(&h.take(doc)).map(|(q, _)| q.len()), Some(1));
}

#[test]
fn with_no_coalescing_every_count_change_goes_at_once() {
    let mut h = Harness::with_config(Config {
        queue_count_every_ms: 0,
        ..Config::default()
    });
    let a = h.connect(10, CLINICIAN, "Dr Patel");
    let b = h.connect(11, CLINICIAN, "Dr Okafor");
    h.take(b);
    set_availability(&mut h, a, Availability::Away);
    assert_eq!(last_queue(&h.take(b)).map(|(_, n)| n), Some(1));
}

#[test]
fn a_directed_call_shows_its_station_going_and_coming_back_to_its_clinician_only() {
    let mut h = Harness::new();
    h.monitoring = vec![1];
    let probe_station = h.connect(1, STATION, "Probe station");
    let probe_doc = h.connect(10, CLINICIAN, "Probe clinician");
    let real_doc = h.connect(11, CLINICIAN, "Dr Real");
    h.send(
        probe_station,
        ClientMessage::RequestConsult {
            urgency: Urgency::Routine,
            reason: "Monitoring probe".into(),
            patient_ref: None,
            test: true,
            direct_to: Some("probe-clinician".into()),
        },
    );
    h.take(probe_doc);
    h.take(real_doc);
    let shown = |h: &mut Harness, conn| last_queue(&h.take(conn)).map(|(q, _)| q);

    h.disconnect(probe_station);
    let q = shown(&mut h, probe_doc).expect("the clinician sees the station go");
    assert!(!q[0].station_connected);
    assert_eq!(shown(&mut h, real_doc), None, "not in anyone else's queue");

    let _back = h.connect(1, STATION, "Probe station");
    let q = shown(&mut h, probe_doc).expect("and come back");
    assert!(q[0].station_connected);
    assert_eq!(shown(&mut h, real_doc), None);
}

/// The station's acknowledgement is an output of the request itself,
/// before the turn's queue flush (the clinicians' `queue`), not a side
/// effect of that flush.
#[test]
fn the_station_is_acknowledged_by_its_request_before_the_queue_is_flushed() {
    let mut sb = Switchboard::new(Config::default(), 0);
    let identity = |id: i64, role: Role, name: &str| Identity {
        user_id: UserId(id),
        username: name.to_lowercase().replace(' ', "-"),
        display_name: name.into(),
        role,
        site: Some("Millom".into()),
        escalation_duty: false,
        monitoring: false,
    };
    for (conn, id, role, name) in [(1, 1, STATION, "Room 1"), (2, 10, CLINICIAN, "Dr A")] {
        sb.handle(
            0,
            Input::Connect {
                conn: ConnId(conn),
                identity: identity(id, role, name),
                ice_servers: Vec::new(),
            },
        );
    }
    while sb.poll_output().is_some() {}
    sb.handle(
        10,
        Input::Message {
            conn: ConnId(1),
            message: ClientMessage::RequestConsult {
                urgency: Urgency::Urgent,
                reason: "Wrist injury".into(),
                patient_ref: None,
                test: false,
                direct_to: None,
            },
        },
    );
    let mut order = Vec::new();
    while let Some(out) = sb.poll_output() {
        if let Output::Send { to, message } = out {
            order.push((to, message));
        }
    }
    let ack = order
        .iter()
        .position(|(to, m)| {
            to == &vec![ConnId(1)]
                && matches!(
                    m,
                    ServerMessage::RequestUpdate {
                        state: RequestState::Waiting,
                        position: Some(1),
                        clinicians_available: 1,
                        ..
                    }
                )
        })
        .expect("the station is acknowledged");
    let queue = order
        .iter()
        .position(|(_, m)| matches!(m, ServerMessage::Queue { .. }))
        .expect("the clinician is told the queue");
    assert!(ack < queue, "{order:?}");
    assert_eq!(
        order
            .iter()
            .filter(|(to, m)| to == &vec![ConnId(1)]
                && matches!(m, ServerMessage::RequestUpdate { .. }))
            .count(),
        1,
        "told once: {order:?}"
    );
}

/// `welcome` carries the limits the server applies, so pages check with
/// the same numbers (and the trust's reference pattern).
#[test]
fn welcome_tells_the_client_the_servers_limits() {
    let config = Config {
        limits: Limits {
            patient_ref_pattern: "^[0-9]{6,8}$".into(),
            patient_ref_hint: "6 to 8 digits".into(),
            ..Limits::default()
        },
        ..Config::default()
    };
    let mut sb = Switchboard::new(config, 0);
    sb.handle(
        0,
        Input::Connect {
            conn: ConnId(1),
            identity: Identity {
                user_id: UserId(1),
                username: "room1".into(),
                display_name: "Room 1".into(),
                role: Role::Station,
                site: Some("Millom".into()),
                escalation_duty: false,
                monitoring: false,
            },
            ice_servers: Vec::new(),
        },
    );
    let Some(Output::Send {
        message: ServerMessage::Welcome { limits, .. },
        ..
    }) = sb.poll_output()
    else {
        panic!("welcome first");
    };
    assert_eq!(limits.reason_max_chars, MAX_REASON_CHARS);
    assert_eq!(limits.note_max_chars, MAX_NOTE_CHARS);
    assert_eq!(limits.patient_ref_pattern, "^[0-9]{6,8}$");
    assert_eq!(limits.poor_link.rtt_ms, POOR_LINK_RTT_MS);
    let wire = serde_json::to_value(ServerMessage::Welcome {
        user: UserInfo {
            id: UserId(1),
            username: "room1".into(),
            display_name: "Room 1".into(),
            site: None,
        },
        role: Role::Station,
        ice_servers: Vec::new(),
        protocol_version: PROTOCOL_VERSION,
        server_time: 0,
        max_frame_bytes: MAX_FRAME_BYTES,
        limits,
    })
    .unwrap();
    assert_eq!(wire["limits"]["poor_link"]["loss_pct"], 5.0, "{wire}");
    assert_eq!(wire["limits"]["patient_ref_hint"], "6 to 8 digits");
}
