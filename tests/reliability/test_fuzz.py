"""Fuzzing hostctl with hostile config.json and boot files; see fuzz.py for the properties.

CI runs a bounded number of examples per property.  The long run, 100,000 inputs in all (the two
properties can run side by side with -k config and -k boot):

    HOSTD_FUZZ_EXAMPLES=50000 python3 -m pytest tests/reliability/test_fuzz.py --hypothesis-show-statistics
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from .fuzz import BootInput, Workspace, boot_file_inputs, check_example, config_inputs

EXAMPLES = int(os.environ.get("HOSTD_FUZZ_EXAMPLES", "200"))
LONG_RUN = "HOSTD_FUZZ_EXAMPLES" in os.environ
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG_RUN,  # CI sees the same inputs every time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
pytestmark = pytest.mark.timeout(0 if LONG_RUN else 120)


@pytest.fixture(scope="module")
def workspace() -> Iterator[Workspace]:
    space = Workspace()
    yield space
    space.close()


@FUZZ_SETTINGS
@given(given_input=config_inputs())
def test_hostile_config_json(workspace: Workspace, given_input: BootInput) -> None:
    check_example(workspace, given_input)


@FUZZ_SETTINGS
@given(given_input=boot_file_inputs())
def test_hostile_boot_files(workspace: Workspace, given_input: BootInput) -> None:
    check_example(workspace, given_input)
