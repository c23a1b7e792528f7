"""JSON read and written by :mod:`json`'s own C accelerator, without importing :mod:`json`.

Importing json compiles six regular expressions (~1.5 ms): a tenth of what ``ls --json`` may
take to start. :func:`loads` and :func:`encoder` run the C scanner and encoder that json runs,
set up as json sets them up, on the plain path only: a document read whole, values written.
Anything else (an error to report, a byte-order mark, a Python without the accelerator) is
handed to json itself, so every result and every exception is json's; a test compares both.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (typing is not imported at run time: start-up)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - a Python without json's C accelerator (then json)
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"  # = json.decoder.WHITESPACE


class _Decoder:
    """What the C scanner reads of a ``json.JSONDecoder()``: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__


_scan: Any = _json.make_scanner(_Decoder()) if _json is not None else None


def loads(text: str) -> Any:
    """``json.loads(text)`` for a str."""
    if _scan is not None and type(text) is str and not text.startswith("\ufeff"):
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            obj, end = _scan(text, start)
        except Exception:  # an error, reported below by json itself
            pass
        else:
            if end == len(text) or not text[end:].strip(_WHITESPACE):
                return obj
    import json

    return json.loads(text)


def _type_error(o: object) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def encoder(*, allow_nan: bool = True, separators: tuple[str, str] | None = None
            ) -> Callable[[Any], str]:
    """``json.JSONEncoder(allow_nan=allow_nan, separators=separators).encode``."""
    item_separator, key_separator = separators or (", ", ": ")
    if _json is None or getattr(_json, "make_encoder", None) is None:  # pragma: no cover
        import json

        return json.JSONEncoder(allow_nan=allow_nan, separators=separators).encode
    make, quote = _json.make_encoder, _json.encode_basestring_ascii

    def encode(o: Any) -> str:
        if isinstance(o, str):
            return quote(o)  # type: ignore[no-any-return]
        try:  # (a fresh markers dict each call, as json's: it finds circular references)
            return "".join(make({}, _type_error, quote, None, key_separator, item_separator,
                                False, False, allow_nan)(o, 0))
        except Exception:  # json raises it again, with its own words
            import json

            return json.JSONEncoder(allow_nan=allow_nan, separators=separators).encode(o)

    return encode


if _json is not None:
    encode_basestring_ascii: Callable[[str], str] = _json.encode_basestring_ascii
else:  # pragma: no cover
    import json.encoder

    encode_basestring_ascii = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
