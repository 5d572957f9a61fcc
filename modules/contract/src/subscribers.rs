//! `contract.triggers`: runs deployed contracts on the events they name.
//!
//! One subscriber serves every contract. Its `accepts` answers from the in-memory set of
//! event types named by deployed contracts ([`TriggerSet`]): loaded at start-up, extended
//! by a deployment before it commits and reloaded after a termination. The bus asks
//! `accepts` when an event is published, so an event published before a deployment does
//! not run the new contract. With several instances of the module, an instance learns of
//! the deployments made through another only when it restarts (its set is reloaded then);
//! until then the events it publishes of a newly named type are not offered to the
//! contracts. Deploy through the instance that publishes, or restart the others.
//!
//! Each event runs every deployed contract triggered by its type, oldest contract first,
//! with `input` = the event's `data` and caller `{sub: "bus", role: "service"}`, inside the
//! delivery's transaction, so the bus inbox makes it once per event and its per-subject
//! order holds. A runtime error (or a timed-out evaluation) of one contract is logged and
//! recorded nowhere else: the event is not wrong, the contract is, and retrying would fail
//! the same way for ever (evaluation is deterministic) and hold back later events of the
//! subject. Database errors fail the delivery, which the bus retries.

use std::time::Duration;

use anyhow::Context;
use contract_api::{Caller, ContractError, ContractId, ContractStatus};
use kernel::{
    auth::Role,
    bus::{Envelope, Subscriber, Tx, catalog::ConsumerDoc},
};

use crate::{
    canonical,
    eval::{self, Bindings},
    service::{Clock, MAX_ATTEMPTS, tick},
    store::{Store, TriggerSet, load},
};

/// The subscriber's name on the bus (its deliveries and inbox are keyed by it).
pub(crate) const TRIGGERS: &str = "contract.triggers";

pub(crate) struct Triggers {
    pub store: Store,
    pub set: TriggerSet,
    pub clock: Clock,
    pub max_eval: Duration,
    pub max_input_bytes: usize,
}

/// The caller of a triggered run.
fn bus_caller() -> Caller {
    Caller {
        sub: "bus".into(),
        role: Role::Service,
    }
}

impl Triggers {
    /// Runs contract `id` on `event` inside `tx`, evaluating again when an execution through
    /// the API took the ledger first.
    fn run(&self, tx: &mut Tx<'_>, id: ContractId, event: &Envelope) -> Result<(), ContractError> {
        let input = canonical::to_string(&event.data);
        if input.len() > self.max_input_bytes {
            return Err(ContractError::InputTooLarge {
                size: input.len(),
                limit: self.max_input_bytes,
            });
        }
        for _ in 0..MAX_ATTEMPTS {
            let row = load(tx.conn(), id)?;
            if row.status()? != ContractStatus::Deployed {
                return Ok(());
            }
            let bindings = Bindings {
                input: event.data.clone(),
                state: row.state()?,
                now: tick(&self.clock),
                caller: bus_caller(),
            };
            let now = bindings.now;
            let outcome = eval::evaluate(&row.code, bindings, self.max_eval)
                .map_err(ContractError::Evaluation)?;
            if let Some(execution) =
                self.store
                    .append(tx, &row, &input, &outcome, &bus_caller(), now)?
            {
                tracing::info!(
                    contract_id = %id,
                    seq = execution.seq,
                    event_id = %event.id,
                    "an event ran a contract"
                );
                return Ok(());
            }
        }
        Err(anyhow::anyhow!("contract {id} stayed busy for {MAX_ATTEMPTS} attempts").into())
    }
}

impl Subscriber for Triggers {
    fn name(&self) -> &str {
        TRIGGERS
    }

    fn event_types(&self) -> Vec<String> {
        self.set.all()
    }

    fn accepts(&self, event_type: &str) -> bool {
        self.set.contains(event_type)
    }

    fn handle(&self, tx: &mut Tx<'_>, event: &Envelope) -> anyhow::Result<()> {
        let ids = self
            .store
            .triggered(tx.conn(), &event.kind)
            .context("find the contracts an event triggers")?;
        for id in ids {
            match self.run(tx, id, event) {
                Ok(()) => {}
                Err(
                    e @ (ContractError::Evaluation(_)
                    | ContractError::InputTooLarge { .. }
                    | ContractError::Conflict(..)),
                ) => {
                    tracing::warn!(
                        contract_id = %id,
                        event_id = %event.id,
                        event_type = %event.kind,
                        error = %e,
                        "a triggered contract run failed; nothing was recorded"
                    );
                }
                Err(ContractError::Unexpected(e)) => return Err(e),
                Err(other) => return Err(anyhow::Error::new(other)),
            }
        }
        Ok(())
    }
}

pub(crate) fn consumers() -> Vec<ConsumerDoc> {
    vec![ConsumerDoc {
        subscriber: TRIGGERS,
        module: "contract",
        // Dynamic: whatever event types the deployed contracts name (e.g. `order.paid`).
        event_types: &[],
        summary: "Runs every deployed contract whose `triggers` name the event's type, with \
                  the event's data as `input` and caller {sub: bus, role: service}. The types \
                  are not fixed: they are whatever the deployed contracts name.",
    }]
}
