//! Exports `runner:plugin/plugin@9.0.0`, a major the host does not know.

wit_bindgen::generate!({ path: "wit", world: "agent-plugin" });

struct Future;

impl exports::runner::plugin::plugin::Guest for Future {
    fn describe() -> String {
        "from the future".into()
    }
}

export!(Future);
