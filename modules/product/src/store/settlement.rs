//! Closing a reservation: committed (the units leave stock) or released (they are free
//! again), in a transaction of its own or in a saga subscriber's.

use anyhow::Context;
use diesel::prelude::*;
use kernel::bus::Tx;
use kernel::db::DbConnection;
use product_api::{
    ProductError, ProductId, Reservation, ReservationId, ReservationStatus, ReservedLine,
    events::{InventoryCommitted, InventoryReleased},
};

use super::{
    Store, WRITE_ATTEMPTS,
    reservations::{Inventory, load_reservation, lock_inventory},
};
use crate::schema::{product_reservations as reservations, products};

impl Store {
    pub(super) fn close_reservation(
        &self,
        conn: &mut DbConnection,
        id: ReservationId,
        to: ReservationStatus,
    ) -> Result<Reservation, ProductError> {
        let (reservation, touched) = self
            .bus
            .write(conn, |tx| self.close(tx, id, to, Inventory::Shared))?;
        self.committed(conn, &touched);
        Ok(reservation)
    }

    /// [`Self::close`] inside a transaction the caller commits (a saga subscriber's, which the
    /// relay commits): the read cache holds back the old versions until the new ones show.
    pub(crate) fn close_in(
        &self,
        tx: &mut Tx<'_>,
        id: ReservationId,
        to: ReservationStatus,
    ) -> Result<Reservation, ProductError> {
        let (reservation, touched) = self.close(tx, id, to, Inventory::Exclusive)?;
        for (product, version) in touched {
            self.cache.uncommitted(product, version);
        }
        Ok(reservation)
    }

    /// Moves a reservation to `to` inside `tx` and applies it to stock:
    /// active → committed (the units leave stock), active → released (they are free again),
    /// committed → released (a paid order was cancelled before shipping: they come back).
    /// Asking for the state it is already in changes nothing. The status change is
    /// conditional on the status read, so of two concurrent calls only one applies.
    /// Returns the reservation and the products it changed, at their new versions.
    fn close(
        &self,
        tx: &mut Tx<'_>,
        id: ReservationId,
        to: ReservationStatus,
        lock: Inventory,
    ) -> Result<(Reservation, Vec<(ProductId, i64)>), ProductError> {
        use ReservationStatus::{Active, Committed, Released};
        let now = kernel::time::now();
        lock_inventory(tx.conn(), lock).context("lock the inventory")?;
        for _ in 0..WRITE_ATTEMPTS {
            let current =
                load_reservation(tx.conn(), id)?.ok_or(ProductError::ReservationNotFound(id))?;
            // Per unit: how stock and reserved move.
            let (stock_delta, reserved_delta) = match (current.status, to) {
                (from, to) if from == to => return Ok((current, Vec::new())),
                (Active, Committed) => (-1, -1),
                (Active, Released) => (0, -1),
                (Committed, Released) => (1, 0),
                (from, _) => {
                    return Err(ProductError::ReservationClosed {
                        id,
                        status: from,
                        action: if to == Committed {
                            "committed"
                        } else {
                            "released"
                        },
                    });
                }
            };
            let moved = diesel::update(
                reservations::table
                    .find(id.to_string())
                    .filter(reservations::status.eq(current.status.as_str())),
            )
            .set((
                reservations::status.eq(to.as_str()),
                reservations::updated_at.eq(now),
            ))
            .execute(tx.conn())
            .context("close reservation")?;
            if moved == 0 {
                continue;
            }
            let mut touched = Vec::with_capacity(current.lines.len());
            for line in &current.lines {
                let version: Option<i64> =
                    diesel::update(products::table.find(line.product_id.to_string()))
                        .set((
                            products::stock.eq(products::stock + stock_delta * line.quantity),
                            products::reserved
                                .eq(products::reserved + reserved_delta * line.quantity),
                            products::version.eq(products::version + 1),
                            products::updated_at.eq(now),
                        ))
                        .returning(products::version)
                        .get_result(tx.conn())
                        .optional()
                        .context("apply reservation to stock")?;
                let Some(version) = version else {
                    return Err(anyhow::anyhow!(
                        "product {} of reservation {id} is missing",
                        line.product_id
                    )
                    .into());
                };
                touched.push((line.product_id, version));
            }
            let lines: Vec<_> = current.lines.iter().map(ReservedLine::line).collect();
            if to == Committed {
                tx.publish(&InventoryCommitted {
                    reservation_id: id,
                    lines,
                })?;
            } else {
                tx.publish(&InventoryReleased {
                    reservation_id: id,
                    lines,
                })?;
            }
            let reservation = Reservation {
                status: to,
                updated_at: now.and_utc(),
                ..current
            };
            return Ok((reservation, touched));
        }
        Err(anyhow::anyhow!("gave up on reservation {id} after concurrent changes").into())
    }
}
