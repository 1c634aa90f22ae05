//! The configuration's source texts and where each key is in them.
//!
//! Every error names a file, a line and a dotted key. Serde errors carry a byte
//! span; semantic errors carry a dotted key. A [`SpanIndex`], built from a
//! span-preserving parse (toml_edit), maps between the two.

use super::error::{ConfigError, line_col};
use super::keys::{first_component, join_key, parent_path};
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml_edit::{Item, Table, Value};

/// One configuration file as read: its name (for messages), its text, and the
/// location of every key in it.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: PathBuf,
    pub text: String,
    index: SpanIndex,
}

impl SourceFile {
    /// Indexes `text`. A text that is not valid TOML gets an empty index (its
    /// errors then have no line); [`crate::parse_str`] reports the syntax error.
    pub fn new(name: impl Into<PathBuf>, text: impl Into<String>) -> SourceFile {
        let text = text.into();
        let index = match toml_edit::Document::parse(text.as_str()) {
            Ok(doc) => SpanIndex::build(doc.as_table()),
            Err(_) => SpanIndex::default(),
        };
        SourceFile {
            name: name.into(),
            text,
            index,
        }
    }

    /// Parses `text`, returning the indexed file or the syntax error.
    pub(crate) fn parse(name: &Path, text: &str) -> Result<SourceFile, ConfigError> {
        match toml_edit::Document::parse(text) {
            Ok(doc) => Ok(SourceFile {
                name: name.to_path_buf(),
                text: text.to_owned(),
                index: SpanIndex::build(doc.as_table()),
            }),
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                let (line, column) = line_col(text, offset);
                Err(ConfigError {
                    file: name.to_path_buf(),
                    line: Some(line),
                    column: Some(column),
                    key: guess_path(text, offset),
                    message: format!("TOML syntax error: {}", one_line(e.message())),
                })
            }
        }
    }

    /// An error at byte `span` of this file, for a serde error: the key is the
    /// innermost key or value enclosing the span.
    pub(crate) fn error_at_span(&self, span: Option<Range<usize>>, message: &str) -> ConfigError {
        let message = friendly_serde_message(message);
        let (key, offset) = match span {
            Some(span) => {
                let key = match missing_field(&message) {
                    // The span of a missing field is the table that lacks it.
                    Some(field) => {
                        let table = self.index.path_of_table(&span).unwrap_or_default();
                        join_key(&table, field)
                    }
                    None => self.index.path_enclosing(&span).unwrap_or_default(),
                };
                (key, Some(span.start))
            }
            None => (String::new(), None),
        };
        let (line, column) = match offset {
            Some(o) => {
                let (l, c) = line_col(&self.text, o);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError {
            file: self.name.clone(),
            line,
            column,
            key,
            message,
        }
    }

    /// An error about dotted `key`: located at the key if the file has it, else at
    /// its nearest enclosing table or array that it has.
    pub(crate) fn error_at_key(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = match self.position_of(key) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        };
        ConfigError {
            file: self.name.clone(),
            line,
            column,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// The 1-based line and column of dotted `key` (or of its nearest ancestor).
    pub(crate) fn position_of(&self, key: &str) -> Option<(usize, usize)> {
        let offset = self.index.offset_of(key)?;
        Some(line_col(&self.text, offset))
    }

    /// Offset of dotted `key` itself, for ordering entries as written.
    pub(crate) fn offset_exact(&self, key: &str) -> Option<usize> {
        let e = &self.index.entries[*self.index.by_path.get(key)?];
        e.key.as_ref().or(e.item.as_ref()).map(|s| s.start)
    }
}

/// Both configuration files: the profile and, when given apart, the host binding.
#[derive(Clone, Debug)]
pub struct Sources {
    pub profile: SourceFile,
    /// The separate host-binding file; `None` when `[host]` is in the profile.
    pub host: Option<SourceFile>,
}

impl Sources {
    /// The file that holds dotted `key`: `host.*` keys are in the host file when
    /// there is one, everything else in the profile.
    pub(crate) fn file_of(&self, key: &str) -> &SourceFile {
        match &self.host {
            Some(host) if first_component(key) == "host" => host,
            _ => &self.profile,
        }
    }
    pub(crate) fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        self.file_of(key).error_at_key(key, message)
    }
    /// `key` for a message, with its line when known: `port_group[0] at line 12`.
    pub(crate) fn describe(&self, key: &str) -> String {
        let file = self.file_of(key);
        match file.position_of(key) {
            Some((line, _)) => format!("{key} at line {line}"),
            None => key.to_owned(),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Entry {
    path: String,
    depth: usize,
    /// The key as written (`name` in `name = "x"`); absent for array elements.
    key: Option<Range<usize>>,
    /// The value, or a table's header.
    item: Option<Range<usize>>,
}

/// Dotted path → spans, for every key, table and array element of a document.
#[derive(Clone, Debug, Default)]
struct SpanIndex {
    entries: Vec<Entry>,
    by_path: HashMap<String, usize>,
}

impl SpanIndex {
    fn build(root: &Table) -> SpanIndex {
        let mut index = SpanIndex::default();
        index.walk_table(root, "", 0);
        index
    }

    fn push(
        &mut self,
        path: String,
        depth: usize,
        key: Option<Range<usize>>,
        item: Option<Range<usize>>,
    ) {
        self.by_path
            .entry(path.clone())
            .or_insert(self.entries.len());
        self.entries.push(Entry {
            path,
            depth,
            key,
            item,
        });
    }

    fn walk_table(&mut self, table: &Table, prefix: &str, depth: usize) {
        for (k, item) in table.iter() {
            let path = join_key(prefix, k);
            let key_span = table.key(k).and_then(|k| k.span());
            self.push(path.clone(), depth, key_span, item.span());
            self.walk_item(item, &path, depth + 1);
        }
    }

    fn walk_item(&mut self, item: &Item, path: &str, depth: usize) {
        match item {
            Item::Table(t) => self.walk_table(t, path, depth),
            Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    self.push(p.clone(), depth, None, t.span());
                    self.walk_table(t, &p, depth + 1);
                }
            }
            Item::Value(v) => self.walk_value(v, path, depth),
            Item::None => {}
        }
    }

    fn walk_value(&mut self, value: &Value, path: &str, depth: usize) {
        match value {
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    self.push(p.clone(), depth, None, v.span());
                    self.walk_value(v, &p, depth + 1);
                }
            }
            Value::InlineTable(t) => {
                for (k, v) in t.iter() {
                    let p = join_key(path, k);
                    let key_span = t.key(k).and_then(|k| k.span());
                    self.push(p.clone(), depth, key_span, v.span());
                    self.walk_value(v, &p, depth + 1);
                }
            }
            _ => {}
        }
    }

    /// The innermost key or value whose span encloses `span`.
    fn path_enclosing(&self, span: &Range<usize>) -> Option<String> {
        let mut best: Option<(usize, usize, &Entry)> = None;
        for e in &self.entries {
            for s in [&e.key, &e.item].into_iter().flatten() {
                if s.start <= span.start && span.end <= s.end {
                    let len = s.end - s.start;
                    let better = match best {
                        None => true,
                        Some((blen, bdepth, _)) => len < blen || (len == blen && e.depth > bdepth),
                    };
                    if better {
                        best = Some((len, e.depth, e));
                    }
                }
            }
        }
        best.map(|(_, _, e)| e.path.clone())
    }

    /// The table whose header or inline value is exactly `span` (the deepest, when
    /// several share it); `None` for the document root.
    fn path_of_table(&self, span: &Range<usize>) -> Option<String> {
        self.entries
            .iter()
            .filter(|e| e.item.as_ref() == Some(span))
            .max_by_key(|e| e.depth)
            .map(|e| e.path.clone())
    }

    /// Offset of dotted `path`, or of its nearest ancestor in the document.
    fn offset_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(&i) = self.by_path.get(p) {
                let e = &self.entries[i];
                if let Some(s) = e.key.as_ref().or(e.item.as_ref()) {
                    return Some(s.start);
                }
            }
            p = parent_path(p)?;
        }
    }
}

/// The field name in serde's "missing field `x`".
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// Serde's messages in configuration words ("a table", not "a map").
fn friendly_serde_message(message: &str) -> String {
    one_line(message)
        .replace("expected i64", "expected an integer")
        .replace("expected u64", "expected an integer")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected a table")
        .replace("expected struct ", "expected a table ")
}

fn one_line(s: &str) -> String {
    s.trim().replace('\n', "; ")
}

/// Best-effort dotted key for a syntax error at `offset`, where no parse tree
/// exists: the last table header before it, plus the key on its line.
fn guess_path(src: &str, offset: usize) -> String {
    let (err_line, _) = line_col(src, offset);
    let mut current = String::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (n, line) in src.split('\n').enumerate() {
        let t = line.trim();
        let header = if let Some(rest) = t.strip_prefix("[[") {
            rest.split("]]").next().map(|name| {
                let name: String = name.chars().filter(|c| !c.is_whitespace()).collect();
                let count = counts.entry(name.clone()).or_insert(0);
                *count += 1;
                format!("{name}[{}]", *count - 1)
            })
        } else if let Some(rest) = t.strip_prefix('[') {
            rest.split(']')
                .next()
                .map(|name| name.chars().filter(|c| !c.is_whitespace()).collect())
        } else {
            None
        };
        if n + 1 == err_line {
            if let Some(h) = header {
                return h;
            }
            if let Some((k, _)) = t.split_once('=') {
                let k = k.trim();
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                {
                    return if current.is_empty() {
                        k.to_owned()
                    } else {
                        format!("{current}.{k}")
                    };
                }
            }
            return current;
        }
        if let Some(h) = header {
            current = h;
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_locates_nested_keys() {
        let src = "[switch]\nname = 'x'\n[[host.port]]\nname = 'a'\n[[host.port]]\nname = 'b'\nsecurity = { promiscuous = 'accept' }\nvlans = [1, '2-3']\n";
        let f = SourceFile::new("t.toml", src);
        assert_eq!(f.position_of("switch.name"), Some((2, 1)));
        assert_eq!(f.position_of("host.port[1]"), Some((5, 1)));
        assert_eq!(
            f.position_of("host.port[1].security.promiscuous"),
            Some((7, 14))
        );
        assert_eq!(f.position_of("host.port[1].vlans[1]"), Some((8, 13)));
        // Absent keys fall back to their table.
        assert_eq!(f.position_of("host.port[1].mac"), Some((5, 1)));
        assert_eq!(f.position_of("nothing.here"), None);
    }

    #[test]
    fn syntax_error_paths_are_guessed() {
        let src = "[switch]\nname = 'x\n";
        assert_eq!(guess_path(src, 16), "switch.name");
        let src = "[[host.port]]\nname='a'\n[[host.port]]\ninterface = = 3\n";
        assert_eq!(guess_path(src, src.len() - 3), "host.port[1].interface");
    }
}
