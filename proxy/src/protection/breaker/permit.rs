//! Permits: what an admitted call holds until it reports how it ended.

use std::fmt;
use std::sync::Arc;

use super::cell::{Cell, Ticket};
use super::CallOutcome;

/// The permits of one call, one per breaker that admitted it (empty when no breaker matched).
///
/// Exactly one of three things happens to them:
/// * [`record`](Self::record): the outcome is counted by every breaker;
/// * [`cancel`](Self::cancel): nothing is counted (the call never reached the upstream,
///   e.g. it was refused locally after acquiring); a half-open probe permit returns to its
///   round;
/// * dropped (client gone, task cancelled): a closed-state permit is not counted, a
///   half-open probe permit counts as a failed probe, so a vanished probe cannot keep the
///   breaker half-open.
#[must_use = "dropping the permits of a probe counts as a failed probe"]
#[derive(Default)]
pub struct Permits {
    items: Vec<Permit>,
}

impl Permits {
    pub(super) fn push(&mut self, cell: Arc<Cell>, ticket: Ticket) {
        self.items.push(Permit {
            cell: Some(cell),
            ticket,
        });
    }

    /// True when no breaker applies to the call.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The number of breakers that admitted the call.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether any of the permits is a half-open probe.
    pub fn has_probe(&self) -> bool {
        self.items.iter().any(|p| p.ticket.is_probe())
    }

    /// Reports how the call ended to every breaker that admitted it.
    pub fn record(mut self, outcome: CallOutcome) {
        for permit in &mut self.items {
            if let Some(cell) = permit.cell.take() {
                cell.record(permit.ticket, &outcome);
            }
        }
    }

    /// Gives the permits back without counting anything.
    pub fn cancel(mut self) {
        for permit in &mut self.items {
            if let Some(cell) = permit.cell.take() {
                cell.cancel(permit.ticket);
            }
        }
    }
}

impl fmt::Debug for Permits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.items.iter().map(|p| {
                let id = p.cell.as_ref().map(|c| c.breaker_id.as_str());
                (id, p.ticket.is_probe())
            }))
            .finish()
    }
}

/// One breaker's permit. `cell` is taken when the permit is used, so `Drop` knows whether it
/// was.
struct Permit {
    cell: Option<Arc<Cell>>,
    ticket: Ticket,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            cell.abandon(self.ticket);
        }
    }
}
