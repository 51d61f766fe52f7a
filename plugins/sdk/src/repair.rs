//! The frame of every plugin's `repair` call: settings that do not parse
//! fail the call, a link the plugin does not know is refused, and every
//! routed outcome is logged at the level it deserves.

use crate::{RepairOutcome, log};

/// Route `link` to its repair. `route` answers `None` for a link the plugin
/// does not declare.
pub fn dispatch<C>(
    link: &str,
    config: Result<C, String>,
    route: impl FnOnce(&C, &str) -> Option<RepairOutcome>,
) -> RepairOutcome {
    let cfg = match config {
        Ok(c) => c,
        Err(e) => return RepairOutcome::Failed(e),
    };
    let outcome = route(&cfg, link)
        .unwrap_or_else(|| RepairOutcome::Refused(format!("unknown link '{link}'")));
    log::outcome(link, &outcome);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_do_not_parse_fail_the_call_before_any_link_runs() {
        let outcome = dispatch(
            "gateway",
            Err::<(), _>("setting 'port' = '0' is not a TCP port".into()),
            |_, _| panic!("no link may run on unparsed settings"),
        );
        assert_eq!(
            outcome,
            RepairOutcome::Failed("setting 'port' = '0' is not a TCP port".into())
        );
    }
}
