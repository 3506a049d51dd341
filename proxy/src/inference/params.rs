//! Parameter rules (defaults, bounds, forced values) applied to a request body.

use medgate_config::{OnViolation, ParameterRule};
use serde_json::{Map, Value};

use crate::openai_error::GatewayError;

/// Applies `rules` to `body`; returns whether anything changed, or a 422 for a refused value.
pub fn apply(
    body: &mut Map<String, Value>,
    rules: &[(String, ParameterRule)],
) -> Result<bool, GatewayError> {
    let mut changed = false;
    for (name, rule) in rules {
        if let Some(forced) = &rule.forced {
            if body.get(name) != Some(forced) {
                body.insert(name.clone(), forced.clone());
                changed = true;
            }
            continue;
        }
        if !body.contains_key(name) {
            if let Some(default) = &rule.default {
                body.insert(name.clone(), default.clone());
                changed = true;
            }
            continue;
        }
        let Some(value) = body.get(name).and_then(Value::as_f64) else {
            continue;
        };
        let below = rule.min.is_some_and(|min| value < min);
        let above = rule.max.is_some_and(|max| value > max);
        if !(below || above) {
            continue;
        }
        match rule.on_violation {
            OnViolation::Reject => {
                return Err(GatewayError::new(
                    422,
                    "invalid_request_error",
                    "parameter_out_of_bounds",
                    format!(
                        "{name} = {value} is outside the allowed range [{}, {}]",
                        rule.min.map_or("-inf".into(), |m| m.to_string()),
                        rule.max.map_or("inf".into(), |m| m.to_string())
                    ),
                ))
            }
            OnViolation::Clamp => {
                let bound = if below { rule.min } else { rule.max }.unwrap_or(value);
                let integral = body.get(name).is_some_and(|v| v.is_i64() || v.is_u64());
                let clamped = if integral && bound.fract() == 0.0 {
                    Value::from(bound as i64)
                } else {
                    serde_json::Number::from_f64(bound).map_or(Value::Null, Value::Number)
                };
                body.insert(name.clone(), clamped);
                changed = true;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(min: Option<f64>, max: Option<f64>, on: OnViolation) -> ParameterRule {
        ParameterRule {
            default: None,
            min,
            max,
            forced: None,
            on_violation: on,
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn clamps_into_bounds_keeping_integers_integral() {
        let mut b = body(json!({ "max_tokens": 100000, "temperature": 3.5 }));
        let rules = vec![
            (
                "max_tokens".to_owned(),
                rule(Some(1.0), Some(4096.0), OnViolation::Clamp),
            ),
            (
                "temperature".to_owned(),
                rule(Some(0.0), Some(2.0), OnViolation::Clamp),
            ),
        ];
        assert!(apply(&mut b, &rules).expect("ok"));
        assert_eq!(b["max_tokens"], json!(4096));
        assert_eq!(b["temperature"], json!(2.0));
    }

    #[test]
    fn rejects_when_configured() {
        let mut b = body(json!({ "temperature": -1 }));
        let rules = vec![(
            "temperature".to_owned(),
            rule(Some(0.0), Some(2.0), OnViolation::Reject),
        )];
        let err = apply(&mut b, &rules).expect_err("refused");
        assert_eq!(err.status, 422);
    }

    #[test]
    fn defaults_fill_gaps_and_forced_values_win() {
        let mut b = body(json!({ "top_p": 0.5 }));
        let rules = vec![
            (
                "max_tokens".to_owned(),
                ParameterRule {
                    default: Some(json!(256)),
                    ..Default::default()
                },
            ),
            (
                "top_p".to_owned(),
                ParameterRule {
                    forced: Some(json!(1.0)),
                    ..Default::default()
                },
            ),
        ];
        assert!(apply(&mut b, &rules).expect("ok"));
        assert_eq!(b["max_tokens"], json!(256));
        assert_eq!(b["top_p"], json!(1.0));
    }

    #[test]
    fn in_bounds_values_are_untouched() {
        let mut b = body(json!({ "max_tokens": 10 }));
        let rules = vec![(
            "max_tokens".to_owned(),
            rule(Some(1.0), Some(100.0), OnViolation::Reject),
        )];
        assert!(!apply(&mut b, &rules).expect("ok"));
    }
}
