//! Contract rules that need no database: what a valid draft is.

use contract_api::{ContractPatch, NewContract};
use kernel::error::FieldError;
use serde_json::Value;

use crate::{ContractSettings, canonical, eval};

const MAX_NAME_CHARS: usize = 200;
const MAX_PARTIES: usize = 100;
const MAX_TRIGGERS: usize = 20;

/// A valid draft's fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Draft {
    pub name: String,
    pub parties: Vec<String>,
    pub code: String,
    /// A JSON object.
    pub state: Value,
    pub triggers: Vec<String>,
}

/// Valid changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Changes {
    pub name: Option<String>,
    pub parties: Option<Vec<String>>,
    pub code: Option<String>,
    pub state: Option<Value>,
    pub triggers: Option<Vec<String>>,
}

fn name(value: &str, errors: &mut Vec<FieldError>) -> String {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        errors.push(FieldError::new("name", "must not be empty"));
    } else if trimmed.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    trimmed.to_owned()
}

fn parties(values: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    if values.is_empty() {
        errors.push(FieldError::new("parties", "must name at least one party"));
    }
    if values.len() > MAX_PARTIES {
        errors.push(FieldError::new(
            "parties",
            format!("must name at most {MAX_PARTIES} parties"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (i, party) in values.iter().enumerate() {
        let party = party.trim();
        if party.is_empty() || party.chars().count() > MAX_NAME_CHARS {
            errors.push(FieldError::new(
                format!("parties[{i}]"),
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        } else if out.iter().any(|p| p == party) {
            errors.push(FieldError::new(format!("parties[{i}]"), "is named twice"));
        } else {
            out.push(party.to_owned());
        }
    }
    out
}

fn code(value: &str, settings: &ContractSettings, errors: &mut Vec<FieldError>) -> String {
    if value.trim().is_empty() {
        errors.push(FieldError::new("code", "must not be empty"));
    } else if value.len() > settings.max_code_bytes {
        errors.push(FieldError::new(
            "code",
            format!(
                "is {} bytes, more than the {} allowed",
                value.len(),
                settings.max_code_bytes
            ),
        ));
    } else if let Some(message) = eval::compile_error(value) {
        errors.push(FieldError::new("code", message));
    }
    value.to_owned()
}

fn state(value: Value, settings: &ContractSettings, errors: &mut Vec<FieldError>) -> Value {
    if !value.is_object() {
        errors.push(FieldError::new("state", "must be a JSON object"));
    } else if canonical::to_string(&value).len() > settings.max_state_bytes {
        errors.push(FieldError::new(
            "state",
            format!("must be at most {} bytes", settings.max_state_bytes),
        ));
    }
    value
}

/// An event type a contract may name: dotted lower-case words such as `order.paid`. The
/// contract module's own events are refused, so a contract cannot trigger itself in a loop.
fn trigger_is_valid(t: &str) -> bool {
    let words: Vec<&str> = t.split('.').collect();
    words.len() >= 2
        && words.iter().all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        })
}

fn triggers(values: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    if values.len() > MAX_TRIGGERS {
        errors.push(FieldError::new(
            "triggers",
            format!("must name at most {MAX_TRIGGERS} event types"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (i, t) in values.iter().enumerate() {
        let field = format!("triggers[{i}]");
        if !trigger_is_valid(t) {
            errors.push(FieldError::new(
                field,
                "must be an event type such as `order.paid`",
            ));
        } else if t.starts_with("contract.") {
            errors.push(FieldError::new(
                field,
                "contract events cannot trigger contracts",
            ));
        } else if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

impl Draft {
    /// # Errors
    /// Every offending field.
    pub(crate) fn parse(
        input: NewContract,
        settings: &ContractSettings,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let draft = Self {
            name: name(&input.name, &mut errors),
            parties: parties(&input.parties, &mut errors),
            code: code(&input.code, settings, &mut errors),
            state: state(
                input
                    .state
                    .unwrap_or_else(|| Value::Object(Default::default())),
                settings,
                &mut errors,
            ),
            triggers: triggers(input.triggers.as_deref().unwrap_or_default(), &mut errors),
        };
        if errors.is_empty() {
            Ok(draft)
        } else {
            Err(errors)
        }
    }
}

impl Changes {
    /// # Errors
    /// Every offending field.
    pub(crate) fn parse(
        input: ContractPatch,
        settings: &ContractSettings,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let changes = Self {
            name: input.name.map(|n| name(&n, &mut errors)),
            parties: input.parties.map(|p| parties(&p, &mut errors)),
            code: input.code.map(|c| code(&c, settings, &mut errors)),
            state: input.state.map(|s| state(s, settings, &mut errors)),
            triggers: input.triggers.map(|t| triggers(&t, &mut errors)),
        };
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new(code: &str) -> NewContract {
        NewContract {
            name: "counter".into(),
            parties: vec!["alice".into()],
            code: code.into(),
            state: Some(json!({"n": 0})),
            triggers: Some(vec!["order.paid".into()]),
        }
    }

    #[test]
    fn a_good_draft_parses() {
        let draft =
            Draft::parse(new("{'state': {'n': state.n + 1}}"), &Default::default()).unwrap();
        assert_eq!(draft.triggers, ["order.paid"]);
    }

    #[test]
    fn every_bad_field_is_named() {
        let input = NewContract {
            name: " ".into(),
            parties: vec![],
            code: "1 +".into(),
            state: Some(json!([1])),
            triggers: Some(vec!["Order Paid".into(), "contract.executed".into()]),
        };
        let errors = Draft::parse(input, &Default::default()).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "name",
                "parties",
                "code",
                "state",
                "triggers[0]",
                "triggers[1]"
            ]
        );
    }

    #[test]
    fn code_over_the_size_bound_is_refused() {
        let settings = ContractSettings {
            max_code_bytes: 10,
            ..Default::default()
        };
        let errors = Draft::parse(new("{'output': 12345678}"), &settings).unwrap_err();
        assert_eq!(errors[0].field, "code");
        assert!(errors[0].message.contains("more than the 10"));
    }
}
