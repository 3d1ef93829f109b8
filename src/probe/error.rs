//! Why a probe run stopped. Each message is what the report says (its
//! `error`, and a failed step's detail).

use signalling::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Logging in, or the signalling connection.
    #[error(transparent)]
    Client(#[from] miulink_client::Error),
    #[error("no {0} account given (--{0}-user and its password)")]
    NoAccount(&'static str),
    #[error("cannot set up HTTPS: {0}")]
    Https(#[source] reqwest::Error),
    #[error("no answer to the login of {0}")]
    LoginTimeout(String),
    #[error("no welcome from the signalling WebSocket")]
    ConnectTimeout,
    /// A side signed in but not handed on (a bug, not the network).
    #[error("no {0} connection")]
    MissingConnection(&'static str),
    /// `account` is "the station account" or a username.
    #[error("{account} is a \"{is}\" account, not a {wanted}")]
    WrongRole {
        account: String,
        is: &'static str,
        wanted: &'static str,
    },
    #[error(
        "the {0} account still has an unfinished consult after clean-up; \
         check it in the browser client"
    )]
    Unfinished(&'static str),
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("the server did not answer a ping")]
    NoPong,
    /// An `error` from the server; `code` is shown while setting up the
    /// call, not during it.
    #[error("the server refused {}: {message}{}", regarding.as_deref().unwrap_or("a message"), code_suffix(*code))]
    Refused {
        regarding: Option<String>,
        message: String,
        code: Option<ErrorCode>,
    },
    #[error("the ring was for a different request")]
    WrongRing,
    #[error("the consult was not logged as a test call")]
    NotLoggedAsTest,
    /// The test card could not be made.
    #[error("{0}")]
    TestCard(String),
    /// The WebRTC peer (its own description of the problem).
    #[error("{0}")]
    Peer(String),
    #[error("the other side sent a bad description: {0}")]
    BadDescription(#[source] serde_json::Error),
    #[error("ICE failed: no network path between the two sides")]
    IceFailed,
    #[error("the peer connection failed")]
    PeerFailed,
    #[error("the call did not come up and end in time")]
    CallNotUp,
    #[error("the server did not confirm the end of the call in time")]
    EndNotConfirmed,
    #[error("the call did not finish in time")]
    CallTimeout,
    /// What went wrong on one side, when the probe is both.
    #[error("{side}: {source}")]
    Side {
        side: &'static str,
        source: Box<ProbeError>,
    },
    /// The log API (checking the consult is logged as a test call).
    #[error("GET {path}: {problem}")]
    Get { path: String, problem: String },
    #[error("consult {0} is not in the log")]
    NotInLog(u64),
}

fn code_suffix(code: Option<ErrorCode>) -> String {
    code.map(|c| format!(" ({})", c.as_str()))
        .unwrap_or_default()
}
