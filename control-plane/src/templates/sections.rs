//! Sections of a template (API §4.3): the `group` items at the top level of the draft, and
//! their order. Every change edits the draft through [`Template::set_draft`], so the
//! structure rules (T1, 422 naming the rule) run on the result and a template without a draft
//! (everything published) answers 409 `version_frozen` (V1) before anything else is looked at.
//!
//! A section is addressed by its linkId. `PUT .../order` takes every top-level linkId (groups
//! and any top-level questions) exactly once; a partial list, an unknown id or a duplicate is
//! 422 `invalid_order` with the offending ids in `details`.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::model::{Content, Item, ItemType};
use super::resource::{no_draft, Template};
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Resource};
use crate::state::AppState;

/// Body of `POST /api/templates/{id}/sections`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionCreate {
    /// The new section: a `group` item with its items.
    pub section: Item,
    /// 0-based index among the top-level items; appended when left out.
    pub position: Option<u32>,
}

/// Body of `PUT /api/templates/{id}/sections/{sectionId}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionUpdate {
    /// Replaces the section in place (its linkId may change if the new one is unused).
    pub section: Item,
}

/// Body of `PUT /api/templates/{id}/order`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionOrder {
    /// Every top-level linkId of the draft, once each, in the new order.
    pub order: Vec<String>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    let write = |e: Endpoint| {
        e.access(Access::TenantWrite)
            .resource(Template::KIND)
            .response::<Template>()
    };
    api.add(
        write(Endpoint::post(
            "/api/templates/{id}/sections",
            "templates.sections.create",
            "Add a section (a group item) to the draft, at `position` or at the end",
        ))
        .request::<SectionCreate>()
        .status(201),
        create,
    )
    .add(
        write(Endpoint::put(
            "/api/templates/{id}/sections/{sectionId}",
            "templates.sections.update",
            "Replace a section of the draft (sectionId is the group's linkId)",
        ))
        .request::<SectionUpdate>(),
        update,
    )
    .add(
        Endpoint::delete(
            "/api/templates/{id}/sections/{sectionId}",
            "templates.sections.delete",
            "Remove a section and its items from the draft",
        )
        .access(Access::TenantWrite)
        .resource(Template::KIND),
        delete,
    )
    .add(
        write(Endpoint::put(
            "/api/templates/{id}/order",
            "templates.order",
            "Reorder the draft's top-level items: the full list of their linkIds, each once",
        ))
        .request::<SectionOrder>(),
        set_order,
    )
}

fn check_section(section: &Item) -> ApiResult<()> {
    if section.item_type != ItemType::Group {
        return Err(ApiError::invalid(
            "section.type",
            "a section is a group item",
        ));
    }
    Ok(())
}

/// The index of the top-level section `link_id`; 404 when there is no such group.
fn find(content: &Content, link_id: &str) -> ApiResult<usize> {
    content
        .items
        .iter()
        .position(|i| i.link_id == link_id && i.item_type == ItemType::Group)
        .ok_or_else(|| ApiError::not_found("template_section", link_id))
}

/// Inserts `section` at `position` (the end when `None`).
pub fn add(content: &mut Content, section: Item, position: Option<u32>) -> ApiResult<()> {
    check_section(&section)?;
    let len = content.items.len();
    let at = match position.map(|p| p as usize) {
        None => len,
        Some(p) if p <= len => p,
        Some(_) => {
            return Err(ApiError::invalid(
                "position",
                format!("must be between 0 and {len} (the number of top-level items)"),
            ))
        }
    };
    content.items.insert(at, section);
    Ok(())
}

/// Replaces the section `link_id` in place.
pub fn replace(content: &mut Content, link_id: &str, section: Item) -> ApiResult<()> {
    check_section(&section)?;
    let at = find(content, link_id)?;
    content.items[at] = section;
    Ok(())
}

/// Removes the section `link_id` with everything in it.
pub fn remove(content: &mut Content, link_id: &str) -> ApiResult<()> {
    let at = find(content, link_id)?;
    content.items.remove(at);
    Ok(())
}

/// Puts the top-level items in `order`, which must name each of them exactly once.
pub fn reorder(content: &mut Content, order: &[String]) -> ApiResult<()> {
    let present: HashSet<&str> = content.items.iter().map(|i| i.link_id.as_str()).collect();
    let mut seen = HashSet::new();
    let mut duplicate = Vec::new();
    let mut unknown = Vec::new();
    for id in order {
        if !seen.insert(id.as_str()) {
            duplicate.push(id.as_str());
        } else if !present.contains(id.as_str()) {
            unknown.push(id.as_str());
        }
    }
    let missing: Vec<&str> = content
        .items
        .iter()
        .map(|i| i.link_id.as_str())
        .filter(|id| !seen.contains(id))
        .collect();
    if !(duplicate.is_empty() && unknown.is_empty() && missing.is_empty()) {
        let mut problems = Vec::new();
        for (what, ids) in [
            ("duplicate", &duplicate),
            ("unknown", &unknown),
            ("missing", &missing),
        ] {
            if !ids.is_empty() {
                problems.push(format!("{what}: {}", ids.join(", ")));
            }
        }
        return Err(ApiError::Unprocessable {
            code: "invalid_order",
            message: format!(
                "order must list every top-level linkId exactly once ({})",
                problems.join("; ")
            ),
            details: json!({
                "field": "order", "duplicate": duplicate, "unknown": unknown, "missing": missing,
            }),
        });
    }
    let mut items = std::mem::take(&mut content.items);
    for id in order {
        if let Some(at) = items.iter().position(|i| &i.link_id == id) {
            content.items.push(items.swap_remove(at));
        }
    }
    Ok(())
}

/// Applies `change` to a copy of the draft and saves it through [`Template::set_draft`]
/// (structure rules, 409 without a draft), retrying when another writer got there first.
async fn edit<F>(
    state: &AppState,
    principal: &Principal,
    id: &str,
    change: F,
) -> ApiResult<Template>
where
    F: Fn(&mut Content) -> ApiResult<()>,
{
    resource::mutate::<Template, _>(state.store(), principal, id, |t| {
        let mut content = t.draft.clone().ok_or_else(no_draft)?;
        change(&mut content)?;
        t.set_draft(content)
    })
    .await
}

fn audited(template: &Template, details: serde_json::Value) -> AuditTarget {
    AuditTarget::new(&template.id, template.tenant_id.as_deref()).with_details(details)
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<SectionCreate>,
) -> ApiResult<Response> {
    let link_id = req.section.link_id.clone();
    let template = edit(&state, &principal, &id, |c| {
        add(c, req.section.clone(), req.position)
    })
    .await?;
    let target = audited(&template, json!({ "section": link_id }));
    Ok(target.attach((StatusCode::CREATED, Json(template))))
}

async fn update(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, section_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<SectionUpdate>,
) -> ApiResult<Response> {
    let template = edit(&state, &principal, &id, |c| {
        replace(c, &section_id, req.section.clone())
    })
    .await?;
    let target = audited(
        &template,
        json!({ "section": section_id, "link_id": req.section.link_id }),
    );
    Ok(target.attach(Json(template)))
}

async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, section_id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let template = edit(&state, &principal, &id, |c| remove(c, &section_id)).await?;
    let target = audited(&template, json!({ "section": section_id }));
    Ok(target.attach(StatusCode::NO_CONTENT))
}

async fn set_order(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<SectionOrder>,
) -> ApiResult<Response> {
    let template = edit(&state, &principal, &id, |c| reorder(c, &req.order)).await?;
    let target = audited(&template, json!({ "order": req.order }));
    Ok(target.attach(Json(template)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(link_id: &str, ty: &str, children: serde_json::Value) -> Item {
        let mut v = json!({ "link_id": link_id, "type": ty });
        if !children.is_null() {
            v["items"] = children;
        }
        serde_json::from_value(v).expect("item")
    }

    fn group(link_id: &str) -> Item {
        item(
            link_id,
            "group",
            json!([{ "link_id": format!("{link_id}.q"), "type": "string" }]),
        )
    }

    fn ids(c: &Content) -> Vec<&str> {
        c.items.iter().map(|i| i.link_id.as_str()).collect()
    }

    fn sample() -> Content {
        Content {
            items: vec![group("a"), group("b"), item("q", "string", json!(null))],
            ..Content::default()
        }
    }

    #[test]
    fn sections_are_added_at_a_position_replaced_and_removed() {
        let mut c = sample();
        add(&mut c, group("c"), Some(1)).expect("add");
        add(&mut c, group("d"), None).expect("append");
        assert_eq!(ids(&c), ["a", "c", "b", "q", "d"]);
        assert!(add(&mut c, group("e"), Some(6)).is_err(), "past the end");
        assert!(add(&mut c, item("s", "string", json!(null)), None).is_err());
        replace(&mut c, "c", group("c2")).expect("replace");
        assert_eq!(ids(&c), ["a", "c2", "b", "q", "d"]);
        remove(&mut c, "b").expect("remove");
        assert_eq!(ids(&c), ["a", "c2", "q", "d"]);
        assert!(matches!(
            remove(&mut c, "q"),
            Err(ApiError::NotFound { .. })
        ));
        assert!(matches!(
            remove(&mut c, "a.q"),
            Err(ApiError::NotFound { .. })
        ));
    }

    #[test]
    fn order_must_name_every_top_level_item_once() {
        let mut c = sample();
        let order = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        reorder(&mut c, &order(&["q", "b", "a"])).expect("reorder");
        assert_eq!(ids(&c), ["q", "b", "a"]);
        for (bad, key, id) in [
            (order(&["q", "b"]), "missing", "a"),
            (order(&["q", "b", "a", "zz"]), "unknown", "zz"),
            (order(&["q", "b", "a", "b"]), "duplicate", "b"),
            (order(&["q", "b", "a.q"]), "unknown", "a.q"),
        ] {
            match reorder(&mut c, &bad) {
                Err(ApiError::Unprocessable { code, details, .. }) => {
                    assert_eq!(code, "invalid_order");
                    assert_eq!(details[key], json!([id]), "{details}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert_eq!(ids(&c), ["q", "b", "a"], "a refused order changes nothing");
    }
}
