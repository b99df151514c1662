"""The package's pytest plugin, as a user's project sees it: installed through the `pytest11` entry point,
its fixtures need no conftest and no import."""

from __future__ import annotations

import importlib.metadata
import textwrap

pytest_plugins = ["pytester"]

USER_TESTS = textwrap.dedent('''
    import asyncio

    import pytest
    import restate

    greeter = restate.Service("PluginGreeter")

    @greeter.handler()
    async def greet(ctx: restate.Context, name: str) -> str:
        return "Hello " + name

    used = []

    def test_embedded(restate_runtime):
        restate_runtime.register(greeter)
        assert asyncio.run(restate_runtime.service_call(greet, arg="Ann")) == "Hello Ann"
        used.append(restate_runtime)

    def test_fresh_runtime_each_test_and_the_last_one_is_closed(restate_runtime):
        assert restate_runtime.services() == {}
        with pytest.raises(RuntimeError, match="this Runtime is closed"):
            used[0].register(greeter)

    def test_real(restate_server):
        app = restate_server.register(greeter)
        assert app.deployment["id"].startswith("dp_")
        assert restate_server.ingress_url.startswith("http://127.0.0.1:")
        assert restate_server.call("PluginGreeter", "greet", "Ann") == "Hello Ann"
''')


def test_the_plugin_is_registered_as_an_entry_point():
    eps = importlib.metadata.entry_points(group="pytest11")
    assert any(ep.value == "playground.pytest_plugin" for ep in eps)


def test_fixtures_in_a_users_test_session(pytester, restate_server):
    # restate_server here only makes this test skip (or fail under CI) when no real server can be had;
    # the user's project does without pytest-asyncio (it would warn about its unset options)
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=3)


def test_real_fixture_can_be_skipped_on_purpose(pytester, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_REAL_SERVER", "skip")
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-p", "no:asyncio", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*PLAYGROUND_REAL_SERVER=skip*"])
