//! Reading the script's JSON lines into [`Facts`]. The row keeps its exact
//! text (its span) for the compare-and-delete.

use super::{Coordinator, Facts, LeaseOwner, LeaseRow};
use runner_plugin_sdk::json5::{self, Node, Value};
use runner_plugin_sdk::process;

fn int(node: Option<&Node>) -> Result<Option<i64>, String> {
    match node.map(|n| &n.value) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(raw)) => raw
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("not an integer: {raw}")),
        Some(other) => Err(format!("expected an integer, got {}", other.type_name())),
    }
}

/// `payload_json.owner` as OpenClaw's `parseStateLeaseProcessOwner` reads it.
pub fn parse_owner(payload_json: &str) -> Option<LeaseOwner> {
    let doc = json5::parse(payload_json).ok()?;
    let owner = doc.get("owner")?;
    let pid = owner
        .get("pid")?
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0)?;
    let host = owner.get("host")?.as_str().filter(|h| !h.is_empty())?;
    let started_at = match &owner.get("startedAt")?.value {
        Value::Null => None,
        _ => Some(owner.get("startedAt")?.as_u64()?),
    };
    Some(LeaseOwner {
        pid,
        host: host.to_string(),
        started_at,
    })
}

fn parse_row(text: &str, node: &Node) -> Result<LeaseRow, String> {
    let owner = node
        .get("owner")
        .and_then(Node::as_str)
        .ok_or("row without owner")?
        .to_string();
    let updated_at = int(node.get("updated_at"))?.ok_or("row without updated_at")?;
    let process = node
        .get("payload_json")
        .and_then(Node::as_str)
        .and_then(parse_owner);
    Ok(LeaseRow {
        owner,
        expires_at: int(node.get("expires_at"))?,
        heartbeat_at: int(node.get("heartbeat_at"))?,
        updated_at,
        process,
        raw: text[node.span.clone()].to_string(),
    })
}

/// Parse the script's `observe` line.
pub fn parse_facts(stdout: &str) -> Result<Facts, String> {
    let line = stdout
        .lines()
        .rfind(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("no JSON in the script output: {}", stdout.trim()))?;
    let doc = json5::parse(line).map_err(|e| format!("script output: {e}"))?;
    if let Some(e) = doc.get("error").and_then(Node::as_str) {
        return Err(e.to_string());
    }
    let hostname = doc
        .get("hostname")
        .and_then(Node::as_str)
        .filter(|h| !h.is_empty())
        .ok_or("no hostname")?
        .to_string();
    let now_ms = int(doc.get("now_ms"))?.ok_or("no now_ms")?;
    let uptime_ticks = doc
        .get("uptime")
        .and_then(Node::as_str)
        .and_then(|u| process::parse_uptime(u.as_bytes()));
    let row = match doc.get("row") {
        None => None,
        Some(n) if n.value == Value::Null => None,
        Some(n) => Some(parse_row(line, n)?),
    };
    let mut coordinators = Vec::new();
    for c in doc
        .get("coordinators")
        .and_then(Node::as_array)
        .ok_or("no coordinators")?
    {
        let path = c
            .get("path")
            .and_then(Node::as_str)
            .ok_or("coordinator without path")?;
        let held = match c.get("held").map(|h| &h.value) {
            Some(Value::Bool(b)) => *b,
            _ => return Err(format!("coordinator {path}: no held flag")),
        };
        coordinators.push(Coordinator {
            path: path.to_string(),
            held,
        });
    }
    Ok(Facts {
        hostname,
        now_ms,
        uptime_ticks,
        row,
        coordinators,
    })
}
