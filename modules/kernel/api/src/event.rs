//! Events as the modules declare them: the [`Event`] trait, the [`event!`](crate::event!)
//! macro that implements it, the CloudEvents-style [`Envelope`] they travel in, and the
//! [`catalog`] that documents them. Publishing and delivery are the kernel's bus.

pub mod catalog;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use utoipa::ToSchema;
use uuid::Uuid;

/// A fact a module announces. Declared in the module's `-api` crate.
pub trait Event: Serialize + DeserializeOwned + ToSchema + Send + Sync + 'static {
    /// The stable type name, `<area>.<fact>` such as `product.created`.
    const TYPE: &'static str;
    /// The producing module.
    const SOURCE: &'static str;
    /// One-line description for the event catalog.
    const SUMMARY: &'static str;
    /// The aggregate the event is about; events with equal subjects are delivered in order.
    fn subject(&self) -> String;
}

/// Implements [`Event`] for an event type:
/// `kernel_api::event!(OrderPaid, "order.paid", "order", "An order was paid.", |e| e.order_id);`
/// — type name, producing module, catalog summary, and the subject (the aggregate's id).
#[macro_export]
macro_rules! event {
    ($ty:ty, $name:literal, $source:literal, $summary:literal, |$e:ident| $subject:expr) => {
        impl $crate::event::Event for $ty {
            const TYPE: &'static str = $name;
            const SOURCE: &'static str = $source;
            const SUMMARY: &'static str = $summary;
            fn subject(&self) -> String {
                let $e = self;
                $subject.to_string()
            }
        }
    };
}

/// The CloudEvents-style JSON envelope every event travels in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Envelope {
    /// Always `1.0` (CloudEvents spec version).
    pub specversion: String,
    /// Unique event id (UUID v7).
    pub id: Uuid,
    /// The producing module.
    pub source: String,
    /// Event type, e.g. `product.created`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event was published (UTC).
    pub time: DateTime<Utc>,
    /// The aggregate the event is about (its id).
    pub subject: String,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The event's own fields.
    pub data: serde_json::Value,
}

impl Envelope {
    /// Wraps `event` in a new envelope.
    ///
    /// # Errors
    /// Only if the event does not serialize.
    pub fn new<E: Event>(event: &E) -> anyhow::Result<Self> {
        Ok(Self {
            specversion: "1.0".into(),
            id: Uuid::now_v7(),
            source: E::SOURCE.into(),
            kind: E::TYPE.into(),
            time: crate::time::to_utc(crate::time::now()),
            subject: event.subject(),
            datacontenttype: "application/json".into(),
            data: serde_json::to_value(event).context("serialize event")?,
        })
    }

    /// The typed event inside.
    ///
    /// # Errors
    /// When the envelope holds another type or data that does not fit it.
    pub fn decode<E: Event>(&self) -> anyhow::Result<E> {
        if self.kind != E::TYPE {
            bail!("expected a {} event, got {}", E::TYPE, self.kind);
        }
        serde_json::from_value(self.data.clone())
            .with_context(|| format!("event {} does not fit {}", self.id, E::TYPE))
    }
}
