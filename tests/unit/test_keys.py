"""The keys table drives the model, validation and the README: they cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from hostd import config as cfg
from hostd import keys
from hostd.steps import ALL_STEPS

README = Path(__file__).parents[2] / "README.md"
MARKER = "<!-- generated from hostd/keys.py: tests/unit/test_keys.py holds it equal -->\n"


def test_readme_key_table_is_the_table() -> None:
    text = README.read_text()
    assert MARKER in text
    table = text.split(MARKER, 1)[1].split("\n\n", 1)[0] + "\n"
    assert table == keys.readme_table(), "README's key table differs from keys.TABLE; it should read:\n" + (
        keys.readme_table()
    )


def test_every_key_is_a_field_of_the_model_and_back() -> None:
    assert set(cfg.Config.__slots__) == {key.attribute for key in keys.TABLE} | {"uuid_generated"}
    assert list(cfg.Config().values_by_key()) == [key.name for key in keys.TABLE]
    for key in keys.TABLE:
        assert getattr(cfg.Config(), key.attribute) == key.default, key.name


def test_names_pointers_and_steps() -> None:
    assert len(keys.BY_NAME) == len(keys.TABLE)
    assert keys.BY_NAME["os.dns.mode"].pointer == "/os/dns/mode"
    step_names = {step.NAME for step in ALL_STEPS}
    assert {name for key in keys.TABLE for name in key.steps} <= step_names
    for step in ALL_STEPS:
        assert keys.read_by(step.NAME) <= step.KEYS, step.NAME


def test_the_defaults_are_of_their_forms() -> None:
    for key in keys.TABLE:
        if key.default is not None:
            assert key.form.parse(key.form.to_json(key.default)) == key.default, key.name


def test_the_journal_size_range_is_what_the_readme_says() -> None:
    """The drift that was: README said 512K, the validator 1M (journald raises anything smaller to 1M)."""
    [row] = [line for line in keys.readme_table().splitlines() if "`os.journal.runtimeMaxUse`" in line]
    assert re.search(r"`1M`…`64G`", row)
    form = keys.BY_NAME["os.journal.runtimeMaxUse"].form
    assert form.parse("1M") == "1M"
    for outside in ("1023K", "65G"):
        try:
            form.parse(outside)
        except keys.Invalid as invalid:
            assert "1M..64G" in str(invalid)
        else:
            raise AssertionError(outside)
