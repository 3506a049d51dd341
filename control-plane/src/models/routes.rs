//! Routes of API §3.1 and the model part of §3.3: CRUD from the generic resource layer, the
//! enable/disable toggle and the parameter rules.

use axum::extract::State;
use axum::response::Response;
use axum::Json;

use super::model::{Model, ModelView};
use super::parameters::{self, ParameterRules};
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::ApiResult;
use crate::resource::{self, crud_routes, Crud, Resource};
use crate::state::AppState;

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    crud_routes::<Model>(api)
        .add(
            Endpoint::post(
                "/api/models/{id}/toggle",
                "models.toggle",
                "Enable a disabled model or disable an enabled one",
            )
            .access(Access::PlatformAdmin)
            .resource(Model::KIND)
            .response::<ModelView>(),
            toggle,
        )
        .add(
            Endpoint::get(
                "/api/models/{id}/parameters",
                "models.get_parameters",
                "Get a model's request parameter rules",
            )
            .resource(Model::KIND)
            .response::<ParameterRules>(),
            get_parameters,
        )
        .add(
            Endpoint::put(
                "/api/models/{id}/parameters",
                "models.update_parameters",
                "Replace a model's request parameter rules",
            )
            .access(Access::PlatformAdmin)
            .resource(Model::KIND)
            .request::<ParameterRules>()
            .response::<ParameterRules>(),
            update_parameters,
        )
}

async fn toggle(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let model = resource::mutate::<Model, _>(state.store(), &principal, &id, |m| {
        m.enabled = !m.enabled;
        Ok(())
    })
    .await?;
    let details = serde_json::json!({ "enabled": model.enabled });
    Ok(AuditTarget::new(&id, None)
        .with_details(details)
        .attach(Json(model.view())))
}

async fn get_parameters(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ParameterRules>> {
    let model = resource::visible(
        &principal,
        resource::load::<Model>(state.store(), &id).await?,
        &id,
    )?;
    Ok(Json(model.value.parameters))
}

async fn update_parameters(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(rules): ApiJson<ParameterRules>,
) -> ApiResult<Response> {
    parameters::validate("", &rules)?;
    let model = resource::mutate::<Model, _>(state.store(), &principal, &id, |m| {
        m.parameters = rules.clone();
        Ok(())
    })
    .await?;
    Ok(AuditTarget::new(&id, None).attach(Json(model.parameters)))
}
