//! Rate-limit rules compiled once per snapshot: which rules a request meets and which
//! counter each one charges.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use medgate_config::{
    LimitMetric, LimitMode, LimitScope, LimitWindow, RateLimitEntry, Snapshot, StoreFailureMode,
};

use super::gcra::Gcra;
use super::LimitRequest;

/// One rule with its precomputed buckets.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub(crate) entry: RateLimitEntry,
    /// The rule's bucket (local or cluster).
    pub(crate) gcra: Gcra,
    /// The bucket enforced in memory while Redis is unreachable (`local_fallback`).
    pub(crate) fallback: Gcra,
}

impl CompiledRule {
    fn new(entry: RateLimitEntry) -> Self {
        Self {
            gcra: Gcra::for_rule(&entry),
            fallback: Gcra::fallback_for_rule(&entry),
            entry,
        }
    }

    pub(crate) fn is_tokens(&self) -> bool {
        self.entry.metric == LimitMetric::Tokens
    }

    pub(crate) fn is_cluster(&self) -> bool {
        self.entry.mode == LimitMode::Cluster
    }
}

/// A rule that applies to one request, with the counter it charges.
#[derive(Debug, Clone)]
pub(crate) struct Matched {
    pub(crate) rule: Arc<CompiledRule>,
    /// Which counter of the rule: "*", a tenant id, key id, model, route id or "tenant|model".
    pub(crate) counter: String,
    /// Redis hash tag: the tenant whose traffic the counter counts, or "global" for counters
    /// shared across tenants (so one counter has one key whichever tenant charges it).
    pub(crate) tag: String,
}

impl Matched {
    /// Key in the local store (rule ids are unique within a snapshot).
    pub(crate) fn local_key(&self) -> String {
        format!("{}\u{1f}{}", self.rule.entry.id, self.counter)
    }

    /// Key of the rule's fallback bucket in the local store (apart from local-mode keys).
    pub(crate) fn fallback_key(&self) -> String {
        format!("fb\u{1f}{}\u{1f}{}", self.rule.entry.id, self.counter)
    }
}

/// The rate-limit rules of one snapshot, indexed by tenant.
///
/// Contract: built by [`LimitRules::compile`] whenever a snapshot is applied; cheap to share
/// (`Arc`) and immutable afterwards. Counter state is not part of it: it lives in the
/// [`Limiter`](super::Limiter), keyed by rule id, so a rule whose limit changes keeps its
/// state. The state is a time debt, so the fraction of the capacity in use carries over
/// (60 of 120 used becomes 30 of 60 when the limit halves).
#[derive(Debug, Default)]
pub struct LimitRules {
    /// Rules bound to one tenant (`tenant_id` set, plan quotas), by tenant.
    by_tenant: HashMap<String, Vec<Arc<CompiledRule>>>,
    /// Rules for every tenant.
    shared: Vec<Arc<CompiledRule>>,
}

impl LimitRules {
    /// Rules from `snapshot.protection.rate_limits` plus each tenant's plan quotas as
    /// tenant-scoped rules (`plan:<tenant_id>:rpm`, `plan:<tenant_id>:tpm`, per minute,
    /// `Cluster` when `cluster_available` else `Local`, `LocalFallback` on store errors).
    ///
    /// A rule that fails `validate()` or repeats an earlier id is skipped with a warning
    /// (snapshots are validated upstream; this keeps a bad one from dividing by zero or
    /// sharing a counter). A quota of 0 is treated as absent (the control plane refuses it).
    pub fn compile(snapshot: &Snapshot, cluster_available: bool) -> Self {
        let mut rules = Self::default();
        let mut ids = HashSet::new();
        let plan_mode = if cluster_available {
            LimitMode::Cluster
        } else {
            LimitMode::Local
        };
        let plans = snapshot.tenants.iter().flat_map(|t| {
            let q = t.quotas.as_ref();
            let rpm = q.and_then(|q| q.requests_per_minute);
            let tpm = q.and_then(|q| q.tokens_per_minute);
            [
                rpm.map(|l| plan_rule(&t.id, "rpm", LimitMetric::Requests, l, plan_mode)),
                tpm.map(|l| plan_rule(&t.id, "tpm", LimitMetric::Tokens, l, plan_mode)),
            ]
            .into_iter()
            .flatten()
        });
        for entry in snapshot.protection.rate_limits.iter().cloned().chain(plans) {
            if let Err(e) = entry.validate() {
                tracing::warn!(rule = %entry.id, error = %e, "rate-limit rule skipped");
                continue;
            }
            if !ids.insert(entry.id.clone()) {
                tracing::warn!(rule = %entry.id, "duplicate rate-limit rule id skipped");
                continue;
            }
            let rule = Arc::new(CompiledRule::new(entry));
            match &rule.entry.tenant_id {
                Some(t) => rules.by_tenant.entry(t.clone()).or_default().push(rule),
                None => rules.shared.push(rule),
            }
        }
        rules
    }

    pub fn is_empty(&self) -> bool {
        self.by_tenant.is_empty() && self.shared.is_empty()
    }

    /// The rules that apply to `req` (diagnostics and tests).
    pub fn applicable(&self, req: &LimitRequest<'_>) -> Vec<&RateLimitEntry> {
        self.candidates(req)
            .filter(|r| counter_for(&r.entry, req).is_some())
            .map(|r| &r.entry)
            .collect()
    }

    /// The rules that apply to `req`, each with its counter.
    pub(crate) fn matching(&self, req: &LimitRequest<'_>) -> Vec<Matched> {
        self.candidates(req)
            .filter_map(|rule| {
                let counter = counter_for(&rule.entry, req)?;
                let tag = redis_tag(&rule.entry, req).to_owned();
                Some(Matched {
                    rule: Arc::clone(rule),
                    counter,
                    tag,
                })
            })
            .collect()
    }

    fn candidates<'s>(
        &'s self,
        req: &LimitRequest<'_>,
    ) -> impl Iterator<Item = &'s Arc<CompiledRule>> + 's {
        let own = self.by_tenant.get(req.tenant_id).into_iter().flatten();
        self.shared.iter().chain(own)
    }
}

fn plan_rule(
    tenant_id: &str,
    suffix: &str,
    metric: LimitMetric,
    limit: u64,
    mode: LimitMode,
) -> RateLimitEntry {
    RateLimitEntry {
        id: format!("plan:{tenant_id}:{suffix}"),
        tenant_id: Some(tenant_id.to_owned()),
        scope: LimitScope::Tenant,
        target: None,
        metric,
        window: LimitWindow::Minute,
        limit,
        burst: None,
        mode,
        on_store_error: StoreFailureMode::LocalFallback,
        fallback_limit: None,
    }
}

/// The counter `rule` charges for `req`, or None when the rule does not apply.
///
/// A rule applies when its `tenant_id` is unset or the request's, and the request has the
/// subject the scope counts (a key for `api_key`, a model for `model`/`tenant_model`, a route
/// for `route`) equal to `target` when one is set. For `tenant` the target, if any, names
/// the tenant; `global` never has one.
fn counter_for(rule: &RateLimitEntry, req: &LimitRequest<'_>) -> Option<String> {
    if rule
        .tenant_id
        .as_deref()
        .is_some_and(|t| t != req.tenant_id)
    {
        return None;
    }
    let target_ok = |subject: &str| rule.target.as_deref().is_none_or(|t| t == subject);
    match rule.scope {
        LimitScope::Global => Some("*".to_owned()),
        LimitScope::Tenant => target_ok(req.tenant_id).then(|| req.tenant_id.to_owned()),
        LimitScope::ApiKey => req.api_key_id.filter(|k| target_ok(k)).map(str::to_owned),
        LimitScope::Model => req.model.filter(|m| target_ok(m)).map(str::to_owned),
        // validate() requires a route target; without one the rule matches nothing.
        LimitScope::Route => req
            .route_id
            .filter(|r| rule.target.as_deref() == Some(*r))
            .map(str::to_owned),
        LimitScope::TenantModel => req
            .model
            .filter(|m| target_ok(m))
            .map(|m| format!("{}|{m}", req.tenant_id)),
    }
}

/// The Redis hash tag of a counter: its tenant when the counter belongs to one tenant, else
/// "global". Keys of different tags live in different Redis Cluster slots.
fn redis_tag<'a>(rule: &'a RateLimitEntry, req: &LimitRequest<'a>) -> &'a str {
    if let Some(t) = rule.tenant_id.as_deref() {
        return t;
    }
    match rule.scope {
        LimitScope::Tenant | LimitScope::ApiKey | LimitScope::TenantModel => req.tenant_id,
        LimitScope::Global | LimitScope::Model | LimitScope::Route => "global",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use medgate_config::{PlanQuotas, TenantEntry, TenantStatus};

    pub(crate) fn rule(id: &str) -> RateLimitEntry {
        RateLimitEntry {
            id: id.into(),
            tenant_id: None,
            scope: LimitScope::Tenant,
            target: None,
            metric: LimitMetric::Requests,
            window: LimitWindow::Minute,
            limit: 60,
            burst: None,
            mode: LimitMode::Local,
            on_store_error: StoreFailureMode::LocalFallback,
            fallback_limit: None,
        }
    }

    pub(crate) fn tenant(id: &str, quotas: Option<PlanQuotas>) -> TenantEntry {
        TenantEntry {
            id: id.into(),
            code: id.into(),
            status: TenantStatus::Active,
            quotas,
            allowed_models: vec![],
            log_request_payloads: false,
            cors_allowed_origins: vec![],
            isolation: None,
        }
    }

    pub(crate) fn snapshot(rules: Vec<RateLimitEntry>, tenants: Vec<TenantEntry>) -> Snapshot {
        let mut s = Snapshot::new(1, tenants);
        s.protection.rate_limits = rules;
        s
    }

    fn req<'a>(tenant: &'a str, key: Option<&'a str>, model: Option<&'a str>) -> LimitRequest<'a> {
        LimitRequest {
            tenant_id: tenant,
            api_key_id: key,
            model,
            route_id: None,
        }
    }

    #[test]
    fn plan_quotas_compile_into_tenant_rules() {
        let quotas = PlanQuotas {
            requests_per_minute: Some(600),
            tokens_per_minute: Some(100_000),
            monthly_tokens: None,
            max_api_keys: None,
        };
        let zero = PlanQuotas {
            requests_per_minute: Some(0),
            tokens_per_minute: None,
            monthly_tokens: None,
            max_api_keys: None,
        };
        let s = snapshot(
            vec![],
            vec![
                tenant("t1", Some(quotas)),
                tenant("t2", None),
                tenant("t3", Some(zero)),
            ],
        );
        let rules = LimitRules::compile(&s, true);
        let got = rules.applicable(&req("t1", None, None));
        let ids: Vec<_> = got.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["plan:t1:rpm", "plan:t1:tpm"]);
        assert_eq!(got[0].limit, 600);
        assert_eq!(got[0].metric, LimitMetric::Requests);
        assert_eq!(got[1].metric, LimitMetric::Tokens);
        assert_eq!(got[1].mode, LimitMode::Cluster);
        assert_eq!(got[1].on_store_error, StoreFailureMode::LocalFallback);
        assert_eq!(got[1].tenant_id.as_deref(), Some("t1"));
        assert!(rules.applicable(&req("t2", None, None)).is_empty());
        assert!(rules.applicable(&req("t3", None, None)).is_empty());
        let local = LimitRules::compile(&s, false);
        assert_eq!(
            local.applicable(&req("t1", None, None))[0].mode,
            LimitMode::Local
        );
        assert!(LimitRules::compile(&snapshot(vec![], vec![]), true).is_empty());
    }

    #[test]
    fn applicability_and_counters_follow_scope_target_and_tenant() {
        let mut by_model = rule("model");
        by_model.scope = LimitScope::Model;
        by_model.target = Some("gpt".into());
        let mut per_key = rule("key");
        per_key.scope = LimitScope::ApiKey;
        let mut tm = rule("tm");
        tm.scope = LimitScope::TenantModel;
        tm.tenant_id = Some("a".into());
        let mut route = rule("route");
        route.scope = LimitScope::Route;
        route.target = Some("r1".into());
        let mut global = rule("global");
        global.scope = LimitScope::Global;
        let s = snapshot(vec![by_model, per_key, tm, route, global], vec![]);
        let rules = LimitRules::compile(&s, false);

        let counters = |r: &LimitRequest<'_>| -> Vec<(String, String, String)> {
            rules
                .matching(r)
                .into_iter()
                .map(|m| (m.rule.entry.id.clone(), m.counter, m.tag))
                .collect()
        };
        let full = LimitRequest {
            tenant_id: "a",
            api_key_id: Some("k1"),
            model: Some("gpt"),
            route_id: Some("r1"),
        };
        let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        assert_eq!(
            counters(&full),
            [
                s("model", "gpt", "global"),
                s("key", "k1", "a"),
                s("route", "r1", "global"),
                s("global", "*", "global"),
                s("tm", "a|gpt", "a"),
            ]
        );
        // Other tenant, other model, no key: only the global rule.
        assert_eq!(
            counters(&req("b", None, Some("other"))),
            [s("global", "*", "global")]
        );
    }

    #[test]
    fn invalid_and_duplicate_rules_are_skipped() {
        let mut zero = rule("zero");
        zero.limit = 0;
        let s = snapshot(vec![zero, rule("dup"), rule("dup")], vec![]);
        let rules = LimitRules::compile(&s, false);
        assert_eq!(rules.applicable(&req("a", None, None)).len(), 1);
    }
}
