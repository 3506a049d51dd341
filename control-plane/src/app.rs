//! Assembles the management API: every module's routes, the OpenAPI document, the fallbacks,
//! and the layers (request id, body limit, tracing).

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::{Json, Router};
use tower_http::trace::TraceLayer;

use crate::api::{self, docs, openapi, ApiBuilder, Endpoint};
use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{
    audit, domains, health, inference, keys, models, routing, snapshot, tenant_models, tenants,
};

/// The whole management API as one router.
pub fn router(state: AppState) -> Router {
    let limit = state.settings().api.max_body_bytes;
    api::set_body_limit(limit);
    let api = ApiBuilder::new(state.clone());
    let api = health::routes(api);
    let api = tenants::routes(api);
    let api = models::routes(api);
    let api = keys::routes(api);
    let api = tenant_models::routes(api);
    let api = inference::routes(api);
    let api = crate::gateway::routes(api);
    let api = crate::access_logs::routes(api);
    let api = crate::metrics::routes(api);
    let api = routing::routes(api);
    let api = domains::routes(api);
    let api = crate::templates::routes(api);
    let api = audit::routes(api);
    let api = snapshot::routes(api);
    let api = crate::alerts::routes(api);
    let api = crate::protection::routes(api);
    let api = crate::billing::routes::routes(api);
    let api = crate::billing::cards::routes(api);
    let api = crate::billing::invoices::routes(api);
    let api = crate::billing::overage::routes(api);
    let api = crate::settings::routes(api);
    let api = crate::cluster::routes(api);
    let api = crate::notifier::routes(api);
    let api = api
        .add(
            Endpoint::get(
                "/api/openapi.json",
                "docs.openapi",
                "This OpenAPI 3.1 document",
            )
            .access(Access::Public),
            openapi_json,
        )
        .add(
            Endpoint::get("/api/docs", "docs.page", "Browsable API documentation")
                .access(Access::Public)
                .produces("text/html"),
            docs_page,
        );
    let (router, endpoints) = api.finish();
    state.set_openapi(openapi::document(&endpoints));
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(api::request_id::middleware))
        .layer(TraceLayer::new_for_http())
}

async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.openapi().as_ref().clone())
}

async fn docs_page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(docs::PAGE))
}

async fn not_found() -> ApiError {
    ApiError::NotFound {
        resource: "route",
        id: "(this path)".into(),
    }
}

async fn method_not_allowed() -> impl IntoResponse {
    let err = ApiError::bad_request(
        "method_not_allowed",
        "this path does not accept this method",
    );
    let mut response = err.into_response();
    *response.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    response
}
