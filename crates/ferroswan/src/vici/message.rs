//! VICI messages: an ordered tree of sections, key/values and lists, and its wire encoding.
//!
//! A [`Message`] is the implicit root section. Every section holds [`Element`]s in the order they
//! were added (strongSwan's `swanctl` prints them in that order, so order is part of the output).
//! Names are unique within one section: adding an element whose name is already present replaces
//! the old element in place, like an ordered map. Names are ASCII of at most 255 bytes; values are
//! raw byte strings of at most 65 535 bytes (strongSwan sends numbers as decimal strings).
//!
//! Wire encoding (strongSwan `src/libcharon/plugins/vici/README.md`, "Message format"): a
//! sequence of elements, each a type byte followed by its fields.
//!
//! | type | byte | fields |
//! |------|------|--------|
//! | `SECTION_START` | 1 | 8-bit name length, name |
//! | `SECTION_END`   | 2 | — |
//! | `KEY_VALUE`     | 3 | 8-bit name length, name, 16-bit BE value length, value |
//! | `LIST_START`    | 4 | 8-bit name length, name |
//! | `LIST_ITEM`     | 5 | 16-bit BE value length, value |
//! | `LIST_END`      | 6 | — |
//!
//! Decoding never panics, bounds the section nesting depth by [`MAX_DEPTH`], and reports what was
//! wrong and at which byte offset.

use std::fmt;

/// Element type byte of `SECTION_START`.
pub const SECTION_START: u8 = 1;
/// Element type byte of `SECTION_END`.
pub const SECTION_END: u8 = 2;
/// Element type byte of `KEY_VALUE`.
pub const KEY_VALUE: u8 = 3;
/// Element type byte of `LIST_START`.
pub const LIST_START: u8 = 4;
/// Element type byte of `LIST_ITEM`.
pub const LIST_ITEM: u8 = 5;
/// Element type byte of `LIST_END`.
pub const LIST_END: u8 = 6;

/// Deepest section nesting [`Message::decode`] accepts (the root section is depth 0).
///
/// strongSwan itself has no limit; its deepest message (`list-conns`) nests 4 levels.
pub const MAX_DEPTH: usize = 64;

/// Longest name the encoding can carry (8-bit length prefix).
pub const MAX_NAME_LEN: usize = u8::MAX as usize;

/// Longest value the encoding can carry (16-bit length prefix).
pub const MAX_VALUE_LEN: usize = u16::MAX as usize;

/// One entry of a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Element {
    /// A named sub-section.
    Section(String, Message),
    /// A named raw value.
    KeyValue(String, Vec<u8>),
    /// A named list of raw values (lists do not nest).
    List(String, Vec<Vec<u8>>),
}

impl Element {
    /// The element's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Section(name, _) | Self::KeyValue(name, _) | Self::List(name, _) => name,
        }
    }
}

/// An ordered tree of VICI elements; the implicit root section of a request, response or event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    elements: Vec<Element>,
}

impl Message {
    /// An empty message (what `list-sas` answers after streaming its events).
    pub fn new() -> Self {
        Self::default()
    }

    // ---- builder (by value, for chaining) ----

    /// Adds (or replaces) the key `name` with `value`.
    pub fn kv(mut self, name: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.insert(Element::KeyValue(name.into(), value.as_ref().to_vec()));
        self
    }

    /// Adds (or replaces) the key `name` with the `Display` form of `value` (numbers as strongSwan
    /// sends them: decimal strings).
    pub fn kv_display(self, name: impl Into<String>, value: impl fmt::Display) -> Self {
        self.kv(name, value.to_string())
    }

    /// Adds (or replaces) the sub-section `name`.
    pub fn section(mut self, name: impl Into<String>, section: Self) -> Self {
        self.insert(Element::Section(name.into(), section));
        self
    }

    /// Adds (or replaces) the list `name`.
    pub fn list<I, V>(mut self, name: impl Into<String>, items: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        let items = items.into_iter().map(|v| v.as_ref().to_vec()).collect();
        self.insert(Element::List(name.into(), items));
        self
    }

    // ---- mutation ----

    /// Inserts `element`; an element of the same name is replaced in place (names are unique per
    /// section), otherwise `element` is appended.
    pub fn insert(&mut self, element: Element) {
        match self.elements.iter_mut().find(|e| e.name() == element.name()) {
            Some(slot) => *slot = element,
            None => self.elements.push(element),
        }
    }

    /// Removes and returns the element named `name`.
    pub fn remove(&mut self, name: &str) -> Option<Element> {
        let pos = self.elements.iter().position(|e| e.name() == name)?;
        Some(self.elements.remove(pos))
    }

    // ---- getters ----

    /// The named sub-sections, in order.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Self)> {
        self.elements.iter().filter_map(|e| match e {
            Element::Section(name, section) => Some((name.as_str(), section)),
            _ => None,
        })
    }

    /// The key/value pairs, in order.
    pub fn key_values(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.elements.iter().filter_map(|e| match e {
            Element::KeyValue(name, value) => Some((name.as_str(), value.as_slice())),
            _ => None,
        })
    }

    /// The elements in order.
    pub fn elements(&self) -> &[Element] {
        &self.elements
    }

    /// Whether the message has no elements.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// The element named `name`, of any kind.
    pub fn get(&self, name: &str) -> Option<&Element> {
        self.elements.iter().find(|e| e.name() == name)
    }

    /// The raw value of key `name`.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        match self.get(name)? {
            Element::KeyValue(_, value) => Some(value),
            _ => None,
        }
    }

    /// The value of key `name` if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.get_bytes(name)?).ok()
    }

    /// The value of key `name` parsed with [`str::parse`] (e.g. a counter as `u64`).
    pub fn get_parsed<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.get_str(name)?.parse().ok()
    }

    /// The sub-section `name`.
    pub fn get_section(&self, name: &str) -> Option<&Self> {
        match self.get(name)? {
            Element::Section(_, section) => Some(section),
            _ => None,
        }
    }

    /// The raw items of list `name`.
    pub fn get_list(&self, name: &str) -> Option<&[Vec<u8>]> {
        match self.get(name)? {
            Element::List(_, items) => Some(items),
            _ => None,
        }
    }

    /// The items of list `name` as strings; `None` if the list is absent or an item is not UTF-8.
    pub fn get_str_list(&self, name: &str) -> Option<Vec<&str>> {
        self.get_list(name)?.iter().map(|i| std::str::from_utf8(i).ok()).collect()
    }

    /// Follows a dotted path of section names to a key, like libvici's `vici_find_str(res, "",
    /// "uptime.running")`.
    pub fn find_str(&self, path: &str) -> Option<&str> {
        let mut section = self;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                return section.get_str(part);
            }
            section = section.get_section(part)?;
        }
        None
    }

    // ---- encoding ----

    /// Encodes the message.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the encoding of the message to `out`. On error `out` may hold a partial encoding.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for element in &self.elements {
            match element {
                Element::Section(name, section) => {
                    out.push(SECTION_START);
                    put_name(out, name)?;
                    section.encode_into(out)?;
                    out.push(SECTION_END);
                }
                Element::KeyValue(name, value) => {
                    out.push(KEY_VALUE);
                    put_name(out, name)?;
                    put_value(out, name, value)?;
                }
                Element::List(name, items) => {
                    out.push(LIST_START);
                    put_name(out, name)?;
                    for item in items {
                        out.push(LIST_ITEM);
                        put_value(out, name, item)?;
                    }
                    out.push(LIST_END);
                }
            }
        }
        Ok(())
    }

    // ---- decoding ----

    /// Decodes a message from exactly `data` (the rest of a packet after its type and name).
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        /// An open list: its name, items so far and where it started.
        struct OpenList {
            name: String,
            items: Vec<Vec<u8>>,
            offset: usize,
        }

        let mut reader = Reader { data, pos: 0 };
        let mut stack: Vec<Open> = vec![Open { name: None, msg: Self::new() }];
        let mut list: Option<OpenList> = None;

        while let Some(ty) = reader.byte() {
            let at = reader.pos - 1;
            if list.is_some() && ty != LIST_ITEM && ty != LIST_END {
                return Err(DecodeError::new(at, DecodeErrorKind::InsideList(ty)));
            }
            match ty {
                SECTION_START => {
                    let name = reader.name(at)?;
                    if stack.len() > MAX_DEPTH {
                        return Err(DecodeError::new(at, DecodeErrorKind::TooDeep(MAX_DEPTH)));
                    }
                    stack.push(Open { name: Some(name), msg: Self::new() });
                }
                SECTION_END => {
                    let Some(Open { name: Some(name), msg }) = stack.pop() else {
                        return Err(DecodeError::new(at, DecodeErrorKind::UnbalancedSectionEnd));
                    };
                    add(&mut stack, at, Element::Section(name, msg))?;
                }
                KEY_VALUE => {
                    let name = reader.name(at)?;
                    let value = reader.value(at)?;
                    add(&mut stack, at, Element::KeyValue(name, value))?;
                }
                LIST_START => {
                    let name = reader.name(at)?;
                    list = Some(OpenList { name, items: Vec::new(), offset: at });
                }
                LIST_ITEM => {
                    let Some(open) = list.as_mut() else {
                        return Err(DecodeError::new(at, DecodeErrorKind::OutsideList(ty)));
                    };
                    open.items.push(reader.value(at)?);
                }
                LIST_END => {
                    let Some(OpenList { name, items, .. }) = list.take() else {
                        return Err(DecodeError::new(at, DecodeErrorKind::OutsideList(ty)));
                    };
                    add(&mut stack, at, Element::List(name, items))?;
                }
                other => {
                    return Err(DecodeError::new(at, DecodeErrorKind::UnknownElementType(other)));
                }
            }
        }

        let end = data.len();
        if let Some(open) = list {
            return Err(DecodeError::new(
                end,
                DecodeErrorKind::UnclosedList(open.name, open.offset),
            ));
        }
        match stack.pop() {
            Some(Open { name: None, msg }) => Ok(msg),
            Some(Open { name: Some(name), .. }) => {
                Err(DecodeError::new(end, DecodeErrorKind::UnclosedSection(name)))
            }
            None => Err(DecodeError::new(end, DecodeErrorKind::UnbalancedSectionEnd)),
        }
    }
}

/// A section being decoded: its name (none for the root) and its elements so far.
struct Open {
    name: Option<String>,
    msg: Message,
}

/// Appends `element` to the innermost open section, rejecting a name used twice.
fn add(stack: &mut [Open], at: usize, element: Element) -> Result<(), DecodeError> {
    let Some(top) = stack.last_mut() else {
        return Err(DecodeError::new(at, DecodeErrorKind::UnbalancedSectionEnd));
    };
    let top = &mut top.msg;
    if top.get(element.name()).is_some() {
        return Err(DecodeError::new(at, DecodeErrorKind::DuplicateName(element.name().into())));
    }
    top.elements.push(element);
    Ok(())
}

fn put_name(out: &mut Vec<u8>, name: &str) -> Result<(), EncodeError> {
    if !name.is_ascii() {
        return Err(EncodeError::NonAsciiName(name.into()));
    }
    let len = u8::try_from(name.len()).map_err(|_| EncodeError::NameTooLong(name.into()))?;
    out.push(len);
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

fn put_value(out: &mut Vec<u8>, name: &str, value: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(value.len())
        .map_err(|_| EncodeError::ValueTooLong { name: name.into(), len: value.len() })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// Bounds-checked cursor over the encoded message.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, len: usize, what: &'static str, at: usize) -> Result<&[u8], DecodeError> {
        let available = self.data.len().saturating_sub(self.pos);
        let bytes = self
            .data
            .get(self.pos..self.pos.saturating_add(len))
            .ok_or(DecodeError::new(at, DecodeErrorKind::Truncated { what, len, available }))?;
        self.pos += len;
        Ok(bytes)
    }

    fn name(&mut self, at: usize) -> Result<String, DecodeError> {
        let len = usize::from(*self.take(1, "name length", at)?.first().unwrap_or(&0));
        let name = self.take(len, "name", at)?;
        if !name.is_ascii() {
            return Err(DecodeError::new(at, DecodeErrorKind::NonAsciiName(name.to_vec())));
        }
        // ASCII is valid UTF-8.
        Ok(name.iter().map(|&b| char::from(b)).collect())
    }

    fn value(&mut self, at: usize) -> Result<Vec<u8>, DecodeError> {
        let len = match self.take(2, "value length", at)? {
            &[hi, lo] => usize::from(u16::from_be_bytes([hi, lo])),
            _ => 0,
        };
        Ok(self.take(len, "value", at)?.to_vec())
    }
}

/// A message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A name is longer than 255 bytes.
    #[error("VICI name {0:?} is longer than 255 bytes")]
    NameTooLong(String),
    /// A name has non-ASCII characters.
    #[error("VICI name {0:?} is not ASCII")]
    NonAsciiName(String),
    /// A value is longer than 65 535 bytes.
    #[error("value of VICI key {name:?} is {len} bytes, more than 65535")]
    ValueTooLong {
        /// The key or list name.
        name: String,
        /// The value's length.
        len: usize,
    },
    /// The encoded packet is larger than the 512 KiB segment limit.
    #[error("VICI packet is {0} bytes, more than the 524288-byte segment limit")]
    PacketTooLarge(usize),
}

/// A message could not be decoded: what was wrong, and at which byte offset of the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid VICI message at byte {offset}: {kind}")]
pub struct DecodeError {
    /// Offset of the element (or of the end of data) where decoding failed.
    pub offset: usize,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    fn new(offset: usize, kind: DecodeErrorKind) -> Self {
        Self { offset, kind }
    }
}

/// What was wrong with a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Two elements of one section share a name.
    #[error("duplicate name {0:?} in one section")]
    DuplicateName(String),
    /// An element other than `LIST_ITEM`/`LIST_END` appeared inside a list.
    #[error("element type {0} inside a list (only LIST_ITEM and LIST_END may appear)")]
    InsideList(u8),
    /// A name has non-ASCII bytes.
    #[error("name {0:02x?} is not ASCII")]
    NonAsciiName(Vec<u8>),
    /// `LIST_ITEM` or `LIST_END` outside a list.
    #[error("element type {0} outside a list")]
    OutsideList(u8),
    /// Sections nest deeper than [`MAX_DEPTH`].
    #[error("sections nest deeper than {0} levels")]
    TooDeep(usize),
    /// The data ended in the middle of an element.
    #[error("{what} needs {len} bytes, only {available} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes it needs.
        len: usize,
        /// Bytes left.
        available: usize,
    },
    /// `SECTION_END` with no open section.
    #[error("SECTION_END without an open section")]
    UnbalancedSectionEnd,
    /// The data ended with a list still open.
    #[error("list {0:?} opened at byte {1} is not closed")]
    UnclosedList(String, usize),
    /// The data ended with a section still open.
    #[error("section {0:?} is not closed")]
    UnclosedSection(String),
    /// An element type byte that is not 1–6.
    #[error("unknown element type {0}")]
    UnknownElementType(u8),
}

/// strongSwan's `--raw` form (`vici_dump` without `--pretty`): `key=value`, `name {…}` and
/// `name=[a b]`, separated by spaces. Non-printable values are shown as hex.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for element in &self.elements {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            match element {
                Element::Section(name, section) => write!(f, "{name} {{{section}}}")?,
                Element::KeyValue(name, value) => write!(f, "{name}={}", Printable(value))?,
                Element::List(name, items) => {
                    write!(f, "{name}=[")?;
                    for (i, item) in items.iter().enumerate() {
                        let sep = if i == 0 { "" } else { " " };
                        write!(f, "{sep}{}", Printable(item))?;
                    }
                    f.write_str("]")?;
                }
            }
        }
        Ok(())
    }
}

/// A value shown as text when printable, else as hex (as `vici_dump` does).
struct Printable<'a>(&'a [u8]);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => f.write_str(s),
            _ => self.0.iter().try_for_each(|b| write!(f, "{b:02x}")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The encoding example of strongSwan's vici README.
    const README_EXAMPLE: &[u8] = &[
        3, 4, b'k', b'e', b'y', b'1', 0, 6, b'v', b'a', b'l', b'u', b'e', b'1', //
        1, 8, b's', b'e', b'c', b't', b'i', b'o', b'n', b'1', //
        1, 11, b's', b'u', b'b', b'-', b's', b'e', b'c', b't', b'i', b'o', b'n', //
        3, 4, b'k', b'e', b'y', b'2', 0, 6, b'v', b'a', b'l', b'u', b'e', b'2', //
        2,    //
        4, 5, b'l', b'i', b's', b't', b'1', //
        5, 0, 5, b'i', b't', b'e', b'm', b'1', //
        5, 0, 5, b'i', b't', b'e', b'm', b'2', //
        6,    //
        2,
    ];

    fn readme_tree() -> Message {
        Message::new().kv("key1", "value1").section(
            "section1",
            Message::new()
                .section("sub-section", Message::new().kv("key2", "value2"))
                .list("list1", ["item1", "item2"]),
        )
    }

    /// A `version` response as charon builds it (`vici_query.c`: daemon, version, sysname,
    /// release, machine, in this order).
    fn version_bytes() -> Vec<u8> {
        let mut v = Vec::new();
        for (k, val) in [
            ("daemon", "charon"),
            ("version", "5.9.8"),
            ("sysname", "Linux"),
            ("release", "6.1.0-18-amd64"),
            ("machine", "x86_64"),
        ] {
            v.push(3);
            v.push(k.len() as u8);
            v.extend_from_slice(k.as_bytes());
            v.extend_from_slice(&(val.len() as u16).to_be_bytes());
            v.extend_from_slice(val.as_bytes());
        }
        v
    }

    #[test]
    fn readme_example_round_trips() {
        assert_eq!(Message::decode(README_EXAMPLE).unwrap(), readme_tree());
        assert_eq!(readme_tree().encode().unwrap(), README_EXAMPLE);
    }

    #[test]
    fn version_response_vector() {
        let bytes = version_bytes();
        // Spot-check the hand-written bytes: KEY_VALUE, name length 6, "daemon", value length 6.
        assert_eq!(&bytes[..16], b"\x03\x06daemon\x00\x06charon");
        let msg = Message::decode(&bytes).unwrap();
        assert_eq!(msg.get_str("daemon"), Some("charon"));
        assert_eq!(msg.get_str("version"), Some("5.9.8"));
        assert_eq!(msg.get_str("machine"), Some("x86_64"));
        let names: Vec<_> = msg.elements().iter().map(Element::name).collect();
        assert_eq!(names, ["daemon", "version", "sysname", "release", "machine"]);
        assert_eq!(msg.encode().unwrap(), bytes);
    }

    #[test]
    fn getters() {
        let m = readme_tree();
        assert_eq!(m.get_str("key1"), Some("value1"));
        assert_eq!(m.get_section("key1"), None);
        let s = m.get_section("section1").unwrap();
        assert_eq!(s.get_str_list("list1"), Some(vec!["item1", "item2"]));
        assert_eq!(s.get_list("list1").map(<[_]>::len), Some(2));
        assert_eq!(m.find_str("section1.sub-section.key2"), Some("value2"));
        assert_eq!(m.find_str("section1.nope.key2"), None);
        assert_eq!(Message::new().kv_display("n", 42u64).get_parsed::<u64>("n"), Some(42));
        assert_eq!(
            m.to_string(),
            "key1=value1 section1 {sub-section {key2=value2} list1=[item1 item2]}"
        );
    }

    #[test]
    fn insert_replaces_in_place() {
        let m = Message::new().kv("a", "1").kv("b", "2").kv("a", "3");
        assert_eq!(m.elements().len(), 2);
        assert_eq!(m.elements()[0], Element::KeyValue("a".into(), b"3".to_vec()));
        let mut m = m.section("b", Message::new());
        assert!(m.get_section("b").is_some());
        assert!(m.remove("a").is_some());
        assert_eq!(m.elements().len(), 1);
    }

    #[test]
    fn every_truncated_prefix_errors() {
        // Wrapped in a section, so that no proper prefix is a complete message.
        let wrapped = Message::new().section("outer", readme_tree()).encode().unwrap();
        for len in 0..wrapped.len() {
            let prefix = &wrapped[..len];
            if len == 0 {
                assert_eq!(Message::decode(prefix).unwrap(), Message::new());
                continue;
            }
            let err = Message::decode(prefix).unwrap_err();
            assert!(err.offset <= len, "{len}: {err}");
        }
        // Prefixes of the README example either decode or fail; none panics.
        for len in 0..README_EXAMPLE.len() {
            let _ = Message::decode(&README_EXAMPLE[..len]);
        }
    }

    #[test]
    fn errors_say_what_and_where() {
        let cases: &[(&[u8], usize, DecodeErrorKind)] = &[
            (&[9], 0, DecodeErrorKind::UnknownElementType(9)),
            (&[2], 0, DecodeErrorKind::UnbalancedSectionEnd),
            (&[5, 0, 0], 0, DecodeErrorKind::OutsideList(LIST_ITEM)),
            (&[6], 0, DecodeErrorKind::OutsideList(LIST_END)),
            (&[4, 1, b'l', 3, 1, b'k', 0, 0], 3, DecodeErrorKind::InsideList(KEY_VALUE)),
            (&[4, 1, b'l', 4, 1, b'm'], 3, DecodeErrorKind::InsideList(LIST_START)),
            (&[4, 1, b'l'], 3, DecodeErrorKind::UnclosedList("l".into(), 0)),
            (&[1, 1, b's'], 3, DecodeErrorKind::UnclosedSection("s".into())),
            (&[3, 1, b'k', 0, 0, 3, 1, b'k', 0, 0], 5, DecodeErrorKind::DuplicateName("k".into())),
            (&[3, 1, 0xe9, 0, 0], 0, DecodeErrorKind::NonAsciiName(vec![0xe9])),
            (
                &[3, 1, b'k', 0, 9, b'x'],
                0,
                DecodeErrorKind::Truncated { what: "value", len: 9, available: 1 },
            ),
            (&[3], 0, DecodeErrorKind::Truncated { what: "name length", len: 1, available: 0 }),
        ];
        for (bytes, offset, kind) in cases {
            let err = Message::decode(bytes).unwrap_err();
            assert_eq!((&err.offset, &err.kind), (offset, kind), "{bytes:?}: {err}");
        }
        let err = Message::decode(&[3, 1, b'k', 0, 9, b'x']).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid VICI message at byte 0: value needs 9 bytes, only 1 left"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| {
            let mut v = Vec::new();
            for _ in 0..depth {
                v.extend_from_slice(&[SECTION_START, 1, b's']);
            }
            v.extend(std::iter::repeat_n(SECTION_END, depth));
            v
        };
        assert!(Message::decode(&nested(MAX_DEPTH)).is_ok());
        let err = Message::decode(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::TooDeep(MAX_DEPTH));
        assert_eq!(err.offset, 3 * MAX_DEPTH);
        // Deep input must not overflow the stack either.
        assert!(Message::decode(&nested(100_000)).is_err());
    }

    #[test]
    fn encode_limits() {
        let long = "n".repeat(256);
        assert_eq!(
            Message::new().kv(&long, "v").encode(),
            Err(EncodeError::NameTooLong(long.clone()))
        );
        assert!(Message::new().kv(&long[..255], "v").encode().is_ok());
        assert_eq!(
            Message::new().kv("é", "v").encode(),
            Err(EncodeError::NonAsciiName("é".into()))
        );
        let big = vec![0u8; 65_536];
        assert_eq!(
            Message::new().list("l", [&big]).encode(),
            Err(EncodeError::ValueTooLong { name: "l".into(), len: 65_536 })
        );
        let max = Message::new().kv("k", &big[..65_535]);
        assert_eq!(Message::decode(&max.encode().unwrap()).unwrap(), max);
        // Empty names, values and lists are legal.
        let empty = Message::new().kv("", "").list("l", Vec::<Vec<u8>>::new());
        assert_eq!(Message::decode(&empty.encode().unwrap()).unwrap(), empty);
    }

    fn arb_name() -> impl Strategy<Value = String> {
        "[a-z0-9-]{0,12}"
    }

    fn arb_value() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..24)
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let leaf = proptest::collection::vec(
            prop_oneof![
                (arb_name(), arb_value()).prop_map(|(n, v)| Element::KeyValue(n, v)),
                (arb_name(), proptest::collection::vec(arb_value(), 0..4))
                    .prop_map(|(n, items)| Element::List(n, items)),
            ],
            0..6,
        )
        .prop_map(from_elements);
        leaf.prop_recursive(4, 64, 6, |inner| {
            proptest::collection::vec(
                prop_oneof![
                    (arb_name(), arb_value()).prop_map(|(n, v)| Element::KeyValue(n, v)),
                    (arb_name(), proptest::collection::vec(arb_value(), 0..4))
                        .prop_map(|(n, items)| Element::List(n, items)),
                    (arb_name(), inner).prop_map(|(n, m)| Element::Section(n, m)),
                ],
                0..6,
            )
            .prop_map(from_elements)
        })
    }

    fn from_elements(elements: Vec<Element>) -> Message {
        let mut m = Message::new();
        for e in elements {
            m.insert(e);
        }
        m
    }

    proptest! {
        #[test]
        fn random_trees_round_trip(m in arb_message()) {
            let bytes = m.encode().unwrap();
            prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(m) = Message::decode(&bytes) {
                // Whatever decodes re-encodes to the same bytes (the encoding is canonical).
                prop_assert_eq!(m.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn mutated_messages_never_panic(
            m in arb_message(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = m.encode().unwrap();
            if !bytes.is_empty() {
                for (i, b) in flips {
                    let len = bytes.len();
                    bytes[i % len] = b;
                }
            }
            let _ = Message::decode(&bytes);
        }
    }
}
