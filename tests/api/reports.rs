//! The response-time dashboard, `GET /api/reports`: every headline figure
//! against a small hand-built log whose medians, percentiles and shares
//! are worked out by hand below; empty periods; who may read it.
//!
//! Percentiles are linear interpolation between closest ranks (Excel's
//! PERCENTILE.INC): for n sorted values the p-th is at h = (n - 1) * p,
//! x[floor h] + (h - floor h) * (x[floor h + 1] - x[floor h]).

use crate::helpers::*;
use miulink::store::HistoricConsult;
use serde_json::{json, Value};
use signalling::{Role, Urgency};

const S: i64 = 1_000;
const MIN: i64 = 60_000;

fn at(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .expect("time")
        .timestamp_millis()
}

fn site_of(station: &str) -> &'static str {
    if station.starts_with("Millom") {
        "Millom"
    } else if station.starts_with("Ulverston") {
        "Ulverston"
    } else {
        "Kendal"
    }
}

/// An answered consult: wait, answer-to-media (None: media never
/// connected), call length from media (or answer), outcome.
#[allow(clippy::too_many_arguments)]
fn answered(
    id: i64,
    station: &str,
    urgency: &str,
    requested: &str,
    clinician: &str,
    wait_s: i64,
    connect_ms: Option<i64>,
    duration_s: i64,
    outcome: Option<&str>,
) -> HistoricConsult {
    let t = at(requested);
    let accepted = t + wait_s * S;
    let connected = connect_ms.map(|c| accepted + c);
    let ended = connected.unwrap_or(accepted) + duration_s * S;
    HistoricConsult {
        id,
        station_name: station.into(),
        site: Some(site_of(station).into()),
        urgency: urgency.into(),
        reason: "Wrist X-ray review".into(),
        requested_at: t,
        status: if outcome.is_some() {
            "completed"
        } else {
            "ended"
        }
        .into(),
        rung_count: 1,
        call_id: Some(id),
        clinician_name: Some(clinician.into()),
        accepted_at: Some(accepted),
        connected_at: connected,
        ended_at: Some(ended),
        end_reason: Some("hung_up_by_clinician".into()),
        outcome: outcome.map(Into::into),
        outcome_at: outcome.map(|_| ended + 10 * S),
        ..HistoricConsult::default()
    }
}

fn unanswered(
    id: i64,
    station: &str,
    urgency: &str,
    requested: &str,
    status: &str,
    after_s: i64,
) -> HistoricConsult {
    let t = at(requested);
    HistoricConsult {
        id,
        station_name: station.into(),
        site: Some(site_of(station).into()),
        urgency: urgency.into(),
        reason: "Head injury advice".into(),
        requested_at: t,
        status: status.into(),
        rung_count: 1,
        closed_at: Some(t + after_s * S),
        ..HistoricConsult::default()
    }
}

const R1: &str = "Millom MIU Room 1";
const R2: &str = "Millom MIU Room 2";
const ULV: &str = "Ulverston MIU";
const KEN: &str = "Kendal UTC Room 3";

/// Monday 15 and Tuesday 16 June 2026 (British Summer Time, UTC+1).
/// Columns: id, station, urgency, requested (UTC), clinician, wait (s),
/// answer to media (ms), call length (s), outcome.
#[rustfmt::skip]
fn hand_built_log() -> Vec<HistoricConsult> {
    let mut test_call = answered(14, R1, "immediate", "2026-06-15T10:00:00Z", "Dr A", 5, Some(1000), 60, Some("managed_locally"));
    test_call.test_call = true;
    let mut log = vec![
        // 23:30 UTC Sunday is 00:30 BST Monday: a Monday request.
        answered(1, R1, "immediate", "2026-06-14T23:30:00Z", "Dr A", 60, Some(2000), 300, Some("managed_locally")),
        answered(2, R1, "immediate", "2026-06-15T09:00:00Z", "Dr A", 100, Some(3000), 420, Some("managed_locally")),
        answered(3, ULV, "immediate", "2026-06-15T17:10:00Z", "Dr B", 180, Some(4000), 600, Some("ambulance")),
        answered(4, R2, "urgent", "2026-06-15T17:40:00Z", "Dr A", 120, Some(2500), 360, Some("managed_locally")),
        // Exactly the urgent target (5 min): that meets it.
        answered(5, ULV, "urgent", "2026-06-16T08:00:00Z", "Dr B", 300, Some(5000), 480, Some("transfer_to_ed")),
        answered(6, KEN, "urgent", "2026-06-16T12:00:00Z", "Dr C", 400, Some(6000), 540, Some("managed_locally")),
        answered(7, R1, "routine", "2026-06-16T12:30:00Z", "Dr A", 300, Some(1500), 200, Some("referred_elsewhere")),
        // Media never connected: the call is timed from the answer.
        answered(8, R2, "routine", "2026-06-16T18:00:00Z", "Dr B", 600, None, 60, Some("technical_failure")),
        answered(9, ULV, "routine", "2026-06-16T18:20:00Z", "Dr C", 1000, Some(3500), 900, Some("managed_locally")),
        answered(10, R1, "routine", "2026-06-16T21:30:00Z", "Dr A", 1200, Some(2000), 240, None),
        unanswered(11, R2, "immediate", "2026-06-15T12:00:00Z", "cancelled", 30),
        unanswered(12, KEN, "urgent", "2026-06-16T10:00:00Z", "abandoned", 600),
        unanswered(13, R1, "routine", "2026-06-16T15:00:00Z", "cancelled", 1000),
        test_call,
        // Just outside the period on either side (local midnight, BST).
        answered(15, R1, "urgent", "2026-06-14T22:59:59Z", "Dr A", 10, Some(1000), 60, Some("managed_locally")),
        answered(16, R1, "urgent", "2026-06-16T23:00:00Z", "Dr A", 10, Some(1000), 60, Some("managed_locally")),
    ];
    // Escalation steps as logged: 6 and 12 re-alerted and escalated, 9
    // re-alerted only.
    for (id, escalated) in [(6, true), (9, false), (12, true)] {
        let c = &mut log[id - 1];
        c.realerted_at = Some(c.requested_at + 150 * S);
        c.escalated_at = escalated.then_some(c.requested_at + 300 * S);
    }
    // Last quality reports (the worse side counts):
    //   2: 30 ms, 0.2 %; 3: 500 ms (poor), 1 %, relayed; 6: station 80 ms
    //   8 % loss (poor), clinician 90 ms audio only; 7: 50 ms, 0 %.
    log[1].station_quality = Some(r#"{"rtt_ms":30,"packet_loss_pct":0.2}"#.into());
    log[2].station_quality = Some(r#"{"rtt_ms":500,"packet_loss_pct":1.0,"relayed":true}"#.into());
    log[5].station_quality = Some(r#"{"rtt_ms":80,"packet_loss_pct":8.0}"#.into());
    log[5].clinician_quality = Some(r#"{"rtt_ms":90,"audio_only":true}"#.into());
    log[6].station_quality = Some(r#"{"rtt_ms":50,"packet_loss_pct":0}"#.into());
    log
}

const PERIOD: &str = "from=2026-06-15&to=2026-06-16";

async fn app_with_log() -> (TestApp, String) {
    let app = TestApp::spawn_with(|s| {
        s.reports.travel_minutes = [("Millom".to_owned(), 50), ("Ulverston".to_owned(), 20)]
            .into_iter()
            .collect();
    })
    .await;
    app.store
        .insert_history(&hand_built_log())
        .await
        .expect("log written");
    let token = app.manager_token().await;
    (app, token)
}

fn spread(v: &Value) -> (Value, Value, Value, Value, Value) {
    (
        v["count"].clone(),
        v["median_ms"].clone(),
        v["p90_ms"].clone(),
        v["p95_ms"].clone(),
        v["longest_ms"].clone(),
    )
}

fn assert_share(v: &Value, met: u64, missed: u64) {
    assert_eq!(v["met"], met, "{v}");
    assert_eq!(v["missed"], missed, "{v}");
    let share = v["share"].as_f64().expect("a share");
    assert!(
        (share - met as f64 / (met + missed) as f64).abs() < 1e-9,
        "{v}"
    );
}

#[tokio::test]
async fn every_headline_figure_matches_the_hand_worked_log() {
    let (app, token) = app_with_log().await;
    let r = app
        .get_json(&format!("/api/reports?{PERIOD}"), &token)
        .await;
    assert_eq!(
        r["period"]["from"],
        at("2026-06-14T23:00:00Z"),
        "local midnight"
    );
    assert_eq!(r["period"]["to"], at("2026-06-16T23:00:00Z"));
    assert_eq!(r["period"]["first_day"], "2026-06-15");
    assert_eq!(r["period"]["last_day"], "2026-06-16");
    assert_eq!(r["timezone"], "Europe/London");

    let h = &r["headline"];
    // 13 requests in the period: 10 answered, 2 cancelled, 1 abandoned;
    // the test call and the two just outside are left out.
    assert_eq!(h["requests"], 13);
    assert_eq!(h["answered"], 10);
    assert_eq!(h["cancelled"], 2);
    assert_eq!(h["abandoned"], 1);
    assert_eq!(h["still_waiting"], 0);
    assert_eq!(h["test_calls_left_out"], 1);
    assert_eq!(h["synthetic_requests"], 0);
    assert!((h["answer_rate"].as_f64().unwrap() - 10.0 / 13.0).abs() < 1e-9);
    // Waits (s), sorted: 60 100 120 180 300 300 400 600 1000 1200.
    // median h = 4.5 -> (300 + 300) / 2 = 300; p90 h = 8.1 -> 1000 + 0.1 * 200
    // = 1020; p95 h = 8.55 -> 1000 + 0.55 * 200 = 1110; longest 1200.
    assert_eq!(
        spread(&h["time_to_answer"]),
        (
            json!(10),
            json!(300 * S),
            json!(1020 * S),
            json!(1110 * S),
            json!(1200 * S)
        )
    );
    // Met: immediate 60, 100 (<= 2 min); urgent 120, 300 (<= 5 min: a wait
    // of exactly the target meets it);
    // routine 300, 600 (<= 15 min) = 6. Missed: immediate 180, urgent 400,
    // routine 1000 and 1200, the urgent request abandoned after 600 s and
    // the routine one cancelled after 1000 s = 6. The immediate request
    // cancelled after 30 s counts neither way. 6 / 12 = 0.5.
    assert_share(&h["within_target"], 6, 6);
    assert_eq!(h["within_target"]["share"], 0.5);
    // The verdict against the trust's aim (90 % by default): not met.
    assert_eq!(r["verdict"]["target_share"], 0.9);
    assert_eq!(r["verdict"]["share"], 0.5);
    assert_eq!(r["verdict"]["meeting_target"], false);
    // Answer to media (ms), 9 calls with media: 1500 2000 2000 2500 3000
    // 3500 4000 5000 6000 -> median (h = 4) 3000.
    assert_eq!(h["answer_to_connected"]["count"], 9);
    assert_eq!(h["answer_to_connected"]["median_ms"], 3000);
    // Call lengths (s): 60 200 240 300 360 420 480 540 600 900 -> (360 + 420) / 2.
    assert_eq!(h["call_duration"]["count"], 10);
    assert_eq!(h["call_duration"]["median_ms"], 390 * S);
    // Escalations: 6, 9 and 12 re-alerted; 6 and 12 escalated; 2 of 13.
    assert_eq!(h["escalations"]["realerted"], 3);
    assert_eq!(h["escalations"]["escalated"], 2);
    assert!((h["escalations"]["escalated_share"].as_f64().unwrap() - 2.0 / 13.0).abs() < 1e-9);
    // Link quality over the 4 measured calls: worse-side round trips
    // 30 50 90 500 -> median (h = 1.5) 70; loss in half percent 0 0 2 16 ->
    // median 1 -> 0.5 %; poor: 3 (500 ms) and 6 (8 %, audio only).
    let l = &h["link_quality"];
    assert_eq!(l["measured_calls"], 4);
    assert_eq!(l["median_rtt_ms"], 70);
    assert_eq!(l["median_loss_pct"], 0.5);
    assert_eq!(l["poor_calls"], 2);
    assert_eq!(l["poor_share"], 0.5);
    assert_eq!(l["relayed_calls"], 1);
    assert_eq!(l["audio_only_calls"], 1);
    // By site, worst first: Kendal (1 of 1 poor), Ulverston (1 of 1), Millom (0 of 2).
    let sites: Vec<(&str, u64)> = r["link_by_site"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["site"].as_str().unwrap(),
                s["poor_calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sites, [("Kendal", 1), ("Ulverston", 1), ("Millom", 0)]);

    // Per urgency.
    let u = &r["by_urgency"];
    assert_eq!(u[0]["urgency"], "immediate");
    assert_eq!(u[0]["target_ms"], 2 * MIN);
    assert_eq!(u[0]["requests"], 4);
    assert_eq!(u[0]["cancelled"], 1);
    // 60 100 180: median 100; p90 h = 1.8 -> 100 + 0.8 * 80 = 164; p95 172.
    assert_eq!(
        spread(&u[0]["time_to_answer"]),
        (
            json!(3),
            json!(100 * S),
            json!(164 * S),
            json!(172 * S),
            json!(180 * S)
        )
    );
    assert_share(&u[0]["within_target"], 2, 1);
    assert_eq!(u[1]["target_ms"], 5 * MIN);
    assert_eq!(u[1]["abandoned"], 1);
    // 120 300 400: median 300; p90 h = 1.8 -> 300 + 0.8 * 100 = 380; p95 390.
    assert_eq!(
        spread(&u[1]["time_to_answer"]),
        (
            json!(3),
            json!(300 * S),
            json!(380 * S),
            json!(390 * S),
            json!(400 * S)
        )
    );
    assert_share(&u[1]["within_target"], 2, 2);
    assert_eq!(u[2]["target_ms"], 15 * MIN);
    // 300 600 1000 1200: median h = 1.5 -> 800; p90 h = 2.7 -> 1140; p95 1170.
    assert_eq!(
        spread(&u[2]["time_to_answer"]),
        (
            json!(4),
            json!(800 * S),
            json!(1140 * S),
            json!(1170 * S),
            json!(1200 * S)
        )
    );
    assert_share(&u[2]["within_target"], 2, 3);

    // Outcomes and journeys avoided: managed locally = consults 1, 2, 4
    // (Millom), 9 (Ulverston), 6 (Kendal). Travel: Millom 3 x 2 x 50 = 300
    // min, Ulverston 1 x 2 x 20 = 40; Kendal has no travel time set.
    let o = &r["outcomes"];
    let count = |name: &str| {
        o["counts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["outcome"] == name)
            .map(|c| c["count"].clone())
    };
    assert_eq!(count("managed_locally"), Some(json!(5)));
    assert_eq!(count("transfer_to_ed"), Some(json!(1)));
    assert_eq!(count("referred_elsewhere"), Some(json!(1)));
    assert_eq!(count("ambulance"), Some(json!(1)));
    assert_eq!(count("technical_failure"), Some(json!(1)));
    assert_eq!(count("not_recorded"), Some(json!(1)));
    assert_eq!(o["journeys_avoided"], 5);
    assert_eq!(o["travel_minutes_saved"], 340);
    assert_eq!(o["sites_without_travel_time"], json!(["Kendal"]));
    assert_eq!(
        o["by_site"],
        json!([
            {"site": "Kendal", "journeys_avoided": 1, "minutes_each_way": null, "minutes_saved": null},
            {"site": "Millom", "journeys_avoided": 3, "minutes_each_way": 50, "minutes_saved": 300},
            {"site": "Ulverston", "journeys_avoided": 1, "minutes_each_way": 20, "minutes_saved": 40},
        ])
    );

    // Days are local: Monday has consults 1 (00:30 BST), 2, 3, 4 and 11;
    // waits 60 100 120 180 -> median 110 s; met 3 (1, 2, 4), missed 1 (3).
    let d = r["daily"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0]["date"], "2026-06-15");
    assert_eq!(d[0]["weekday"], "Monday");
    assert_eq!(d[0]["requests"], 5);
    assert_eq!(d[0]["answered"], 4);
    assert_eq!(d[0]["median_wait_ms"], 110 * S);
    assert_share(&d[0]["within_target"], 3, 1);
    // Tuesday: 8 requests, waits 300 300 400 600 1000 1200 -> (400 + 600) / 2.
    assert_eq!(d[1]["requests"], 8);
    assert_eq!(d[1]["answered"], 6);
    assert_eq!(d[1]["median_wait_ms"], 500 * S);
    assert_share(&d[1]["within_target"], 3, 5);

    // Heat map, local hours: Monday 00:00-00:59 holds consult 1; Monday
    // 18:00 holds 3 and 4 (waits 180, 120 -> 150); Tuesday 19:00 holds 8
    // and 9 (600, 1000 -> 800); nothing on Sunday 23:00 (it was outside).
    let hm = &r["heatmap"];
    assert_eq!(hm["requests"][0][0], 1);
    assert_eq!(hm["median_wait_ms"][0][0], 60 * S);
    assert_eq!(hm["requests"][0][18], 2);
    assert_eq!(hm["median_wait_ms"][0][18], 150 * S);
    assert_eq!(hm["requests"][1][19], 2);
    assert_eq!(hm["median_wait_ms"][1][19], 800 * S);
    assert_eq!(hm["requests"][6][23], 0);
    assert_eq!(hm["median_wait_ms"][6][23], Value::Null);
    let total: u64 = hm["requests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 13);

    // Clinicians, most answers first. Dr A: 60 100 120 300 1200 -> median
    // 120, p90 h = 3.6 -> 300 + 0.6 * 900 = 840; calls 200 240 300 360 420
    // -> 300. Dr B: 180 300 600 -> 300, p90 300 + 0.8 * 300 = 540; calls
    // 60 480 600 -> 480. Dr C: 400 1000 -> 700, p90 940; calls 540 900 -> 720.
    assert_eq!(
        r["clinicians"],
        json!([
            {"name": "Dr A", "answered": 5, "median_wait_ms": 120 * S, "p90_wait_ms": 840 * S, "median_call_ms": 300 * S},
            {"name": "Dr B", "answered": 3, "median_wait_ms": 300 * S, "p90_wait_ms": 540 * S, "median_call_ms": 480 * S},
            {"name": "Dr C", "answered": 2, "median_wait_ms": 700 * S, "p90_wait_ms": 940 * S, "median_call_ms": 720 * S},
        ])
    );

    // Stations, by site then name.
    let st = r["stations"].as_array().unwrap();
    let names: Vec<&str> = st.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, [KEN, R1, R2, ULV]);
    // Room 1: consults 1, 2, 7, 10, 13; waits 60 100 300 1200 -> 200;
    // met 1, 2, 7; missed 10 and 13 (cancelled after 1000 s).
    assert_eq!(st[1]["requests"], 5);
    assert_eq!(st[1]["answered"], 4);
    assert_eq!(st[1]["cancelled"], 1);
    assert_eq!(st[1]["median_wait_ms"], 200 * S);
    assert_share(&st[1]["within_target"], 3, 2);
    assert_eq!(st[1]["journeys_avoided"], 2);
    assert!((st[1]["answer_rate"].as_f64().unwrap() - 0.8).abs() < 1e-9);
    // Kendal: 6 (400 s, urgent: missed) and 12 (abandoned after 600 s: missed).
    assert_eq!(st[0]["abandoned"], 1);
    assert_share(&st[0]["within_target"], 0, 2);
    assert_eq!(st[0]["within_target"]["share"], 0.0);

    // The wait distribution: immediate waits 60, 100, 180 fall in the bars
    // (30 s, 1 min], (1, 2 min], (2, 3 min]; the bar edges include the targets.
    let dist = &r["wait_distribution"];
    let edges: Vec<i64> = dist["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["to_ms"].as_i64())
        .collect();
    for target in [2 * MIN, 5 * MIN, 15 * MIN] {
        assert!(edges.contains(&target), "{edges:?}");
    }
    let imm: Vec<u64> = dist["by_urgency"][0]["answered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(imm[..4], [0, 1, 1, 1]);
    assert_eq!(imm.iter().sum::<u64>(), 3);
    assert_eq!(dist["by_urgency"][0]["unanswered_within_target"], 1);
    assert_eq!(dist["by_urgency"][1]["unanswered_over_target"], 1);
    assert_eq!(dist["by_urgency"][2]["unanswered_over_target"], 1);

    assert_eq!(
        r["choices"]["sites"],
        json!(["Kendal", "Millom", "Ulverston"])
    );
    assert_eq!(r["choices"]["stations"].as_array().unwrap().len(), 4);

    // The CSV export with the period the report resolved has the same consults.
    let csv = app
        .get(
            &format!(
                "/api/consults.csv?from={}&to={}",
                r["period"]["from"], r["period"]["to"]
            ),
            &token,
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 1 + 13, "header + the 13 requests");
}

#[tokio::test]
async fn filters_by_site_and_station_and_can_include_test_calls() {
    let (app, token) = app_with_log().await;
    let r = app
        .get_json(&format!("/api/reports?{PERIOD}&site=Millom"), &token)
        .await;
    assert_eq!(r["headline"]["requests"], 8, "Room 1 (5) and Room 2 (3)");
    assert_eq!(r["outcomes"]["journeys_avoided"], 3);
    assert_eq!(r["outcomes"]["travel_minutes_saved"], 300);
    assert_eq!(r["filters"]["site"], "Millom");
    // The menus still offer everything seen in the period.
    assert_eq!(r["choices"]["sites"].as_array().unwrap().len(), 3);

    let r = app
        .get_json(
            &format!("/api/reports?{PERIOD}&station=Ulverston%20MIU"),
            &token,
        )
        .await;
    // Consults 3, 5 and 9: waits 180 300 1000.
    assert_eq!(r["headline"]["requests"], 3);
    assert_eq!(r["headline"]["time_to_answer"]["median_ms"], 300 * S);
    assert_eq!(r["stations"].as_array().unwrap().len(), 1);

    let r = app
        .get_json(
            &format!("/api/reports?{PERIOD}&include_test_calls=true"),
            &token,
        )
        .await;
    assert_eq!(r["headline"]["requests"], 14);
    assert_eq!(r["headline"]["test_calls_left_out"], 0);
}

#[tokio::test]
async fn empty_periods_give_zeros_and_nulls_not_errors() {
    let (app, token) = app_with_log().await;
    let res = app
        .get("/api/reports?from=2026-01-05&to=2026-01-11", &token)
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
    let r: Value = serde_json::from_str(&text).unwrap();
    let h = &r["headline"];
    assert_eq!(h["requests"], 0);
    assert_eq!(h["answered"], 0);
    assert_eq!(h["answer_rate"], Value::Null);
    assert_eq!(
        spread(&h["time_to_answer"]),
        (json!(0), Value::Null, Value::Null, Value::Null, Value::Null)
    );
    assert_eq!(
        h["within_target"],
        json!({"met": 0, "missed": 0, "share": null})
    );
    assert_eq!(
        h["answer_to_connected"],
        json!({"count": 0, "median_ms": null})
    );
    assert_eq!(h["call_duration"], json!({"count": 0, "median_ms": null}));
    // Every day of the week is there, with zeros.
    let d = r["daily"].as_array().unwrap();
    assert_eq!(d.len(), 7);
    assert!(d
        .iter()
        .all(|day| day["requests"] == 0 && day["median_wait_ms"].is_null()));
    assert_eq!(d[0]["weekday"], "Monday");
    assert_eq!(r["outcomes"]["journeys_avoided"], 0);
    assert_eq!(r["outcomes"]["travel_minutes_saved"], 0);
    assert_eq!(r["clinicians"], json!([]));
    assert_eq!(r["stations"], json!([]));
    assert_eq!(r["choices"]["sites"], json!([]));
    assert_eq!(r["heatmap"]["requests"][3][12], 0);
    assert_eq!(r["heatmap"]["median_wait_ms"][3][12], Value::Null);
    for u in r["by_urgency"].as_array().unwrap() {
        assert_eq!(u["requests"], 0);
        assert_eq!(u["within_target"]["share"], Value::Null);
    }

    // A period whose only request was cancelled within its target: an
    // answer rate of 0, no waits, nothing to judge against the target.
    let r = app
        .get_json(
            "/api/reports?from=2026-06-15T12:00:00Z&to=2026-06-15T12:01:00Z",
            &token,
        )
        .await;
    let h = &r["headline"];
    assert_eq!(h["requests"], 1);
    assert_eq!(h["cancelled"], 1);
    assert_eq!(h["answer_rate"], 0.0);
    assert_eq!(h["time_to_answer"]["median_ms"], Value::Null);
    assert_eq!(h["time_to_answer"]["longest_ms"], Value::Null);
    assert_eq!(h["within_target"]["share"], Value::Null);
    assert_eq!(
        r["verdict"]["meeting_target"],
        Value::Null,
        "no verdict on nothing"
    );
    assert_eq!(h["call_duration"]["median_ms"], Value::Null);
    // ... and one cancelled after its target had passed: a miss, share 0.
    let r = app
        .get_json(
            "/api/reports?from=2026-06-16T15:00:00Z&to=2026-06-16T15:01:00Z",
            &token,
        )
        .await;
    assert_eq!(
        r["headline"]["within_target"],
        json!({"met": 0, "missed": 1, "share": 0.0})
    );
    assert_eq!(r["headline"]["time_to_answer"]["count"], 0);

    // An empty log altogether.
    let fresh = TestApp::spawn().await;
    let token = fresh.manager_token().await;
    let r = fresh
        .get_json("/api/reports?period=last_7_days", &token)
        .await;
    assert_eq!(r["headline"]["requests"], 0);
    assert_eq!(r["daily"].as_array().unwrap().len(), 7);
    assert_eq!(r["period"]["preset"], "last_7_days");
    let r = fresh.get_json("/api/reports", &token).await;
    assert_eq!(r["headline"]["requests"], 0);
}

#[tokio::test]
async fn only_managers_and_admins_may_read_reports() {
    let app = TestApp::spawn().await;
    let res = app
        .http()
        .get(format!("{}/api/reports", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    for (name, role) in [("st", Role::Station), ("doc", Role::Clinician)] {
        app.add_user(name, name, role, Some("Millom")).await;
        let token = app.login(name).await;
        let res = app.get("/api/reports?period=today", &token).await;
        assert_eq!(res.status(), 403, "{name}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "forbidden");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("manager or admin"),
            "{body}"
        );
    }
    app.add_user("boss", "Admin", Role::Admin, None).await;
    let token = app.login("boss").await;
    assert_eq!(
        app.get("/api/reports?period=today", &token).await.status(),
        200
    );
    let token = app.manager_token().await;
    assert_eq!(
        app.get("/api/reports?period=this_quarter", &token)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn bad_queries_get_a_clear_400() {
    let app = TestApp::spawn().await;
    let token = app.manager_token().await;
    for (query, says) in [
        ("period=fortnight", "unknown period"),
        (
            "period=today&from=2026-01-01",
            "either `period` or `from`/`to`",
        ),
        ("from=2026-02-01&to=2026-01-01", "swap them"),
        ("from=last%20tuesday", "cannot read"),
        ("from=1990-01-01&to=2026-01-01", "choose a shorter one"),
        ("from=1990-01-01", "choose a shorter one"),
    ] {
        let res = app.get(&format!("/api/reports?{query}"), &token).await;
        assert_eq!(res.status(), 400, "{query}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
}

/// The cache of packed days must never serve stale figures: a consult that
/// arrives, or changes, after a report was read shows in the next report.
#[tokio::test]
async fn live_consults_show_at_once() {
    let app = TestApp::spawn().await;
    let token = app.manager_token().await;
    let r = app.get_json("/api/reports?period=today", &token).await;
    assert_eq!(r["headline"]["requests"], 0);

    let mut station = app
        .user("millom-room1", "Millom MIU Room 1", Role::Station)
        .await;
    let mut doc = app.user("dr-x", "Dr X", Role::Clinician).await;
    station
        .send(msg::request(Urgency::Urgent, "Ankle injury"))
        .await;
    let waiting = station
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    let r = app.get_json("/api/reports?period=today", &token).await;
    assert_eq!(r["headline"]["requests"], 1);
    assert_eq!(r["headline"]["still_waiting"], 1);
    assert_eq!(
        r["headline"]["answer_rate"],
        Value::Null,
        "nothing finished yet"
    );
    assert_eq!(r["stations"][0]["name"], "Millom MIU Room 1");

    doc.expect("ring").await;
    doc.send(msg::accept(&waiting["request_id"])).await;
    station
        .expect_where("request_update", |v| v["state"] == "accepted")
        .await;
    let r = app.get_json("/api/reports?period=today", &token).await;
    assert_eq!(r["headline"]["answered"], 1);
    assert_eq!(r["headline"]["still_waiting"], 0);
    assert_eq!(r["headline"]["answer_rate"], 1.0);
    assert_eq!(r["headline"]["within_target"]["met"], 1);
    assert_eq!(r["clinicians"][0]["name"], "Dr X");
    assert!(
        r["headline"]["time_to_answer"]["median_ms"]
            .as_i64()
            .unwrap()
            >= 0
    );

    // Written history lands in the next report too.
    let now = chrono::Utc::now().timestamp_millis();
    app.store
        .insert_history(&[HistoricConsult {
            id: 1_000,
            station_name: "Millom MIU Room 2".into(),
            site: Some("Millom".into()),
            urgency: "routine".into(),
            reason: "Rash".into(),
            requested_at: now - 1_000,
            status: "cancelled".into(),
            closed_at: Some(now),
            ..HistoricConsult::default()
        }])
        .await
        .unwrap();
    let r = app.get_json("/api/reports?period=today", &token).await;
    assert_eq!(r["headline"]["requests"], 2);
    assert_eq!(r["headline"]["cancelled"], 1);
}

/// `--demo` on an empty log writes a modest synthetic history, so a
/// newcomer's dashboard is populated, and says so.
#[tokio::test]
async fn demo_mode_seeds_a_populated_dashboard() {
    let app = TestApp::spawn_with(|s| s.demo = true).await;
    let login: Value = app
        .http()
        .post(format!("{}/api/login", app.base))
        .json(&json!({"username": "manager", "password": "demo", "want_token": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"]
        .as_str()
        .expect("demo manager logs in")
        .to_owned();
    let r = app
        .get_json("/api/reports?period=last_30_days", &token)
        .await;
    let h = &r["headline"];
    let requests = h["requests"].as_u64().unwrap();
    assert!(requests > 300, "{requests}");
    assert_eq!(h["synthetic_requests"], requests);
    assert!(h["answered"].as_u64().unwrap() > requests / 2);
    assert!(h["cancelled"].as_u64().unwrap() > 0);
    assert!(h["time_to_answer"]["median_ms"].as_i64().unwrap() > 0);
    assert!(r["outcomes"]["journeys_avoided"].as_u64().unwrap() > 0);
    assert!(r["outcomes"]["travel_minutes_saved"].as_u64().unwrap() > 0);
    let sites = r["choices"]["sites"].as_array().unwrap();
    assert!(
        sites.contains(&json!("Millom")) && sites.len() >= 2,
        "{sites:?}"
    );
    // The demo's own accounts appear in the history.
    let clinicians: Vec<&str> = r["clinicians"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        clinicians.contains(&"Dr Asha Patel (demo)"),
        "{clinicians:?}"
    );
    // Evenings are busier than the small hours.
    let hm = &r["heatmap"]["requests"];
    let hour = |h: usize| (0..7).map(|d| hm[d][h].as_u64().unwrap()).sum::<u64>();
    assert!(
        hour(19) > hour(3),
        "evening {} vs night {}",
        hour(19),
        hour(3)
    );

    // The synthetic consults carry their events, like real ones.
    let list = app.get_json("/api/consults?limit=1", &token).await;
    let id = list["consults"][0]["id"].as_i64().unwrap();
    let events = app
        .get_json(&format!("/api/consults/{id}/events"), &token)
        .await;
    assert_eq!(events["events"][0]["kind"], "requested");

    // A restart in demo mode does not seed again.
    let before = app.get_json("/api/consults?limit=1", &token).await["total"].clone();
    let again = miulink::Application::build({
        let mut s = miulink::Settings::for_tests(app.database_url.clone());
        s.demo = true;
        s
    })
    .await
    .unwrap();
    drop(again);
    let after = app.get_json("/api/consults?limit=1", &token).await["total"].clone();
    assert_eq!(before, after);

    // Synthetic history is never restored as open work: some of it ends
    // without an outcome (as real calls do), and a restart must not make
    // the demo clinicians owe an outcome for a months-old made-up call.
    let open = app.store.load_open().await.expect("database");
    assert!(
        open.waiting.is_empty() && open.calls.is_empty() && open.owed.is_empty(),
        "restored {} waiting, {} calls, {} owed outcomes",
        open.waiting.len(),
        open.calls.len(),
        open.owed.len()
    );
}
