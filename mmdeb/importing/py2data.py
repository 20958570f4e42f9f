"""Mailman 2.1's Python 2 data read by Python 3, each string decoded with the charset of its language.

Mailman 2.1 stores lists/<name>/config.pck, pending.pck, request.pck and heldmsg-*.pck as
Python 2 pickles, and the pipermail archive databases (archives/private/<name>/database/*)
as Python 2 marshal files. Their byte strings are in the charset of the language they
belong to: the list's preferred_language for list texts, the member's language for a
member's real name and password, a pending subscriber's own language. Decoding each
string in its own charset keeps "Zażółć gęślą jaźń" of a Polish (iso-8859-2) list intact,
where one guess for the whole file garbles it.

Standard library only and no import from the rest of mmdeb: the list-host import command
ships this file unchanged and runs it with the py3 fork's python3. Nothing here writes.

Rules:
- ASCII is ASCII. A py2 unicode object (BINUNICODE) loads as str and is kept.
- Single-byte charsets (iso-8859-*, us-ascii, koi8-*, cp125x) decode any bytes, so that
  proves nothing; non-ASCII bytes that are valid UTF-8 are almost never intended Latin-1
  text. So in those lists valid UTF-8 wins (the usual mixed case: a UTF-8 string pasted
  into a Latin-1 list), and the declared charset reads the rest.
- Multi-byte charsets (euc-jp, euc-kr, ...) reject most foreign bytes, and short EUC text
  can be valid UTF-8 by chance, so the declared charset is tried first, then UTF-8.
- A string that mixes the two (a UTF-8 fragment pasted into a Latin-1 list's info) is
  valid as a whole in neither: it is read one character at a time, UTF-8 or the declared
  charset, in the order above (in a multi-byte charset, a UTF-8 character whose bytes are
  valid there too stays in that charset). Legacy text can hold UTF-8 by chance (iso-8859-2
  "ÓŁ" is the UTF-8 of "ӣ"), so each such string is reported as a MixedString, with a
  preview from just before its first UTF-8 character, for the admin to check.
- Bytes valid in neither are read as iso-8859-1, one character a byte: the fork can save
  and render that text (a lone surrogate from surrogateescape would make every post of
  the list fail, as the description goes into the List-Id header), and
  text.encode("iso-8859-1") gives the original bytes back. Each such string is reported
  as "file: attribute: reason".
- A held message (heldmsg-*.pck) is an email message whose parts carry their own
  charsets and transfer encodings: load it, but do not decode it as text of the list.
"""

import codecs
import functools
import io
import pickle
import re
import struct

# GNU Mailman 2.1.39, Mailman/Defaults.py.in: the add_language() calls (language -> charset).
LANGUAGE_CHARSETS = {
    "ar": "utf-8", "ast": "iso-8859-1", "ca": "utf-8", "cs": "iso-8859-2", "da": "iso-8859-1",
    "de": "iso-8859-1", "en": "us-ascii", "eo": "utf-8", "es": "iso-8859-1", "et": "iso-8859-15",
    "eu": "iso-8859-15", "fa": "utf-8", "fi": "iso-8859-1", "fr": "iso-8859-1", "gl": "utf-8",
    "el": "iso-8859-7", "he": "utf-8", "hr": "iso-8859-2", "hu": "iso-8859-2", "ia": "iso-8859-15",
    "it": "iso-8859-1", "ja": "euc-jp", "ko": "euc-kr", "lt": "iso-8859-13", "nl": "iso-8859-1",
    "no": "iso-8859-1", "pl": "iso-8859-2", "pt": "iso-8859-1", "pt_BR": "iso-8859-1", "ro": "utf-8",
    "ru": "utf-8", "sk": "utf-8", "sl": "iso-8859-2", "sr": "utf-8", "sv": "iso-8859-1",
    "tr": "iso-8859-9", "uk": "utf-8", "vi": "utf-8", "zh_CN": "utf-8", "zh_TW": "utf-8",
}
DEFAULT_LANGUAGE = "en"  # Mailman's DEFAULT_SERVER_LANGUAGE
FALLBACK_CHARSET = "iso-8859-1"

# config.pck attributes that map a member's (lower-cased) address to that member's data.
PER_MEMBER_ATTRIBUTES = frozenset([
    "members", "digest_members", "passwords", "language", "usernames", "user_options",
    "delivery_status", "bounce_info", "topics_userinterest", "one_last_digest",
])

# request.pck: (SUBSCRIPTION, (when, addr, fullname, password, digest, language)), Mailman/ListAdmin.py.
REQUEST_SUBSCRIPTION = 2

# Instance attributes that name the language of the instance's own strings
# (Mailman.UserDesc.UserDesc in pending.pck, pipermail's Article in the archive database).
OWN_LANGUAGE_ATTRIBUTES = ("language", "_lang")

SINGLE_BYTE_CODECS = ("ascii", "iso8859", "latin", "koi8", "cp125", "mac-")

# Builtins a Mailman 2.1 pickle may name; anything else becomes a StandIn, nothing is imported.
SAFE_BUILTINS = {"set": set, "frozenset": frozenset, "object": object}


class StandIn:
    """An instance of a Python 2 class that is not imported: the class's module and name, and its state."""

    py2_module = ""
    py2_name = ""

    def __new__(cls, *args):
        instance = object.__new__(cls)
        instance.args = args
        instance.state = None
        return instance

    def __init__(self, *args):
        pass

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return "<%s.%s %r>" % (self.py2_module, self.py2_name, self.state)

    def __eq__(self, other):
        return (isinstance(other, StandIn) and (self.py2_module, self.py2_name) == (other.py2_module, other.py2_name)
                and (self.args, self.state) == (other.args, other.state))

    __hash__ = object.__hash__


_stand_in_classes = {}


def stand_in_class(module, name):
    key = (module, name)
    if key not in _stand_in_classes:
        _stand_in_classes[key] = type(name, (StandIn,), {"py2_module": module, "py2_name": name})
    return _stand_in_classes[key]


def _reconstructor(cls, base, state):
    # copy_reg._reconstructor: how protocols 0 and 1 pickle new-style instances.
    return cls() if state is None else cls(state)


class Py2Unpickler(pickle.Unpickler):
    """Loads a Python 2 pickle: py2 str as bytes, py2 unicode as str, classes as StandIns."""

    def __init__(self, file):
        super().__init__(file, encoding="bytes")

    def find_class(self, module, name):
        if module in ("__builtin__", "builtins") and name in SAFE_BUILTINS:
            return SAFE_BUILTINS[name]
        if (module, name) in (("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")):
            return _reconstructor
        return stand_in_class(module, name)


def loads_pickle(data):
    return Py2Unpickler(io.BytesIO(data)).load()


def load_pickle(path):
    with open(path, "rb") as f:
        return Py2Unpickler(f).load()


class _MarshalReader:
    """Python 2's marshal format (version 2). Python 3's marshal misreads its interned
    strings ('t' is unicode there, and 'R' a reference of another kind), so it is read here."""

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.interned = []

    def take(self, size):
        end = self.pos + size
        if end > len(self.data):
            raise ValueError("marshal data ends early")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def int32(self):
        if self.pos + 4 > len(self.data):
            raise ValueError("marshal data ends early")
        value = _INT32.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return value

    def read(self):
        if self.pos >= len(self.data):
            raise ValueError("marshal data ends early")
        code = self.data[self.pos]
        self.pos += 1
        # Strings and dicts first: pipermail's databases are dicts of strings.
        if code == 0x73:  # s
            return self.take(self.int32())
        if code == 0x7B:  # {
            result = {}
            while self.data[self.pos:self.pos + 1] != b"0":
                key = self.read()
                result[key] = self.read()
            self.pos += 1
            return result
        if code == 0x74:  # t
            value = self.take(self.int32())
            self.interned.append(value)
            return value
        if code == 0x52:  # R
            return self.interned[self.int32()]
        if code in _MARSHAL_CONSTANTS:
            return _MARSHAL_CONSTANTS[code]
        if code == 0x69:  # i
            return self.int32()
        if code == 0x49:  # I
            return struct.unpack("<q", self.take(8))[0]
        if code == 0x67:  # g
            return struct.unpack("<d", self.take(8))[0]
        if code == 0x66:  # f
            return float(self.take(self.take(1)[0]))
        if code == 0x6C:  # l
            count = self.int32()
            digits = struct.unpack("<%dH" % abs(count), self.take(2 * abs(count)))
            value = sum(digit << (15 * i) for i, digit in enumerate(digits))
            return -value if count < 0 else value
        if code == 0x75:  # u
            return self.take(self.int32()).decode("utf-8")
        if code in _MARSHAL_SEQUENCES:
            return _MARSHAL_SEQUENCES[code](self.read() for _ in range(self.int32()))
        raise ValueError("unknown marshal type %r at offset %d" % (bytes([code]), self.pos - 1))


_INT32 = struct.Struct("<i")
_MARSHAL_CONSTANTS = {ord("N"): None, ord("T"): True, ord("F"): False}
_MARSHAL_SEQUENCES = {ord("("): tuple, ord("["): list, ord("<"): set, ord(">"): frozenset}


def loads_marshal(data):
    reader = _MarshalReader(data)
    value = reader.read()
    if reader.pos != len(data):
        raise ValueError("%d bytes after the marshal data" % (len(data) - reader.pos))
    return value


def load_marshal(path):
    with open(path, "rb") as f:
        return loads_marshal(f.read())


@functools.lru_cache(maxsize=None)
def decoding_order(charset):
    """The charsets to try, in order, for non-ASCII bytes declared as charset (see the
    module's docstring). Raises LookupError for an unknown charset."""
    single_byte = codecs.lookup(charset).name.startswith(SINGLE_BYTE_CODECS)
    return ("utf-8", charset) if single_byte else (charset, "utf-8")


def _strict(raw, charset):
    try:
        return raw.decode(charset)
    except UnicodeDecodeError:
        return None


# One non-ASCII character in valid UTF-8 (RFC 3629: no overlong form, no surrogate).
UTF8_CHARACTER = re.compile(rb"[\xC2-\xDF][\x80-\xBF]|\xE0[\xA0-\xBF][\x80-\xBF]|[\xE1-\xEC\xEE\xEF][\x80-\xBF]{2}"
                            rb"|\xED[\x80-\x9F][\x80-\xBF]|\xF0[\x90-\xBF][\x80-\xBF]{2}|[\xF1-\xF3][\x80-\xBF]{3}"
                            rb"|\xF4[\x80-\x8F][\x80-\xBF]{2}")
ASCII_RUN = re.compile(rb"[\x00-\x7F]+")
LONGEST_CHARACTER = 3  # bytes of one character in the multi-byte charsets of LANGUAGE_CHARSETS (euc-jp)
PREVIEW_CONTEXT = 20  # characters of a MixedString's preview before its first UTF-8 character


class MixedString(str):
    """The warning for a string of mixed charsets, "source: field: ...", with its parts."""

    def __new__(cls, source, field, charset, preview):
        warning = super().__new__(cls, "%s: %s: mixed charsets: runs of UTF-8 read as UTF-8, the rest as %s: %r"
                                  % (source, field, charset, preview))
        warning.source, warning.field, warning.preview = source, field, preview
        return warning


def preview(text, start):
    """text around start, on one line, cut with an ellipsis."""
    begin, end = max(0, start - PREVIEW_CONTEXT), start + 2 * PREVIEW_CONTEXT
    return ("\u2026" if begin else "") + " ".join(text[begin:end].split()) + ("\u2026" if end < len(text) else "")


def _character(raw, pos, charset):
    """(one character of charset at pos, its size), or None."""
    for size in range(1, LONGEST_CHARACTER + 1):
        text = _strict(raw[pos:pos + size], charset)
        if text is not None and len(text) == 1:
            return text, size
    return None


def decode_mixed(raw, charset, utf8_first):
    """(text, where its first UTF-8 character is) for raw read one character at a time: UTF-8
    or charset, the one given by utf8_first first; None when a byte is valid in neither or no
    character is UTF-8."""
    parts, length, first, pos = [], 0, None, 0
    while pos < len(raw):
        run = ASCII_RUN.match(raw, pos)
        utf8 = None if run else UTF8_CHARACTER.match(raw, pos)
        legacy = None if run or (utf8 and utf8_first) else _character(raw, pos, charset)
        if run:
            text, pos = run.group().decode("ascii"), run.end()
        elif legacy:
            text, pos = legacy[0], pos + legacy[1]
        elif utf8:
            text, pos = utf8.group().decode("utf-8"), utf8.end()
            first = length if first is None else first
        else:
            return None
        parts.append(text)
        length += len(text)
    return None if first is None else ("".join(parts), first)


def decode_text(raw, charset):
    """(text, problem, mixed): raw decoded by the rules in this module's docstring; problem is
    None, or why the bytes were read as iso-8859-1; mixed is None, or where the first UTF-8 run
    of a string of mixed charsets starts in text."""
    if raw.isascii():
        return raw.decode("ascii"), None, None
    try:
        order = decoding_order(charset)
    except LookupError:
        return raw.decode(FALLBACK_CHARSET), "unknown charset %s: read as %s" % (charset, FALLBACK_CHARSET), None
    for candidate in order:
        text = _strict(raw, candidate)
        if text is not None:
            return text, None, None
        if candidate == "utf-8":  # characters of UTF-8 are tried where a whole string of UTF-8 is
            mixed = decode_mixed(raw, charset, utf8_first=candidate == order[0])
            if mixed is not None:
                return mixed[0], None, mixed[1]
    tried = charset if codecs.lookup(charset).name == "utf-8" else "%s nor utf-8" % charset
    return raw.decode(FALLBACK_CHARSET), "not valid %s: read as %s, one character a byte" % (tried, FALLBACK_CHARSET), None


# Where a string sits, as a warning names it: a str, or (parent, describe, key), spelt out
# only when a warning needs it (most strings never do, and there are millions of them).

def _key_of(key):
    return " key " + label(key)


def _item_of(key):
    return "[%s]" % label(key)


def _index_of(index):
    return "[%d]" % index


def _attribute_of(key):
    return "." + attribute_name(key)


def spell(where):
    parts = []
    while isinstance(where, tuple):
        where, describe, key = where
        parts.append(describe(key))
    return where + "".join(reversed(parts))


class Converter:
    """Decodes the byte strings of loaded Python 2 data; collects a warning for each string
    that was not valid in its charset, as "source: attribute: reason", and a MixedString for
    each string of mixed charsets."""

    def __init__(self, source, charsets=None):
        self.source = source
        self.charsets = LANGUAGE_CHARSETS if charsets is None else charsets
        self.warnings = []

    def warn(self, where, reason):
        self.warnings.append("%s: %s: %s" % (self.source, spell(where), reason))

    def charset(self, language, where):
        if isinstance(language, bytes):
            language = language.decode("ascii", "replace")
        if language in self.charsets:
            return self.charsets[language]
        self.warn(where, "language %r has no charset in the table: read as us-ascii" % (language,))
        return "us-ascii"

    def text(self, raw, charset, where):
        text, problem, mixed = decode_text(raw, charset)
        if problem:
            self.warn(where, problem)
        elif mixed is not None:
            self.warnings.append(MixedString(self.source, spell(where), charset, preview(text, mixed)))
        return text

    def value(self, value, charset, where):
        """value with every byte string decoded in charset (an instance that names its own
        language: in that language's charset)."""
        if isinstance(value, bytes):
            return value.decode("ascii") if value.isascii() else self.text(value, charset, where)
        if isinstance(value, dict):
            return {self.value(key, charset, (where, _key_of, key)): self.value(item, charset, (where, _item_of, key))
                    for key, item in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return type(value)(self.value(item, charset, (where, _index_of, index)) for index, item in enumerate(value))
        if isinstance(value, StandIn):
            return self.instance(value, charset, where)
        return value

    def instance(self, value, charset, where):
        state = value.state
        if isinstance(state, dict):
            for attribute in OWN_LANGUAGE_ATTRIBUTES:
                language = state.get(attribute.encode("ascii"), state.get(attribute))
                if isinstance(language, (bytes, str)):
                    charset = self.charset(language, (where, _attribute_of, attribute))
                    break
            state = {self.value(key, "ascii", where): self.value(item, charset, (where, _attribute_of, key))
                     for key, item in state.items()}
        else:
            state = self.value(state, charset, where)
        # Constructor arguments are kept as loaded: they can be binary (a datetime's state).
        converted = type(value)(*value.args)
        converted.state = state
        return converted


def attribute_name(key):
    return key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)


def label(key):
    """A dict key as a warning shows it: 'hans@example.de', not b'hans@example.de'."""
    return repr(key.decode(FALLBACK_CHARSET) if isinstance(key, bytes) else key)


def _list_language(config):
    language = config.get(b"preferred_language", config.get("preferred_language", DEFAULT_LANGUAGE))
    return language.decode("ascii", "replace") if isinstance(language, bytes) else language


def convert_config(config, source, charsets=None):
    """(config, warnings) for a loaded config.pck: list texts in the list's preferred
    language, the per-member attributes in each member's language."""
    converter = Converter(source, charsets)
    list_language = _list_language(config)
    list_charset = converter.charset(list_language, "preferred_language")
    languages = config.get(b"language", {})
    result = {}
    for key, value in config.items():
        attribute = converter.value(key, "ascii", "attribute name")
        if attribute in PER_MEMBER_ATTRIBUTES and isinstance(value, dict):
            members = result[attribute] = {}
            for address, item in value.items():
                where = "%s[%s]" % (attribute, label(address))
                charset = converter.charset(languages.get(address, list_language), where + " language")
                members[converter.value(address, list_charset, where + " key")] = converter.value(item, charset, where)
        else:
            result[attribute] = converter.value(value, list_charset, attribute)
    return result, converter.warnings


def convert_requests(requests, list_language, source, charsets=None):
    """(requests, warnings) for a loaded request.pck: a held subscription's name and
    password in the subscriber's language, everything else in the list's."""
    converter = Converter(source, charsets)
    list_charset = converter.charset(list_language, "list language")
    result = {}
    for key, value in requests.items():
        where = "[%s]" % label(key)
        charset = list_charset
        if isinstance(value, tuple) and len(value) == 2 and value[0] == REQUEST_SUBSCRIPTION and len(value[1]) == 6:
            charset = converter.charset(value[1][5], where + " language")
        result[converter.value(key, list_charset, where + " key")] = converter.value(value, charset, where)
    return result, converter.warnings


def convert_data(value, list_language, source, charsets=None):
    """(value, warnings) for other loaded data of a list (pending.pck, an archive database):
    strings in the list's language, an instance that names its own language in that one."""
    converter = Converter(source, charsets)
    return converter.value(value, converter.charset(list_language, "list language"), ""), converter.warnings


def load_archive_database(path):
    """A pipermail database file: the -article index's values are pickled Articles, loaded here too."""
    database = load_marshal(path)
    if str(path).endswith("-article"):
        return {key: loads_pickle(value) for key, value in database.items()}
    return database
