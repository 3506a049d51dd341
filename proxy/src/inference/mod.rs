//! The inference path (DESIGN.md §4): authenticate the key, check the tenant, read and
//! rewrite the body, forward with streaming, meter, emit the usage event.

pub mod forward;
pub mod params;
pub mod protect;
pub mod request;
pub mod sse;

use std::time::Instant;

use bytes::Bytes;
use medgate_config::{rate_at, UsageEvent};
use medgate_plugins::{Decision, Plugin, RequestView, TenantStatusGate};
use pingora::proxy::Session;
use rand::Rng;
use serde_json::{json, Value};

use crate::auth;
use crate::catalog::{Catalog, ModelRefusal};
use crate::gateway::{Gateway, RequestCtx};
use crate::openai_error::GatewayError;
use crate::protection::bulkhead::BulkheadPass;
use crate::protection::degrade::{self, Unserved};
use crate::protection::limit::LimitRequest;
use crate::routing::{self, call};
use request::{Body, Operation};

/// Which inference endpoint a request hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    ListModels,
    Call {
        operation: Operation,
        model_in_path: Option<String>,
    },
}

impl Endpoint {
    /// Recognizes inference paths; None for anything else.
    pub fn of(method: &str, path: &str) -> Option<Self> {
        let call = |operation| {
            Some(Endpoint::Call {
                operation,
                model_in_path: None,
            })
        };
        match (method, path) {
            ("GET", "/v1/models") => Some(Endpoint::ListModels),
            ("POST", "/v1/chat/completions") | ("POST", "/api/inference") => call(Operation::Chat),
            ("POST", "/v1/completions") => call(Operation::Completions),
            ("POST", "/v1/embeddings") => call(Operation::Embeddings),
            ("POST", p) => p
                .strip_prefix("/api/inference/")
                .filter(|m| !m.is_empty() && !m.contains('/') && *m != "history")
                .map(|m| Endpoint::Call {
                    operation: Operation::Chat,
                    model_in_path: Some(m.to_owned()),
                }),
            _ => None,
        }
    }
}

/// Handles one inference request completely (the response is written here).
pub async fn handle(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut RequestCtx,
    endpoint: Endpoint,
) -> Result<(), GatewayError> {
    let catalog = gw.shared.catalog().ok_or_else(|| {
        GatewayError::new(
            503,
            "api_error",
            "gateway_not_ready",
            "the gateway has no configuration yet; retry shortly",
        )
    })?;
    let header = session.req_header();
    let key =
        auth::authenticate(&catalog, call::presented_key(header)).map_err(call::key_refused)?;
    // On a tenant's verified domain, only that tenant's keys work (the tenant comes from the
    // Host and the key, never from a client header).
    if catalog
        .routing
        .tenant_of_host(&routing::request_host(header))
        .is_some_and(|t| t != key.entry.tenant_id)
    {
        return Err(call::tenant_mismatch());
    }
    ctx.tenant_id = Some(key.entry.tenant_id.clone());
    let view = RequestView {
        tenant_id: Some(key.entry.tenant_id.clone()),
        method: session.req_header().method.to_string(),
        path: session.req_header().uri.path().to_owned(),
    };
    if let Decision::Reject(r) = TenantStatusGate.on_request(&view, &catalog.snapshot) {
        return Err(GatewayError::new(r.status, r.kind, r.code, r.message));
    }
    let tenant = catalog
        .tenant(&key.entry.tenant_id)
        .ok_or_else(|| GatewayError::unauthorized("incorrect API key provided"))?;

    let (operation, model_in_path) = match endpoint {
        Endpoint::ListModels => {
            return list_models(session, ctx, &catalog, tenant, &key.entry).await
        }
        Endpoint::Call {
            operation,
            model_in_path,
        } => (operation, model_in_path),
    };

    let protection = &gw.shared.protection;
    let view = protection.view();
    let client_ip = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    if !view.client_allowed(&tenant.id, client_ip) {
        return Err(protect::network_refused());
    }
    if let Some(until) = view.quota_capped_until(&tenant.id, &ctx.arrived_at) {
        return Err(protect::quota_exceeded(until, &ctx.arrived_at));
    }
    // Bulkhead before the body is read: it also bounds the bodies a tenant holds in memory.
    let mut pass = BulkheadPass::default();
    if let Some(iso) = &tenant.isolation {
        protection
            .bulkheads
            .enter_tenant(iso, &tenant.id, &mut pass)
            .await
            .map_err(|r| {
                gw.metrics
                    .rate_limited
                    .with_label_values(&[tenant.id.as_str()])
                    .inc();
                protect::bulkhead_refused(r)
            })?;
    }

    let raw = request::read_body(session, catalog.snapshot.gateway.max_body_bytes).await?;
    let body_len = raw.len();
    let mut body = Body::parse(raw)?;
    let requested = match (model_in_path, body.model()) {
        (Some(m), _) => m,
        (None, Some(m)) => m.to_owned(),
        (None, None) => {
            return Err(
                GatewayError::bad_request("missing_model", "the request names no model")
                    .with_param("model"),
            )
        }
    };
    let model = catalog
        .resolve(tenant, &key.entry, &requested)
        .map_err(|r| model_refused(r, &requested))?;
    ctx.model = Some(model.entry.name.clone());
    if let Some(iso) = &tenant.isolation {
        protection
            .bulkheads
            .enter_model(iso, &tenant.id, &model.entry.name, &mut pass)
            .await
            .map_err(|r| {
                gw.metrics
                    .rate_limited
                    .with_label_values(&[tenant.id.as_str()])
                    .inc();
                protect::bulkhead_refused(r)
            })?;
    }

    let rules = catalog.parameter_rules(&tenant.id, &model.entry);
    if params::apply(&mut body.fields, &rules)? {
        body.modified = true;
    }
    let (estimate_in, estimate_out) =
        protect::estimate_tokens(body_len, &body, operation.produces_output());
    let estimate = estimate_in.saturating_add(estimate_out);
    let limit_request = LimitRequest {
        tenant_id: &tenant.id,
        api_key_id: Some(&key.entry.id),
        model: Some(&model.entry.name),
        route_id: None,
    };
    let admission = protection
        .limiter
        .admit(&view.limits, &limit_request, estimate)
        .await
        .map_err(|r| {
            protection.count_rate_limited();
            gw.metrics
                .rate_limited
                .with_label_values(&[tenant.id.as_str()])
                .inc();
            protect::limit_refused(r)
        })?;

    // The balance gate: a tenant on a spending limit must have room for the estimate.
    let reservation = gw
        .funds
        .reserve(
            &tenant.id,
            rate_at(&model.entry.rates, &ctx.arrived_at)
                .map_or(0, |r| r.cost_micros(estimate_in, estimate_out)),
        )
        .await
        .map_err(|_| protect::funds_exhausted())?;

    let roll = rand::rng().random_range(0..model.total_weight.max(1));
    let serving = match degrade::choose(
        protection,
        &view,
        &catalog,
        &tenant.id,
        tenant.isolation.as_ref(),
        model,
        roll,
    ) {
        Ok(serving) => serving,
        Err(Unserved::Static {
            rule_id,
            status,
            body,
        }) => {
            // The rule's canned answer; nothing was sent upstream, so nothing is charged.
            admission.settle(0).await;
            ctx.status = status;
            ctx.response_written = true;
            let marker = format!("static; rule={rule_id}");
            crate::gateway::write_json_with(
                session,
                status,
                &ctx.request_id,
                Bytes::from(body),
                &[("x-medgate-degraded", marker)],
            )
            .await;
            return Ok(());
        }
        Err(unserved) => {
            admission.settle(0).await;
            return Err(protect::unserved(&unserved));
        }
    };
    let served_by = serving.model;
    if served_by.entry.id != model.entry.id {
        ctx.model = Some(served_by.entry.name.clone());
    }
    body.set(
        "model",
        Value::String(served_by.entry.upstream_model.clone()),
    );
    let streamed = operation.can_stream() && body.is_stream();
    let hide_usage_chunk = streamed && body.request_stream_usage();

    let target = serving.target;
    ctx.upstream = Some(target.label.clone());
    let mut headers = protect::rate_headers(admission.headers());
    if let Some(marker) = &serving.degraded {
        headers.push(("x-medgate-degraded", marker.clone()));
    }
    let exchange = forward::Exchange {
        target,
        path: format!("{}{}", target.base_path, operation.upstream_suffix()),
        body: body.into_bytes(),
        request_id: &ctx.request_id,
        hide_usage_chunk,
        extra_headers: &headers,
        permits: Some(serving.permits),
    };
    let call_started = Instant::now();
    let outcome = forward::exchange(&gw.connector, session, exchange).await;
    let upstream_result = outcome.upstream_result();
    drop(serving.share);
    let failed = upstream_result.is_none_or(|s| s >= 500);
    let latency = call_started.elapsed();
    protection
        .services
        .record(&format!("model:{}", served_by.entry.name), failed, latency);
    protection
        .services
        .record(&format!("upstream:{}", target.url), failed, latency);
    drop(pass);
    ctx.status = outcome.status;
    ctx.response_written = outcome.error.is_none();

    let (input, output, reported) = match outcome.usage {
        Some(u) => (u.input_tokens, u.output_tokens, true),
        None if outcome.error.is_some() => (0, 0, false),
        // No usage from the upstream (client gone, upstream cut, or it never reports):
        // meter what was produced, estimated at ~4 characters per token.
        None => (
            (body_len as u64).div_ceil(4).min(1_000_000),
            outcome.content_chars.div_ceil(4),
            false,
        ),
    };
    admission.settle(input.saturating_add(output)).await;
    if let Some(reservation) = reservation {
        let cost = rate_at(&served_by.entry.rates, &ctx.arrived_at)
            .map_or(0, |r| r.cost_micros(input, output));
        reservation.settle(&ctx.request_id, cost);
    }
    ctx.tokens = (input, output);
    let model = served_by;
    if let Some(ttft) = outcome.ttft {
        gw.metrics
            .ttft
            .with_label_values(&[model.entry.name.as_str()])
            .observe(ttft.as_secs_f64());
    }
    gw.metrics
        .tokens
        .with_label_values(&[tenant.id.as_str(), model.entry.name.as_str(), "input"])
        .inc_by(input);
    gw.metrics
        .tokens
        .with_label_values(&[tenant.id.as_str(), model.entry.name.as_str(), "output"])
        .inc_by(output);
    gw.usage.send(UsageEvent {
        request_id: ctx.request_id.clone(),
        tenant_id: tenant.id.clone(),
        api_key_id: Some(key.entry.id.clone()),
        key_prefix: Some(key.entry.prefix.clone()),
        requested_model: requested.clone(),
        model_id: model.entry.id.clone(),
        model_name: model.entry.name.clone(),
        endpoint: operation.name().to_owned(),
        input_tokens: input,
        output_tokens: output,
        status: outcome.status,
        latency_ms: ctx.started.map_or(0, |s| s.elapsed().as_millis() as u64),
        ttft_ms: outcome.ttft.map(|t| t.as_millis() as u64),
        streamed: outcome.streamed,
        usage_reported: reported,
        occurred_at: ctx.arrived_at.clone(),
    });
    match outcome.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn model_refused(r: ModelRefusal, requested: &str) -> GatewayError {
    match r {
        ModelRefusal::NotFound => GatewayError::new(
            404,
            "invalid_request_error",
            "model_not_found",
            format!("the model `{requested}` does not exist or you do not have access to it"),
        )
        .with_param("model"),
        ModelRefusal::NotAllowed => GatewayError::new(
            403,
            "permission_error",
            "model_not_allowed",
            format!("this key or tenant may not use the model `{requested}`"),
        )
        .with_param("model"),
        ModelRefusal::Disabled => GatewayError::new(
            403,
            "permission_error",
            "model_disabled",
            format!("the model `{requested}` is disabled"),
        )
        .with_param("model"),
    }
}

async fn list_models(
    session: &mut Session,
    ctx: &mut RequestCtx,
    catalog: &Catalog,
    tenant: &medgate_config::TenantEntry,
    key: &medgate_config::ApiKeyEntry,
) -> Result<(), GatewayError> {
    let data: Vec<Value> = catalog
        .models_for(tenant, key)
        .into_iter()
        .map(|(name, _)| json!({ "id": name, "object": "model", "created": 0, "owned_by": "medgate" }))
        .collect();
    let body = Bytes::from(json!({ "object": "list", "data": data }).to_string());
    ctx.status = 200;
    ctx.response_written = true;
    crate::gateway::write_json(session, 200, &ctx.request_id, body).await;
    Ok(())
}

/// Time the request arrived, as stored in usage events.
pub fn arrival_time() -> (Instant, String) {
    (
        Instant::now(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
}
