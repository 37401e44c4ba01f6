//! The job state machine: the states, the events that move a job between them, and the one
//! pure function, [`transition`], that decides every move.
//!
//! Nothing in this module touches the database. The store asks [`transition`] before every
//! write of `jobs.state` and writes exactly what it answers, as a compare-and-set update on the
//! state it read. The schema repeats the invariants (`CHECK` constraints) so that a bug here is
//! refused by SQLite too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The state of a job. Stored lower-case in `jobs.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Created with an upload phase: accepts data batches, not yet runnable.
    Open,
    /// Runnable once `run_at <= now`; waiting for a worker (also: scheduled, or waiting to retry).
    Queued,
    /// Leased by a worker until `lease_expires_at`.
    Running,
    /// Terminal: the worker completed the job.
    Succeeded,
    /// Terminal: a fatal error, or attempts exhausted.
    Failed,
    /// Terminal: aborted or cancelled before it ran, or a cooperative cancel acknowledged.
    Cancelled,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 6] = [
        State::Open,
        State::Queued,
        State::Running,
        State::Succeeded,
        State::Failed,
        State::Cancelled,
    ];

    /// The states a job can still leave (the unique-key index covers exactly these).
    pub const LIVE: [State; 3] = [State::Open, State::Queued, State::Running];

    /// The terminal states.
    pub const TERMINAL: [State; 3] = [State::Succeeded, State::Failed, State::Cancelled];

    /// The name stored in the database and used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Queued => "queued",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    /// Whether the job is finished for good (succeeded, failed or cancelled).
    pub fn is_terminal(self) -> bool {
        match self {
            State::Open | State::Queued | State::Running => false,
            State::Succeeded | State::Failed | State::Cancelled => true,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| Error::InvalidInput {
                field: "state".into(),
                reason: format!(
                    "unknown state `{s}`; valid states: {}",
                    State::ALL.map(State::as_str).join(", ")
                ),
            })
    }
}

/// Something that happens to a job. The store gathers the facts an event depends on (attempts
/// left, a pending cancel request) from the job row before it asks [`transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The job is created; `upload` says whether it starts with an upload phase.
    Create {
        /// Whether the job accepts data batches before it may run.
        upload: bool,
    },
    /// A data batch is appended.
    Upload,
    /// The upload phase is closed.
    Close,
    /// A client cancels or aborts the job.
    Cancel,
    /// A worker leases the job.
    Claim,
    /// The lease holder reports it is alive.
    Heartbeat,
    /// The lease holder reports success.
    Complete,
    /// The lease holder reports a failure.
    Fail {
        /// The failure must not be retried.
        fatal: bool,
        /// The job has attempts left (`attempt < max_attempts`).
        attempts_left: bool,
        /// A cancel was requested while the job ran: the failure acknowledges it.
        cancel_requested: bool,
    },
    /// The lease ran out without a word from the worker (it died or hung).
    LeaseExpired {
        /// The job has attempts left (`attempt < max_attempts`).
        attempts_left: bool,
        /// A cancel was requested while the job ran.
        cancel_requested: bool,
    },
    /// A client restarts a failed or cancelled job.
    Restart,
    /// A client deletes the job (the row is removed; the state answered is the one it had).
    Delete,
}

impl Event {
    /// Every event, with every combination of the facts it carries: what the exhaustive tests
    /// walk through.
    pub fn all() -> Vec<Event> {
        let mut all = vec![
            Event::Create { upload: false },
            Event::Create { upload: true },
            Event::Upload,
            Event::Close,
            Event::Cancel,
            Event::Claim,
            Event::Heartbeat,
            Event::Complete,
            Event::Restart,
            Event::Delete,
        ];
        for fatal in [false, true] {
            for attempts_left in [false, true] {
                for cancel_requested in [false, true] {
                    all.push(Event::Fail {
                        fatal,
                        attempts_left,
                        cancel_requested,
                    });
                }
            }
        }
        for attempts_left in [false, true] {
            for cancel_requested in [false, true] {
                all.push(Event::LeaseExpired {
                    attempts_left,
                    cancel_requested,
                });
            }
        }
        all
    }

    /// The event's name, as written to `job_events.event`.
    pub fn name(self) -> &'static str {
        match self {
            Event::Create { .. } => "create",
            Event::Upload => "upload",
            Event::Close => "close",
            Event::Cancel => "cancel",
            Event::Claim => "claim",
            Event::Heartbeat => "heartbeat",
            Event::Complete => "complete",
            Event::Fail { .. } => "fail",
            Event::LeaseExpired { .. } => "lease_expired",
            Event::Restart => "restart",
            Event::Delete => "delete",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a job in state `from` goes when `event` happens, or why it cannot.
///
/// `from` is `None` only for [`Event::Create`]. This is the only place that decides a state:
/// the store writes what it answers and nothing else.
///
/// # Errors
/// [`Error::InvalidTransition`] naming the state and the event when the table of the product
/// contract does not allow the move. The `job` field is 0; the store fills in the real id.
pub fn transition(from: Option<State>, event: Event) -> Result<State, Error> {
    use State::{Cancelled, Failed, Open, Queued, Running, Succeeded};
    let refuse = || {
        Err(Error::InvalidTransition {
            job: 0,
            from,
            event: event.name(),
        })
    };
    let Some(from) = from else {
        return match event {
            Event::Create { upload: true } => Ok(Open),
            Event::Create { upload: false } => Ok(Queued),
            Event::Upload
            | Event::Close
            | Event::Cancel
            | Event::Claim
            | Event::Heartbeat
            | Event::Complete
            | Event::Fail { .. }
            | Event::LeaseExpired { .. }
            | Event::Restart
            | Event::Delete => refuse(),
        };
    };
    match (from, event) {
        (_, Event::Create { .. }) => refuse(),

        (Open, Event::Upload) => Ok(Open),
        (Queued | Running | Succeeded | Failed | Cancelled, Event::Upload) => refuse(),

        (Open, Event::Close) => Ok(Queued),
        (Queued | Running | Succeeded | Failed | Cancelled, Event::Close) => refuse(),

        (Open | Queued, Event::Cancel) => Ok(Cancelled),
        // Cooperative: the job keeps running with `cancel_requested_at` set.
        (Running, Event::Cancel) => Ok(Running),
        (Succeeded | Failed | Cancelled, Event::Cancel) => refuse(),

        (Queued, Event::Claim) => Ok(Running),
        (Open | Running | Succeeded | Failed | Cancelled, Event::Claim) => refuse(),

        (Running, Event::Heartbeat) => Ok(Running),
        (Open | Queued | Succeeded | Failed | Cancelled, Event::Heartbeat) => refuse(),

        // Also when a cancel was requested: the work is done.
        (Running, Event::Complete) => Ok(Succeeded),
        (Open | Queued | Succeeded | Failed | Cancelled, Event::Complete) => refuse(),

        (
            Running,
            Event::Fail {
                cancel_requested: true,
                ..
            },
        ) => Ok(Cancelled),
        (
            Running,
            Event::Fail {
                fatal: true,
                cancel_requested: false,
                ..
            },
        ) => Ok(Failed),
        (
            Running,
            Event::Fail {
                fatal: false,
                attempts_left,
                cancel_requested: false,
            },
        ) => Ok(if attempts_left { Queued } else { Failed }),
        (Open | Queued | Succeeded | Failed | Cancelled, Event::Fail { .. }) => refuse(),

        (
            Running,
            Event::LeaseExpired {
                cancel_requested: true,
                ..
            },
        ) => Ok(Cancelled),
        (
            Running,
            Event::LeaseExpired {
                attempts_left,
                cancel_requested: false,
            },
        ) => Ok(if attempts_left { Queued } else { Failed }),
        (Open | Queued | Succeeded | Failed | Cancelled, Event::LeaseExpired { .. }) => refuse(),

        (Failed | Cancelled, Event::Restart) => Ok(Queued),
        (Open | Queued | Running | Succeeded, Event::Restart) => refuse(),

        (Succeeded | Failed | Cancelled, Event::Delete) => Ok(from),
        (Open | Queued | Running, Event::Delete) => refuse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of the product contract, written out a second time as data: for each
    /// (state, event) pair the state it leads to, or `None` when it is refused.
    fn expected(from: Option<State>, event: Event) -> Option<State> {
        use State::*;
        match (from, event) {
            (None, Event::Create { upload }) => Some(if upload { Open } else { Queued }),
            (None, _) => None,
            (Some(Open), Event::Upload) => Some(Open),
            (Some(Open), Event::Close) => Some(Queued),
            (Some(Open | Queued), Event::Cancel) => Some(Cancelled),
            (Some(Running), Event::Cancel) => Some(Running),
            (Some(Queued), Event::Claim) => Some(Running),
            (Some(Running), Event::Heartbeat) => Some(Running),
            (Some(Running), Event::Complete) => Some(Succeeded),
            (
                Some(Running),
                Event::Fail {
                    fatal,
                    attempts_left,
                    cancel_requested,
                },
            ) => Some(if cancel_requested {
                Cancelled
            } else if fatal || !attempts_left {
                Failed
            } else {
                Queued
            }),
            (
                Some(Running),
                Event::LeaseExpired {
                    attempts_left,
                    cancel_requested,
                },
            ) => Some(if cancel_requested {
                Cancelled
            } else if attempts_left {
                Queued
            } else {
                Failed
            }),
            (Some(Failed | Cancelled), Event::Restart) => Some(Queued),
            (Some(s), Event::Delete) if s.is_terminal() => Some(s),
            _ => None,
        }
    }

    #[test]
    fn every_state_event_pair_matches_the_contract() {
        let froms = std::iter::once(None).chain(State::ALL.into_iter().map(Some));
        let mut legal = 0;
        let mut illegal = 0;
        for from in froms {
            for event in Event::all() {
                match (transition(from, event), expected(from, event)) {
                    (Ok(got), Some(want)) => {
                        assert_eq!(got, want, "{from:?} --{event:?}-->");
                        legal += 1;
                    }
                    (
                        Err(Error::InvalidTransition {
                            from: f, event: e, ..
                        }),
                        None,
                    ) => {
                        assert_eq!(f, from);
                        assert_eq!(e, event.name());
                        illegal += 1;
                    }
                    (got, want) => panic!("{from:?} --{event:?}--> got {got:?}, want {want:?}"),
                }
            }
        }
        // 7 "from" values × 22 events.
        assert_eq!(legal + illegal, 7 * 22);
        assert_eq!(legal, 2 + 1 + 1 + 3 + 1 + 1 + 1 + 8 + 4 + 2 + 3);
    }

    #[test]
    fn terminal_states_refuse_everything_but_restart_and_delete() {
        for from in State::TERMINAL {
            for event in Event::all() {
                let allowed = transition(Some(from), event).is_ok();
                let expected = matches!(event, Event::Delete)
                    || (matches!(event, Event::Restart) && from != State::Succeeded);
                assert_eq!(allowed, expected, "{from} {event:?}");
            }
        }
    }

    #[test]
    fn state_names_round_trip_and_unknown_names_list_the_valid_ones() {
        for state in State::ALL {
            assert_eq!(state.as_str().parse::<State>().ok(), Some(state));
        }
        let err = "done".parse::<State>().err().map(|e| e.to_string());
        let message = err.unwrap_or_default();
        assert!(message.contains("open, queued, running, succeeded, failed, cancelled"));
    }

    #[test]
    fn invalid_transition_message_names_state_and_event() {
        let err = transition(Some(State::Succeeded), Event::Cancel).err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("succeeded"), "{message}");
        assert!(message.contains("cancel"), "{message}");
    }
}
