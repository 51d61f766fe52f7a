//! The contract versions this host speaks, one adapter per version. The
//! host accepts a range of `runner:plugin` versions; a component is linked
//! and called through the adapter of the version it exports, chosen in one
//! place ([`WorldPre::new`]). An adapter converts between its generated
//! bindings and the host's own types, so capabilities and the engine never
//! see a contract version.

mod since_v0_1;

use semver::{Version, VersionReq};
use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use crate::capabilities::CapsView;
use crate::model::{LinkReport, PluginInfo, RepairOutcome, Target};

/// The `runner:plugin` versions a component may export to be loaded here.
pub fn accepted() -> VersionReq {
    VersionReq::parse(">=0.1.0, <0.2.0").expect("a valid version range")
}

/// The newest contract version this host implements (what `wit/` holds).
pub fn newest() -> Version {
    Version::new(0, 1, 0)
}

/// One exported function and its arguments.
pub(crate) enum Call {
    Describe,
    Probe(Target),
    Repair(Target, String),
}

/// What an exported function answered, in host types.
pub(crate) enum Answer {
    Describe(PluginInfo),
    Probe(Result<Vec<LinkReport>, String>),
    Repair(RepairOutcome),
}

impl Call {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Call::Describe => "describe",
            Call::Probe(_) => "probe",
            Call::Repair(..) => "repair",
        }
    }
}

/// Link the imports of every accepted version. Each version's interfaces
/// have their own versioned names, so all of them live in one linker.
pub(crate) fn add_to_linker<T: CapsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    since_v0_1::add_to_linker(linker)
}

/// A linked component, by the contract version it exports.
pub(crate) enum WorldPre<T: 'static> {
    V0_1(since_v0_1::Pre<T>),
}

impl<T: Send + 'static> WorldPre<T> {
    /// The adapter for `version`, which the load already checked is in
    /// [`accepted`].
    pub(crate) fn new(version: &Version, pre: InstancePre<T>) -> wasmtime::Result<Self> {
        match (version.major, version.minor) {
            (0, 1) => since_v0_1::Pre::new(pre).map(WorldPre::V0_1),
            _ => Err(wasmtime::format_err!(
                "no adapter for runner:plugin@{version} (accepted: {})",
                accepted()
            )),
        }
    }

    /// Instantiate in `store` and run one export.
    pub(crate) async fn call(&self, store: &mut Store<T>, call: Call) -> wasmtime::Result<Answer> {
        match self {
            WorldPre::V0_1(pre) => pre.call(store, call).await,
        }
    }
}
