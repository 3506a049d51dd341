//! The OpenAPI 3.1 document, generated from the endpoint declarations and the types' JSON
//! Schemas (schemars emits JSON Schema 2020-12, which OpenAPI 3.1 uses as is).

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use super::Endpoint;
use crate::auth::Access;
use crate::error::ErrorEnvelope;

/// Builds the whole document.
pub fn document(endpoints: &[Arc<Endpoint>]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut inline = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let error_schema = generator.subschema_for::<ErrorEnvelope>().to_value();

    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut tags = std::collections::BTreeSet::new();
    for ep in endpoints {
        tags.insert(ep.tag.clone());
        let mut parameters: Vec<Value> = ep
            .path_params()
            .into_iter()
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if let Some(query) = ep.query {
            parameters.extend(query_parameters(query(&mut inline).to_value()));
        }
        let mut op = Map::new();
        op.insert("operationId".into(), json!(ep.operation));
        op.insert("summary".into(), json!(ep.summary));
        op.insert("tags".into(), json!([ep.tag]));
        op.insert(
            "description".into(),
            json!(format!("Access: {}.", ep.access.describe())),
        );
        if !parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(request) = ep.request {
            op.insert(
                "requestBody".into(),
                json!({ "required": true, "content": { "application/json": { "schema": request(&mut generator).to_value() } } }),
            );
        }
        let mut responses = Map::new();
        let success = match (ep.response, ep.response_content_type) {
            (_, Some(types)) => {
                let content: Map<String, Value> = types
                    .split(", ")
                    // A JSON flavour (`application/fhir+json`) is a document, not a string.
                    .map(|t| {
                        let ty = if t.ends_with("+json") {
                            "object"
                        } else {
                            "string"
                        };
                        (t.to_owned(), json!({ "schema": { "type": ty } }))
                    })
                    .collect();
                json!({ "description": "Success", "content": content })
            }
            (Some(response), None) => json!({
                "description": "Success",
                "content": { "application/json": { "schema": response(&mut generator).to_value() } }
            }),
            (None, None) => json!({ "description": "Success" }),
        };
        if let Some(also) = ep.also_success {
            responses.insert(also.to_string(), success.clone());
        }
        responses.insert(ep.success.to_string(), success);
        for (status, description) in error_statuses(ep) {
            responses.insert(
                status.to_string(),
                json!({ "description": description, "content": { "application/json": { "schema": error_schema.clone() } } }),
            );
        }
        op.insert("responses".into(), Value::Object(responses));
        if ep.access != Access::Public {
            op.insert("security".into(), json!([{ "bearer": [] }]));
        }
        paths
            .entry(ep.path.clone())
            .or_default()
            .insert(ep.method.as_str().to_lowercase(), Value::Object(op));
    }

    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "medgate management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Management API of medgate, the multi-tenant LLM gateway for medical SaaS. \
                Errors use one envelope: {\"error\": {\"code\", \"message\", \"details\", \"request_id\"}}. \
                Money is in integer minor units. Tenant-scoped tokens see only their tenant; another \
                tenant's resource answers 404."
        },
        "servers": [{ "url": "/" }],
        "tags": tags.into_iter().map(|t| json!({ "name": t })).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }
            }
        }
    })
}

/// The error statuses an endpoint can answer, by its shape.
fn error_statuses(ep: &Endpoint) -> Vec<(u16, &'static str)> {
    let mut out = Vec::new();
    let has_input = ep.request.is_some() || ep.query.is_some() || !ep.path_params().is_empty();
    if has_input {
        out.push((400, "Malformed request"));
    }
    if ep.access != Access::Public {
        out.push((401, "Missing, invalid or expired token"));
        out.push((403, "The token's role may not call this endpoint"));
    }
    if !ep.path_params().is_empty() || (ep.access != Access::Public && has_input) {
        out.push((404, "No such resource, or it belongs to another tenant"));
    }
    if ep.is_mutation() {
        out.push((409, "Conflicts with the current state"));
    }
    if ep.request.is_some() {
        out.push((413, "Request body too large"));
        out.push((415, "Body is not application/json"));
    }
    if has_input {
        out.push((422, "Request breaks a validation rule"));
    }
    out.extend(ep.extra_errors.iter().copied());
    out.sort_by_key(|(status, _)| *status);
    out.dedup_by_key(|(status, _)| *status);
    out
}

/// Turns an inline object schema into OpenAPI query parameters.
fn query_parameters(schema: Value) -> Vec<Value> {
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, prop)| {
            let mut prop = prop.clone();
            let description = prop.as_object_mut().and_then(|o| o.remove("description"));
            let mut param = json!({
                "name": name,
                "in": "query",
                "required": required.contains(name),
                "schema": prop,
            });
            if let Some(d) = description {
                param["description"] = d;
            }
            param
        })
        .collect()
}
