"""Write Python values as Python 2.7's cPickle and marshal write them, for tests without python2.

bytes stand for py2 str, str for py2 unicode, Py2Instance for an instance of a classic class
(Mailman.Bouncer._BounceInfo, Mailman.UserDesc.UserDesc, ...). The opcodes and memo numbers
are cPickle's: tests/test_py2data.py compares them with output of a real Python 2.7.
"""

import struct
from dataclasses import dataclass

BATCHSIZE = 1000  # cPickle writes SETITEMS and APPENDS in batches of this many


@dataclass
class Py2Instance:
    module: str
    name: str
    state: dict


class Py2Pickler:
    def __init__(self, protocol: int):
        self.protocol = protocol
        self.out = bytearray()
        self.memo_size = 0

    def dumps(self, value) -> bytes:
        if self.protocol == 2:
            self.out += b"\x80\x02"
        self.save(value)
        self.out += b"."
        return bytes(self.out)

    def memoize(self) -> None:
        self.memo_size += 1
        if self.protocol == 0:
            self.out += b"p%d\n" % self.memo_size
        elif self.memo_size < 256:
            self.out += b"q" + bytes([self.memo_size])
        else:
            self.out += b"r" + struct.pack("<i", self.memo_size)

    def save(self, value) -> None:
        if value is None:
            self.out += b"N"
        elif isinstance(value, bool):
            self.out += (b"\x88" if value else b"\x89") if self.protocol == 2 else (b"I01\n" if value else b"I00\n")
        elif isinstance(value, int):
            self.save_int(value)
        elif isinstance(value, float):
            self.out += b"F%s\n" % repr(value).encode() if self.protocol == 0 else b"G" + struct.pack(">d", value)
        elif isinstance(value, bytes):
            self.save_str(value)
        elif isinstance(value, str):
            self.save_unicode(value)
        elif isinstance(value, tuple):
            self.save_tuple(value)
        elif isinstance(value, list):
            self.out += b"(l" if self.protocol == 0 else b"]"
            self.memoize()
            self.save_batches([(item,) for item in value], b"a", b"e")
        elif isinstance(value, dict):
            self.out += b"(d" if self.protocol == 0 else b"}"
            self.memoize()
            self.save_batches(list(value.items()), b"s", b"u")
        elif isinstance(value, Py2Instance):
            self.save_instance(value)
        else:
            raise TypeError(f"no Python 2 form for {type(value)}")

    def save_int(self, value: int) -> None:
        if self.protocol and 0 <= value < 256:
            self.out += b"K" + bytes([value])
        elif self.protocol and 0 <= value < 65536:
            self.out += b"M" + struct.pack("<H", value)
        elif self.protocol and -2**31 <= value < 2**31:
            self.out += b"J" + struct.pack("<i", value)
        else:  # a py2 int of a 64-bit build
            self.out += b"I%d\n" % value

    def save_str(self, value: bytes) -> None:
        if self.protocol == 0:
            self.out += b"S" + repr(value)[1:].encode("ascii") + b"\n"  # py3's bytes repr is py2's str repr
        elif len(value) < 256:
            self.out += b"U" + bytes([len(value)]) + value
        else:
            self.out += b"T" + struct.pack("<i", len(value)) + value
        if len(value) > 1:
            self.memoize()

    def save_unicode(self, value: str) -> None:
        if self.protocol == 0:
            escaped = value.replace("\\", "\\u005c").replace("\n", "\\u000a")
            self.out += b"V" + escaped.encode("raw-unicode-escape") + b"\n"
        else:
            encoded = value.encode("utf-8")
            self.out += b"X" + struct.pack("<i", len(encoded)) + encoded
        if len(value) > 1:
            self.memoize()

    def save_tuple(self, value: tuple) -> None:
        if not value:
            self.out += b"(t" if self.protocol == 0 else b")"
            return
        if self.protocol == 2 and len(value) <= 3:
            for item in value:
                self.save(item)
            self.out += b"\x85\x86\x87"[len(value) - 1:len(value)]
        else:
            self.out += b"("
            for item in value:
                self.save(item)
            self.out += b"t"
        self.memoize()

    def save_batches(self, items: list[tuple], one: bytes, many: bytes) -> None:
        if self.protocol == 0:
            for item in items:
                for part in item:
                    self.save(part)
                self.out += one
            return
        for start in range(0, len(items), BATCHSIZE):
            batch = items[start:start + BATCHSIZE]
            if len(batch) > 1:
                self.out += b"("
            for item in batch:
                for part in item:
                    self.save(part)
            self.out += many if len(batch) > 1 else one

    def save_instance(self, value: Py2Instance) -> None:
        global_name = f"{value.module}\n{value.name}\n".encode("ascii")
        if self.protocol == 0:
            self.out += b"(i" + global_name
        else:
            self.out += b"(c" + global_name
            self.memoize()
            self.out += b"o"
        self.memoize()
        self.save(value.state)
        self.out += b"b"


def dumps(value, protocol: int = 1) -> bytes:
    """value as Python 2.7's cPickle.dumps(value, protocol) writes it."""
    return Py2Pickler(protocol).dumps(value)


def marshal_dumps(value) -> bytes:
    """value as Python 2.7's marshal.dumps writes it; bytes in an Interned are written as an
    interned string (py2 interns the empty and one-character strings), its repeats as references."""
    return _Marshal().dumps(value)


@dataclass(frozen=True)
class Interned:
    value: bytes


class _Marshal:
    def __init__(self):
        self.out = bytearray()
        self.interned: list[bytes] = []

    def dumps(self, value) -> bytes:
        self.save(value)
        return bytes(self.out)

    def save(self, value) -> None:
        if value is None or isinstance(value, bool):
            self.out += {None: b"N", True: b"T", False: b"F"}[value]
        elif isinstance(value, int):
            if -2**31 <= value < 2**31:
                self.out += b"i" + struct.pack("<i", value)
            elif -2**63 <= value < 2**63:
                self.out += b"I" + struct.pack("<q", value)
            else:  # a py2 long: 15-bit digits, the count's sign is the number's
                digits = []
                rest = abs(value)
                while rest:
                    digits.append(rest & 0x7FFF)
                    rest >>= 15
                count = len(digits) if value > 0 else -len(digits)
                self.out += b"l" + struct.pack("<i", count) + struct.pack(f"<{len(digits)}H", *digits)
        elif isinstance(value, float):
            self.out += b"g" + struct.pack("<d", value)
        elif isinstance(value, Interned):
            if value.value in self.interned:
                self.out += b"R" + struct.pack("<i", self.interned.index(value.value))
            else:
                self.interned.append(value.value)
                self.out += b"t" + struct.pack("<i", len(value.value)) + value.value
        elif isinstance(value, bytes):
            self.out += b"s" + struct.pack("<i", len(value)) + value
        elif isinstance(value, str):
            encoded = value.encode("utf-8")
            self.out += b"u" + struct.pack("<i", len(encoded)) + encoded
        elif isinstance(value, (tuple, list)):
            self.out += (b"(" if isinstance(value, tuple) else b"[") + struct.pack("<i", len(value))
            for item in value:
                self.save(item)
        elif isinstance(value, dict):
            self.out += b"{"
            for key, item in value.items():
                self.save(key)
                self.save(item)
            self.out += b"0"
        else:
            raise TypeError(f"no Python 2 marshal form for {type(value)}")
