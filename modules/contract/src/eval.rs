//! Running contract code: CEL compiled with the `cel` crate, values converted from and to
//! JSON, and evaluation bounded in time.
//!
//! CEL has no loops or recursion, so every evaluation ends; but a small expression can still
//! do a lot of work (`xs.all(x, xs.all(y, …))`). Each evaluation therefore runs on a thread
//! of its own and the caller stops waiting after `max_eval`: the thread finishes on its own
//! and its result is dropped, so nothing is stored for a run that took too long.
//!
//! Known limits: memory is not bounded during evaluation (only the resulting state is), and a
//! burst of heavy timed-out evaluations keeps that many threads busy until they end.
//! CEL iterates a map's keys in an unspecified order; code that needs a deterministic
//! output should not turn a map's key order into a list.

use std::{collections::HashMap, sync::Arc, time::Duration};

use cel::{
    Context, Program, Value as Cel,
    objects::{Key, Map},
};
use chrono::{DateTime, Utc};
use contract_api::Caller;
use serde_json::{Map as JsonMap, Number, Value};

/// The evaluation thread's stack: deep but bounded expressions recurse in the interpreter.
const EVAL_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Why code does not compile, naming line and column, or `None` when it compiles.
pub(crate) fn compile_error(code: &str) -> Option<String> {
    match Program::compile(code) {
        Ok(_) => None,
        Err(errors) => Some(match errors.errors.first() {
            Some(e) => format!(
                "syntax error at line {}, column {}: {}",
                e.pos.0, e.pos.1, e.msg
            ),
            None => format!("syntax error: {errors}"),
        }),
    }
}

/// What a run sees.
#[derive(Debug, Clone)]
pub(crate) struct Bindings {
    pub input: Value,
    pub state: Value,
    pub now: DateTime<Utc>,
    pub caller: Caller,
}

/// What a run returned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// `output`, or null when absent.
    pub output: Value,
    /// The new state, when the result named one.
    pub state: Option<Value>,
}

/// Evaluates `code` on a thread of its own, waiting at most `bound`.
///
/// # Errors
/// A message for people: a runtime error, a result of the wrong shape, or the time bound.
pub(crate) fn evaluate(code: &str, bindings: Bindings, bound: Duration) -> Result<Outcome, String> {
    let (send, receive) = std::sync::mpsc::sync_channel(1);
    let code = code.to_owned();
    std::thread::Builder::new()
        .name("contract-eval".into())
        .stack_size(EVAL_STACK_BYTES)
        .spawn(move || {
            let result = std::panic::catch_unwind(move || run(&code, &bindings))
                .unwrap_or_else(|_| Err("the evaluation failed unexpectedly".into()));
            // The receiver is gone when the caller stopped waiting; the result is dropped.
            let _ = send.send(result);
        })
        .map_err(|e| format!("cannot start an evaluation: {e}"))?;
    match receive.recv_timeout(bound) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "the evaluation took longer than {} ms",
            bound.as_millis()
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err("the evaluation failed unexpectedly".into())
        }
    }
}

fn run(code: &str, bindings: &Bindings) -> Result<Outcome, String> {
    let program = Program::compile(code).map_err(|e| format!("the code does not compile: {e}"))?;
    let mut context = Context::default();
    context.add_variable_from_value("input", to_cel(&bindings.input));
    context.add_variable_from_value("state", to_cel(&bindings.state));
    context.add_variable_from_value("now", Cel::Timestamp(bindings.now.fixed_offset()));
    let caller = HashMap::from([
        (Key::from("sub"), Cel::from(bindings.caller.sub.as_str())),
        (Key::from("role"), Cel::from(bindings.caller.role.as_str())),
    ]);
    context.add_variable_from_value("caller", caller);
    let result = program.execute(&context).map_err(|e| e.to_string())?;
    outcome(&result)
}

/// Reads the program's result: a map with optional `output` and `state` (a map).
fn outcome(result: &Cel) -> Result<Outcome, String> {
    let Cel::Map(map) = result else {
        return Err(format!(
            "the result must be a map with optional `output` and `state`, not a {}",
            result.type_of()
        ));
    };
    let mut output = Value::Null;
    let mut state = None;
    for (key, value) in map.map.iter() {
        match key {
            Key::String(k) if k.as_str() == "output" => {
                output = to_json(value).map_err(|e| format!("output: {e}"))?;
            }
            Key::String(k) if k.as_str() == "state" => {
                let value = to_json(value).map_err(|e| format!("state: {e}"))?;
                if !value.is_object() {
                    return Err(format!(
                        "the returned `state` must be a map, not {}",
                        kind(&value)
                    ));
                }
                state = Some(value);
            }
            other => {
                return Err(format!(
                    "the result may only have the keys `output` and `state`, not {other:?}"
                ));
            }
        }
    }
    Ok(Outcome { output, state })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A JSON value as CEL sees it: integers are `int` (or `uint` above `i64`), other numbers
/// `double`, objects maps with string keys.
pub(crate) fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Cel::Int(i)
            } else if let Some(u) = n.as_u64() {
                Cel::UInt(u)
            } else {
                Cel::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => Cel::Map(Map {
            map: Arc::new(
                map.iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

/// A CEL value as JSON. Timestamps become RFC 3339 strings and durations `"<seconds>s"`;
/// bytes, non-finite doubles, maps with non-string keys and other values have no JSON form.
///
/// # Errors
/// A value without a JSON form.
pub(crate) fn to_json(value: &Cel) -> Result<Value, String> {
    Ok(match value {
        Cel::Null => Value::Null,
        Cel::Bool(b) => Value::Bool(*b),
        Cel::Int(i) => Value::from(*i),
        Cel::UInt(u) => Value::from(*u),
        Cel::Float(f) => {
            Value::Number(Number::from_f64(*f).ok_or_else(|| format!("{f} has no JSON form"))?)
        }
        Cel::String(s) => Value::String(s.as_str().to_owned()),
        Cel::List(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Cel::Map(map) => {
            let mut object = JsonMap::new();
            for (key, item) in map.map.iter() {
                let Key::String(k) = key else {
                    return Err(format!("map keys must be strings, not {key:?}"));
                };
                object.insert(k.as_str().to_owned(), to_json(item)?);
            }
            Value::Object(object)
        }
        Cel::Timestamp(t) => Value::String(crate::canonical::time(t.with_timezone(&Utc))),
        Cel::Duration(d) => {
            let micros = d.num_microseconds().unwrap_or(i64::MAX);
            Value::String(format!("{}s", micros as f64 / 1e6))
        }
        other => return Err(format!("a {} has no JSON form", other.type_of())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::auth::Role;
    use serde_json::json;

    fn bindings(input: Value, state: Value) -> Bindings {
        Bindings {
            input,
            state,
            now: DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            caller: Caller {
                sub: "alice".into(),
                role: Role::Customer,
            },
        }
    }

    fn eval(code: &str, input: Value, state: Value) -> Result<Outcome, String> {
        evaluate(code, bindings(input, state), Duration::from_secs(5))
    }

    #[test]
    fn the_loyalty_example_awards_a_point_per_hundred_cents() {
        let code = r#"{"state": {"points": state.points + int(input.total.amount) / 100}, "output": {"awarded": int(input.total.amount) / 100}}"#;
        let input = json!({"order_id": "o1", "total": {"amount": 3000, "currency": "EUR"}});
        let outcome = eval(code, input, json!({"points": 5})).unwrap();
        assert_eq!(outcome.output, json!({"awarded": 30}));
        assert_eq!(outcome.state, Some(json!({"points": 35})));
    }

    #[test]
    fn code_sees_now_and_the_caller() {
        let outcome = eval(
            r#"{"output": [caller.sub, caller.role, string(now), now < timestamp("2030-01-01T00:00:00Z")]}"#,
            Value::Null,
            json!({}),
        )
        .unwrap();
        assert_eq!(
            outcome.output,
            json!(["alice", "customer", "2026-11-22T10:00:00Z", true])
        );
        assert_eq!(outcome.state, None);
    }

    #[test]
    fn a_result_that_is_not_a_map_or_has_a_bad_state_is_an_error() {
        assert!(
            eval("1 + 1", Value::Null, json!({}))
                .unwrap_err()
                .contains("map")
        );
        assert!(
            eval(r#"{"state": 3}"#, Value::Null, json!({}))
                .unwrap_err()
                .contains("state")
        );
        assert!(eval(r#"{"other": 3}"#, Value::Null, json!({})).is_err());
        assert!(eval("{'output': {1: 2}}", Value::Null, json!({})).is_err());
    }

    #[test]
    fn runtime_errors_are_reported() {
        let err = eval(r#"{"output": input.missing}"#, json!({}), json!({})).unwrap_err();
        assert!(err.contains("missing"), "{err}");
        assert!(eval(r#"{"output": 1 + "a"}"#, json!({}), json!({})).is_err());
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = compile_error("{\n  \"output\": 1 +\n}").unwrap();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("column"), "{err}");
        assert_eq!(compile_error("1 + 2"), None);
    }

    #[test]
    fn a_heavy_evaluation_is_abandoned_after_the_bound() {
        let xs: Vec<i64> = (0..2000).collect();
        let err = evaluate(
            "{'output': input.all(x, input.all(y, x * y >= 0))}",
            bindings(json!(xs), json!({})),
            Duration::from_millis(50),
        )
        .unwrap_err();
        assert_eq!(err, "the evaluation took longer than 50 ms");
    }

    #[test]
    fn json_round_trips_through_cel() {
        let value = json!({"a": [1, -2, 1.5, "s", true, null, {"b": 18446744073709551615u64}]});
        assert_eq!(to_json(&to_cel(&value)).unwrap(), value);
    }
}
