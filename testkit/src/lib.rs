//! Test fixtures for medgate.
//!
//! [`Stack`] starts the control plane in-process on an ephemeral port, on a fresh SQLite
//! file or a fresh PostgreSQL database, and gives role-scoped HTTP clients. Tests are written
//! once and run on both backends with [`both_backends!`]. [`MockUpstream`] is a mock
//! OpenAI-compatible upstream (an echo model) for proxy tests, benchmarks and the demo mode.
//! [`TestCa`] issues certificates for TLS tests.
#![forbid(unsafe_code)]

mod client;
pub mod mock_upstream;
mod stack;
#[cfg(feature = "tls")]
pub mod tls;

pub use client::{Client, Reply};
pub use mock_upstream::{Behavior, MockUpstream, RecordedRequest, MOCK_MODEL};
pub use stack::{Backend, Stack, TEST_JWT_SECRET};
#[cfg(feature = "tls")]
pub use tls::{Issued, TestCa};

/// Generates `sqlite::<name>` and `postgres::<name>` tests for each `async fn <name>(Stack)`.
///
/// PostgreSQL tests use `MEDGATE_TEST_POSTGRES_URL` (default
/// `postgres://postgres@127.0.0.1:5432/test`); when it is unreachable they print that they
/// skip, unless `MEDGATE_REQUIRE_POSTGRES=1`, which makes them fail (CI sets it).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let stack = $crate::Stack::start($crate::Backend::Sqlite).await;
                    super::$name(stack).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(stack) = $crate::Stack::start_postgres_or_skip(stringify!($name)).await else { return };
                    super::$name(stack).await;
                }
            )*
        }
    };
}

/// Like [`both_backends!`], but each test goes through the calling file's own
/// `async fn run(backend: Backend, name: &str, test: F)`, which starts the stack with what
/// the tests need (settings, helper servers) and may skip PostgreSQL when it is absent:
///
/// ```ignore
/// medgate_testkit::both_backends_via_run!(first_test, second_test);
/// ```
#[macro_export]
macro_rules! both_backends_via_run {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run($crate::Backend::Sqlite, stringify!($name), super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run($crate::Backend::Postgres, stringify!($name), super::$name).await;
                }
            )*
        }
    };
}
