//! Reads what a component claims before any compilation: is it a component at
//! all, and which major of the `runner:plugin` contract does it export? Like
//! Zed's extension host, an unknown major is refused before instantiation.

use wasmparser::{Encoding, Parser, Payload};

use super::errors::LoadError;

/// The contract this runner implements (`wit/v0.1`).
pub const WIT_VERSION: WitVersion = WitVersion {
    major: 0,
    minor: 1,
    patch: 0,
};

const PLUGIN_EXPORT: &str = "runner:plugin/plugin@";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WitVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl WitVersion {
    pub fn parse(text: &str) -> Option<Self> {
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        let v = WitVersion {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(v)
    }

    /// Semver-compatible with the host: same major and, for 0.x, same minor
    /// (cargo's caret rule); a newer minor than the host's is refused too,
    /// since the plugin may call functions this host lacks.
    pub fn is_supported_by(&self, host: &WitVersion) -> bool {
        if self.major != host.major {
            return false;
        }
        if host.major == 0 {
            self.minor == host.minor
        } else {
            self.minor <= host.minor
        }
    }
}

impl std::fmt::Display for WitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
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
    let unsupported = |found: String| LoadError::UnsupportedWit {
        source_name: source_name.to_string(),
        found,
        supported: format!("{}.{}.x", WIT_VERSION.major, WIT_VERSION.minor),
        supported_dir: format!("{}.{}", WIT_VERSION.major, WIT_VERSION.minor),
    };
    let wit_version =
        WitVersion::parse(version_text).ok_or_else(|| unsupported(version_text.to_string()))?;
    if !wit_version.is_supported_by(&WIT_VERSION) {
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
    fn version_parses_semver_and_rejects_garbage() {
        assert_eq!(
            WitVersion::parse("0.1.0"),
            Some(WitVersion {
                major: 0,
                minor: 1,
                patch: 0
            })
        );
        assert_eq!(WitVersion::parse("1.2.3-rc.1").map(|v| v.minor), Some(2));
        assert_eq!(WitVersion::parse("1.2"), None);
        assert_eq!(WitVersion::parse("1.2.3.4"), None);
        assert_eq!(WitVersion::parse("x.1.0"), None);
    }

    #[test]
    fn zero_major_needs_same_minor_and_other_majors_allow_older_minors() {
        let host0 = WitVersion::parse("0.1.0").unwrap();
        assert!(WitVersion::parse("0.1.7").unwrap().is_supported_by(&host0));
        assert!(!WitVersion::parse("0.2.0").unwrap().is_supported_by(&host0));
        assert!(!WitVersion::parse("9.0.0").unwrap().is_supported_by(&host0));
        let host1 = WitVersion::parse("1.3.0").unwrap();
        assert!(WitVersion::parse("1.2.0").unwrap().is_supported_by(&host1));
        assert!(!WitVersion::parse("1.4.0").unwrap().is_supported_by(&host1));
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
