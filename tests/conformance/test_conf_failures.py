"""sys_invocation's last_failure columns, on the embedded runtime and on restate-server 1.7.12: the text
`[<code> <Restate's name for it>] <message>` followed by the SDK's stacktrace, the documentation code
(RT0007 for an SDK error, RT0016 journal mismatch, RT0017/RT0018 a call Restate cannot route), and the
related command as the SDK names it. Restate shows the failure only while the invocation runs or backs
off without having made progress since; rt.invocations() keeps it for the notebook (see the README's
deliberate differences), the HTTP door's /query follows Restate."""

from __future__ import annotations

import json
from typing import Any

import conformance_services as S
from conformance_targets import CallFailed, Target, fresh, scenario

TRACEBACK = "\nTraceback (most recent call last):\n"
NOTHING = {"last_failure_related_command_index": None, "last_failure_related_command_name": None,
           "last_failure_related_command_type": None}


async def _failing(t: Target, handler: str, attempts: int = 1) -> tuple[str, dict[str, Any]]:
    """Send FailureFormats/<handler> and wait until `attempts` attempts failed and it backs off; its columns."""
    x = fresh()
    sent = await t.send("FailureFormats", handler, x)

    async def backing_off() -> bool:
        return S.ATTEMPTS[x] >= attempts and await t.status(sent.invocation_id) == "backing-off"
    await t.until(backing_off, f"{handler} backing off after {attempts} attempt(s)")
    return x, await t.last_failure(sent.invocation_id)


def _with_traceback(text: str, head: str, tail: str) -> bool:
    return text.startswith(head + TRACEBACK) and text.endswith(tail)


@scenario
async def test_a_plain_exception_shows_as_500_internal_with_its_traceback_and_rt0007(t):
    x, cols = await _failing(t, "plain")
    assert _with_traceback(cols["last_failure"], f"[500 Internal] ValueError('plain failure {x}')",
                           f"ValueError: plain failure {x}\n"), cols["last_failure"]
    assert 'in ff_plain\n    raise ValueError(f"plain failure {x}")\n' in cols["last_failure"]
    assert cols["last_failure_error_code"] == "RT0007"
    assert {k: cols[k] for k in NOTHING} == NOTHING


@scenario
async def test_a_failing_run_names_its_command_index_name_and_type(t):
    _x, cols = await _failing(t, "runFails")
    assert _with_traceback(cols["last_failure"], "[500 Internal] ValueError('card declined')",
                           "ValueError: card declined\n"), cols["last_failure"]
    assert cols["last_failure_error_code"] == "RT0007"
    assert (cols["last_failure_related_command_index"], cols["last_failure_related_command_name"],
            cols["last_failure_related_command_type"]) == (2, "charge", "Run")  # Input 0, run 'reserve' 1


@scenario
async def test_a_journal_mismatch_shows_as_570_with_rt0016_and_the_command_index(t):
    _x, cols = await _failing(t, "mismatch", attempts=2)
    assert cols == {
        "last_failure": (
            "[570 Journal mismatch] Found a mismatch between the code paths taken during the previous execution "
            "and the paths taken during this execution.\nThis typically happens when some parts of the code are "
            "non-deterministic.\n - The previous execution ran and recorded the following: 'run' (index '1')\n"
            " - The current execution attempts to perform the following: 'sleep'"),
        "last_failure_error_code": "RT0016",
        # Restate names the type of a related command only for the kinds its older journal had (not Sleep)
        "last_failure_related_command_index": 1, "last_failure_related_command_name": None,
        "last_failure_related_command_type": None}


@scenario
async def test_a_call_to_a_missing_handler_shows_rt0018(t):
    _x, cols = await _failing(t, "callMissing")
    assert cols == {"last_failure": (
        "[500 Internal] cannot process command Command: Call (command index 1) because of a failed precondition: "
        "the service handler Nowhere/hello was not found"), "last_failure_error_code": "RT0018", **NOTHING}


@scenario
async def test_a_key_sent_to_a_service_shows_rt0017(t):
    _x, cols = await _failing(t, "keyToService")
    assert cols == {"last_failure": (
        "[500 Internal] cannot process command Command: Call (command index 1) because of a failed precondition: "
        "a key was provided, but the callee 'FailureFormats' is a Service. Only VirtualObjects or Workflows accept "
        "a key"), "last_failure_error_code": "RT0017", **NOTHING}


@scenario
async def test_a_scoped_call_refused_by_the_sdk_shows_573_unsupported_feature_with_rt0007(t):
    k = fresh()
    sent = await t.send("V7Features", "scopedCall", key=k)

    async def backing_off() -> bool:
        return S.ATTEMPTS[k] >= 1 and await t.status(sent.invocation_id) == "backing-off"
    await t.until(backing_off, "scopedCall backing off")
    cols = await t.last_failure(sent.invocation_id)
    assert cols == {"last_failure": (
        "[573 Unsupported feature] Feature 'scope' is not supported by the negotiated protocol version "
        "'application/vnd.restate.invocation.v6', the minimum required version is "
        "'application/vnd.restate.invocation.v7'"), "last_failure_error_code": "RT0007", **NOTHING}
    await t.kill(sent.invocation_id)


@scenario
async def test_restate_forgets_the_failure_once_the_invocation_ends_pauses_or_moves_on(t):
    """A later attempt that journals a new command, the end of the invocation (here a TerminalError), or a
    pause clear the columns on a real server (and the door's /query); rt.invocations() keeps the failure."""
    x = fresh()
    paused = (await t.send("FailureFormats", "pauses", x)).invocation_id
    await t.eventually_equal(lambda: t.status(paused), "paused", "pauses after its two attempts")
    cols = await t.last_failure(paused)
    if t.name == "embedded":
        assert _with_traceback(cols["last_failure"], "[500 Internal] ValueError('attempt 2 fails')",
                               "ValueError: attempt 2 fails\n"), cols
    else:
        assert cols == {"last_failure": None, "last_failure_error_code": None, **NOTHING}, cols
    await t.kill(paused)
    ids = {}
    for handler in ("failThenSleep", "failThenTerminal"):
        x = fresh()
        ids[handler] = (await t.send("FailureFormats", handler, x)).invocation_id

        async def second_attempt(x: str = x) -> bool:
            return S.ATTEMPTS[x] >= 2
        await t.until(second_attempt, f"{handler} attempted twice")
    try:
        await t.attach(ids["failThenTerminal"])
        raise AssertionError("failThenTerminal should fail")
    except CallFailed as exc:
        assert (exc.code, exc.message) == (418, "the second gives up")
    cleared = {"last_failure": None, "last_failure_error_code": None, **NOTHING}
    for handler, inv in ids.items():
        if t.name == "embedded":
            cols = await t.last_failure(inv)
            assert _with_traceback(cols["last_failure"], "[500 Internal] ValueError('the first attempt fails')",
                                   "ValueError: the first attempt fails\n"), (handler, cols)
        else:  # the second attempt's sleep reaches the server a moment after the attempt starts
            await t.eventually_equal(lambda inv=inv: t.last_failure(inv), cleared, f"{handler}'s columns")


@scenario
async def test_the_journal_event_of_a_rejected_call_carries_restates_doc_code(t):
    """sys_journal_events.event_json of the failed attempt, as the admin API's SQL shows it (the real server
    and the door; a cell reads the same JSON with rt.sql)."""
    x = fresh()
    sent = await t.send("FailureFormats", "callMissing", x)

    async def backing_off() -> bool:
        return S.ATTEMPTS[x] >= 1 and await t.status(sent.invocation_id) == "backing-off"
    await t.until(backing_off, "callMissing backing off")
    sql = (f"SELECT event_json FROM sys_journal_events WHERE id = '{sent.invocation_id}' "
           f"AND event_type = 'TransientError' ORDER BY appended_at LIMIT 1")
    if t.name == "embedded":
        rows = t.rt.sql(sql).to_dict("records")
    else:
        rows = await t.query(sql)
    doc = json.loads(rows[0]["event_json"])
    assert doc == {"ty": "TransientError", "error_code": 500, "error_message": (
        "cannot process command Command: Call (command index 1) because of a failed precondition: the service "
        "handler Nowhere/hello was not found"), "restate_doc_error_code": "RT0018"}
