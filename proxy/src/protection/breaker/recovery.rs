//! Manual recovery: naming services and detecting new recovery commands in a snapshot.

use std::collections::BTreeMap;

use medgate_config::BreakerTargetKind;

/// Splits a service name, `model:<name>`, `upstream:<label>` or `route:<id>`, into the
/// breaker target it names. None for anything else (e.g. a bare rule id).
pub(super) fn parse_service(service: &str) -> Option<(BreakerTargetKind, &str)> {
    let (kind, name) = service.split_once(':')?;
    let kind = match kind {
        "model" => BreakerTargetKind::Model,
        "upstream" => BreakerTargetKind::Upstream,
        "route" => BreakerTargetKind::Route,
        _ => return None,
    };
    Some((kind, name))
}

/// The recovery targets whose counter grew from `previous` to `next` (a target new in `next`
/// grew from zero). With no previous snapshot nothing grew: a proxy that starts must not
/// replay every recovery command ever issued, it has no open breaker to recover anyway.
pub(super) fn grown<'a>(
    previous: Option<&BTreeMap<String, u64>>,
    next: &'a BTreeMap<String, u64>,
) -> Vec<&'a str> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    next.iter()
        .filter(|(target, count)| **count > previous.get(*target).copied().unwrap_or(0))
        .map(|(target, _)| target.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_name_a_kind_and_a_name() {
        assert_eq!(
            parse_service("model:gpt-4o"),
            Some((BreakerTargetKind::Model, "gpt-4o"))
        );
        assert_eq!(
            parse_service("upstream:http://10.0.0.1:8000"),
            Some((BreakerTargetKind::Upstream, "http://10.0.0.1:8000"))
        );
        assert_eq!(
            parse_service("route:r1"),
            Some((BreakerTargetKind::Route, "r1"))
        );
        assert_eq!(parse_service("cb-1"), None);
        assert_eq!(parse_service("tenant:t1"), None);
    }

    #[test]
    fn only_grown_counters_count_and_the_first_snapshot_only_records() {
        let a: BTreeMap<String, u64> = [("cb-1".to_owned(), 2), ("model:m".to_owned(), 1)].into();
        assert!(grown(None, &a).is_empty());
        assert!(grown(Some(&a), &a).is_empty());
        let b: BTreeMap<String, u64> = [
            ("cb-1".to_owned(), 3),
            ("model:m".to_owned(), 1),
            ("route:r".to_owned(), 1),
        ]
        .into();
        assert_eq!(grown(Some(&a), &b), vec!["cb-1", "route:r"]);
    }
}
