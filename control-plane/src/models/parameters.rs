//! Request parameter rules (API §3.3): which parameters a model or a tenant may rule, what a
//! valid rule is, and how a tenant's rules combine with the model's.
//!
//! The data plane applies the rules by rewriting request bodies (defaults, bounds, forced
//! values), so a rule must make sense for the parameter it governs: a default `temperature`
//! of `"hot"` or a `max_tokens` bound of 2.5 is refused here rather than at request time.

use std::collections::BTreeMap;

use medgate_config::ParameterRule;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// A map of parameter name to rule, as stored on models and tenant-model configs.
pub type ParameterRules = BTreeMap<String, ParameterRule>;

/// What values a parameter takes in the OpenAI API.
#[derive(Debug, Clone, Copy)]
enum Domain {
    Integer {
        min: f64,
        max: f64,
    },
    Number {
        min: f64,
        max: f64,
    },
    /// A string or up to four strings; no numeric bounds.
    Stop,
}

/// The parameters rules may govern.
pub const KNOWN: &[&str] = &[
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "stop",
    "seed",
];

fn domain(name: &str) -> Option<Domain> {
    // Seeds are 64-bit integers; f64 cannot hold i64::MAX exactly, so the bound is 2^63.
    const SEED: f64 = 9_223_372_036_854_775_808.0;
    Some(match name {
        "max_tokens" | "max_completion_tokens" => Domain::Integer {
            min: 1.0,
            max: f64::from(u32::MAX),
        },
        "n" => Domain::Integer {
            min: 1.0,
            max: 128.0,
        },
        "seed" => Domain::Integer {
            min: -SEED,
            max: SEED,
        },
        "temperature" => Domain::Number { min: 0.0, max: 2.0 },
        "top_p" => Domain::Number { min: 0.0, max: 1.0 },
        "presence_penalty" | "frequency_penalty" => Domain::Number {
            min: -2.0,
            max: 2.0,
        },
        "stop" => Domain::Stop,
        _ => return None,
    })
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Checks every rule; errors name the field as `<prefix>.<parameter>.<part>`.
pub fn validate(prefix: &str, rules: &ParameterRules) -> ApiResult<()> {
    for (name, rule) in rules {
        let field = join(prefix, name);
        let domain = domain(name).ok_or_else(|| {
            ApiError::invalid(
                &field,
                format!("unknown parameter; known: {}", KNOWN.join(", ")),
            )
        })?;
        validate_rule(&field, domain, rule)?;
    }
    Ok(())
}

fn validate_rule(field: &str, domain: Domain, rule: &ParameterRule) -> ApiResult<()> {
    let (lo, hi, integer) = match domain {
        Domain::Stop => {
            if rule.min.is_some() || rule.max.is_some() {
                return Err(ApiError::invalid(field, "stop has no numeric bounds"));
            }
            for (part, value) in [("default", &rule.default), ("forced", &rule.forced)] {
                if let Some(v) = value {
                    check_stop(&format!("{field}.{part}"), v)?;
                }
            }
            return Ok(());
        }
        Domain::Integer { min, max } => (min, max, true),
        Domain::Number { min, max } => (min, max, false),
    };
    for (part, bound) in [("min", rule.min), ("max", rule.max)] {
        if let Some(b) = bound {
            let field = format!("{field}.{part}");
            if integer && b.fract() != 0.0 {
                return Err(ApiError::invalid(&field, "must be a whole number"));
            }
            if !(lo..=hi).contains(&b) {
                return Err(ApiError::invalid(
                    &field,
                    format!("must be between {lo} and {hi}"),
                ));
            }
        }
    }
    if let (Some(min), Some(max)) = (rule.min, rule.max) {
        if min > max {
            return Err(ApiError::invalid(
                &format!("{field}.min"),
                "must not be greater than max",
            ));
        }
    }
    let lo = rule.min.unwrap_or(lo);
    let hi = rule.max.unwrap_or(hi);
    for (part, value) in [("default", &rule.default), ("forced", &rule.forced)] {
        let Some(value) = value else { continue };
        let field = format!("{field}.{part}");
        let number = value
            .as_f64()
            .filter(|_| !integer || value.is_i64() || value.is_u64())
            .ok_or_else(|| {
                ApiError::invalid(
                    &field,
                    if integer {
                        "must be an integer"
                    } else {
                        "must be a number"
                    },
                )
            })?;
        if !(lo..=hi).contains(&number) {
            return Err(ApiError::invalid(
                &field,
                format!("must be within the bounds {lo} to {hi}"),
            ));
        }
    }
    Ok(())
}

fn check_stop(field: &str, value: &Value) -> ApiResult<()> {
    let ok = match value {
        Value::String(s) => s.len() <= 256,
        Value::Array(items) => {
            items.len() <= 4
                && items
                    .iter()
                    .all(|i| i.as_str().is_some_and(|s| s.len() <= 256))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be a string or a list of up to 4 strings (256 bytes each)",
        ))
    }
}

/// The rules in force for a tenant: the model's, with each tenant rule replacing the model's
/// rule of the same parameter as a whole (the data plane combines them the same way).
pub fn merge(model: &ParameterRules, overrides: &ParameterRules) -> ParameterRules {
    let mut rules = model.clone();
    rules.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    rules
}

/// Tenant admins may only narrow the model's rules: keep its bounds (or tighter), stay inside
/// them with defaults, and leave forced parameters alone. Rules equal to `kept` (what a
/// platform admin set before) are accepted as they are.
pub fn check_narrows(
    prefix: &str,
    model: &ParameterRules,
    overrides: &ParameterRules,
    kept: &ParameterRules,
) -> ApiResult<()> {
    for (name, rule) in overrides {
        if kept.get(name) == Some(rule) {
            continue;
        }
        let Some(base) = model.get(name) else {
            continue;
        };
        let field = join(prefix, name);
        if base.forced.is_some() {
            return Err(ApiError::invalid(
                &field,
                "the model forces this parameter; only a platform admin may override it",
            ));
        }
        if let Some(min) = base.min {
            if rule.min.is_none_or(|m| m < min) {
                return Err(ApiError::invalid(
                    &format!("{field}.min"),
                    format!("must be at least the model's minimum {min}"),
                ));
            }
        }
        if let Some(max) = base.max {
            if rule.max.is_none_or(|m| m > max) {
                return Err(ApiError::invalid(
                    &format!("{field}.max"),
                    format!("must be at most the model's maximum {max}"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(value: Value) -> ParameterRules {
        serde_json::from_value(value).expect("rules")
    }

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::Unprocessable { details, .. } => {
                details["field"].as_str().unwrap_or_default().to_owned()
            }
            other => panic!("not a 422: {other:?}"),
        }
    }

    #[test]
    fn good_rules_pass() {
        let r = rules(json!({
            "max_tokens": { "default": 512, "min": 1, "max": 4096 },
            "temperature": { "min": 0.0, "max": 1.2, "default": 0.7, "on_violation": "reject" },
            "top_p": { "forced": 1 },
            "stop": { "default": ["\n\n"] },
            "seed": { "forced": -5 }
        }));
        validate("parameters", &r).expect("valid");
    }

    #[test]
    fn bad_rules_name_the_field() {
        let cases = [
            (json!({ "warmth": {} }), "parameters.warmth"),
            (
                json!({ "max_tokens": { "min": 10, "max": 5 } }),
                "parameters.max_tokens.min",
            ),
            (
                json!({ "max_tokens": { "max": 2.5 } }),
                "parameters.max_tokens.max",
            ),
            (
                json!({ "temperature": { "max": 3 } }),
                "parameters.temperature.max",
            ),
            (
                json!({ "temperature": { "max": 1, "default": 1.5 } }),
                "parameters.temperature.default",
            ),
            (
                json!({ "temperature": { "forced": "hot" } }),
                "parameters.temperature.forced",
            ),
            (json!({ "n": { "default": 2.5 } }), "parameters.n.default"),
            (json!({ "stop": { "max": 3 } }), "parameters.stop"),
            (
                json!({ "stop": { "default": ["a", "b", "c", "d", "e"] } }),
                "parameters.stop.default",
            ),
        ];
        for (value, field) in cases {
            let err = validate("parameters", &rules(value.clone())).expect_err("refused");
            assert_eq!(field_of(err), field, "{value}");
        }
    }

    #[test]
    fn tenant_rules_replace_model_rules_per_parameter() {
        let model = rules(json!({
            "max_tokens": { "max": 4096 },
            "temperature": { "default": 0.2 }
        }));
        let tenant = rules(json!({ "max_tokens": { "max": 1024, "default": 256 } }));
        let merged = merge(&model, &tenant);
        assert_eq!(merged["max_tokens"].max, Some(1024.0));
        assert_eq!(merged["max_tokens"].default, Some(json!(256)));
        assert_eq!(merged["temperature"].default, Some(json!(0.2)));
    }

    #[test]
    fn tenant_admins_only_narrow() {
        let model = rules(json!({
            "max_tokens": { "min": 16, "max": 4096 },
            "top_p": { "forced": 1 }
        }));
        let none = ParameterRules::new();
        let ok =
            rules(json!({ "max_tokens": { "min": 32, "max": 1024 }, "seed": { "forced": 1 } }));
        check_narrows("parameters", &model, &ok, &none).expect("narrower");
        let wider = rules(json!({ "max_tokens": { "min": 16, "max": 8192 } }));
        let err = check_narrows("parameters", &model, &wider, &none).expect_err("wider");
        assert_eq!(field_of(err), "parameters.max_tokens.max");
        let unbounded = rules(json!({ "max_tokens": { "max": 1024 } }));
        let err = check_narrows("parameters", &model, &unbounded, &none).expect_err("no min");
        assert_eq!(field_of(err), "parameters.max_tokens.min");
        let forced = rules(json!({ "top_p": { "forced": 0.5 } }));
        let err = check_narrows("parameters", &model, &forced, &none).expect_err("forced");
        assert_eq!(field_of(err), "parameters.top_p");
        check_narrows("parameters", &model, &wider, &wider).expect("kept as set before");
    }
}
