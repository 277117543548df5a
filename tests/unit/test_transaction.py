"""Safe apply's trial state: the values the API shows, confirmation and its timeout."""

from __future__ import annotations

import asyncio

from hostd.transaction import NO_ROLLBACK, Rollback, Transaction, TransactionState


def test_states_and_rollback_as_the_api_shows_them() -> None:
    assert [state.value for state in TransactionState] == ["", "probing", "awaiting-confirm"]
    assert NO_ROLLBACK.as_tuple() == (0.0, "", "", "") and NO_ROLLBACK.as_dict() is None
    rollback = Rollback(1.5, "abc", "probe failed", "no DNS")
    assert rollback.as_dict() == {"when": 1.5, "generation": "abc", "reason": "probe failed", "evidence": "no DNS"}


def test_confirm_only_what_waits_for_it() -> None:
    async def scenario() -> list[object]:
        transaction = Transaction()
        refused = transaction.confirm()
        verdicts = []
        judged = asyncio.Event()

        async def judge() -> None:
            verdicts.append(await transaction.confirmation(5))
            judged.set()

        transaction.begin(TransactionState.AWAITING_CONFIRM, judge())
        await asyncio.sleep(0)
        accepted = transaction.confirm()
        await asyncio.wait_for(judged.wait(), 5)
        return [refused, accepted, verdicts[0].passed]

    assert asyncio.run(scenario()) == [False, True, True]


def test_unconfirmed_within_the_timeout_fails() -> None:
    verdict = asyncio.run(Transaction().confirmation(0.01))
    assert not verdict.passed and verdict.reason == "not confirmed within 0.01 s"


def test_probe_evidence_names_the_connectivity_uri_without_showing_it() -> None:
    """The URI may carry user:password (keys.SECRET): LastRollback, NotApplied and the log never show it."""
    from types import SimpleNamespace

    from hostd import probe

    settings = probe.ProbeSettings(None, ("127.0.0.1", 9), "http://user:hunter2@127.0.0.1:9/check")
    evidence = asyncio.run(probe.check_once(SimpleNamespace(attached=False), settings))  # type: ignore[arg-type]
    assert len(evidence) == 1 and evidence[0].startswith("the connectivity URI: unreachable")
    assert "hunter2" not in evidence[0]


def test_the_trial_record_survives_as_written_and_a_torn_one_is_no_trial(tmp_path) -> None:
    from hostd.transaction import TrialRecord

    path = tmp_path / "hostd" / "trial.json"
    assert TrialRecord.read(path) is None
    record = TrialRecord("abc", "try", "good", 1.5)
    record.write(path)
    assert TrialRecord.read(path) == record and path.stat().st_mode & 0o777 == 0o600
    path.write_text('{"candidate": "abc"')
    assert TrialRecord.read(path) is None
    path.write_text('{"unknown": 1}')
    assert TrialRecord.read(path) is None
    TrialRecord.clear(path)
    TrialRecord.clear(path)  # already gone: nothing to do
    assert not path.exists()
