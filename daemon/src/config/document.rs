//! The configuration file as a spanned TOML tree, so that every problem of
//! shape is found in one pass and every problem has its own line.
//!
//! serde stops at the first unknown key or wrong type. [`Document::read`]
//! records it with its field path and line, takes the entry out of the tree
//! (a required one gets a stand-in) and reads again, until the file reads;
//! the later checks then run on what is left, and their problems are
//! located by path ([`Document::line`]).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub use super::Problem;

/// At most this many shape problems are collected: a file that has more
/// is no configuration, and the first ones say so.
const MAX_SHAPE_PROBLEMS: usize = 100;

/// One step of a field path: `queues[2].relaxation[0].after`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

fn path_string(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn parse_path(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            steps.push(Step::Key(rest[..open].to_owned()));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                if let Ok(i) = rest[1..close].parse() {
                    steps.push(Step::Index(i));
                }
                rest = &rest[close + 1..];
            }
        } else if !rest.is_empty() {
            steps.push(Step::Key(rest.to_owned()));
        }
    }
    steps
}

pub struct Document<'a> {
    text: &'a str,
    root: Spanned<DeTable<'a>>,
}

impl<'a> Document<'a> {
    /// Parses the TOML syntax; a syntax error is the one problem.
    pub fn parse(text: &'a str) -> Result<Document<'a>, Problem> {
        match DeTable::parse(text) {
            Ok(root) => Ok(Document { text, root }),
            Err(e) => {
                let line = e.span().map(|s| line_at(text, s.start));
                Err(Problem { field: "(syntax)".into(), line, message: e.message().trim().to_owned() })
            }
        }
    }

    /// The line a byte offset is on.
    pub fn line_at(&self, offset: usize) -> usize {
        line_at(self.text, offset)
    }

    /// The line of the field at `path` (`queues[1].service_level.target`),
    /// or of its nearest ancestor the file has.
    pub fn line(&self, path: &str) -> Option<usize> {
        let steps = parse_path(path);
        let mut span = None;
        let mut table = Some(self.root.get_ref());
        let mut array: Option<&[Spanned<DeValue<'a>>]> = None;
        for step in &steps {
            let value = match (step, table, array) {
                (Step::Key(k), Some(t), _) => {
                    t.iter().find(|(key, _)| key.get_ref() == k).map(|(key, v)| (key.span(), v))
                }
                (Step::Index(i), _, Some(a)) => a.get(*i).map(|v| (v.span(), v)),
                _ => None,
            };
            let Some((at, value)) = value else { break };
            span = Some(at);
            (table, array) = match value.get_ref() {
                DeValue::Table(t) => (Some(t), None),
                DeValue::Array(a) => (None, Some(&a[..])),
                _ => (None, None),
            };
        }
        span.map(|s| self.line_at(s.start))
    }

    /// Reads `T`, collecting every problem of shape on the way (see the
    /// module's doc). `None` only when the file could not be made to read.
    pub fn read<T: DeserializeOwned>(&mut self) -> (Option<T>, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut taken: HashSet<Vec<Step>> = HashSet::new();
        while problems.len() < MAX_SHAPE_PROBLEMS {
            let error = match T::deserialize(toml::de::Deserializer::from(self.root.clone())) {
                Ok(value) => {
                    problems.sort_by_key(|p: &Problem| p.line);
                    return (Some(value), problems);
                }
                Err(e) => e,
            };
            let message = error.message().trim().to_owned();
            let span = error.span().unwrap_or(0..0);
            let mut path = locate(&self.root, &span);
            let line = Some(self.line_at(span.start));
            if let Some(missing) = between(&message, "missing field `", "`") {
                path.push(Step::Key(missing.to_owned()));
                if !taken.contains(&path) {
                    problems.push(Problem { field: path_string(&path), line, message });
                }
                if !self.stand_in(&path, span) {
                    break;
                }
                taken.insert(path);
                continue;
            }
            let message = match between(&message, "unknown field `", "`") {
                Some(key) => unknown_key(key, &message),
                None => message,
            };
            problems.push(Problem { field: path_string(&path), line, message });
            if path.is_empty() || !self.take(&path) {
                break;
            }
            taken.insert(path);
        }
        problems.sort_by_key(|p: &Problem| p.line);
        (None, problems)
    }

    /// Takes the entry at `path` out (an array's element becomes an empty
    /// string, keeping the indexes of those after it).
    fn take(&mut self, path: &[Step]) -> bool {
        let Some((last, parent)) = path.split_last() else { return false };
        let Some(container) = value_mut(self.root.get_mut(), parent) else { return false };
        match (last, container) {
            (Step::Key(k), Container::Table(t)) => t.remove(k.as_str()).is_some(),
            (Step::Index(i), Container::Array(a)) => match a.get_mut(*i) {
                Some(element) => {
                    let span = element.span();
                    *element = Spanned::new(span, DeValue::String(Cow::Borrowed("")));
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Gives a required field that is missing (or was taken out) a stand-in
    /// of the type its name has, so that the rest can be read.
    fn stand_in(&mut self, path: &[Step], span: Range<usize>) -> bool {
        let Some((Step::Key(key), parent)) = path.split_last() else { return false };
        let Some(Container::Table(table)) = value_mut(self.root.get_mut(), parent) else { return false };
        if table.contains_key(key.as_str()) {
            return false;
        }
        let value = match key.as_str() {
            "target" => match DeValue::parse("1.0") {
                Ok(v) => v.into_inner(),
                Err(_) => return false,
            },
            "queues" | "tiers" | "skills" | "languages" | "relaxation" => match DeValue::parse("[]") {
                Ok(v) => v.into_inner(),
                Err(_) => return false,
            },
            _ => DeValue::String(Cow::Borrowed("")),
        };
        table.insert(Spanned::new(span.clone(), Cow::Owned(key.clone())), Spanned::new(span, value));
        true
    }
}

/// Later checks of a read configuration, each problem located by its
/// value's span.
pub struct Checker<'a> {
    text: &'a str,
    pub problems: Vec<Problem>,
}

impl<'a> Checker<'a> {
    pub fn new(text: &'a str) -> Checker<'a> {
        Checker { text, problems: Vec::new() }
    }

    pub fn line_of(&self, offset: usize) -> usize {
        line_at(self.text, offset)
    }

    pub fn problem<T>(&mut self, field: String, at: Option<&Spanned<T>>, message: String) {
        let line = at.map(|s| self.line_of(s.span().start));
        self.problems.push(Problem { field, line, message });
    }

    /// A number within `range`; out of it, a problem naming its line.
    pub fn bounded<T>(&mut self, field: &str, value: Option<&Spanned<T>>, default: T, range: RangeInclusive<T>) -> T
    where
        T: Copy + PartialOrd + fmt::Display,
    {
        let Some(v) = value else { return default };
        let n = *v.get_ref();
        if !range.contains(&n) {
            let message = format!("{n} is not in {}..={}", range.start(), range.end());
            self.problem(field.into(), Some(v), message);
        }
        n
    }

    pub fn duration(&mut self, field: String, value: Option<&Spanned<String>>, default: Duration) -> Duration {
        let Some(v) = value else { return default };
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    field,
                    Some(v),
                    format!("{:?} is not a duration ({e}); write e.g. \"20s\" or \"5m\"", v.get_ref()),
                );
                default
            }
        }
    }

    pub fn address(&mut self, field: String, value: Option<&Spanned<String>>, default: &str) -> SocketAddr {
        let fallback: SocketAddr = default.parse().expect("default address parses");
        let Some(v) = value else { return fallback };
        v.get_ref().parse().unwrap_or_else(|_| {
            self.problem(field, Some(v), format!("{:?} is not an address like 127.0.0.1:4433", v.get_ref()));
            fallback
        })
    }
}

enum Container<'t, 'a> {
    Table(&'t mut DeTable<'a>),
    Array(&'t mut [Spanned<DeValue<'a>>]),
}

fn value_mut<'t, 'a>(root: &'t mut DeTable<'a>, path: &[Step]) -> Option<Container<'t, 'a>> {
    let mut here = Container::Table(root);
    for step in path {
        let value = match (step, here) {
            (Step::Key(k), Container::Table(t)) => t.get_mut(k.as_str())?,
            (Step::Index(i), Container::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
        here = match value.get_mut() {
            DeValue::Table(t) => Container::Table(t),
            DeValue::Array(a) => Container::Array(std::ops::DerefMut::deref_mut(a)),
            _ => return None,
        };
    }
    Some(here)
}

/// The path of the deepest entry whose key or value holds `span`'s start
/// (a table's own span may not cover the entries under its header).
fn locate(root: &Spanned<DeTable<'_>>, span: &Range<usize>) -> Vec<Step> {
    fn holds(s: Range<usize>, at: usize) -> bool {
        s.start <= at && at < s.end.max(s.start + 1)
    }
    fn within(value: &DeValue<'_>, at: usize, path: &mut Vec<Step>) -> bool {
        match value {
            DeValue::Table(t) => {
                for (k, v) in t.iter() {
                    path.push(Step::Key(k.get_ref().to_string()));
                    if within(v.get_ref(), at, path) || holds(k.span(), at) || holds(v.span(), at) {
                        return true;
                    }
                    path.pop();
                }
                false
            }
            DeValue::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    path.push(Step::Index(i));
                    if within(v.get_ref(), at, path) || holds(v.span(), at) {
                        return true;
                    }
                    path.pop();
                }
                false
            }
            _ => false,
        }
    }
    let mut path = Vec::new();
    for (k, v) in root.get_ref().iter() {
        path.push(Step::Key(k.get_ref().to_string()));
        if within(v.get_ref(), span.start, &mut path) || holds(k.span(), span.start) || holds(v.span(), span.start) {
            return path;
        }
        path.pop();
    }
    path
}

/// The 1-based line a byte offset of `text` is on.
pub fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The text of `s` between `open` and the next `close`.
fn between<'s>(s: &'s str, open: &str, close: &str) -> Option<&'s str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

/// serde's "unknown field `explian`, expected one of `a`, `explain`, …" as
/// "unknown key `explian`: did you mean `explain`?", or with the keys
/// there are when none is close.
fn unknown_key(key: &str, message: &str) -> String {
    let expected: Vec<&str> = message
        .split_once("expected")
        .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    let closest = expected
        .iter()
        .map(|known| (strsim::damerau_levenshtein(key, known), *known))
        .filter(|&(distance, known)| distance <= (known.len() / 3).max(1))
        .min();
    match (closest, expected.is_empty()) {
        (Some((_, known)), _) => format!("unknown key `{key}`: did you mean `{known}`?"),
        (None, false) => format!("unknown key `{key}`; the keys here are {}", expected.join(", ")),
        (None, true) => format!("unknown key `{key}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_and_print_alike() {
        for path in ["queues[2].relaxation[0].after", "server.listen", "skills[3]"] {
            assert_eq!(path_string(&parse_path(path)), path);
        }
    }

    #[test]
    fn a_misspelt_key_is_matched_to_the_closest_known_one() {
        let serde = "unknown field `explian`, expected one of `short_abandon`, `explain`, `ewt_window`";
        assert_eq!(unknown_key("explian", serde), "unknown key `explian`: did you mean `explain`?");
        let far = unknown_key("colour", "unknown field `colour`, expected `name` or `target`");
        assert_eq!(far, "unknown key `colour`; the keys here are name, target");
    }
}
