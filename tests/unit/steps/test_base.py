"""The steps' typed results: statuses and report entries serialise to the strings the API has always
shown; a live effect's outcome is merged into its step's result."""

from __future__ import annotations

import json

from hostd.steps.base import Change, FileEntry, FileStatus, Outcome, StepResult, StepStatus


def test_statuses_are_the_api_strings() -> None:
    assert [s.value for s in StepStatus] == ["ok", "changed", "planned", "failed"]
    assert json.dumps({"status": StepStatus.CHANGED}) == '{"status": "changed"}'
    assert FileEntry("home", FileStatus.IMPORTED).as_dict() == {"name": "home", "status": "imported", "reason": ""}


def test_merge_moves_made_changes_out_of_pending() -> None:
    mount, other = Change("mount", "/etc/hostname", "/mnt/state/x"), Change("mount", "/var/log/journal", "/mnt/data/y")
    result = StepResult("state", StepStatus.OK, pending=[mount, other], report=[FileEntry("a", FileStatus.KEPT)])
    result.merge(Outcome(made=[mount], converged=[other], problems=["p"], verdicts={"a": "loaded"}, record=("x",)))
    assert result.pending == [] and result.changes == [mount] and result.status == StepStatus.CHANGED
    assert result.problems == ["p"] and result.record == ("x",)
    assert result.as_dict()["report"] == [{"name": "a", "status": "kept", "reason": "", "nm": "loaded"}]


def test_an_effect_without_a_record_keeps_the_plans() -> None:
    result = StepResult("dns", StepStatus.OK, record="given")
    result.merge(Outcome())
    assert result.record == "given" and result.status == StepStatus.OK
