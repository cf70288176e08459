//! strongSwan's settings syntax (the format of `strongswan.conf` and `swanctl.conf`), parsed into
//! a tree in which every section and key remembers where it was written.
//!
//! The grammar follows strongSwan's flex/bison parser (`src/libstrongswan/settings/
//! settings_lexer.l`, `settings_parser.y`) and its merge rules (`settings_types.c`):
//!
//! - `name { … }` sections nest; `key = value` settings. Names may contain any character except
//!   `. , : { } = " #`, tab, space and newlines. A newline between a name and its `{` or `=` is
//!   allowed (the lexer eats newlines outside values).
//! - A value runs to the end of the line, to a `#` comment or to a `}` (which then closes the
//!   section, so `a { b = c }` works on one line). Runs of blanks inside an unquoted value
//!   collapse to one space, and the value is trimmed. `key =` alone gives an empty value, which
//!   strongSwan treats as "unset" (its default applies; it also clears an inherited value).
//! - Double-quoted strings keep everything literally (blanks, `#`, `}`, newlines) and understand
//!   `\n`, `\r`, `\t`, `\<newline>` (line continuation) and `\c` for any other `c` (so `\"` and
//!   `\\`). Quoted and unquoted parts of one value are joined with a single space, as strongSwan
//!   does. A quote anywhere but in a value is an error.
//! - `include PATTERN` (unless followed by `=`, then it is a key named `include`) reads files
//!   into the *current* section. A relative pattern is resolved against the directory of the
//!   including file; shell wildcards (`* ? [..]`) expand in sorted order and may match nothing.
//!   **Deviation:** strongSwan silently skips a missing file; we refuse a missing non-glob
//!   include, since a silently dropped file of connections or secrets is worse than an error.
//!   Each included file must be balanced (strongSwan's lexer lets a `}` in an included file close
//!   a section of the includer; we refuse that). Includes nest at most [`MAX_INCLUDE_DEPTH`]
//!   deep and a file including itself (directly or not) is reported as a loop.
//! - A section or key given twice merges: the later value replaces the earlier one (keeping the
//!   first one's position in the order), sections extend recursively.
//! - `name : ref1, ref2.sub { … }` inherits all keys and subsections of the referenced sections,
//!   named by their absolute dotted path, resolved after the whole configuration is read (so
//!   later sections and other files may be referenced). Own keys win; inherited ones follow the
//!   section's own in order, left to right; subsections merge recursively. We resolve references
//!   once, after parsing, into a plain tree ([`Section::references`] keeps what was referenced).
//!   A reference to a missing section, or a reference loop, is an error (strongSwan ignores the
//!   former and would recurse on the latter).

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, Location};

/// How deep includes may nest before we assume a loop.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// The largest configuration file we read, in bytes.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;
/// How deep sections may nest (strongSwan's deepest, `connections.x.children.y`, is 4).
pub const MAX_SECTION_DEPTH: usize = 64;
/// How many reference hops a chain of `name : other` references may take.
const MAX_REFERENCE_DEPTH: usize = 16;
/// How many section expansions reference resolution may do before we give up.
const REFERENCE_BUDGET: usize = 100_000;

/// A `key = value` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key name.
    pub key: String,
    /// The value: trimmed, quoted parts unescaped, empty for `key =`.
    pub value: String,
    /// Where the key was written (for an inherited key, where the template wrote it).
    pub location: Location,
}

/// A section: its settings and subsections in first-seen order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    name: String,
    location: Location,
    keys: Vec<KeyValue>,
    sections: Vec<Self>,
    references: Vec<String>,
}

impl Section {
    /// An empty section named `name` that was opened at `location` (for building a tree from
    /// another source than a file, such as a VICI `load-conn` message).
    pub fn new(name: impl Into<String>, location: Location) -> Self {
        Self {
            name: name.into(),
            location,
            keys: Vec::new(),
            sections: Vec::new(),
            references: Vec::new(),
        }
    }

    /// The section's name (empty for the root).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the section was first opened.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The settings, in the order their keys first appeared (inherited ones last).
    pub fn keys(&self) -> &[KeyValue] {
        &self.keys
    }

    /// The subsections, in the order they first appeared (inherited ones last).
    pub fn sections(&self) -> &[Self] {
        &self.sections
    }

    /// The absolute names of the sections this one inherits from (`name : a, b.c { … }`);
    /// their content is already merged in.
    pub fn references(&self) -> &[String] {
        &self.references
    }

    /// The setting named `key`, if any.
    pub fn key(&self, key: &str) -> Option<&KeyValue> {
        self.keys.iter().find(|kv| kv.key == key)
    }

    /// The value of `key`, if set (an empty value counts as set).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.key(key).map(|kv| kv.value.as_str())
    }

    /// The subsection named `name`, if any.
    pub fn section(&self, name: &str) -> Option<&Self> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Follows a dotted path (`connections.home.children`) from this section.
    pub fn find(&self, path: &str) -> Option<&Self> {
        path.split('.').try_fold(self, |s, part| s.section(part))
    }

    /// Sets `kv`, replacing the value of an existing key in place (strongSwan's
    /// `settings_kv_add`).
    pub fn add_key(&mut self, kv: KeyValue) {
        match self.keys.iter_mut().find(|k| k.key == kv.key) {
            Some(existing) => {
                existing.value = kv.value;
                existing.location = kv.location;
            }
            None => self.keys.push(kv),
        }
    }

    /// Adds `section`, extending an existing section of the same name (strongSwan's
    /// `settings_section_add` / `settings_section_extend`).
    pub fn add_section(&mut self, section: Self) {
        match self.sections.iter_mut().find(|s| s.name == section.name) {
            Some(existing) => existing.extend(section),
            None => self.sections.push(section),
        }
    }

    fn extend(&mut self, other: Self) {
        for sub in other.sections {
            self.add_section(sub);
        }
        for kv in other.keys {
            self.add_key(kv);
        }
        for r in other.references {
            if !self.references.contains(&r) {
                self.references.push(r);
            }
        }
    }
}

/// A parsed configuration: the root section and the files that were read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// The unnamed top-level section.
    pub root: Section,
    /// Every file read, in the order opened (the top file first; not the virtual path of
    /// [`parse_str`]).
    pub files: Vec<PathBuf>,
}

/// Reads and parses `path` and everything it includes.
pub fn parse_file(path: &Path) -> Result<Tree, ConfigError> {
    let mut ctx = Ctx::default();
    let mut root = Section::new("", Location::new(path, 0));
    ctx.include_file(path, &mut root, 0, None)?;
    finish(root, ctx)
}

/// Parses `text` as if it were the file `virtual_path` (which need not exist; relative
/// includes are resolved against its directory).
pub fn parse_str(text: &str, virtual_path: &Path) -> Result<Tree, ConfigError> {
    let mut ctx = Ctx::default();
    let mut root = Section::new("", Location::new(virtual_path, 0));
    ctx.parse_text(text, virtual_path, &mut root, 0)?;
    finish(root, ctx)
}

fn finish(root: Section, ctx: Ctx) -> Result<Tree, ConfigError> {
    let root = resolve_references(&root)?;
    Ok(Tree { root, files: ctx.files })
}

/// State shared across the files of one parse.
#[derive(Default)]
struct Ctx {
    files: Vec<PathBuf>,
    /// Canonical paths of the files being read, outermost first (to detect loops).
    stack: Vec<(PathBuf, PathBuf)>,
}

impl Ctx {
    /// Reads `path` into `target` (the section the include statement is in).
    fn include_file(
        &mut self,
        path: &Path,
        target: &mut Section,
        depth: usize,
        from: Option<&Location>,
    ) -> Result<(), ConfigError> {
        let here = || from.cloned().unwrap_or_else(|| Location::new(path, 0));
        if depth > MAX_INCLUDE_DEPTH {
            return Err(ConfigError::new(
                here(),
                format!(
                    "includes nested deeper than {MAX_INCLUDE_DEPTH} levels at '{}'",
                    path.display()
                ),
            )
            .with_hint("an include loop? check which files include each other"));
        }
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(pos) = self.stack.iter().position(|(c, _)| *c == canonical) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .skip(pos)
                .map(|(_, shown)| shown.display().to_string())
                .chain(std::iter::once(path.display().to_string()))
                .collect();
            return Err(ConfigError::new(here(), format!("include loop: {}", chain.join(" -> ")))
                .with_hint("remove one of these include statements"));
        }
        let text = read_limited(path).map_err(|e| {
            ConfigError::new(here(), format!("cannot read '{}': {e}", path.display()))
        })?;
        self.files.push(path.to_path_buf());
        self.stack.push((canonical, path.to_path_buf()));
        let result = self.parse_text(&text, path, target, depth);
        self.stack.pop();
        result
    }

    fn parse_text(
        &mut self,
        text: &str,
        file: &Path,
        target: &mut Section,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let mut parser = Parser { chars: text.chars().collect(), pos: 0, line: 1, file };
        parser.run(self, target, depth)
    }

    /// Handles `include pattern` written at `location` in `file`.
    fn include(
        &mut self,
        pattern: &str,
        file: &Path,
        location: &Location,
        target: &mut Section,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let dir = file.parent().unwrap_or_else(|| Path::new(""));
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            dir.join(pattern)
        };
        if has_glob_meta(pattern) {
            let matches = glob(&full).map_err(|e| {
                ConfigError::new(
                    location.clone(),
                    format!("cannot expand include pattern '{}': {e}", full.display()),
                )
            })?;
            for m in matches {
                self.include_file(&m, target, depth + 1, Some(location))?;
            }
            Ok(())
        } else if full.is_file() {
            self.include_file(&full, target, depth + 1, Some(location))
        } else {
            let what = if full.exists() { "is not a regular file" } else { "does not exist" };
            Err(ConfigError::new(
                location.clone(),
                format!("included file '{}' {what}", full.display()),
            )
            .with_hint(format!(
                "relative includes are resolved against '{}'; use a pattern like '*.conf' \
                 for optional files",
                if dir.as_os_str().is_empty() { Path::new(".") } else { dir }.display()
            )))
        }
    }
}

fn read_limited(path: &Path) -> std::io::Result<String> {
    let file = fs::File::open(path)?;
    let mut buf = Vec::new();
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_SIZE {
        return Err(std::io::Error::other(format!("larger than {MAX_FILE_SIZE} bytes")));
    }
    String::from_utf8(buf).map_err(|_| std::io::Error::other("not valid UTF-8"))
}

/// Characters allowed in section and key names (strongSwan's `NAME` pattern).
fn is_name_char(c: char) -> bool {
    !matches!(c, '#' | '{' | '}' | ':' | '.' | ',' | '=' | '"' | '\r' | '\n' | '\t' | ' ')
}

/// A hand-written version of strongSwan's lexer and parser for one file.
struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    line: u32,
    file: &'a Path,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
        }
        Some(c)
    }

    fn here(&self) -> Location {
        Location::new(self.file, self.line)
    }

    fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.here(), message)
    }

    /// Skips blanks, newlines and comments (the lexer's initial state).
    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    self.bump();
                }
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
        }
    }

    fn name(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek().filter(|&c| is_name_char(c)) {
            s.push(c);
            self.bump();
        }
        s
    }

    fn run(
        &mut self,
        ctx: &mut Ctx,
        target: &mut Section,
        depth: usize,
    ) -> Result<(), ConfigError> {
        // Sections opened in this file and not yet closed, innermost last.
        let mut open: Vec<Section> = Vec::new();
        loop {
            self.skip_space();
            let Some(c) = self.peek() else { break };
            match c {
                '}' => {
                    let Some(done) = open.pop() else {
                        return Err(self.err("'}' without a matching '{'").with_hint(
                            "remove it, or check the braces above (each file must close the \
                             sections it opens)",
                        ));
                    };
                    self.bump();
                    open.last_mut().unwrap_or(&mut *target).add_section(done);
                }
                c if is_name_char(c) => {
                    let location = self.here();
                    let name = self.name();
                    if name == "include" && matches!(self.peek(), Some(' ' | '\t')) {
                        self.skip_blanks();
                        if self.peek() != Some('=') {
                            let pattern = self.include_pattern()?;
                            if pattern.is_empty() {
                                return Err(ConfigError::new(location, "include without a file")
                                    .with_hint("write 'include FILE' or 'include DIR/*.conf'"));
                            }
                            let current = open.last_mut().unwrap_or(&mut *target);
                            ctx.include(&pattern, self.file, &location, current, depth)?;
                            continue;
                        }
                    }
                    self.skip_space();
                    match self.peek() {
                        Some('=') => {
                            self.bump();
                            let value = self.value()?;
                            let kv = KeyValue { key: name, value, location };
                            open.last_mut().unwrap_or(&mut *target).add_key(kv);
                        }
                        Some('{') => {
                            self.bump();
                            open.push(self.open_section(name, location, Vec::new(), &open)?);
                        }
                        Some(':') => {
                            self.bump();
                            let refs = self.references(&name)?;
                            open.push(self.open_section(name, location, refs, &open)?);
                        }
                        Some('.') => {
                            return Err(ConfigError::new(
                                location,
                                format!("unexpected '.' after '{name}'"),
                            )
                            .with_hint(
                                "names cannot contain '.'; write nested sections: \
                                 'a { b = value }' instead of 'a.b = value'",
                            ));
                        }
                        other => {
                            let found = match other {
                                None => "the end of the file".to_owned(),
                                Some(c) => format!("'{c}'"),
                            };
                            return Err(ConfigError::new(
                                location,
                                format!("expected '=' or '{{' after '{name}', found {found}"),
                            )
                            .with_hint(format!(
                                "a setting is '{name} = value', a section '{name} {{ … }}'"
                            )));
                        }
                    }
                }
                '"' => {
                    return Err(self.err("unexpected quoted string").with_hint(
                        "quotes are only allowed in values: key = \"value\"; names cannot be \
                         quoted",
                    ));
                }
                '{' => {
                    return Err(self
                        .err("'{' without a section name")
                        .with_hint("write 'name { … }'"));
                }
                '.' => {
                    return Err(self.err("unexpected '.'").with_hint(
                        "names cannot contain '.'; write nested sections: 'a { b = value }' \
                         instead of 'a.b = value'",
                    ));
                }
                other => {
                    return Err(self
                        .err(format!("unexpected '{other}'"))
                        .with_hint("names cannot contain . , : { } = \" # or blanks"));
                }
            }
        }
        if let Some(unclosed) = open.last() {
            return Err(ConfigError::new(
                unclosed.location.clone(),
                format!("section '{}' is never closed", unclosed.name),
            )
            .with_hint(format!(
                "add '}}' before the end of {} (each file must close the sections it opens)",
                self.file.display()
            )));
        }
        Ok(())
    }

    fn open_section(
        &self,
        name: String,
        location: Location,
        references: Vec<String>,
        open: &[Section],
    ) -> Result<Section, ConfigError> {
        if open.len() >= MAX_SECTION_DEPTH {
            return Err(ConfigError::new(
                location,
                format!("sections nested deeper than {MAX_SECTION_DEPTH} levels"),
            ));
        }
        let mut s = Section::new(name, location);
        s.references = references;
        Ok(s)
    }

    /// Scans `ref1, ref2.sub {` after `name :`; consumes the `{`.
    fn references(&mut self, name: &str) -> Result<Vec<String>, ConfigError> {
        let mut refs = Vec::new();
        loop {
            self.skip_space();
            let mut r = self.name();
            while self.peek() == Some('.')
                && !r.is_empty()
                && self.peek_at(1).is_some_and(is_name_char)
            {
                self.bump();
                r.push('.');
                r.push_str(&self.name());
            }
            if r.is_empty() {
                return Err(self
                    .err(format!("expected the name of a section for '{name}' to inherit from"))
                    .with_hint(format!("write '{name} : other-section {{ … }}'")));
            }
            refs.push(r);
            self.skip_space();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('{') => {
                    self.bump();
                    return Ok(refs);
                }
                _ => {
                    return Err(self
                        .err(format!("expected ',' or '{{' after the references of '{name}'"))
                        .with_hint(format!("write '{name} : a, b.c {{ … }}'")));
                }
            }
        }
    }

    /// Scans a value after `=` (the lexer's `val` state).
    fn value(&mut self) -> Result<String, ConfigError> {
        let mut parts: Vec<String> = Vec::new();
        loop {
            match self.peek() {
                None | Some('#' | '}' | '\n') => break,
                Some(' ' | '\t' | '\r') => {
                    self.bump();
                }
                Some('"') => {
                    self.bump();
                    parts.push(self.quoted()?);
                }
                Some(_) => {
                    let mut s = String::new();
                    while let Some(c) = self
                        .peek()
                        .filter(|c| !matches!(c, '#' | '}' | '"' | '\r' | '\n' | '\t' | ' '))
                    {
                        s.push(c);
                        self.bump();
                    }
                    parts.push(s);
                }
            }
        }
        Ok(parts.join(" "))
    }

    /// Scans a quoted string after its opening `"` (the lexer's `str` state).
    fn quoted(&mut self) -> Result<String, ConfigError> {
        let start = self.here();
        let unterminated = || {
            ConfigError::new(start.clone(), "unterminated quoted string")
                .with_hint("close it with '\"'; write \\\" for a quote inside")
        };
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(unterminated()),
                Some('"') => return Ok(s),
                Some('\r') => {}
                Some('\\') => match self.bump() {
                    None => return Err(unterminated()),
                    Some('n') => s.push('\n'),
                    Some('r') => s.push('\r'),
                    Some('t') => s.push('\t'),
                    Some('\n') => {}
                    Some('\r') if self.peek() == Some('\n') => {
                        self.bump();
                    }
                    Some(c) => s.push(c),
                },
                Some(c) => s.push(c),
            }
        }
    }

    /// Scans an include pattern (the lexer's `inc` state).
    fn include_pattern(&mut self) -> Result<String, ConfigError> {
        let mut s = String::new();
        loop {
            match self.peek() {
                None | Some('#' | '}' | '\n' | '\t' | ' ') => return Ok(s),
                Some('\r') => {
                    self.bump();
                }
                Some('"') => {
                    self.bump();
                    s.push_str(&self.quoted()?);
                    return Ok(s);
                }
                Some('\\') => {
                    self.bump();
                    match self.peek() {
                        Some(c @ ('"' | '#' | '}' | ' ')) => {
                            self.bump();
                            s.push(c);
                        }
                        _ => s.push('\\'),
                    }
                }
                Some(c) => {
                    self.bump();
                    s.push(c);
                }
            }
        }
    }
}

fn has_glob_meta(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Expands a glob pattern (as glob(3): `*`, `?`, `[…]` per path component; names starting with
/// `.` only match a pattern starting with `.`; directories never match a file include).
fn glob(pattern: &Path) -> std::io::Result<Vec<PathBuf>> {
    use std::path::Component;
    let mut candidates: Vec<PathBuf> = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy();
        let meta = matches!(comp, Component::Normal(_)) && has_glob_meta(&part);
        if !meta {
            for c in &mut candidates {
                c.push(comp.as_os_str());
            }
            continue;
        }
        let pat: Vec<char> = part.chars().collect();
        let mut next = Vec::new();
        for dir in &candidates {
            let read_from = if dir.as_os_str().is_empty() { Path::new(".") } else { dir.as_path() };
            let Ok(entries) = fs::read_dir(read_from) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && pat.first() != Some(&'.') {
                    continue;
                }
                let chars: Vec<char> = name.chars().collect();
                if fnmatch(&pat, &chars) {
                    next.push(dir.join(entry.file_name()));
                }
            }
        }
        candidates = next;
    }
    let mut files: Vec<PathBuf> = candidates.into_iter().filter(|p| p.is_file()).collect();
    files.sort();
    Ok(files)
}

/// Shell-style matching of one path component.
fn fnmatch(pat: &[char], name: &[char]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some(('*', rest)) => {
            (0..=name.len()).any(|i| name.get(i..).is_some_and(|n| fnmatch(rest, n)))
        }
        Some(('?', rest)) => name.split_first().is_some_and(|(_, n)| fnmatch(rest, n)),
        Some(('[', rest)) => {
            let Some((&c, n)) = name.split_first() else { return false };
            match class(rest, c) {
                Some((true, after)) => fnmatch(after, n),
                Some((false, _)) => false,
                // No closing bracket: '[' is literal.
                None => c == '[' && fnmatch(rest, n),
            }
        }
        Some(('\\', rest)) => match (rest.split_first(), name.split_first()) {
            (Some((p, prest)), Some((c, n))) => p == c && fnmatch(prest, n),
            (None, Some(('\\', n))) => n.is_empty(),
            _ => false,
        },
        Some((p, rest)) => name.split_first().is_some_and(|(c, n)| c == p && fnmatch(rest, n)),
    }
}

/// Matches `c` against a bracket expression (after its `[`); returns whether it matched and
/// the pattern after the closing `]`, or `None` when the bracket is not closed.
fn class(mut pat: &[char], c: char) -> Option<(bool, &[char])> {
    let negate = matches!(pat.first(), Some('!' | '^'));
    if negate {
        pat = pat.get(1..)?;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let (&lo, rest) = pat.split_first()?;
        if lo == ']' && !first {
            return Some((matched != negate, rest));
        }
        first = false;
        match rest {
            ['-', hi, tail @ ..] if *hi != ']' => {
                matched |= lo <= c && c <= *hi;
                pat = tail;
            }
            _ => {
                matched |= lo == c;
                pat = rest;
            }
        }
    }
}

/// Turns a tree with `name : refs` sections into a plain tree (see the module documentation).
fn resolve_references(root: &Section) -> Result<Section, ConfigError> {
    let mut r = Resolver { root, budget: REFERENCE_BUDGET };
    let list = r.expand(root, 0)?;
    r.flatten(&list, 0)
}

struct Resolver<'a> {
    root: &'a Section,
    budget: usize,
}

impl<'a> Resolver<'a> {
    /// The raw sections that make up `s`'s effective content, own first.
    fn expand(&mut self, s: &'a Section, depth: usize) -> Result<Vec<&'a Section>, ConfigError> {
        self.budget = self.budget.checked_sub(1).ok_or_else(|| {
            ConfigError::new(s.location.clone(), "section references are too complex to resolve")
        })?;
        let mut out = vec![s];
        for r in &s.references {
            if depth >= MAX_REFERENCE_DEPTH {
                return Err(ConfigError::new(
                    s.location.clone(),
                    format!("section '{}' references '{r}' in a loop", s.name),
                )
                .with_hint("a section cannot inherit from itself, directly or through others"));
            }
            let found = self.resolve(r, depth + 1)?;
            if found.is_empty() {
                return Err(ConfigError::new(
                    s.location.clone(),
                    format!("section '{}' references '{r}', which does not exist", s.name),
                )
                .with_hint("references are absolute dotted paths, e.g. 'connections.base'"));
            }
            out.extend(found);
        }
        Ok(out)
    }

    /// The raw sections named by the absolute path `path`.
    fn resolve(&mut self, path: &str, depth: usize) -> Result<Vec<&'a Section>, ConfigError> {
        let mut current = vec![self.root];
        for part in path.split('.') {
            let mut next = Vec::new();
            for s in current {
                if let Some(child) = s.section(part) {
                    next.extend(self.expand(child, depth)?);
                }
            }
            current = next;
        }
        Ok(current)
    }

    /// Merges the raw sections `list` (first wins) into one plain section.
    fn flatten(&mut self, list: &[&'a Section], depth: usize) -> Result<Section, ConfigError> {
        let Some(first) = list.first() else {
            return Err(ConfigError::new(Location::new("", 0), "internal: empty section list"));
        };
        let mut out = Section::new(first.name.clone(), first.location.clone());
        out.references = first.references.clone();
        let mut seen = HashSet::new();
        for s in list {
            for kv in &s.keys {
                if seen.insert(kv.key.as_str()) {
                    out.keys.push(kv.clone());
                }
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for s in list {
            for sub in &s.sections {
                if !names.contains(&sub.name.as_str()) {
                    names.push(&sub.name);
                }
            }
        }
        for name in names {
            let mut parts = Vec::new();
            for s in list {
                if let Some(child) = s.section(name) {
                    parts.extend(self.expand(child, depth)?);
                }
            }
            out.sections.push(self.flatten(&parts, depth)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Section, ConfigError> {
        parse_str(text, Path::new("/virtual/test.conf")).map(|t| t.root)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn sections_keys_and_locations() {
        let root =
            parse("# comment\na = b\nsec {\n  x = 1 2   3 # trailing\n  sub {\n   y =\n  }\n}\n")
                .unwrap();
        assert_eq!(root.value("a"), Some("b"));
        let sec = root.section("sec").unwrap();
        assert_eq!(sec.location().line, 3);
        let x = sec.key("x").unwrap();
        assert_eq!(x.value, "1 2 3");
        assert_eq!(x.location, Location::new("/virtual/test.conf", 4));
        assert_eq!(root.find("sec.sub").unwrap().value("y"), Some(""));
    }

    #[test]
    fn one_line_sections_and_brace_ends_value() {
        let root = parse("a { b = c } d { e { f = g } }").unwrap();
        assert_eq!(root.find("a").unwrap().value("b"), Some("c"));
        assert_eq!(root.find("d.e").unwrap().value("f"), Some("g"));
    }

    #[test]
    fn newline_between_name_and_brace() {
        let root = parse("a\n{\n b\n = c\n}").unwrap();
        assert_eq!(root.find("a").unwrap().value("b"), Some("c"));
    }

    #[test]
    fn quoted_strings() {
        let root = parse(
            "a = \"x # } y\"\nb = \"q\\\"q \\\\ \\n\\t\"\nc = \"multi\nline\"\nd = pre \"mid  dle\" post\ne = \"con\\\ntinued\"\nf = 1\n",
        )
        .unwrap();
        assert_eq!(root.value("a"), Some("x # } y"));
        assert_eq!(root.value("b"), Some("q\"q \\ \n\t"));
        assert_eq!(root.value("c"), Some("multi\nline"));
        assert_eq!(root.value("d"), Some("pre mid  dle post"));
        assert_eq!(root.value("e"), Some("continued"));
        // Line numbers keep counting inside strings.
        assert_eq!(root.key("f").unwrap().location.line, 8);
    }

    #[test]
    fn duplicates_merge_later_wins_order_kept() {
        let root =
            parse("s { a = 1\n b = 2 }\ns { a = 3\n t { c = 4 } }\ns { t { d = 5 } }").unwrap();
        let s = root.section("s").unwrap();
        let keys: Vec<_> = s.keys().iter().map(|k| (k.key.as_str(), k.value.as_str())).collect();
        assert_eq!(keys, [("a", "3"), ("b", "2")]);
        assert_eq!(s.key("a").unwrap().location.line, 3);
        let t = s.section("t").unwrap();
        assert_eq!((t.value("c"), t.value("d")), (Some("4"), Some("5")));
        assert_eq!(root.sections().len(), 1);
    }

    #[test]
    fn key_named_include() {
        let root = parse("include = foo\n").unwrap();
        assert_eq!(root.value("include"), Some("foo"));
    }

    #[test]
    fn references_inherit() {
        let root = parse(
            "base { a = 1\n b = 2\n sub { x = 1 } }\n\
             more { c = 3 }\n\
             connections {\n\
               one : base, more { b = override\n sub { y = 2 } }\n\
               two : connections.one { }\n\
             }\n",
        )
        .unwrap();
        let one = root.find("connections.one").unwrap();
        assert_eq!(one.references(), ["base", "more"]);
        let keys: Vec<_> = one.keys().iter().map(|k| (k.key.as_str(), k.value.as_str())).collect();
        assert_eq!(keys, [("b", "override"), ("a", "1"), ("c", "3")]);
        let sub = one.section("sub").unwrap();
        assert_eq!((sub.value("x"), sub.value("y")), (Some("1"), Some("2")));
        let two = root.find("connections.two").unwrap();
        assert_eq!(two.value("c"), Some("3"));
        assert_eq!(two.find("sub").unwrap().value("y"), Some("2"));
        // An inherited key keeps the template's location.
        assert_eq!(one.key("a").unwrap().location.line, 1);
    }

    #[test]
    fn reference_defined_later_and_empty_clears() {
        let root = parse("x : tpl { a = }\ntpl { a = 1 }").unwrap();
        assert_eq!(root.find("x").unwrap().value("a"), Some(""));
    }

    #[test]
    fn reference_errors() {
        assert_eq!(
            err("a : nope { }"),
            "/virtual/test.conf:1: section 'a' references 'nope', which does not exist \
             (references are absolute dotted paths, e.g. 'connections.base')"
        );
        assert!(err("a : a { }").contains("in a loop"));
        assert!(err("a : b { }\nb : a { }").contains("in a loop"));
        assert!(err("a : { }").contains("expected the name of a section"));
        assert!(err("b {}\na : b c { }").contains("expected ',' or '{'"));
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let cases: &[(&str, &str)] = &[
            (
                "a = b\nc\n",
                "/virtual/test.conf:2: expected '=' or '{' after 'c', found the end of the file",
            ),
            ("a = b\n}\n", "/virtual/test.conf:2: '}' without a matching '{'"),
            ("x {\n a = b\n", "/virtual/test.conf:1: section 'x' is never closed"),
            ("a.b = c", "/virtual/test.conf:1: unexpected '.' after 'a' (names cannot contain '.'"),
            (". = c", "/virtual/test.conf:1: unexpected '.' (names"),
            ("\"a\" = b", "/virtual/test.conf:1: unexpected quoted string"),
            ("\n{ }", "/virtual/test.conf:2: '{' without a section name"),
            ("a = \"abc\n\n", "/virtual/test.conf:1: unterminated quoted string"),
            ("a = \"abc\\", "/virtual/test.conf:1: unterminated quoted string"),
            ("a b = c", "/virtual/test.conf:1: expected '=' or '{' after 'a', found 'b'"),
            ("a , b", "/virtual/test.conf:1: expected '=' or '{' after 'a', found ','"),
            ("= b", "/virtual/test.conf:1: unexpected '='"),
            ("include\n", "/virtual/test.conf:1: expected '=' or '{' after 'include'"),
            ("include \n", "/virtual/test.conf:1: include without a file"),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(got.starts_with(want), "{text:?}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "a {".repeat(MAX_SECTION_DEPTH + 1);
        assert!(err(&text).contains("nested deeper"));
    }

    #[test]
    fn fnmatch_table() {
        let m = |p: &str, n: &str| {
            fnmatch(&p.chars().collect::<Vec<_>>(), &n.chars().collect::<Vec<_>>())
        };
        assert!(m("*.conf", "a.conf"));
        assert!(!m("*.conf", "a.conf~"));
        assert!(m("a?c", "abc"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[]]", "]"));
        assert!(m("[x", "[x"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("**", ""));
    }

    struct TempDir(tempfile::TempDir);

    impl TempDir {
        fn new() -> Self {
            Self(tempfile::tempdir().unwrap())
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.path().join(name);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            fs::write(&p, text).unwrap();
            p
        }
    }

    #[test]
    fn include_relative_into_current_section() {
        let d = TempDir::new();
        d.write("sub/inner.conf", "x = 1\nnested { y = 2 }\n");
        let top = d.write("top.conf", "outer {\n  include sub/inner.conf\n  z = 3\n}\n");
        let tree = parse_file(&top).unwrap();
        let outer = tree.root.section("outer").unwrap();
        assert_eq!(outer.value("x"), Some("1"));
        assert_eq!(outer.find("nested").unwrap().value("y"), Some("2"));
        assert_eq!(outer.value("z"), Some("3"));
        assert_eq!(
            outer.key("x").unwrap().location,
            Location::new(d.0.path().join("sub/inner.conf"), 1)
        );
        assert_eq!(tree.files.len(), 2);
    }

    #[test]
    fn include_nested_is_relative_to_including_file() {
        let d = TempDir::new();
        d.write("a/b/leaf.conf", "leaf = yes\n");
        d.write("a/mid.conf", "include b/leaf.conf\n");
        let top = d.write("top.conf", "include a/mid.conf\n");
        assert_eq!(parse_file(&top).unwrap().root.value("leaf"), Some("yes"));
    }

    #[test]
    fn include_glob_sorted_and_empty_ok() {
        let d = TempDir::new();
        d.write("conf.d/20-b.conf", "k = b\nb = 1\n");
        d.write("conf.d/10-a.conf", "k = a\na = 1\n");
        d.write("conf.d/.hidden.conf", "hidden = 1\n");
        d.write("conf.d/skip.txt", "skip = 1\n");
        let top = d.write("top.conf", "include conf.d/*.conf\ninclude none.d/*.conf\n");
        let root = parse_file(&top).unwrap().root;
        assert_eq!(root.value("k"), Some("b"));
        assert_eq!((root.value("a"), root.value("b")), (Some("1"), Some("1")));
        assert_eq!((root.value("hidden"), root.value("skip")), (None, None));
    }

    #[test]
    fn include_quoted_and_escaped_patterns() {
        let d = TempDir::new();
        d.write("with space.conf", "w = 1\n");
        let top = d.write("top.conf", "include \"with space.conf\"\ninclude with\\ space.conf\n");
        assert_eq!(parse_file(&top).unwrap().root.value("w"), Some("1"));
    }

    #[test]
    fn include_missing_file_is_an_error() {
        let d = TempDir::new();
        let top = d.write("top.conf", "a = 1\ninclude missing.conf\n");
        let e = parse_file(&top).unwrap_err();
        assert_eq!(e.location, Location::new(&top, 2));
        assert!(e.message.contains("missing.conf' does not exist"), "{e}");
    }

    #[test]
    fn include_loop_is_an_error() {
        let d = TempDir::new();
        d.write("b.conf", "include a.conf\n");
        let top = d.write("a.conf", "include b.conf\n");
        let e = parse_file(&top).unwrap_err();
        assert!(e.message.starts_with("include loop: "), "{e}");
        assert!(e.message.contains("a.conf -> ") && e.message.contains("b.conf -> "), "{e}");
        let selfie = d.write("self.conf", "include *.conf\n");
        assert!(parse_file(&selfie).unwrap_err().message.contains("include loop"));
    }

    #[test]
    fn included_file_must_be_balanced() {
        let d = TempDir::new();
        d.write("close.conf", "}\n");
        let top = d.write("top.conf", "a {\ninclude close.conf\n}\n");
        let e = parse_file(&top).unwrap_err();
        assert_eq!(e.location, Location::new(d.0.path().join("close.conf"), 1));
    }

    #[test]
    fn unreadable_top_file() {
        let e = parse_file(Path::new("/nonexistent/ferroswan.conf")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/ferroswan.conf:0: cannot read"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = parse(&text);
        }

        #[test]
        fn syntax_soup_never_panics(text in "[a-c{}:.,=\"#\\\\ \n\tinclude]{0,80}") {
            let _ = parse(&text);
        }
    }
}
