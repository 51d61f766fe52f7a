//! The proof after a patch: the re-parsed document equals the original plus
//! exactly the one string.

use super::{Node, Value};

/// `new` must equal `old` except that the array at `path` gained `value` at
/// its end (or the members on the path were appended, holding just it).
pub(super) fn verify_one_string_added(
    old: &Node,
    new: &Node,
    path: &[&str],
    value: &str,
) -> Result<(), String> {
    let (Value::Object(om), Value::Object(nm)) = (&old.value, &new.value) else {
        return Err("expected objects on the path".into());
    };
    let key = path[0];
    let old_idx = om.iter().rposition(|m| m.key == key);
    match old_idx {
        Some(i) => {
            if om.len() != nm.len() {
                return Err(format!("member count changed next to '{key}'"));
            }
            for (j, (a, b)) in om.iter().zip(nm).enumerate() {
                if a.key != b.key {
                    return Err(format!("key '{}' became '{}'", a.key, b.key));
                }
                if j != i && !a.value.same_as(&b.value) {
                    return Err(format!("member '{}' changed", a.key));
                }
            }
            let (a, b) = (&om[i].value, &nm[i].value);
            if path.len() > 1 {
                return verify_one_string_added(a, b, &path[1..], value);
            }
            match (&a.value, &b.value) {
                (Value::Array(x), Value::Array(y)) => {
                    let ok = y.len() == x.len() + 1
                        && x.iter().zip(y).all(|(p, q)| p.same_as(q))
                        && y.last().and_then(Node::as_str) == Some(value);
                    if ok {
                        Ok(())
                    } else {
                        Err(format!("array '{key}' did not gain exactly the new string"))
                    }
                }
                _ => Err(format!("'{key}' is not an array on both sides")),
            }
        }
        None => {
            if nm.len() != om.len() + 1 {
                return Err(format!("expected exactly one new member '{key}'"));
            }
            if !om
                .iter()
                .zip(nm)
                .all(|(a, b)| a.key == b.key && a.value.same_as(&b.value))
            {
                return Err("existing members changed".into());
            }
            let added = nm.last().expect("one more member");
            if added.key != key {
                return Err(format!("new member is '{}', expected '{key}'", added.key));
            }
            let mut node = &added.value;
            for k in &path[1..] {
                match &node.value {
                    Value::Object(m) if m.len() == 1 && m[0].key == *k => node = &m[0].value,
                    _ => return Err(format!("new member '{key}' has the wrong shape")),
                }
            }
            match node.as_array() {
                Some([only]) if only.as_str() == Some(value) => Ok(()),
                _ => Err(format!(
                    "new member '{key}' does not hold exactly the new string"
                )),
            }
        }
    }
}
