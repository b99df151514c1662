"""Dependencies a user would choose: the hard ones are what a notebook user needs to run and see; the
real-server path, SQL and the HTTP door are extras, and using one without it says which to install
before anything listens. See docs/dependencies.md."""

from __future__ import annotations

import importlib.util
import socket
import tomllib
from pathlib import Path

import pytest
import restate
from packaging.requirements import Requirement

import playground as pg
from playground import real

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

hello = restate.Service("DepsHello")


@hello.handler()
async def hi(ctx: restate.Context, name: str) -> str:
    return "hi " + name


@pytest.fixture
def no_hypercorn(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if hypercorn were not installed (a plain `pip install restate-playground`)."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **kw: None if name == "hypercorn" else find_spec(name, *a, **kw))


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name for r in requirements}


def test_the_server_side_packages_are_extras_not_hard_dependencies() -> None:
    hard = _names(PROJECT["dependencies"])
    assert not hard & {"hypercorn", "duckdb", "pyarrow", "jupyterlab"}
    extras = PROJECT["optional-dependencies"]
    assert _names(extras["real"]) == {"hypercorn"}
    assert {"hypercorn", "duckdb", "pyarrow"} <= _names(extras["http"])
    assert _names(extras["sql"]) == {"duckdb", "pyarrow"}


def test_the_test_extra_installs_every_other_extra() -> None:
    test = [Requirement(r) for r in PROJECT["optional-dependencies"]["test"]]
    itself = [r for r in test if r.name == PROJECT["name"]]
    assert itself and set(itself[0].extras) == set(PROJECT["optional-dependencies"]) - {"test"}


@pytest.mark.parametrize(("platform", "machine"), [("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "arm64"),
                                               ("darwin", "x86_64"), ("win32", "AMD64")])
def test_the_pip_only_graph_renderer_installs_on_every_platform_it_has_a_wheel_for(platform: str,
                                                                                    machine: str) -> None:
    (renderer,) = [Requirement(r) for r in PROJECT["dependencies"] if Requirement(r).name == "graphviz-pure"]
    assert renderer.marker is not None
    assert renderer.marker.evaluate({"sys_platform": platform, "platform_machine": machine})
    # no wheel there: not installed (rather than a failed install)
    assert not renderer.marker.evaluate({"sys_platform": "linux", "platform_machine": "ppc64le"})


def test_serving_to_a_real_server_without_hypercorn_names_the_real_extra(no_hypercorn: None) -> None:
    with pytest.raises(ImportError, match=r"pip install 'restate-playground\[real\]'") as info:
        real.serve(hello)
    assert info.value.name == "hypercorn"


async def test_serve_http_without_hypercorn_names_the_http_extra_and_listens_on_nothing(no_hypercorn: None) -> None:
    port = real.free_port()
    rt = pg.Runtime(hello)
    try:
        with pytest.raises(ImportError, match=r"pip install 'restate-playground\[http\]'"):
            await rt.serve_http(ingress_port=port)
    finally:
        rt.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # still free: nothing was bound


def test_python_m_playground_serve_without_hypercorn_says_what_to_install(no_hypercorn: None, capsys, tmp_path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from playground.__main__ import main
    (tmp_path / "deps_app.py").write_text("import restate\nhello = restate.Service('DepsCli')\n\n"
                                          "@hello.handler()\nasync def hi(ctx, name: str) -> str:\n    return name\n")
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "deps_app:hello", "--no-register", "--port", "0"]) == 1
    assert "pip install 'restate-playground[real]'" in capsys.readouterr().err
