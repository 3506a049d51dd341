//! Traffic protection on the data plane (DESIGN.md §4 steps 3, 4 and 7): isolation
//! bulkheads, rate limits, circuit breakers and degradation.

pub mod breaker;
pub mod clock;
pub mod limit;
