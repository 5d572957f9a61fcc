//! The event catalog: an AsyncAPI 3.0 document generated from the event types and
//! subscribers the modules declare, committed as `openapi/asyncapi.json`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use utoipa::openapi::{RefOr, Schema};

use super::Event;

/// What the catalog says about one event type; made with [`EventDoc::of`].
#[derive(Clone, Copy)]
pub struct EventDoc {
    pub kind: &'static str,
    pub source: &'static str,
    pub summary: &'static str,
    schema_name: fn() -> String,
    schema: fn() -> RefOr<Schema>,
    schemas: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl std::fmt::Debug for EventDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDoc")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl EventDoc {
    pub fn of<E: Event>() -> Self {
        Self {
            kind: E::TYPE,
            source: E::SOURCE,
            summary: E::SUMMARY,
            schema_name: || E::name().into_owned(),
            schema: E::schema,
            schemas: E::schemas,
        }
    }
}

/// A subscriber as the catalog lists it.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerDoc {
    /// The subscriber's name (as registered on the bus).
    pub subscriber: &'static str,
    /// The module it belongs to.
    pub module: &'static str,
    /// The event types it handles.
    pub event_types: &'static [&'static str],
    /// What it does with them.
    pub summary: &'static str,
}

/// The AsyncAPI 3.0 document for `events` and `consumers`, with NATS subjects
/// `<prefix>.<type>` as channel addresses.
pub fn asyncapi(
    events: &[EventDoc],
    consumers: &[ConsumerDoc],
    subject_prefix: &str,
    version: &str,
) -> Value {
    let mut channels = BTreeMap::new();
    let mut operations = BTreeMap::new();
    let mut messages = BTreeMap::new();
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    for event in events {
        let name = (event.schema_name)();
        schemas.push((name.clone(), (event.schema)()));
        (event.schemas)(&mut schemas);
        let key = event.kind.replace('.', "_");
        let consumed_by: Vec<&str> = consumers
            .iter()
            .filter(|c| c.event_types.contains(&event.kind))
            .map(|c| c.subscriber)
            .collect();
        messages.insert(
            key.clone(),
            json!({
                "name": event.kind,
                "title": event.kind,
                "summary": event.summary,
                "contentType": "application/json",
                "payload": envelope_schema(event, &name),
                "x-producer": event.source,
                "x-consumers": consumed_by,
            }),
        );
        channels.insert(
            key.clone(),
            json!({
                "address": format!("{subject_prefix}.{}", event.kind),
                "description": event.summary,
                "messages": { key.clone(): { "$ref": format!("#/components/messages/{key}") } },
            }),
        );
        operations.insert(
            format!("{key}.publish"),
            json!({
                "action": "send",
                "channel": { "$ref": format!("#/channels/{key}") },
                "summary": format!("{} publishes {}", event.source, event.kind),
                "messages": [{ "$ref": format!("#/channels/{key}/messages/{key}") }],
            }),
        );
    }
    for consumer in consumers {
        for kind in consumer.event_types {
            let key = kind.replace('.', "_");
            if !channels.contains_key(&key) {
                continue;
            }
            operations.insert(
                format!("{key}.{}", consumer.subscriber),
                json!({
                    "action": "receive",
                    "channel": { "$ref": format!("#/channels/{key}") },
                    "summary": consumer.summary,
                    "x-consumer": consumer.subscriber,
                    "x-module": consumer.module,
                    "messages": [{ "$ref": format!("#/channels/{key}/messages/{key}") }],
                }),
            );
        }
    }
    let schemas: BTreeMap<String, RefOr<Schema>> = schemas.into_iter().collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Tessera events",
            "version": version,
            "description": "Every event a Tessera module publishes, in its CloudEvents-style \
                envelope, with its producer and consumers. In one process the events travel \
                through the transactional outbox; in a split deployment over NATS JetStream \
                on the channel addresses below.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            // utoipa's `#/components/schemas/...` references hold in AsyncAPI too.
            "schemas": schemas,
        },
    })
}

/// The envelope as it travels, with `type`, `source` fixed and `data` the event's schema.
fn envelope_schema(event: &EventDoc, schema_name: &str) -> Value {
    json!({
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"],
        "properties": {
            "specversion": { "const": "1.0" },
            "id": { "type": "string", "format": "uuid" },
            "source": { "const": event.source },
            "type": { "const": event.kind },
            "time": { "type": "string", "format": "date-time" },
            "subject": { "type": "string", "description": "Id of the aggregate the event is about" },
            "datacontenttype": { "const": "application/json" },
            "data": { "$ref": format!("#/components/schemas/{schema_name}") },
        },
    })
}
