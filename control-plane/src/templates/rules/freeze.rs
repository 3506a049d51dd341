//! Publish-time: the definitions of the rules a template's items attach are copied into the
//! content ([`Content::rules`]) and checked against their items, so the published version
//! (and its content hash) carries exactly the rules it validates with.

use std::collections::BTreeMap;

use super::compiled::CompiledVersion;
use super::resource::{findable, ValidationRule};
use crate::error::ApiResult;
use crate::resource;
use crate::store::Tx;
use crate::templates::model::{Content, Item};
use crate::templates::structure::Violation;

/// Most rules one item may attach.
pub const MAX_RULES_PER_ITEM: usize = 32;
/// Longest rule id an item may name.
pub const MAX_RULE_ID: usize = 64;

/// Save-time check of an item's rule references (ids only; the rules themselves are looked
/// up at publish, since a draft may attach a rule before it is final).
pub fn check_refs(item: &Item) -> Result<(), Violation> {
    let fail = |message: String| {
        Err(Violation {
            rule: "rules",
            link_id: item.link_id.clone(),
            message,
        })
    };
    if item.rules.len() > MAX_RULES_PER_ITEM {
        return fail(format!(
            "an item attaches at most {MAX_RULES_PER_ITEM} rules"
        ));
    }
    for (i, id) in item.rules.iter().enumerate() {
        if id.is_empty() || id.len() > MAX_RULE_ID || id.chars().any(char::is_control) {
            return fail(format!(
                "rule ids are 1 to {MAX_RULE_ID} bytes without control characters"
            ));
        }
        if item.rules[..i].contains(id) {
            return fail(format!("rule {id:?} is attached twice"));
        }
    }
    Ok(())
}

/// Replaces `content.rules` with the current definitions of every attached rule, then checks
/// that each fits its item. A rule that does not exist, or that `tenant_id` may not use
/// (another tenant's; a platform template may use platform rules only), is a 422 naming the
/// item, the same for both so rule ids of other tenants do not leak.
pub async fn freeze(tx: &mut Tx, content: &mut Content, tenant_id: Option<&str>) -> ApiResult<()> {
    let mut wanted: BTreeMap<String, String> = BTreeMap::new();
    for (item, _) in content.walk() {
        for id in &item.rules {
            wanted
                .entry(id.clone())
                .or_insert_with(|| item.link_id.clone());
        }
    }
    let mut frozen = BTreeMap::new();
    for (id, link_id) in wanted {
        let rule = match findable(&id) {
            Ok(()) => resource::load_tx::<ValidationRule>(tx, &id).await?,
            Err(_) => None,
        };
        let usable = rule
            .map(|s| s.value)
            .filter(|r| r.tenant_id.is_none() || r.tenant_id.as_deref() == tenant_id);
        let Some(rule) = usable else {
            return Err(Violation {
                rule: "rules",
                link_id,
                message: format!("unknown validation rule {id:?}"),
            }
            .into());
        };
        frozen.insert(id, rule.definition);
    }
    content.rules = frozen;
    CompiledVersion::check_rules(content)?;
    Ok(())
}
