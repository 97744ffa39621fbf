"""Go's values as Python holds them for the request log's templates, and Go's ``fmt`` over them.

Knative renders its request log with Go's ``text/template``, which prints through ``fmt``; this
module is the ``fmt`` half (``Sprint``, ``Sprintf``, ``Sprintln``, with ``strconv``'s number and
quote formats), checked against Go's own output (tests/proxy/test_request_log_template.py).

Rule 1: a Go value is one of these Python values, and nothing else reaches the printer.

====================  ====================================================================
Go                    Python
====================  ====================================================================
string                ``str``; bytes that are not UTF-8 are the lone surrogates
                      U+DC80..U+DCFF (Python's ``surrogateescape``), so ``len`` and slicing
                      count bytes as Go does (``go_bytes``)
bool                  ``bool``
int                   ``int``; another integer type is a ``GoInt`` subclass (``Int64``, ...)
float64, complex128   ``float``, ``complex``
untyped nil           ``None`` (also what a missing map key gives: Go's invalid value)
*T (T a struct)       a ``GoStruct`` instance whose ``go_type`` starts with ``*``; a nil one
                      is a ``NilPointer``
[]T                   ``list`` (``[]interface {}``) or a ``GoSlice`` (a named element type)
map[string]T          ``dict`` (``map[string]interface {}``) or a ``GoMap`` (``http.Header``)
====================  ====================================================================

Rule 2: methods are Go's: a ``GoStruct`` or ``GoMap`` lists them in ``go_methods`` (name ->
``Method``); ``String`` makes it a Stringer and ``Error`` an error, as in ``fmt``. A method whose
Go signature returns an error raises ``GoError`` for a non-nil one.

Pointers print as Go prints them where Go's output is deterministic (``&{...}`` at the top);
a pointer nested in another value prints as an address, which no two Go runs agree on either.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

__all__ = [
    "GoError", "GoInt", "Int64", "Uint8", "Uint16", "Uint64", "GoStruct", "NilPointer",
    "GoMap", "GoSlice", "Method", "sprint", "sprintf", "sprintln", "print_value",
    "type_name", "kind", "go_bytes", "from_go_bytes", "quote", "quote_rune", "format_float",
    "is_print",
]


class GoError(Exception):
    """The non-nil ``error`` a Go function or method returned: ``str(exc)`` is its text."""


# --------------------------------------------------------------------------- the value model


class GoInt(int):
    """An integer of a Go type other than ``int``."""

    go_type: ClassVar[str] = "int"
    unsigned: ClassVar[bool] = False


class Int64(GoInt):
    go_type = "int64"


class Uint8(GoInt):
    go_type = "uint8"
    unsigned = True


class Uint16(GoInt):
    go_type = "uint16"
    unsigned = True


class Uint64(GoInt):
    go_type = "uint64"
    unsigned = True


class Method(NamedTuple):
    """A Go method: ``fn(receiver, *args)``, its parameters' Go types, its results.

    ``results`` is 1, or 2 when the second is an ``error`` (``fn`` then raises ``GoError``);
    any other count is a method a template cannot call, as in Go. ``variadic``: the last
    parameter is ``...T`` (its entry in ``params`` is ``T``). ``nil_safe``: Go's method checks
    for a nil receiver (it is called with the ``NilPointer``; others fail as Go's panic does).
    """

    fn: Callable[..., Any]
    params: tuple[str, ...] = ()
    results: int = 1
    variadic: bool = False
    nil_safe: bool = False


class GoStruct:
    """A Go struct, seen through a pointer when ``go_type`` starts with ``*`` (the usual case).

    ``go_fields`` lists the exported fields in declaration order (what ``%v`` prints), each an
    attribute or property of the same name; ``go_unexported`` names the others, for Go's error
    message only.
    """

    __slots__ = ()
    go_type: ClassVar[str] = "struct {}"
    go_fields: ClassVar[tuple[str, ...]] = ()
    go_unexported: ClassVar[frozenset[str]] = frozenset()
    go_methods: ClassVar[dict[str, Method]] = {}
    # name -> getter(receiver): the exported fields and the niladic one-result methods of a
    # pointer type, for the template's fast path (``_build_getters``, once methods are set)
    go_getters: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def go_field(self, name: str) -> Any:
        return getattr(self, name)

    @classmethod
    def _build_getters(cls) -> None:
        getters: dict[str, Callable[[Any], Any]] = {}
        if cls.go_type.startswith("*"):
            own_field = cls.go_field is not GoStruct.go_field
            for name in cls.go_fields:
                getters[name] = (_field_getter(name) if own_field
                                 else operator.attrgetter(name))
            for name, m in cls.go_methods.items():
                if not m.params and not m.variadic and m.results == 1:
                    getters[name] = m.fn
        cls.go_getters = getters


def _field_getter(name: str) -> Callable[[Any], Any]:
    return lambda r: r.go_field(name)


class NilPointer:
    """A nil ``*T``: ``go_type`` is ``*T``; ``fields`` are T's (Go's error names them).

    ``kind`` is "chan" or "func" for a nil channel or function (which a template cannot print).
    """

    __slots__ = ("go_type", "fields", "go_methods", "kind")

    def __init__(self, go_type: str, fields: tuple[str, ...] = (),
                 methods: dict[str, Method] | None = None, kind: str = "ptr") -> None:
        self.go_type = go_type
        self.fields = fields
        self.go_methods = methods or {}
        self.kind = kind

    def __repr__(self) -> str:
        return f"NilPointer({self.go_type!r})"


class GoMap(dict):  # type: ignore[type-arg]
    """A map of a named Go type (``http.Header``, ``url.Values``), with its methods."""

    __slots__ = ("is_nil",)
    go_type: ClassVar[str] = "map[string]interface {}"
    go_methods: ClassVar[dict[str, Method]] = {}

    def __init__(self, *args: Any, is_nil: bool = False) -> None:
        super().__init__(*args)
        self.is_nil = is_nil


class GoSlice(list):  # type: ignore[type-arg]
    """A slice with a Go element type (``[]string``)."""

    __slots__ = ("go_type", "is_nil")

    def __init__(self, items: Any = (), go_type: str = "[]string", is_nil: bool = False) -> None:
        super().__init__(items)
        self.go_type = go_type
        self.is_nil = is_nil


# The Python types that stand for Go's predeclared ones (rule 1): their type names and kinds.
_BUILTIN_TYPES = {str: "string", bool: "bool", int: "int", float: "float64",
                  complex: "complex128"}


def type_name(v: Any) -> str:
    """``reflect.TypeOf(v).String()`` (``<nil>`` for nil, as ``%T`` prints it)."""
    if v is None:
        return "<nil>"
    name = _BUILTIN_TYPES.get(type(v))  # exact types: a GoInt is an int subclass
    if name is not None:
        return name
    if isinstance(v, (GoInt, GoStruct, NilPointer, GoMap, GoSlice)):
        return v.go_type
    if isinstance(v, _Deref):
        return v.ptr.go_type.lstrip("*")
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, dict):
        return "map[string]interface {}"
    return type(v).__name__


def kind(v: Any) -> str:
    """The ``reflect.Kind`` of v, in lower case: invalid, bool, int, uint, float64, ..."""
    if v is None:
        return "invalid"
    name = _BUILTIN_TYPES.get(type(v))  # Go's type names are its kinds for these
    if name is not None:
        return name
    if isinstance(v, GoInt):
        return "uint" if v.unsigned else "int"
    if isinstance(v, GoStruct):
        return "ptr" if v.go_type.startswith("*") else "struct"
    if isinstance(v, _Deref):
        return "struct"
    if isinstance(v, NilPointer):
        return v.kind
    if isinstance(v, (list, tuple)):
        return "slice"
    if isinstance(v, dict):
        return "map"
    return "func" if callable(v) else "invalid"


def is_nil_value(v: Any) -> bool:
    """Go's ``isNil`` in the template's ``eq``: nil pointers, maps and slices."""
    if v is None or isinstance(v, NilPointer):
        return True
    return bool(getattr(v, "is_nil", False)) if isinstance(v, (GoMap, GoSlice)) else False


class _Deref:
    """A struct pointer's target as a value (what ``text/template`` prints for ``*T``)."""

    __slots__ = ("ptr",)

    def __init__(self, ptr: GoStruct) -> None:
        self.ptr = ptr


def deref(ptr: GoStruct) -> Any:
    return _Deref(ptr)


def go_bytes(s: str) -> bytes:
    """A Go string's bytes."""
    return s.encode("utf-8", "surrogateescape")


def from_go_bytes(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _is_bad_byte(c: str) -> bool:
    return "\udc80" <= c <= "\udcff"


def is_print(c: str) -> bool:
    """``strconv.IsPrint``: letters, marks, numbers, punctuation, symbols and ASCII space."""
    if c < "\x7f":
        return c >= " "
    return c.isprintable()


# --------------------------------------------------------------------------- strconv


_LOWERHEX = "0123456789abcdef"
_SIMPLE_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v"}


def _escaped_rune(out: list[str], c: str, q: str, ascii_only: bool) -> None:
    if c == q or c == "\\":
        out.append("\\" + c)
        return
    if ascii_only:
        if c < "\x80" and is_print(c):
            out.append(c)
            return
    elif is_print(c):
        out.append(c)
        return
    e = _SIMPLE_ESC.get(c)
    if e is not None:
        out.append(e)
        return
    r = ord(c)
    if r < 0x20 or r == 0x7F:
        out.append(f"\\x{r:02x}")
    elif 0xD800 <= r <= 0xDFFF:
        out.append("\\ufffd")
    elif r < 0x10000:
        out.append(f"\\u{r:04x}")
    else:
        out.append(f"\\U{r:08x}")


def quote(s: str, ascii_only: bool = False) -> str:
    """``strconv.Quote`` (``QuoteToASCII`` with ``ascii_only``)."""
    out = ['"']
    for c in s:
        if _is_bad_byte(c):
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        else:
            _escaped_rune(out, c, '"', ascii_only)
    out.append('"')
    return "".join(out)


def quote_rune(r: int, ascii_only: bool = False) -> str:
    """``strconv.QuoteRune`` (``QuoteRuneToASCII``)."""
    if not (0 <= r < 0xD800 or 0xDFFF < r <= 0x10FFFF):
        r = 0xFFFD
    out = ["'"]
    _escaped_rune(out, chr(r), "'", ascii_only)
    out.append("'")
    return "".join(out)


def can_backquote(s: str) -> bool:
    for c in s:
        if c > "\x7f":
            if c == "\ufeff" or _is_bad_byte(c):
                return False
            continue
        if (c < " " and c != "\t") or c == "`" or c == "\x7f":
            return False
    return True


def _digits(f: float, mode: str, prec: int) -> tuple[str, int]:
    """Decimal digits of abs(f) (no leading or trailing zeros) and the decimal point's place.

    ``mode`` is "shortest" (Go's shortest round trip, as Python's repr), "e" (``prec``
    significant digits) or "f" (``prec`` digits after the point); rounding is correct (half to
    even on the exact binary value) in both languages.
    """
    if mode == "shortest":
        text = repr(f)
    elif mode == "e":
        text = format(f, f".{prec - 1}e")
    else:
        text = format(f, f".{prec}f")
    mant, _, e = text.partition("e")
    whole, _, frac = mant.partition(".")
    digits = whole + frac
    dp = len(whole) + (int(e) if e else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "", 0
    return digits, dp


def _fmt_efg(neg: bool, d: str, dp: int, prec: int, fmt: str, shortest: bool) -> str:
    nd = len(d)
    if fmt in "gG":
        eprec = prec
        if eprec > nd and nd >= dp:
            eprec = nd
        if shortest:
            eprec = 6
        exp = dp - 1
        if exp < -4 or exp >= eprec:
            if prec > nd:
                prec = nd
            prec -= 1
            fmt = "e" if fmt == "g" else "E"
        else:
            if prec > dp:
                prec = nd
            prec = max(prec - dp, 0)
            fmt = "f"
    out = ["-"] if neg else []
    if fmt in "eE":
        out.append(d[0] if nd else "0")
        if prec > 0:
            out.append(".")
            more = d[1:min(nd, prec + 1)]
            out.append(more)
            out.append("0" * (prec - len(more)))
        exp = dp - 1 if nd else 0
        out.append(fmt)
        out.append("-" if exp < 0 else "+")
        out.append(f"{abs(exp):02d}")
        return "".join(out)
    # f
    if dp > 0:
        m = min(nd, dp)
        out.append(d[:m])
        out.append("0" * (dp - m))
    else:
        out.append("0")
    if prec > 0:
        out.append(".")
        lz = min(prec, max(0, -dp))
        off = dp + lz
        m = min(prec - lz, max(0, nd - off))
        out.append("0" * lz)
        out.append(d[off:off + m])
        out.append("0" * max(0, prec - lz - m))
    return "".join(out)


def _float_bits(f: float) -> tuple[bool, int, int]:
    """(negative, mantissa with the implicit bit, exponent) as Go's ftoa sees a float64."""
    neg = math.copysign(1.0, f) < 0
    a = abs(f)
    if a == 0.0:
        return neg, 0, -1022
    if a < 2.2250738585072014e-308:  # subnormal
        return neg, int(math.ldexp(a, 1074)), -1022
    m, e = math.frexp(a)
    return neg, int(math.ldexp(m, 53)), e - 1


def _fmt_x(f: float, prec: int, fmt: str) -> str:
    neg, mant, exp = _float_bits(f)
    if mant == 0:
        exp = 0
    mant <<= 60 - 52
    while mant != 0 and mant & (1 << 60) == 0:
        mant <<= 1
        exp -= 1
    if 0 <= prec < 15:
        shift = prec * 4
        extra = (mant << shift) & ((1 << 60) - 1)
        mant >>= 60 - shift
        if extra | (mant & 1) > 1 << 59:
            mant += 1
        mant <<= 60 - shift
        if mant & (1 << 61):
            mant >>= 1
            exp += 1
    hexd = _LOWERHEX if fmt == "x" else _LOWERHEX.upper()
    out = ["-"] if neg else []
    out.append("0" + fmt + str((mant >> 60) & 1))
    mant = (mant << 4) & ((1 << 64) - 1)
    if prec < 0 and mant != 0:
        out.append(".")
        while mant != 0:
            out.append(hexd[(mant >> 60) & 15])
            mant = (mant << 4) & ((1 << 64) - 1)
    elif prec > 0:
        out.append(".")
        for _ in range(prec):
            out.append(hexd[(mant >> 60) & 15])
            mant = (mant << 4) & ((1 << 64) - 1)
    out.append("p" if fmt == "x" else "P")
    out.append("-" if exp < 0 else "+")
    out.append(f"{abs(exp):02d}")
    return "".join(out)


def format_float(f: float, fmt: str, prec: int) -> str:
    """``strconv.FormatFloat(f, fmt, prec, 64)`` for fmt in b, e, E, f, g, G, x, X."""
    if f != f:
        return "NaN"
    if f in (math.inf, -math.inf):
        return "+Inf" if f > 0 else "-Inf"
    if fmt == "b":
        neg, mant, exp = _float_bits(f)
        e = exp - 52 if mant else -1074
        return ("-" if neg else "") + f"{mant}p{'+' if e >= 0 else ''}{e}"
    if fmt in "xX":
        return _fmt_x(f, prec, fmt)
    neg = math.copysign(1.0, f) < 0
    a = abs(f)
    if a == 0.0:
        return _fmt_efg(neg, "", 0, prec, fmt, prec < 0)
    if prec < 0:
        d, dp = _digits(a, "shortest", 0)
        if fmt in "eE":
            prec = max(len(d) - 1, 0)
        elif fmt == "f":
            prec = max(len(d) - dp, 0)
        else:
            prec = len(d)
        return _fmt_efg(neg, d, dp, prec, fmt, True)
    if fmt in "eE":
        d, dp = _digits(a, "e", prec + 1)
    elif fmt == "f":
        d, dp = _digits(a, "f", prec)
    else:
        if prec == 0:
            prec = 1
        d, dp = _digits(a, "e", prec)
    return _fmt_efg(neg, d, dp, prec, fmt, False)


def format_float_v(f: float) -> str:
    """``%v`` of a float64 (``strconv.FormatFloat(f, 'g', -1, 64)``), the common case first."""
    if 1e-4 <= f < 1e6 or -1e6 < f <= -1e-4:
        # Go prints these without an exponent, as Python's repr does, from the same shortest
        # digits; Go drops the ".0" of a whole number (PERF: latencies are these).
        r = repr(f)
        return r[:-2] if r.endswith(".0") else r
    if f != f or f in (math.inf, -math.inf):
        return format_float(f, "g", -1)
    if f == 0.0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    d, dp = _digits(abs(f), "shortest", 0)
    return _fmt_efg(f < 0, d, dp, len(d), "g", True)


# --------------------------------------------------------------------------- fmt

_NIL_ANGLE = "<nil>"
_PTR_BASE = 0xC000010000


def _address(v: Any) -> int:
    # Go prints a nested pointer as its address; ours is stable within a process only.
    return _PTR_BASE + (id(v) & 0xFFFFFF) * 8


class _Printer:
    """Go's ``pp`` and ``fmt``: one formatting run."""

    __slots__ = ("buf", "wid", "prec", "wid_present", "prec_present", "minus", "plus", "sharp",
                 "space", "zero", "plus_v", "sharp_v", "erroring", "reordered", "good_arg_num")

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.erroring = False
        self.reordered = False
        self.good_arg_num = True
        self.clear_flags()

    def clear_flags(self) -> None:
        self.wid = self.prec = 0
        self.wid_present = self.prec_present = False
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False

    # ---- fmt.go: padding and the raw formats

    def write_padding(self, n: int) -> None:
        if n <= 0:
            return
        self.buf.append(("0" if self.zero and not self.minus else " ") * n)

    def pad(self, s: str) -> None:
        if not self.wid_present or self.wid == 0:
            self.buf.append(s)
            return
        width = self.wid - len(s)
        if not self.minus:
            self.write_padding(width)
            self.buf.append(s)
        else:
            self.buf.append(s)
            self.write_padding(width)

    def fmt_boolean(self, v: bool) -> None:
        self.pad("true" if v else "false")

    def fmt_unicode(self, u: int) -> None:
        prec = 4
        if self.prec_present and self.prec > 4:
            prec = self.prec
        s = "U+" + f"{u:X}".rjust(prec, "0")
        if self.sharp and u <= 0x10FFFF and not 0xD800 <= u <= 0xDFFF and is_print(chr(u)):
            s += " '" + chr(u) + "'"
        old = self.zero
        self.zero = False
        self.pad(s)
        self.zero = old

    def fmt_integer(self, u: int, base: int, signed: bool, verb: str, upper: bool) -> None:
        negative = signed and u < 0
        if negative:
            u = -u
        if not signed and u < 0:
            u &= (1 << 64) - 1
        prec = 0
        if self.prec_present:
            prec = self.prec
            if prec == 0 and u == 0:
                old = self.zero
                self.zero = False
                self.write_padding(self.wid)
                self.zero = old
                return
        elif self.zero and not self.minus and self.wid_present:
            prec = self.wid
            if negative or self.plus or self.space:
                prec -= 1
        if base == 10:
            digits = str(u)
        elif base == 16:
            digits = f"{u:X}" if upper else f"{u:x}"
        elif base == 8:
            digits = f"{u:o}"
        else:
            digits = f"{u:b}"
        if prec > len(digits):
            digits = "0" * (prec - len(digits)) + digits
        if self.sharp:
            if base == 2:
                digits = "0b" + digits
            elif base == 8:
                if digits[0] != "0":
                    digits = "0" + digits
            elif base == 16:
                digits = ("0X" if upper else "0x") + digits
        if verb == "O":
            digits = "0o" + digits
        if negative:
            digits = "-" + digits
        elif self.plus:
            digits = "+" + digits
        elif self.space:
            digits = " " + digits
        old = self.zero
        self.zero = False
        self.pad(digits)
        self.zero = old

    def truncate(self, s: str) -> str:
        if self.prec_present and self.prec < len(s):
            return s[:self.prec]
        return s

    def fmt_s(self, s: str) -> None:
        self.pad(self.truncate(s))

    def fmt_sx(self, s: str, upper: bool) -> None:
        b = go_bytes(s)
        length = len(b)
        if self.prec_present and self.prec < length:
            length = self.prec
        width = 2 * length
        if width > 0:
            if self.space:
                if self.sharp:
                    width *= 2
                width += length - 1
            elif self.sharp:
                width += 2
        else:
            if self.wid_present:
                self.write_padding(self.wid)
            return
        if self.wid_present and self.wid > width and not self.minus:
            self.write_padding(self.wid - width)
        x = "0X" if upper else "0x"
        hexd = _LOWERHEX.upper() if upper else _LOWERHEX
        out = [x] if self.sharp else []
        for i in range(length):
            if self.space and i > 0:
                out.append(" ")
                if self.sharp:
                    out.append(x)
            c = b[i]
            out.append(hexd[c >> 4] + hexd[c & 15])
        self.buf.append("".join(out))
        if self.wid_present and self.wid > width and self.minus:
            self.write_padding(self.wid - width)

    def fmt_q(self, s: str) -> None:
        s = self.truncate(s)
        if self.sharp and can_backquote(s):
            self.pad("`" + s + "`")
            return
        self.pad(quote(s, ascii_only=self.plus))

    def fmt_c(self, c: int) -> None:
        if c > 0x10FFFF or 0xD800 <= c <= 0xDFFF or c < 0:
            c = 0xFFFD
        self.pad(chr(c))

    def fmt_qc(self, c: int) -> None:
        if c > 0x10FFFF or c < 0:
            c = 0xFFFD
        self.pad(quote_rune(c, ascii_only=self.plus))

    def fmt_float_raw(self, v: float, verb: str, prec: int) -> None:
        if self.prec_present:
            prec = self.prec
        num = format_float(v, verb, prec)
        if num[0] not in "-+":
            num = "+" + num
        if self.space and num[0] == "+" and not self.plus:
            num = " " + num[1:]
        if num[1] in "IN":
            old = self.zero
            self.zero = False
            if num[1] == "N" and not self.space and not self.plus:
                num = num[1:]
            self.pad(num)
            self.zero = old
            return
        if self.sharp and verb != "b":
            digits = 0
            if verb in "vgGx":
                digits = prec
                if digits == -1:
                    digits = 6
            tail = ""
            has_point = False
            saw_nonzero = False
            body = num
            i = 1
            while i < len(body):
                ch = body[i]
                if ch == ".":
                    has_point = True
                elif ch in "pP" or (ch in "eE" and verb not in "xX"):
                    tail = body[i:]
                    body = body[:i]
                    break
                else:
                    if ch != "0":
                        saw_nonzero = True
                    if saw_nonzero:
                        digits -= 1
                i += 1
            if not has_point:
                if len(body) == 2 and body[1] == "0":
                    digits -= 1
                body += "."
            if digits > 0:
                body += "0" * digits
            num = body + tail
        if self.plus or num[0] != "+":
            if self.zero and not self.minus and self.wid_present and self.wid > len(num):
                self.buf.append(num[0])
                self.write_padding(self.wid - len(num))
                self.buf.append(num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    # ---- print.go

    def bad_verb(self, arg: Any, verb: str) -> None:
        self.erroring = True
        self.buf.append("%!" + verb + "(")
        if arg is not None:
            self.buf.append(type_name(arg) + "=")
            self.print_arg(arg, "v")
        else:
            self.buf.append(_NIL_ANGLE)
        self.buf.append(")")
        self.erroring = False

    def fmt_bool(self, v: bool, verb: str) -> None:
        if verb in "tv":
            self.fmt_boolean(v)
        else:
            self.bad_verb(v, verb)

    def fmt_0x64(self, v: int, leading0x: bool) -> None:
        sharp = self.sharp
        self.sharp = leading0x
        self.fmt_integer(v, 16, False, "v", False)
        self.sharp = sharp

    def fmt_int(self, arg: Any, v: int, signed: bool, verb: str) -> None:
        if verb == "v":
            if self.sharp_v and not signed:
                self.fmt_0x64(v, True)
            else:
                self.fmt_integer(v, 10, signed, verb, False)
        elif verb == "d":
            self.fmt_integer(v, 10, signed, verb, False)
        elif verb == "b":
            self.fmt_integer(v, 2, signed, verb, False)
        elif verb in "oO":
            self.fmt_integer(v, 8, signed, verb, False)
        elif verb == "x":
            self.fmt_integer(v, 16, signed, verb, False)
        elif verb == "X":
            self.fmt_integer(v, 16, signed, verb, True)
        elif verb == "c":
            self.fmt_c(v if v >= 0 else 0x110000)
        elif verb == "q":
            self.fmt_qc(v if v >= 0 else 0x110000)
        elif verb == "U":
            self.fmt_unicode(v if v >= 0 else v & ((1 << 64) - 1))
        else:
            self.bad_verb(arg, verb)

    def fmt_float(self, arg: Any, v: float, verb: str) -> None:
        if verb == "v":
            self.fmt_float_raw(v, "g", -1)
        elif verb in "bgGxX":
            self.fmt_float_raw(v, verb, -1)
        elif verb in "feE":
            self.fmt_float_raw(v, verb, 6)
        elif verb == "F":
            self.fmt_float_raw(v, "f", 6)
        else:
            self.bad_verb(arg, verb)

    def fmt_complex(self, arg: Any, v: complex, verb: str) -> None:
        if verb in "vbgGxXfFeE":
            old_plus = self.plus
            self.buf.append("(")
            self.fmt_float(arg, v.real, verb)
            self.plus = True
            self.fmt_float(arg, v.imag, verb)
            self.buf.append("i)")
            self.plus = old_plus
        else:
            self.bad_verb(arg, verb)

    def fmt_string(self, arg: Any, v: str, verb: str) -> None:
        if verb == "v":
            if self.sharp_v:
                self.fmt_q(v)
            else:
                self.fmt_s(v)
        elif verb == "s":
            self.fmt_s(v)
        elif verb == "x":
            self.fmt_sx(v, False)
        elif verb == "X":
            self.fmt_sx(v, True)
        elif verb == "q":
            self.fmt_q(v)
        else:
            self.bad_verb(arg, verb)

    def fmt_pointer(self, value: Any, verb: str) -> None:
        k = kind(value)
        if k not in ("ptr", "map", "slice", "func", "chan"):
            self.bad_verb(value, verb)
            return
        u = 0 if is_nil_value(value) else _address(value)
        if verb == "v":
            if self.sharp_v:
                self.buf.append("(" + type_name(value) + ")(")
                if u == 0:
                    self.buf.append("nil")
                else:
                    self.fmt_0x64(u, True)
                self.buf.append(")")
            elif u == 0:
                self.pad(_NIL_ANGLE)
            else:
                self.fmt_0x64(u, not self.sharp)
        elif verb == "p":
            self.fmt_0x64(u, not self.sharp)
        elif verb in "bodxX":
            self.fmt_int(value, u, False, verb)
        else:
            self.bad_verb(value, verb)

    def handle_methods(self, arg: Any, verb: str) -> bool:
        if self.erroring:
            return False
        if verb == "w":
            self.bad_verb(arg, verb)
            return True
        if self.sharp_v or verb not in "vsxXq":
            return False
        methods = getattr(arg, "go_methods", None)
        if not methods:
            return False
        m = methods.get("Error") or methods.get("String")
        if m is None or m.params or m.results != 1:
            return False
        if isinstance(arg, NilPointer) and not m.nil_safe:
            # Go: the method panics on its nil receiver and fmt prints <nil>.
            self.pad(_NIL_ANGLE)
            return True
        self.fmt_string(arg, m.fn(arg), verb)
        return True

    def print_arg(self, arg: Any, verb: str) -> None:
        if arg is None:
            if verb in "Tv":
                self.pad(_NIL_ANGLE)
            else:
                self.bad_verb(None, verb)
            return
        if verb == "T":
            self.fmt_s(type_name(arg))
            return
        if verb == "p":
            self.fmt_pointer(arg, "p")
            return
        t = type(arg)
        if t is str:
            self.fmt_string(arg, arg, verb)
        elif t is bool:
            self.fmt_bool(arg, verb)
        elif t is int:
            self.fmt_int(arg, arg, True, verb)
        elif t is float:
            self.fmt_float(arg, arg, verb)
        elif isinstance(arg, GoInt):
            self.fmt_int(arg, int(arg), not arg.unsigned, verb)
        elif t is complex:
            self.fmt_complex(arg, arg, verb)
        elif not self.handle_methods(arg, verb):
            self.print_value(arg, verb, 0)

    def print_value(self, value: Any, verb: str, depth: int) -> None:
        if depth > 0 and value is not None and self.handle_methods(value, verb):
            return
        if value is None:
            if depth == 0:
                self.buf.append("<invalid reflect.Value>")
            elif self.sharp_v:
                self.buf.append("interface {}(nil)")
            elif verb == "v":
                self.buf.append(_NIL_ANGLE)
            else:
                self.bad_verb(None, verb)
            return
        t = type(value)
        if t is str or t is bool or t is int or t is float or t is complex \
                or isinstance(value, GoInt):
            self.print_arg(value, verb)
            return
        if isinstance(value, dict):
            sharp_v = self.sharp_v
            if sharp_v:
                self.buf.append(type_name(value))
                if is_nil_value(value):
                    self.buf.append("(nil)")
                    return
                self.buf.append("{")
            else:
                self.buf.append("map[")
            for i, key in enumerate(sorted(value)):
                if i > 0:
                    self.buf.append(", " if sharp_v else " ")
                self.print_value(key, verb, depth + 1)
                self.buf.append(":")
                self.print_value(value[key], verb, depth + 1)
            self.buf.append("}" if sharp_v else "]")
            return
        if isinstance(value, (list, tuple)):
            if self.sharp_v:
                self.buf.append(type_name(value))
                if is_nil_value(value):
                    self.buf.append("(nil)")
                    return
                self.buf.append("{")
                for i, item in enumerate(value):
                    if i > 0:
                        self.buf.append(", ")
                    self.print_value(item, verb, depth + 1)
                self.buf.append("}")
            else:
                self.buf.append("[")
                for i, item in enumerate(value):
                    if i > 0:
                        self.buf.append(" ")
                    self.print_value(item, verb, depth + 1)
                self.buf.append("]")
            return
        if isinstance(value, _Deref):
            self._print_struct(value.ptr, value.ptr.go_type.lstrip("*"), verb, depth)
            return
        if isinstance(value, GoStruct):
            if not value.go_type.startswith("*"):
                self._print_struct(value, value.go_type, verb, depth)
                return
            if depth == 0:
                self.buf.append("&")
                self._print_struct(value, value.go_type[1:], verb, depth + 1)
                return
            self.fmt_pointer(value, verb)
            return
        if isinstance(value, NilPointer):
            self.fmt_pointer(value, verb)
            return
        if callable(value):
            self.fmt_pointer(value, verb)
            return
        self.buf.append("?" + type_name(value) + "?")

    def _print_struct(self, s: GoStruct, tname: str, verb: str, depth: int) -> None:
        if self.sharp_v:
            self.buf.append(tname)
        self.buf.append("{")
        for i, name in enumerate(s.go_fields):
            if i > 0:
                self.buf.append(", " if self.sharp_v else " ")
            if self.plus_v or self.sharp_v:
                self.buf.append(name + ":")
            self.print_value(s.go_field(name), verb, depth + 1)
        self.buf.append("}")

    # ---- Printf

    def do_printf(self, fmt: str, a: list[Any]) -> None:
        end = len(fmt)
        arg_num = 0
        after_index = False
        self.reordered = False
        i = 0
        while i < end:
            self.good_arg_num = True
            lasti = i
            i = fmt.find("%", i)
            if i < 0:
                i = end
            if i > lasti:
                self.buf.append(fmt[lasti:i])
            if i >= end:
                break
            i += 1
            self.clear_flags()
            simple_done = False
            while i < end:
                c = fmt[i]
                if c == "#":
                    self.sharp = True
                elif c == "0":
                    self.zero = True
                elif c == "+":
                    self.plus = True
                elif c == "-":
                    self.minus = True
                elif c == " ":
                    self.space = True
                else:
                    if "a" <= c <= "z" and arg_num < len(a):
                        if c in "vw":
                            self.sharp_v, self.sharp = self.sharp, False
                            self.plus_v, self.plus = self.plus, False
                        self.print_arg(a[arg_num], c)
                        arg_num += 1
                        i += 1
                        simple_done = True
                    break
                i += 1
            if simple_done:
                continue
            arg_num, i, after_index = self._arg_number(arg_num, fmt, i, len(a))
            if i < end and fmt[i] == "*":
                i += 1
                self.wid, self.wid_present, arg_num = _int_from_arg(a, arg_num)
                if not self.wid_present:
                    self.buf.append("%!(BADWIDTH)")
                if self.wid < 0:
                    self.wid = -self.wid
                    self.minus = True
                    self.zero = False
                after_index = False
            else:
                self.wid, self.wid_present, i = _parsenum(fmt, i, end)
                if after_index and self.wid_present:
                    self.good_arg_num = False
            if i + 1 < end and fmt[i] == ".":
                i += 1
                if after_index:
                    self.good_arg_num = False
                arg_num, i, after_index = self._arg_number(arg_num, fmt, i, len(a))
                if i < end and fmt[i] == "*":
                    i += 1
                    self.prec, self.prec_present, arg_num = _int_from_arg(a, arg_num)
                    if self.prec < 0:
                        self.prec = 0
                        self.prec_present = False
                    if not self.prec_present:
                        self.buf.append("%!(BADPREC)")
                    after_index = False
                else:
                    self.prec, self.prec_present, i = _parsenum(fmt, i, end)
                    if not self.prec_present:
                        self.prec = 0
                        self.prec_present = True
            if not after_index:
                arg_num, i, after_index = self._arg_number(arg_num, fmt, i, len(a))
            if i >= end:
                self.buf.append("%!(NOVERB)")
                break
            verb = fmt[i]
            i += 1
            if verb == "%":
                self.buf.append("%")
            elif not self.good_arg_num:
                self.buf.append("%!" + verb + "(BADINDEX)")
            elif arg_num >= len(a):
                self.buf.append("%!" + verb + "(MISSING)")
            else:
                if verb in "vw":
                    self.sharp_v, self.sharp = self.sharp, False
                    self.plus_v, self.plus = self.plus, False
                self.print_arg(a[arg_num], verb)
                arg_num += 1
        if not self.reordered and arg_num < len(a):
            self.clear_flags()
            self.buf.append("%!(EXTRA ")
            for j, arg in enumerate(a[arg_num:]):
                if j > 0:
                    self.buf.append(", ")
                if arg is None:
                    self.buf.append(_NIL_ANGLE)
                else:
                    self.buf.append(type_name(arg) + "=")
                    self.print_arg(arg, "v")
            self.buf.append(")")

    def _arg_number(self, arg_num: int, fmt: str, i: int, num_args: int) -> tuple[int, int, bool]:
        if len(fmt) <= i or fmt[i] != "[":
            return arg_num, i, False
        self.reordered = True
        index, wid, ok = _parse_arg_number(fmt[i:])
        if ok and 0 <= index < num_args:
            return index, i + wid, True
        self.good_arg_num = False
        return arg_num, i + wid, ok


def _too_large(x: int) -> bool:
    return x > 1_000_000 or x < -1_000_000


def _parsenum(s: str, start: int, end: int) -> tuple[int, bool, int]:
    if start >= end:
        return 0, False, end
    num = 0
    isnum = False
    i = start
    while i < end and "0" <= s[i] <= "9":
        if _too_large(num):
            return 0, False, end
        num = num * 10 + ord(s[i]) - 48
        isnum = True
        i += 1
    return num, isnum, i


def _parse_arg_number(fmt: str) -> tuple[int, int, bool]:
    if len(fmt) < 3:
        return 0, 1, False
    for i in range(1, len(fmt)):
        if fmt[i] == "]":
            width, ok, newi = _parsenum(fmt, 1, i)
            if not ok or newi != i:
                return 0, i + 1, False
            return width - 1, i + 1, True
    return 0, 1, False


def _int_from_arg(a: list[Any], arg_num: int) -> tuple[int, bool, int]:
    num, is_int, new = 0, False, arg_num
    if arg_num < len(a):
        v = a[arg_num]
        if type(v) is int or isinstance(v, GoInt):
            num, is_int = int(v), True
        new = arg_num + 1
        if _too_large(num):
            num, is_int = 0, False
    return num, is_int, new


def sprintf(fmt: str, *args: Any) -> str:
    """Go's ``fmt.Sprintf``."""
    p = _Printer()
    p.do_printf(fmt, list(args))
    return "".join(p.buf)


def sprint(*args: Any) -> str:
    """Go's ``fmt.Sprint``: a space between operands when neither is a string."""
    p = _Printer()
    prev_string = False
    for n, arg in enumerate(args):
        is_string = type(arg) is str
        if n > 0 and not is_string and not prev_string:
            p.buf.append(" ")
        p.print_arg(arg, "v")
        prev_string = is_string
    return "".join(p.buf)


def sprintln(*args: Any) -> str:
    """Go's ``fmt.Sprintln``."""
    p = _Printer()
    for n, arg in enumerate(args):
        if n > 0:
            p.buf.append(" ")
        p.print_arg(arg, "v")
    p.buf.append("\n")
    return "".join(p.buf)


def print_value(v: Any) -> str:
    """``fmt.Sprint(v)`` of one value, the common types without a printer."""
    t = type(v)
    if t is str:
        return v  # type: ignore[no-any-return]
    if t is int:
        return str(v)
    if t is float:
        return format_float_v(v)
    if t is bool:
        return "true" if v else "false"
    if isinstance(v, GoInt):
        return str(int(v))
    return sprint(v)
