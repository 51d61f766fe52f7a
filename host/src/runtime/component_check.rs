//! Reads what a component claims before any compilation: is it a component at
//! all, and which version of the `runner:plugin` contract does it export? Like
//! Zed's extension host, a version outside the accepted range is refused
//! before instantiation.

use wasmparser::{Encoding, Parser, Payload};

use super::errors::LoadError;

/// A `runner:plugin` contract version.
pub type WitVersion = semver::Version;

const PLUGIN_EXPORT: &str = "runner:plugin/plugin@";

/// The contract versions this host accepts, as text for messages.
pub fn accepted_range() -> String {
    super::wit::accepted().to_string()
}

/// Is `version` one this host can link and call? Pre-release and build
/// tags are ignored: a `0.1.0-rc.1` plugin speaks the 0.1 contract.
pub fn is_accepted(version: &WitVersion) -> bool {
    let release = WitVersion::new(version.major, version.minor, version.patch);
    super::wit::accepted().matches(&release)
}

/// What the header and top-level export section say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentFacts {
    pub wit_version: WitVersion,
    pub exports: Vec<String>,
}

/// Check `bytes` is a component exporting a supported `runner:plugin/plugin`.
pub fn check(source_name: &str, bytes: &[u8]) -> Result<ComponentFacts, LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm(source_name.to_string()));
    }
    let malformed = |e: wasmparser::BinaryReaderError| LoadError::Malformed {
        source_name: source_name.to_string(),
        cause: e.to_string(),
    };
    let mut depth = 0usize;
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Err(LoadError::CoreModule(source_name.to_string()));
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            // Nested modules and components have their own exports; only the
            // outermost component's exports are the plugin's interface.
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    exports.push(export.map_err(malformed)?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    let Some(version_text) = exports.iter().find_map(|e| e.strip_prefix(PLUGIN_EXPORT)) else {
        return Err(LoadError::NotAPlugin {
            source_name: source_name.to_string(),
            exports: if exports.is_empty() {
                "none".into()
            } else {
                exports.join(", ")
            },
        });
    };
    let newest = super::wit::newest();
    let unsupported = |found: String| LoadError::UnsupportedWit {
        source_name: source_name.to_string(),
        found,
        supported: format!("{}.{}.x", newest.major, newest.minor),
        supported_dir: format!("{}.{}", newest.major, newest.minor),
    };
    let wit_version =
        WitVersion::parse(version_text).map_err(|_| unsupported(version_text.to_string()))?;
    if !is_accepted(&wit_version) {
        return Err(unsupported(wit_version.to_string()));
    }
    Ok(ComponentFacts {
        wit_version,
        exports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_semver_and_garbage_does_not() {
        assert_eq!(
            WitVersion::parse("0.1.0").ok(),
            Some(WitVersion::new(0, 1, 0))
        );
        assert_eq!(
            WitVersion::parse("1.2.3-rc.1").map(|v| v.minor).ok(),
            Some(2)
        );
        assert!(WitVersion::parse("1.2").is_err());
        assert!(WitVersion::parse("1.2.3.4").is_err());
        assert!(WitVersion::parse("x.1.0").is_err());
    }

    #[test]
    fn the_host_accepts_every_0_1_patch_and_nothing_else() {
        let accepted = |v: &str| is_accepted(&WitVersion::parse(v).unwrap());
        assert!(accepted("0.1.0"));
        assert!(accepted("0.1.7"));
        assert!(accepted("0.1.0-rc.1"));
        assert!(!accepted("0.2.0"));
        assert!(!accepted("0.0.9"));
        assert!(!accepted("1.1.0"));
        assert_eq!(accepted_range(), ">=0.1.0, <0.2.0");
    }

    #[test]
    fn text_file_is_not_wasm() {
        assert!(matches!(
            check("x", b"hello world, not wasm"),
            Err(LoadError::NotWasm(_))
        ));
    }

    #[test]
    fn core_module_is_recognised() {
        // Smallest valid core module: magic + version 1.
        let module = b"\0asm\x01\0\0\0";
        assert!(matches!(check("m", module), Err(LoadError::CoreModule(_))));
    }

    #[test]
    fn empty_component_is_not_a_plugin() {
        // Component header: magic + version 0x0d, layer 1.
        let component = b"\0asm\x0d\0\x01\0";
        assert!(matches!(
            check("c", component),
            Err(LoadError::NotAPlugin { .. })
        ));
    }
}
