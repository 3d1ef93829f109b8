//! # MIU Link signalling
//!
//! The pure part of MIU Link: the wire protocol ([`protocol`]), the events
//! written to the session log ([`event`]), what those events make of one
//! consult ([`consult`]) and the switchboard state machine ([`switchboard`])
//! that pairs Minor Injuries Unit stations with on-call A&E clinicians.
//!
//! This crate does no IO and depends on no runtime, web framework or
//! database. The server owns one [`Switchboard`] in one task, feeds it
//! inputs stamped with the current time and carries out its outputs. That is
//! what lets every rule (ordering, the accept race, grace periods) be tested
//! with a fake clock and no sockets.

pub mod consult;
pub mod event;
pub mod protocol;
pub mod sim;
pub mod switchboard;

pub use consult::{Consult, ConsultStatus, LifecycleError, OpenConsult};
pub use event::{ConsultEvent, Event, Party, PresenceStatus, RingTrigger, Side};
pub use protocol::*;
pub use switchboard::{
    AccountState, Activity, Config, EscalationPolicy, Input, Output, Restore, RestoredCall,
    RestoredOwed, RestoredRequest, Switchboard,
};
