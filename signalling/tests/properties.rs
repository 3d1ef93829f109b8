//! Property tests: random sessions through `signalling::sim`, which checks
//! the switchboard's invariants after every input and the log at the end.
//! The same harness is fuzzed without bounds by `scripts/fuzz.sh`.

use proptest::prelude::*;
use signalling::sim::{self, Msg, Op, USERS};

fn msg() -> impl Strategy<Value = Msg> {
    let id = 1u64..6;
    prop_oneof![
        ((0u8..3), (0u8..3)).prop_map(|(u, t)| Msg::Request(u, t)),
        id.clone().prop_map(Msg::Cancel),
        (0u8..3).prop_map(Msg::Availability),
        id.clone().prop_map(Msg::Accept),
        id.clone().prop_map(Msg::Outcome),
        id.clone().prop_map(Msg::Signal),
        id.clone().prop_map(Msg::Connected),
        id.clone().prop_map(Msg::HangUp),
        id.prop_map(Msg::Quality),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let n = USERS.len();
    prop_oneof![
        2 => (0..n).prop_map(Op::Connect),
        1 => (0..n).prop_map(Op::Disconnect),
        1 => (0..n).prop_map(Op::SignOut),
        6 => ((0..n), msg()).prop_map(|(u, m)| Op::Send(u, m)),
        1 => (0i64..4_000).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_sessions_keep_every_invariant(ops in proptest::collection::vec(op(), 1..120)) {
        sim::run(&ops).map_err(TestCaseError::fail)?;
    }

    /// Whatever bytes arrive, decoding answers with a message or an error.
    #[test]
    fn decode_never_panics(text in ".{0,300}") {
        let _ = signalling::decode(&text);
    }

    /// Bytes shaped like the fuzzer's input also make valid sessions.
    #[test]
    fn byte_sessions_keep_every_invariant(bytes in proptest::collection::vec(any::<u8>(), 0..360)) {
        sim::run(&sim::ops_from_bytes(&bytes)).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn decode_survives_nasty_json() {
    for text in [
        "",
        "{",
        "}",
        "null",
        "\"x\"",
        "1e999",
        "[[[[[[[[]]]]]]]]",
        "{\"type\":null}",
        "{\"type\":\"signal\",\"call_id\":18446744073709551616,\"data\":1}",
        "{\"type\":\"accept\",\"request_id\":1.5}",
        "{\"type\":\"call_quality\",\"call_id\":1,\"sample\":{\"rtt_ms\":-1}}",
    ] {
        assert!(signalling::decode(text).is_err(), "{text}");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(signalling::decode(&deep).is_err());
}
