//! Leases of cluster-wide singleton jobs, on SQLite and PostgreSQL: one holder at a time, a
//! renewal keeps it, an expired lease is taken over, a release hands it over at once; the
//! cluster view and the probes answer.

use std::time::Duration;

use medgate_control_plane::cluster::lease;
use medgate_testkit::{Backend, Stack};

async fn leases_have_one_holder_at_a_time(stack: &Stack) {
    let store = stack.state.store();
    let short = Duration::from_millis(300);
    assert!(lease::try_hold(store, "job", "cp-a", short)
        .await
        .expect("a"));
    assert!(
        !lease::try_hold(store, "job", "cp-b", short)
            .await
            .expect("b"),
        "a holds it"
    );
    assert!(
        lease::try_hold(store, "job", "cp-a", short)
            .await
            .expect("renew"),
        "renewal"
    );
    assert!(lease::try_hold(store, "other", "cp-b", short)
        .await
        .expect("other job"));

    // Concurrent claims of a free lease: exactly one wins.
    let claims = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            lease::try_hold(&store, "race", &format!("cp-{i}"), Duration::from_secs(5))
                .await
                .expect("claim")
        })
    });
    let mut winners = 0;
    for c in claims {
        winners += usize::from(c.await.expect("task"));
    }
    assert_eq!(winners, 1, "one holder for a free lease");

    // a stops renewing (it died): after the TTL b takes over, and a cannot renew any more.
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    assert!(lease::try_hold(store, "job", "cp-b", short)
        .await
        .expect("takeover"));
    assert!(!lease::try_hold(store, "job", "cp-a", short)
        .await
        .expect("late renewal"));
    let rows = lease::list(store).await.expect("list");
    let job = rows.iter().find(|l| l.name == "job").expect("job lease");
    assert_eq!(job.holder, "cp-b");

    // A clean stop releases: the next claimant takes it at once.
    lease::release(store, "job", "cp-b").await.expect("release");
    assert!(
        lease::try_hold(store, "job", "cp-a", Duration::from_secs(5))
            .await
            .expect("a again")
    );
}

async fn probes_and_cluster_view(stack: &Stack) {
    let anon = stack.anonymous();
    let live = anon.get("/api/health/live").await;
    assert_eq!(live.status, 200, "{live:?}");
    let ready = anon.get("/api/health/ready").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(anon.get("/api/cluster").await.status, 401);
    let view = stack.admin().get("/api/cluster").await;
    assert_eq!(view.status, 200, "{view:?}");
    assert!(view.json["instance"]
        .as_str()
        .is_some_and(|i| !i.is_empty()));
    let expected = match stack.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(view.json["store"], expected);
}

#[tokio::test]
async fn leases_on_sqlite() {
    let stack = Stack::start(Backend::Sqlite).await;
    leases_have_one_holder_at_a_time(&stack).await;
    probes_and_cluster_view(&stack).await;
}

#[tokio::test]
async fn leases_on_postgres() {
    let Some(stack) = Stack::start_postgres_or_skip("leases_on_postgres").await else {
        return;
    };
    leases_have_one_holder_at_a_time(&stack).await;
    probes_and_cluster_view(&stack).await;
}
