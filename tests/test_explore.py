"""pg.explore on the ordering page's example (issue 15): a handler sends "call A" then "call B" to a key while
the scenario sends "C" to it at the same instant. Restate allows exactly three orders, never B before A."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
import restate

import playground as pg
from playground import widgets
from playground.explorer import Outcome
from playground.explorer_report import table_html
from playground.explorer_schedules import EVERYTHING, apart, deviation, footprint_in, format_schedule
from playground.explorer_search import outcome_key, run_once, seeded_random, shrink
from playground.runtime.requests import promise_operation
from playground.runtime.scheduler import AsPosted, Stepwise

logbook = restate.VirtualObject("Logbook")


@logbook.handler()
async def write(ctx: restate.ObjectContext, line: str) -> None:
    lines = await ctx.get("lines") or []
    ctx.set("lines", [*lines, line])


alice = restate.Service("Alice")


@alice.handler()
async def send_two(ctx: restate.Context, key: str) -> None:
    ctx.object_send(write, key=key, arg="call A")
    ctx.object_send(write, key=key, arg="call B")


async def scenario(rt):
    await rt.service_send(send_two, arg="Ann")  # Alice sends "call A", then "call B", to Ann
    await rt.object_send(write, key="Ann", arg="C")  # another source, concurrently


def lines(rt):
    return tuple(rt.state("Logbook", "Ann")["lines"])


ALLOWED = {("call A", "call B", "C"), ("call A", "C", "call B"), ("C", "call A", "call B")}


async def explore(**kwargs):
    return await pg.explore(scenario, services=[logbook, alice], observe=lines, **kwargs)


async def test_exhaustive_exploration_finds_exactly_the_three_orders_restate_allows() -> None:
    ex = await explore(strategy="exhaustive")
    assert ex.complete and ex.schedules == sum(o.count for o in ex.outcomes)
    assert {o.value for o in ex.outcomes} == ALLOWED and len(ex.outcomes) == 3
    assert all(o.value.index("call A") < o.value.index("call B") for o in ex.outcomes)
    counts = [o.count for o in ex.outcomes]
    assert counts == sorted(counts, reverse=True)
    assert all(o.error is None and not o.deadlocked for o in ex.outcomes) and ex.violations == []


async def test_an_exhaustive_search_cut_short_by_runs_says_it_is_incomplete() -> None:
    ex = await explore(strategy="exhaustive", runs=2)
    assert ex.schedules == 2 and not ex.complete


@pytest.mark.parametrize("strategy", ["random", "pct"])
async def test_a_seeded_strategy_gives_the_same_schedules_and_outcomes_for_the_same_seed(strategy) -> None:
    first = await explore(strategy=strategy, runs=40, seed=7)
    again = await explore(strategy=strategy, runs=40, seed=7)
    assert [(o.value, o.count, o.schedule) for o in first.outcomes] == \
        [(o.value, o.count, o.schedule) for o in again.outcomes]
    assert first.schedules == 40 and not first.complete
    assert {o.value for o in first.outcomes} <= ALLOWED and len(first.outcomes) >= 2


async def test_replaying_an_outcome_reproduces_its_state_journals_ids_and_times() -> None:
    ex = await explore(strategy="exhaustive")
    for outcome in ex.outcomes:
        rt = await ex.replay(outcome)
        again = await pg.replay(scenario, services=[logbook, alice], schedule=outcome.schedule)
        assert lines(rt) == lines(again) == outcome.value
        assert rt.invocations().equals(again.invocations())
        ids = list(rt.invocations()["id"])
        assert len(ids) == 4 and ids == list(again.invocations()["id"])
        for inv_id in ids:
            assert rt.journal(inv_id).equals(again.journal(inv_id))


async def test_a_violated_invariant_is_found_and_shrunk_to_the_schedule_closest_to_the_default_order() -> None:
    c_first = lambda rt: lines(rt)[0] == "C"  # noqa: E731
    everything = await explore(strategy="exhaustive", invariant=c_first)
    assert {o.value for o in everything.violations} == ALLOWED - {("C", "call A", "call B")}
    found = await explore(strategy="random", runs=60, seed=3, invariant=c_first)
    assert {o.value for o in found.violations} == {o.value for o in everything.violations}
    for violation in found.violations:
        assert violation.violation == "the invariant returned False"
        # the exhaustive search kept, per outcome, the least deviating of every schedule reaching it
        closest = next(o for o in everything.violations if o.value == violation.value)
        assert deviation(violation.schedule) == deviation(closest.schedule)
        rt = await found.replay(violation)
        assert lines(rt) == violation.value


def test_a_schedule_deviates_by_its_non_default_picks_then_their_sum() -> None:
    assert deviation("") < deviation("0.1") < deviation("0.2") < deviation("1.1")
    assert format_schedule([1, 0, 2, 0, 0]) == "1.0.2"


async def test_an_invariant_that_raises_is_a_violation_with_the_exception_named() -> None:
    def at_most_two(rt):
        if len(lines(rt)) > 2:
            raise AssertionError("three lines")
    ex = await explore(strategy="exhaustive", invariant=at_most_two)
    assert len(ex.violations) == 3 and all(v.violation == "AssertionError: three lines" for v in ex.violations)


async def test_a_schedule_that_does_not_fit_the_scenario_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"picks option 7 at decision 0, which has only 2 options"):
        await pg.replay(scenario, services=[logbook, alice], schedule="7")
    with pytest.raises(ValueError, match=r"numbers separated by dots"):
        await pg.replay(scenario, services=[logbook, alice], schedule="1,2")
    with pytest.raises(TypeError, match=r"schedule must be a str"):
        await pg.replay(scenario, services=[logbook, alice], schedule=[1, 2])


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"strategy": "dfs"}, ValueError, r"strategy must be one of 'exhaustive', 'random', 'pct', not 'dfs'"),
    ({"runs": 0}, ValueError, r"runs must be a positive int"),
    ({"seed": "0"}, TypeError, r"seed must be an int"),
    ({"observe": "lines"}, TypeError, r"observe must be a function of the final runtime"),
])
async def test_bad_arguments_are_told_before_any_run(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        await pg.explore(scenario, services=[logbook, alice], **kwargs)


async def test_the_result_displays_as_a_table_of_outcomes_with_counts() -> None:
    ex = await explore(strategy="exhaustive")
    bundle = ex._repr_mimebundle_()
    html = bundle["text/html"]
    assert bundle["text/plain"] == repr(ex) and html == ex._repr_html_()
    table = html[:html.index("</table>")]
    assert table.count("<tr>") == 4 and "complete" in html
    acb = next(o for o in ex.outcomes if o.value == ("call A", "C", "call B"))
    assert f"<td><code>(&#x27;call A&#x27;, &#x27;C&#x27;, &#x27;call B&#x27;)</code></td><td>{acb.count}</td>" in table


async def test_each_outcome_shows_the_timeline_of_its_own_order() -> None:
    ex = await explore(strategy="exhaustive")
    for outcome in ex.outcomes:
        [timeline] = outcome.timelines
        assert timeline.service == "Logbook"
        rt = await ex.replay(outcome)  # the timeline is the one of the run its schedule replays
        assert [r["id"] for r in timeline.rows] == [r["id"] for r in pg.render.timeline(rt, "Logbook").rows]
    html = ex._repr_html_()
    columns = html[html.index("display:flex"):]
    assert html.count("display:flex") == 1 and columns.count("<svg") + columns.count("Logbook") >= 3
    assert all(f"</code></b> x{o.count}" in columns for o in ex.outcomes)


# A racy deadlock: X.forward calls Y.answer while Y.relay (reached through a stateless hop) calls X.answer.
# It deadlocks only when relay takes Y's lock before forward's call reaches Y: the hop's ctx.run makes
# that unlikely in the engine's own order.
racex = restate.VirtualObject("RaceX")
racey = restate.VirtualObject("RaceY")
hop = restate.Service("RaceHop")


@racex.handler()
async def forward(ctx: restate.ObjectContext) -> str:
    return await ctx.object_call(answer_y, key=ctx.key(), arg=None)


@racex.handler()
async def answer_x(ctx: restate.ObjectContext) -> str:
    return "x"


@racey.handler()
async def relay(ctx: restate.ObjectContext) -> str:
    return await ctx.object_call(answer_x, key=ctx.key(), arg=None)


@racey.handler()
async def answer_y(ctx: restate.ObjectContext) -> str:
    return "y"


@hop.handler()
async def start_relay(ctx: restate.Context, key: str) -> None:
    await ctx.run_typed("look something up", lambda: None)  # a round trip before the send
    ctx.object_send(relay, key=key, arg=None)


async def race(rt):
    await rt.object_send(forward, key="k")
    await rt.service_send(start_relay, arg="k")


async def test_the_explorer_finds_a_racy_deadlock_the_default_order_does_not_hit() -> None:
    default = pg.Runtime(racex, racey, hop)  # the engine's own order (AsPosted)
    await race(default)
    await default.settle()
    assert default.deadlocks() == [] and len(default.invocations()) == 5
    ex = await pg.explore(race, services=[racex, racey, hop], strategy="exhaustive")
    assert ex.complete
    assert [o.deadlocked for o in ex.outcomes].count(True) == 1
    stuck = next(o for o in ex.outcomes if o.deadlocked)
    assert isinstance(stuck.error, pg.DeadlockError) and stuck.error.deadlock is not None
    assert sorted(m.target for m in stuck.error.deadlock.members) == [
        "RaceX/k/answer_x", "RaceX/k/forward", "RaceY/k/answer_y", "RaceY/k/relay"]
    rt = await ex.replay(stuck)
    assert len(rt.deadlocks()) == 1
    assert str(stuck.error).startswith("the run ended in a deadlock of RaceX/k/forward, RaceY/k/answer_y, "
                                       "RaceY/k/relay, RaceX/k/answer_x:")
    assert "Nothing in the cycle can finish on its own" in ex._repr_html_()


async def test_partial_order_reduction_runs_fewer_schedules_and_loses_no_outcome() -> None:
    reduced = await explore(strategy="exhaustive")
    everything = await explore(strategy="exhaustive", reduce=False)
    assert reduced.complete and everything.complete
    assert {o.value for o in reduced.outcomes} == {o.value for o in everything.outcomes} == ALLOWED
    assert reduced.schedules + reduced.redundant < everything.schedules and everything.redundant == 0
    racy = await pg.explore(race, services=[racex, racey, hop], strategy="exhaustive", reduce=False)
    assert {o.deadlocked for o in racy.outcomes} == {True, False}


async def delayed_pair(rt):
    await rt.object_send(write, key="Ann", arg="X", send_delay=timedelta(seconds=1))
    await rt.object_send(write, key="Ann", arg="Y", send_delay=timedelta(seconds=1))
    await rt.advance(timedelta(seconds=1))


async def test_two_delayed_sends_due_at_the_same_instant_arrive_in_either_order() -> None:
    ex = await pg.explore(delayed_pair, services=[logbook], observe=lines)
    assert ex.complete and {o.value for o in ex.outcomes} == {("X", "Y"), ("Y", "X")}
    plain = pg.Runtime(logbook)  # the engine's own order: as the timers were set
    await delayed_pair(plain)
    assert lines(plain) == ("X", "Y")


async def waits_forever(rt):
    await rt.object_call(wait_for_signal, key="k")


signals = restate.VirtualObject("Signals")


@signals.handler()
async def wait_for_signal(ctx: restate.ObjectContext) -> str:
    _, promise = ctx.awakeable(type_hint=str)
    return await promise


async def test_a_stuck_scenario_is_an_outcome_with_its_error_not_a_deadlock() -> None:
    ex = await pg.explore(waits_forever, services=[signals])
    [outcome] = ex.outcomes
    assert isinstance(outcome.error, pg.StuckError) and not outcome.deadlocked and outcome.value is None
    assert ex.complete and ex.schedules == 1


async def test_any_other_exception_of_the_scenario_stops_the_exploration() -> None:
    async def broken_scenario(rt):
        raise RuntimeError("a bug in the scenario")
    with pytest.raises(RuntimeError, match="a bug in the scenario"):
        await pg.explore(broken_scenario, services=[logbook])
    with pytest.raises(TypeError, match=r"scenario must be an async function of a runtime .* returned NoneType"):
        await pg.explore(lambda rt: None, services=[logbook])


# A prototyper's race: two reservations each read the stock, then write it back less one, through separate
# calls. Another reservation's read can come between one's read and its write: one reservation is lost.
stock = restate.VirtualObject("Stock")
shop = restate.Service("Shop")


@stock.handler()
async def count(ctx: restate.ObjectContext) -> int:
    return await ctx.get("count") or 10


@stock.handler()
async def put(ctx: restate.ObjectContext, n: int) -> None:
    ctx.set("count", n)


@stock.handler()
async def take_one(ctx: restate.ObjectContext) -> None:
    ctx.set("count", (await ctx.get("count") or 10) - 1)


@shop.handler()
async def reserve(ctx: restate.Context, item: str) -> None:
    n = await ctx.object_call(count, key=item, arg=None)
    await ctx.object_call(put, key=item, arg=n - 1)


@shop.handler()
async def reserve_fixed(ctx: restate.Context, item: str) -> None:
    await ctx.object_call(take_one, key=item, arg=None)


def two_reservations(handler):
    async def scenario(rt):
        await rt.service_send(handler, arg="book")
        await rt.service_send(handler, arg="book")
    return scenario


def left(rt):
    return rt.state("Stock", "book")["count"]


async def test_a_lost_update_is_found_shrunk_and_gone_with_one_exclusive_handler() -> None:
    racy = await pg.explore(two_reservations(reserve), services=[stock, shop], observe=left,
                            invariant=lambda rt: left(rt) == 8)
    assert racy.complete and {o.value for o in racy.outcomes} == {8, 9}
    [lost] = racy.violations
    assert lost.value == 9 and lost.violation == "the invariant returned False"
    assert left(await racy.replay(lost)) == 9
    fixed = await pg.explore(two_reservations(reserve_fixed), services=[stock, shop], observe=left,
                             invariant=lambda rt: left(rt) == 8)
    assert fixed.complete and [o.value for o in fixed.outcomes] == [8] and fixed.violations == []


async def test_shrinking_moves_a_violating_schedule_to_the_closest_one_to_the_default_order() -> None:
    scenario = two_reservations(reserve)
    # the default order itself loses an update (both reads go first): the closest schedule there is
    assert left(await pg.replay(scenario, services=[stock, shop], schedule="")) == 9
    rng = random.Random(1)
    far = None
    for _ in range(200):  # a random schedule reaching the lost update, further from the default
        run = await run_once(scenario, [stock, shop], seeded_random(rng), left, lambda rt: left(rt) == 8)
        run.rt.close()
        if run.value == 9 and deviation(run.schedule) > (1, 1, 1):
            far = run
            break
    assert far is not None
    outcome = Outcome(far.value, 1, far.schedule, violation=far.violation)
    await shrink(scenario, [stock, shop], outcome, outcome_key(far), left, lambda rt: left(rt) == 8)
    assert far.schedule != "" and outcome.schedule == ""
    assert left(await pg.replay(scenario, services=[stock, shop], schedule=outcome.schedule)) == 9


async def test_a_replayed_runtime_goes_on_in_the_engines_own_order() -> None:
    rt = await pg.replay(scenario, services=[logbook, alice], schedule="1.1.1")
    assert lines(rt) == ("call A", "C", "call B") and isinstance(rt.scheduler.strategy, AsPosted)
    await rt.object_call(write, key="Ann", arg="D")
    assert lines(rt) == ("call A", "C", "call B", "D")


# Ingress requests: separate HTTP requests. Those in flight together may land in either order; one the
# cell saw accepted before it made the next goes first.
async def gathered_then_one(rt):
    await asyncio.gather(rt.object_send(write, key="Ann", arg="X"), rt.object_send(write, key="Ann", arg="Y"))
    await rt.object_send(write, key="Ann", arg="Z")


async def one_after_another(rt):
    for line in ("X", "Y", "Z"):
        await rt.object_send(write, key="Ann", arg=line)


async def a_call_in_the_background_and_a_send(rt):
    call = asyncio.ensure_future(rt.object_call(write, key="Ann", arg="X"))
    await rt.object_send(write, key="Ann", arg="Y")
    await call


async def test_sends_in_flight_together_land_in_either_order_and_an_accepted_one_goes_first() -> None:
    ex = await pg.explore(gathered_then_one, services=[logbook], observe=lines)
    assert ex.complete and {o.value for o in ex.outcomes} == {("X", "Y", "Z"), ("Y", "X", "Z")}
    ex = await pg.explore(one_after_another, services=[logbook], observe=lines)
    assert ex.complete and [o.value for o in ex.outcomes] == [("X", "Y", "Z")]
    ex = await pg.explore(a_call_in_the_background_and_a_send, services=[logbook], observe=lines)
    assert ex.complete and {o.value for o in ex.outcomes} == {("X", "Y"), ("Y", "X")}
    for outcome in ex.outcomes:
        assert lines(await ex.replay(outcome)) == outcome.value
    plain = pg.Runtime(logbook)  # the engine's own order: as the requests were made
    await gathered_then_one(plain)
    await plain.settle()
    assert lines(plain) == ("X", "Y", "Z")


# A call's completion against a timer due at the same instant: the callee and the caller's timeout both
# wake at 1 s (and a promise resolved at 1 s against a 1 s timeout).
slow = restate.Service("Slow")
racer = restate.Service("Racer")
waiting = restate.Workflow("Waiting")


@slow.handler()
async def take_a_second(ctx: restate.Context) -> str:
    await ctx.sleep(timedelta(seconds=1))
    return "done"


@racer.handler()
async def call_or_timeout(ctx: restate.Context) -> str:
    match await restate.select(call=ctx.service_call(take_a_second, arg=None), timeout=ctx.sleep(timedelta(seconds=1))):
        case ["call", _]:
            return "call"
    return "timeout"


@waiting.main()
async def promise_or_timeout(ctx: restate.WorkflowContext) -> str:
    match await restate.select(promise=ctx.promise("p").value(), timeout=ctx.sleep(timedelta(seconds=1))):
        case ["promise", _]:
            return "promise"
    return "timeout"


@waiting.handler()
async def resolve_in_a_second(ctx: restate.WorkflowSharedContext) -> None:
    await ctx.sleep(timedelta(seconds=1))
    await ctx.promise("p").resolve("x")


async def racing_call(rt):
    rt.result = await rt.service_call(call_or_timeout)


async def racing_promise(rt):
    await rt.workflow_send(promise_or_timeout, key="w")
    await rt.workflow_send(resolve_in_a_second, key="w")
    rt.result = await rt.attach(promise_or_timeout, key="w")


@pytest.mark.parametrize(("scenario", "services", "won"), [
    (racing_call, [slow, racer], "call"), (racing_promise, [waiting], "promise")])
async def test_a_completion_and_a_timer_due_at_the_same_instant_race_either_way(scenario, services, won) -> None:
    ex = await pg.explore(scenario, services=services, observe=lambda rt: rt.result)
    assert ex.complete and {o.value for o in ex.outcomes} == {won, "timeout"}
    assert ex.outcomes[0].value == "timeout" and ex.outcomes[0].schedule == ""  # the default: timers first
    late = next(o for o in ex.outcomes if o.value == won)
    assert (await ex.replay(late)).result == won


# Operations from a cell land among the events in flight: a cancel against the callee's completion, a
# promise resolved from the cell as the workflow's timeout falls due.
quick = restate.Service("Quick")


def _done() -> str:
    return "done"


@quick.handler()
async def one_step(ctx: restate.Context) -> str:
    return await ctx.run_typed("step", _done)


async def cancel_a_call_in_flight(rt):
    call = asyncio.ensure_future(rt.service_call(one_step))
    await asyncio.sleep(0)  # the call is made: its invocation exists, its request is in flight
    [inv] = rt.all_invocations()
    rt.cancel(inv.id)
    try:
        rt.result = await call
    except restate.TerminalError as exc:
        rt.result = f"{exc.status_code} {exc.message}"


async def resolve_when_a_job_is_done(rt):
    await rt.workflow_send(promise_or_timeout, key="w")  # gives its promise 1 s
    await rt.service_call(take_a_second)  # the cell's own 1 s job
    rt.resolve_promise("Waiting", "w", "p", "x")  # at 1 s, as the workflow's timeout falls due
    rt.result = await rt.attach(promise_or_timeout, key="w")


@pytest.mark.parametrize(("scenario", "services", "results"), [
    # cancelled before it started (the server's spelling), while it ran (the SDK's), or too late
    (cancel_a_call_in_flight, [quick], {"409 canceled", "409 cancelled", "done"}),
    (resolve_when_a_job_is_done, [waiting, slow], {"promise", "timeout"})])
async def test_an_operation_from_the_cell_lands_before_or_after_the_events_in_flight(scenario, services,
                                                                                    results) -> None:
    ex = await pg.explore(scenario, services=services, observe=lambda rt: rt.result)
    assert ex.complete and {o.value for o in ex.outcomes} == results
    unreduced = await pg.explore(scenario, services=services, observe=lambda rt: rt.result, reduce=False)
    assert unreduced.complete and {o.value for o in unreduced.outcomes} == results
    assert ex.schedules <= unreduced.schedules
    for outcome in ex.outcomes:
        assert (await ex.replay(outcome)).result == outcome.value
    plain = pg.Runtime(*services)  # the engine's own order: the operation acts when the cell makes it
    await scenario(plain)
    assert plain.result == {cancel_a_call_in_flight: "409 cancelled", resolve_when_a_job_is_done: "timeout"}[scenario]


async def test_an_operation_touches_the_invocation_key_and_promise_it_names() -> None:
    rt = pg.Runtime(logbook, waiting)
    rt.scheduler.strategy = Stepwise()  # the sends stay pending: their enqueues wait in the queue
    ann = (await rt.object_send(write, key="Ann", arg="x")).invocation_id
    bob = (await rt.object_send(write, key="Bob", arg="y")).invocation_id
    run = (await rt.workflow_send(promise_or_timeout, key="w")).invocation_id
    touches = footprint_in(rt)
    op = ("operation", 9)
    cancel_ann = touches((op, f"cancel {ann}"))
    assert cancel_ann == {ann, ("key", "Logbook", "Ann")}
    assert touches((op, f"pause {ann}")) == touches((op, f"resume {ann}")) == {ann}
    assert touches((op, f"complete awakeable 1 of {ann}")) == {ann}
    assert touches((op, f"kill {ann}")) is EVERYTHING
    assert touches((op, promise_operation("Waiting", "w", "p"))) == {("key", "Waiting", "w"), run}
    # dependent on the invocation's start, its key's enqueues and the key's others; apart from another key
    assert not apart(cancel_ann, touches((("start", ann), f"start {ann}")))
    assert not apart(cancel_ann, touches((("ingress", 1), f"enqueue {ann}")))
    assert apart(cancel_ann, touches((("start", bob), f"start {bob}")))
    assert apart(cancel_ann, touches((("ingress", 2), f"enqueue {bob}")))
    assert not apart(touches((op, promise_operation("Waiting", "w", "p"))), touches(((("timer", 1)),
                                                                                     f"sleep of {run} x")))
    rt.close()


async def test_the_explore_view_shows_one_outcome_at_a_time_and_replays_it_into_a_live_dashboard() -> None:
    ex = await explore(strategy="exhaustive")
    view = ex.dashboard()
    assert isinstance(view, widgets.ExploreView) and "pg-explore" in view.widget._dom_classes
    assert view.table.value == table_html(ex) and "pg-timeline-html" not in view.table.value
    assert ex._repr_html_().startswith(table_html(ex))  # the rich display is the table, then the timelines
    assert [label for label, _ in view.picker.options] == [
        f"{o.value!r}  x{o.count}  schedule {o.schedule!r}" for o in ex.outcomes]
    assert view.outcome.value == ex.outcomes[0].html()
    view.picker.value = 2
    assert view.outcome.value == ex.outcomes[2].html() and "Logbook/Ann" in view.outcome.value
    view.replay_button.click()  # schedules the replay on the loop and returns at once
    assert view.replayed is None
    for _ in range(200):
        await asyncio.sleep(0.01)
        if view.replayed is not None:
            break
    assert lines(view.replayed) == ex.outcomes[2].value
    [dash] = view.live.children
    assert "pg-dashboard" in dash._dom_classes and f"&#x27;{ex.outcomes[2].schedule}&#x27;" in view.status.value


async def test_the_explore_view_of_a_deadlocked_outcome_shows_its_cycle() -> None:
    ex = await pg.explore(race, services=[racex, racey, hop], strategy="exhaustive")
    view = ex.dashboard()
    view.picker.value = next(i for i, o in enumerate(ex.outcomes) if o.deadlocked)
    assert "Nothing in the cycle can finish on its own" in view.outcome.value
    assert "DeadlockError" in view.table.value
