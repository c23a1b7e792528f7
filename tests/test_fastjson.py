"""store.fastjson reads and writes exactly what json does: results, and the exceptions."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanochat_ckpt_tui.store import fastjson

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(scalars, lambda inner: st.lists(inner) | st.tuples(inner, inner)
                      | st.dictionaries(st.text() | st.integers() | st.booleans(), inner),
                      max_leaves=20)


def _outcome(fn: Any, arg: Any) -> tuple[str, Any]:
    try:
        got = fn(arg)
    except Exception as e:
        return ("raised", (type(e), str(e)))
    return ("returned", json.dumps(got, sort_keys=True, default=repr) if not isinstance(
        got, float) or not math.isnan(got) else "nan")


def _same_loads(text: str) -> None:
    assert _outcome(fastjson.loads, text) == _outcome(json.loads, text), text


@given(values)
@settings(max_examples=300, deadline=None)
def test_loads_reads_what_json_writes(v: Any) -> None:
    for text in (json.dumps(v), json.dumps(v, indent=2), f" \n{json.dumps(v)}\t\r ",
                 json.dumps(v, ensure_ascii=False)):
        _same_loads(text)


@given(st.text(alphabet='{}[]",:0123456789.eE+-tfnulaINfiy \n\t\\x\u00e9\ufeff', max_size=30))
@settings(max_examples=1000, deadline=None)
def test_loads_of_anything_is_json_loads(text: str) -> None:
    """Broken documents too: the same error, with json's message and position."""
    _same_loads(text)


@pytest.mark.parametrize("text", [
    "", " ", "{", '{"a": 1} x', '{"a": 1}{}', "\ufeff{}", "NaN", "-Infinity", "[1, 2,]",
    '{"a": NaN, "b": Infinity}', '"\\ud800"', "1" * 5000, "[" * 100_000 + "]" * 100_000,
    '{"a": 1, "a": 2}', "0" + " " * 10, '{"step": 3, "model_config": [1]}',
])
def test_loads_edge_cases(text: str) -> None:
    _same_loads(text)


class _Odd:
    pass


@given(values)
@settings(max_examples=300, deadline=None)
def test_encoder_writes_what_json_writes(v: Any) -> None:
    for kw in ({}, {"allow_nan": False}, {"separators": (",", ":")}):
        fast, slow = fastjson.encoder(**kw), json.JSONEncoder(**kw).encode
        assert _outcome(fast, v) == _outcome(slow, v)


@pytest.mark.parametrize("v", [math.nan, [math.inf], {"a": -math.inf}, _Odd(), {(1, 2): 3},
                               "é\"\\", [1, _Odd()], {1.5: "x", None: True}])
def test_encoder_edge_cases(v: Any) -> None:
    for kw in ({}, {"allow_nan": False}, {"separators": (",", ":")}):
        fast, slow = fastjson.encoder(**kw), json.JSONEncoder(**kw).encode
        assert _outcome(fast, v) == _outcome(slow, v)


def test_encoder_finds_circular_references_as_json_does() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        fastjson.encoder()(loop)


def test_encode_basestring_ascii_is_jsons() -> None:
    from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]

    for text in ("", "plain", 'a "quote" \\ é \u2028 \n \x00 \U0001f600'):
        assert fastjson.encode_basestring_ascii(text) == encode_basestring_ascii(text)


def test_without_json_imported_errors_are_still_jsons() -> None:
    """In a fresh process json is not imported (the point): the C scanner cannot make its
    error then, and json is asked instead."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nfrom nanochat_ckpt_tui.store import fastjson\n"
            "got = fastjson.loads('{\"a\": [1, NaN]}')\n"
            "assert got['a'][0] == 1 and got['a'][1] != got['a'][1]\n"
            "assert 'json' not in sys.modules\n"
            "try:\n    fastjson.loads('{\"a\" 1}')\nexcept ValueError as e:\n"
            "    print(type(e).__module__, type(e).__name__, e)\n")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ("json.decoder JSONDecodeError Expecting ':' delimiter: "
                                   "line 1 column 6 (char 5)")
