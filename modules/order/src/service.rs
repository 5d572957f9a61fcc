//! The in-process [`OrderService`]: places orders (see `placing`) and moves them through
//! their states.

use std::sync::Arc;

use async_trait::async_trait;
use kernel::{
    auth::{Principal, Role},
    db::BlockingStore,
};
use order_api::{
    NewOrder, Order, OrderError, OrderId, OrderPage, OrderQuery, OrderService, OrderStatus,
    Transition,
};
use product_api::ProductService;

use crate::{
    domain,
    placing::{self, Intent},
    store::{Placement, Store},
};

/// The product module's name: its in-process service joins this process's units of work on
/// the database it [admits](kernel::db::Db::admit) them on.
const PRODUCT: &str = "product";

pub(crate) struct LocalOrders {
    pub store: Store,
    pub products: Arc<dyn ProductService>,
    pub payment_timeout: chrono::Duration,
}

impl std::fmt::Debug for LocalOrders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalOrders").finish_non_exhaustive()
    }
}

/// Customers see their own orders only; staff see all.
fn may_see(actor: &Principal, order: &Order) -> bool {
    actor.role != Role::Customer || order.customer == actor.sub
}

#[async_trait]
impl OrderService for LocalOrders {
    #[tracing::instrument(name = "order.place", skip_all, fields(lines = order.items().len()))]
    async fn place(&self, actor: &Principal, order: NewOrder) -> Result<Order, OrderError> {
        let created_at = kernel::time::now();
        let intent = Intent {
            placement: Placement {
                id: OrderId::new(),
                customer: actor.sub.clone(),
                expires_at: created_at + self.payment_timeout,
                created_at,
            },
            order,
        };
        if self.store.db().admits(PRODUCT) {
            placing::in_one_commit(&self.store, &self.products, intent).await
        } else {
            placing::in_steps(&self.store, &self.products, intent).await
        }
    }

    #[tracing::instrument(name = "order.get", skip(self, actor))]
    async fn get(&self, actor: &Principal, id: OrderId) -> Result<Order, OrderError> {
        let order = self
            .store
            .run(move |_, c| crate::store::load(c, id))
            .await?;
        if may_see(actor, &order) {
            Ok(order)
        } else {
            Err(OrderError::NotFound(id))
        }
    }

    #[tracing::instrument(name = "order.list", skip_all)]
    async fn list(
        &self,
        actor: &Principal,
        mut query: OrderQuery,
    ) -> Result<OrderPage, OrderError> {
        if actor.role == Role::Customer {
            query.customer = Some(actor.sub.clone());
        }
        self.store.run(move |s, c| s.list(c, &query)).await
    }

    #[tracing::instrument(name = "order.transition", skip(self, actor))]
    async fn transition(
        &self,
        actor: &Principal,
        id: OrderId,
        transition: Transition,
    ) -> Result<Order, OrderError> {
        let order = self.get(actor, id).await?;
        let staff_only = transition != Transition::Cancel;
        if (staff_only && actor.role != Role::Admin)
            || !matches!(actor.role, Role::Admin | Role::Customer)
        {
            return Err(OrderError::Forbidden(format!(
                "Role {} may not have an order {}",
                actor.role,
                transition.verb()
            )));
        }
        let to =
            domain::next_status(order.status, transition).ok_or(OrderError::IllegalTransition {
                id,
                status: order.status,
                action: transition.verb(),
            })?;
        let reason = (to == OrderStatus::Cancelled).then(|| format!("cancelled by {}", actor.sub));
        self.store
            .write(move |s, c| s.change_status(c, &order, to, reason.clone()))
            .await
    }
}
