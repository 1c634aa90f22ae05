//! Dotted keys, the one parser and printer of them: `port_group[2].vlans[0]`,
//! `host.uplinks."up.1"`, `port_group."a.b".vlan`. Errors (`source.rs`), the flat
//! view for diff and compliance (`diff.rs`, `compliance.rs`) all go through here.
//!
//! Invariant: a segment that is not a TOML bare key is written quoted (Rust/TOML
//! string escapes), and every splitter treats a quoted segment as opaque, so a name
//! with dots, brackets or quotes round-trips through [`key_segment`] and
//! [`unquote_segment`].

/// The byte offsets of the characters of `key` for which `is_sep` holds, outside
/// quoted segments.
fn unquoted<'a>(
    key: &'a str,
    is_sep: impl Fn(char) -> bool + 'a,
) -> impl Iterator<Item = usize> + 'a {
    let mut in_quotes = false;
    let mut escaped = false;
    key.char_indices().filter_map(move |(i, c)| {
        if in_quotes {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_quotes = false,
                _ => {}
            }
            return None;
        }
        if c == '"' {
            in_quotes = true;
            return None;
        }
        is_sep(c).then_some(i)
    })
}

/// `name` as one key segment: as is when it is a TOML bare key, else quoted.
pub fn key_segment(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// `prefix.key`, quoting `key` unless it is a TOML bare key.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    let k = key_segment(key);
    if prefix.is_empty() {
        k
    } else {
        format!("{prefix}.{k}")
    }
}

/// The segments of dotted `key`; a quoted segment (`"a.b"`) is one segment, kept
/// quoted.
pub fn split_key(key: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in unquoted(key, |c| c == '.') {
        out.push(&key[start..i]);
        start = i + 1;
    }
    out.push(&key[start..]);
    out
}

/// The dotted path without its last component (`a.b[2]` → `a.b`, `a.b` → `a`).
pub(crate) fn parent_path(path: &str) -> Option<&str> {
    let cut = unquoted(path, |c| c == '.' || c == '[')
        .filter(|i| *i > 0)
        .last();
    cut.map(|i| &path[..i])
}

/// A key segment as the name it stands for: `"a.b"` → `a.b`, `web` → `web`.
pub fn unquote_segment(segment: &str) -> String {
    let Some(inner) = segment.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return segment.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            out.push(match c {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                c => c,
            });
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// The first component of dotted `path` (`host.port[1].mac` → `host`).
pub(crate) fn first_component(path: &str) -> &str {
    let end = unquoted(path, |c| c == '.' || c == '[')
        .next()
        .unwrap_or(path.len());
    &path[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_on_dots_outside_quotes() {
        assert_eq!(
            split_key("port_group.web.vlan"),
            ["port_group", "web", "vlan"]
        );
        assert_eq!(
            split_key(r#"port_group."a.b".vlan"#),
            ["port_group", r#""a.b""#, "vlan"]
        );
        assert_eq!(
            split_key(r#"port."x\".y".mac"#),
            ["port", r#""x\".y""#, "mac"]
        );
        assert_eq!(key_segment("web-1"), "web-1");
        assert_eq!(key_segment("a.b"), r#""a.b""#);
        assert_eq!(unquote_segment(r#""a.b""#), "a.b");
        assert_eq!(unquote_segment(&key_segment(r#"x".y"#)), r#"x".y"#);
        assert_eq!(unquote_segment("web"), "web");
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("a.b[2]"), Some("a.b"));
        assert_eq!(parent_path("a.b"), Some("a"));
        assert_eq!(parent_path("a"), None);
        assert_eq!(parent_path(r#"host.uplinks."x.y""#), Some("host.uplinks"));
        assert_eq!(parent_path(r#"host.uplinks."x\"[y""#), Some("host.uplinks"));
    }

    #[test]
    fn keys_are_quoted_when_not_bare() {
        assert_eq!(join_key("", "a"), "a");
        assert_eq!(join_key("host.uplinks", "up-1"), "host.uplinks.up-1");
        assert_eq!(join_key("host.uplinks", "up.1"), r#"host.uplinks."up.1""#);
    }

    #[test]
    fn first_components_skip_quoted_separators() {
        assert_eq!(first_component("host.port[1].mac"), "host");
        assert_eq!(first_component("port_group[0]"), "port_group");
        assert_eq!(first_component("switch"), "switch");
        assert_eq!(first_component(r#""a.b[c".d"#), r#""a.b[c""#);
        assert_eq!(first_component(""), "");
    }
}
