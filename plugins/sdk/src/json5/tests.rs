//! Patch scenarios: the origin lands where a person would put it, and every
//! other byte of the config stays.

use super::*;

const PATH: &[&str] = &["gateway", "controlUi", "allowedOrigins"];
const ORIGIN: &str = "http://127.0.0.1:18789";

fn add(text: &str) -> String {
    let p = ensure_string_in_array(text, PATH, ORIGIN).unwrap();
    assert!(p.changed);
    // Idempotent: a second pass changes nothing.
    let again = ensure_string_in_array(&p.text, PATH, ORIGIN).unwrap();
    assert!(!again.changed);
    assert_eq!(again.text, p.text);
    p.text
}

#[test]
fn origin_added_keeps_comments_and_other_keys() {
    let text = r#"// managed by NemoClaw
{
  gateway: {
mode: "local", // keep me
/* the dashboard */
controlUi: {
  allowedOrigins: [
    "http://localhost:3000", // dev
  ],
  allowInsecureAuth: true,
},
  },
  telemetry: { enabled: false },
}
"#;
    let out = add(text);
    assert_eq!(
        out,
        r#"// managed by NemoClaw
{
  gateway: {
mode: "local", // keep me
/* the dashboard */
controlUi: {
  allowedOrigins: [
    "http://localhost:3000", // dev
    "http://127.0.0.1:18789",
  ],
  allowInsecureAuth: true,
},
  },
  telemetry: { enabled: false },
}
"#
    );
}

#[test]
fn origin_appended_to_pretty_json_array_without_trailing_comma() {
    let text = "{\n  \"gateway\": {\n    \"controlUi\": {\n      \"allowedOrigins\": [\n        \"http://a\"\n      ]\n    }\n  }\n}\n";
    assert_eq!(
        add(text),
        "{\n  \"gateway\": {\n    \"controlUi\": {\n      \"allowedOrigins\": [\n        \"http://a\",\n        \"http://127.0.0.1:18789\"\n      ]\n    }\n  }\n}\n"
    );
}

#[test]
fn origin_appended_to_compact_and_spaced_arrays() {
    assert_eq!(
        add(r#"{"gateway":{"controlUi":{"allowedOrigins":["http://a","http://b"]}}}"#),
        r#"{"gateway":{"controlUi":{"allowedOrigins":["http://a","http://b","http://127.0.0.1:18789"]}}}"#
    );
    assert_eq!(
        add(r#"{gateway: {controlUi: {allowedOrigins: [ 'http://a' ]}}}"#),
        r#"{gateway: {controlUi: {allowedOrigins: [ 'http://a', 'http://127.0.0.1:18789' ]}}}"#
    );
}

#[test]
fn origin_added_to_empty_array() {
    assert_eq!(
        add(r#"{"gateway": {"controlUi": {"allowedOrigins": []}}}"#),
        r#"{"gateway": {"controlUi": {"allowedOrigins": ["http://127.0.0.1:18789"]}}}"#
    );
    // A comment inside the empty array survives.
    let out = add("{gateway: {controlUi: {allowedOrigins: [ /* none */ ]}}}");
    assert!(out.contains("/* none */"), "{out}");
}

#[test]
fn missing_allowed_origins_member_is_created_in_existing_control_ui() {
    let text = "{\n  \"gateway\": {\n    \"controlUi\": {\n      \"allowInsecureAuth\": true\n    }\n  }\n}";
    assert_eq!(
        add(text),
        "{\n  \"gateway\": {\n    \"controlUi\": {\n      \"allowInsecureAuth\": true,\n      \"allowedOrigins\": [\"http://127.0.0.1:18789\"]\n    }\n  }\n}"
    );
}

#[test]
fn missing_control_ui_is_created_with_the_documents_key_style() {
    let text = "{\n  gateway: {\n    mode: 'local',\n  },\n}\n";
    assert_eq!(
        add(text),
        "{\n  gateway: {\n    mode: 'local',\n    controlUi: {allowedOrigins: ['http://127.0.0.1:18789']},\n  },\n}\n"
    );
}

#[test]
fn missing_gateway_is_created_at_the_root() {
    assert_eq!(
        add("{\"update\": {\"checkOnStart\": false}}"),
        "{\"update\": {\"checkOnStart\": false}, \"gateway\": {\"controlUi\": {\"allowedOrigins\": [\"http://127.0.0.1:18789\"]}}}"
    );
    assert_eq!(
        add("{}"),
        "{ \"gateway\": {\"controlUi\": {\"allowedOrigins\": [\"http://127.0.0.1:18789\"]}} }"
    );
}

#[test]
fn strings_containing_brackets_and_quotes_do_not_confuse_the_patcher() {
    let text = r#"{"note": "a ] } [ { \" ' // not a comment", "gateway": {"controlUi": {"allowedOrigins": ["http://x/]\"", 'it\'s ]']}}, "tail": "/* no */"}"#;
    let out = add(text);
    let doc = parse(&out).unwrap();
    let arr = doc.get_path(PATH).unwrap().as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[0].as_str(), Some("http://x/]\""));
    assert_eq!(arr[1].as_str(), Some("it's ]"));
    assert_eq!(arr[2].as_str(), Some(ORIGIN));
    assert_eq!(
        doc.get("note").unwrap().as_str(),
        Some("a ] } [ { \" ' // not a comment")
    );
    assert!(out.ends_with(r#", "tail": "/* no */"}"#));
}

#[test]
fn line_comment_after_last_origin_stays_on_its_line() {
    let text = "{gateway: {controlUi: {allowedOrigins: [\n  'http://a' // the dev box\n]}}}";
    assert_eq!(
        add(text),
        "{gateway: {controlUi: {allowedOrigins: [\n  'http://a', // the dev box\n  'http://127.0.0.1:18789'\n]}}}"
    );
}

#[test]
fn nested_objects_elsewhere_are_untouched() {
    let text = r#"{"plugins": {"controlUi": {"allowedOrigins": []}}, "gateway": {"controlUi": {"allowedOrigins": ["x"], "nested": {"allowedOrigins": []}}}}"#;
    let out = add(text);
    let doc = parse(&out).unwrap();
    assert_eq!(
        doc.get_path(&["plugins", "controlUi", "allowedOrigins"])
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        doc.get_path(&["gateway", "controlUi", "nested", "allowedOrigins"])
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(doc.get_path(PATH).unwrap().as_array().unwrap().len(), 2);
}

#[test]
fn only_the_insertion_differs_from_the_original() {
    for text in [
        "{gateway: {controlUi: {allowedOrigins: ['a', 'b']}}}",
        "// c\n{\n  gateway: { /* x */ controlUi: {}, },\n}\n",
        "{\"gateway\": {}}",
    ] {
        let out = add(text);
        // Removing the inserted bytes gives the original back.
        let prefix = text
            .bytes()
            .zip(out.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let suffix = text
            .bytes()
            .rev()
            .zip(out.bytes().rev())
            .take_while(|(a, b)| a == b)
            .count();
        assert!(prefix + suffix >= text.len(), "{text:?} -> {out:?}");
    }
}

#[test]
fn origin_already_present_is_not_needed() {
    let text = "{gateway: {controlUi: {allowedOrigins: ['http://127.0.0.1:18789']}}} // x";
    let p = ensure_string_in_array(text, PATH, ORIGIN).unwrap();
    assert!(!p.changed);
    assert_eq!(p.text, text);
}

#[test]
fn duplicate_control_ui_patches_the_effective_last_one() {
    let text = "{gateway: {controlUi: {allowedOrigins: []}, controlUi: {allowedOrigins: ['a']}}}";
    let out = add(text);
    assert_eq!(
        out,
        "{gateway: {controlUi: {allowedOrigins: []}, controlUi: {allowedOrigins: ['a', 'http://127.0.0.1:18789']}}}"
    );
}

#[test]
fn allowed_origins_as_string_is_refused_as_schema_invalid() {
    let err = ensure_string_in_array(
        r#"{"gateway": {"controlUi": {"allowedOrigins": "x"}}}"#,
        PATH,
        ORIGIN,
    )
    .unwrap_err();
    assert_eq!(
        err,
        PatchError::WrongType {
            path: "gateway.controlUi.allowedOrigins".into(),
            expected: "array",
            found: "string"
        }
    );
    let err = ensure_string_in_array(r#"{"gateway": null}"#, PATH, ORIGIN).unwrap_err();
    assert!(err.to_string().contains("gateway is a null"), "{err}");
    assert!(matches!(
        ensure_string_in_array("[1]", PATH, ORIGIN),
        Err(PatchError::WrongType { .. })
    ));
}

#[test]
fn unparseable_config_is_refused() {
    assert!(matches!(
        ensure_string_in_array("{gateway: ", PATH, ORIGIN),
        Err(PatchError::Parse(_))
    ));
}

#[test]
fn value_with_special_characters_is_escaped() {
    let p = ensure_string_in_array("{a: []}", &["a"], "q\"uo\\te\n").unwrap();
    assert_eq!(p.text, "{a: [\"q\\\"uo\\\\te\\n\"]}");
    assert_eq!(
        parse(&p.text)
            .unwrap()
            .get("a")
            .unwrap()
            .as_array()
            .unwrap()[0]
            .as_str(),
        Some("q\"uo\\te\n")
    );
}

#[test]
fn crlf_documents_keep_their_line_endings() {
    let text = "{\r\n  \"a\": [\r\n    \"x\"\r\n  ]\r\n}\r\n";
    let p = ensure_string_in_array(text, &["a"], "y").unwrap();
    assert_eq!(
        p.text,
        "{\r\n  \"a\": [\r\n    \"x\",\r\n    \"y\"\r\n  ]\r\n}\r\n"
    );
}

#[test]
fn array_contains_reports_missing_and_wrong_types() {
    let doc = parse("{gateway: {controlUi: {allowedOrigins: ['x']}}}").unwrap();
    assert_eq!(array_contains(&doc, PATH, "x"), Ok(Some(true)));
    assert_eq!(array_contains(&doc, PATH, "y"), Ok(Some(false)));
    let doc = parse("{gateway: {}}").unwrap();
    assert_eq!(array_contains(&doc, PATH, "x"), Ok(None));
    let doc = parse("{gateway: {controlUi: {allowedOrigins: 'x'}}}").unwrap();
    assert!(array_contains(&doc, PATH, "x").is_err());
}

#[test]
fn quote_escapes_json_specials() {
    assert_eq!(quote("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
    assert_eq!(
        parse(&quote("x\u{2028}y")).unwrap().as_str(),
        Some("x\u{2028}y")
    );
}
