//! Origin matching for the emulated Control UI check.
//!
//! Deliberately stricter than OpenClaw: only listed origins pass (no implicit
//! same-origin-with-Host rule), so a missing dashboard origin is always observable and a
//! CORS repair can be proven by flipping 403 to 200.

/// Canonical form used for comparison: lowercase scheme and host, no default port,
/// no trailing slash. Returns `None` for things that are not `scheme://host[:port]`.
pub fn normalize(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/');
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || rest.is_empty() || rest.contains('/') {
        return None;
    }
    let rest = rest.to_ascii_lowercase();
    let default_port = if scheme == "http" { ":80" } else { ":443" };
    let host = rest.strip_suffix(default_port).unwrap_or(&rest);
    Some(format!("{scheme}://{host}"))
}

/// The decision the gateway makes for one request. A request without an Origin header
/// is a non-browser client and is allowed, as in OpenClaw.
pub fn is_allowed(origin: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if allowed.iter().any(|a| a.trim() == "*") {
        return true;
    }
    let Some(wanted) = normalize(origin) else {
        return false;
    };
    allowed
        .iter()
        .filter_map(|a| normalize(a))
        .any(|a| a == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn listed_origin_is_allowed_after_normalization() {
        let allowed = list(&["http://127.0.0.1:18789/", "HTTPS://Example.COM:443"]);
        assert!(is_allowed(Some("http://127.0.0.1:18789"), &allowed));
        assert!(is_allowed(Some("https://example.com"), &allowed));
        assert!(is_allowed(Some("https://EXAMPLE.com/"), &allowed));
    }

    #[test]
    fn unlisted_origins_are_rejected_even_if_same_host() {
        let allowed = list(&["http://127.0.0.1:18789"]);
        assert!(!is_allowed(Some("http://localhost:18789"), &allowed));
        assert!(!is_allowed(Some("http://127.0.0.1:18790"), &allowed));
        assert!(!is_allowed(Some("https://127.0.0.1:18789"), &allowed));
        assert!(!is_allowed(Some("http://evil.example.com"), &allowed));
    }

    #[test]
    fn missing_origin_is_allowed_and_garbage_is_rejected() {
        assert!(is_allowed(None, &[]));
        assert!(!is_allowed(Some("null"), &list(&["http://a"])));
        assert!(!is_allowed(Some("http://a/path"), &list(&["http://a"])));
        assert!(!is_allowed(Some(""), &list(&["http://a"])));
    }

    #[test]
    fn wildcard_allows_everything() {
        assert!(is_allowed(Some("http://anything:1"), &list(&["*"])));
    }

    #[test]
    fn default_ports_are_dropped() {
        assert_eq!(normalize("http://h:80").as_deref(), Some("http://h"));
        assert_eq!(normalize("https://h:443/").as_deref(), Some("https://h"));
        assert_eq!(normalize("http://h:443").as_deref(), Some("http://h:443"));
        assert_eq!(normalize("ftp://h"), None);
    }
}
