"""hostctl's JSON without the json package reads and writes exactly what json does."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostd import jsontext

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


@given(VALUES)
def test_written_as_json_writes_it_with_indent_2(value: object) -> None:
    assert jsontext.dumps_indented(value) == json.dumps(value, indent=2)


@given(VALUES)
def test_read_as_json_reads_it(value: object) -> None:
    for text in (json.dumps(value), json.dumps(value, indent=2), f" \n{json.dumps(value)}\n"):
        read = jsontext.loads(text)
        assert json.dumps(read) == json.dumps(json.loads(text))  # NaN != NaN: compared as text


def test_keys_and_tuples_as_json_writes_them() -> None:
    value = {7: (1.5, math.inf), None: [], True: {}, 2.5: "é\n\u2028", "k": -math.inf}
    assert jsontext.dumps_indented(value) == json.dumps(value, indent=2)


@pytest.mark.parametrize("text", ["", "{", '{"a": 1} x', "[1,]", "nul"])
def test_what_json_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        jsontext.loads(text)
