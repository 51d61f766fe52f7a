//! End-to-end harness for `runner`: a real Docker engine, images built locally by
//! `tests/images/build.sh`, sandboxes laid out like NemoClaw's, and the faults that break
//! them. Everything here is bounded: every wait has a deadline and says what it last saw.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use runner_e2e::{Engine, Mode, Sandbox, SandboxSpec, images};
//! let engine = Engine::connect().await?; // fails (never skips) without an engine
//! let image = images::ensure("fixture").await?;
//! let sb = Sandbox::create(&engine, SandboxSpec::new(image).mode(Mode::Keepalive)).await?;
//! sb.wait_http_ok(18789, "/health", std::time::Duration::from_secs(10)).await?;
//! let old = sb.kill_gateway_9().await?;
//! # let _ = old; Ok(()) }
//! ```

pub mod agents;
mod cleanup;
pub mod engine;
pub mod exec;
mod faults;
pub mod images;
pub mod layout;
pub mod netns;
pub mod ports;
pub mod private_engine;
pub mod sandbox;
pub mod slots;
mod sys;
pub mod test_certs;
pub mod wait;

pub use engine::Engine;
pub use exec::ExecOutcome;
pub use netns::HttpReply;
pub use ports::{ForeignListener, free_port};
pub use private_engine::PrivateEngine;
pub use sandbox::{Mode, Sandbox, SandboxSpec, sweep_leftovers};
