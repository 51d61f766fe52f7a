//! `runner`: probes every link of an AI-agent sandbox, repairs only what is
//! broken, proves the result.
//!
//! Layout: [`runtime`] loads plugins (wasmtime components) and calls them with
//! a fresh store per call; [`capabilities`] implements the WIT imports on top
//! of a [`backend::Backend`]; [`cli`] is the binary's edge.

pub mod audit;
pub mod backend;
pub mod capabilities;
pub mod cli;
pub mod conformance;
pub mod forward;
pub mod model;
pub mod net;
pub mod paths;
pub mod plugins;
pub mod recovery;
pub mod runtime;
pub mod safe_fs;
pub mod settings;
pub mod time;
pub mod watch;
