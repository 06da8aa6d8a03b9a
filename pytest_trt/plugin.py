"""pytest11 entry point: options and thin hooks only.

Importing this module imports no torch, onnxruntime or tensorrt (tests check it); the work lives in
plain modules that the hooks call.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

from pytest_trt import settings as settings_mod
from pytest_trt.context import Context
from pytest_trt.stash import CONTEXT, HOOK_BACKENDS

if TYPE_CHECKING:
    from pytest_trt.controller import Controller
    from pytest_trt.live import Live

pytest_plugins = ["pytest_trt.fixtures"]

MARKERS = (
    "trt(models=None, backends=None, precisions=None, batch_sizes=None, variants=None, streams=None, "
    "threshold=None): the pytest-trt matrix of this test; models='zoo' takes --trt-model; values override the "
    "options",
    "trt_accuracy(metric=None, max_drop=None, **agreement_limits): accuracy limits against fp32",
    "trt_ab(reference=None, candidate=None, compare_outputs=True): the two sides trt_ab() measures "
    "interleaved when called without them (pytest_trt.ab.Arm, a ModelSpec, a model factory, an .onnx or "
    ".pt2 path, or pytest_trt.ab.BASELINE)",
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_trt import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    settings_mod.add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    _register_backends(config)  # before resolve(): --trt-backend may name a hook's backend
    settings = settings_mod.resolve(config)
    workerinput = getattr(config, "workerinput", None)
    ctx = Context(settings, workerinput["workerid"] if workerinput else None)
    from pytest_trt import session

    session.validate(config, ctx)
    config.stash[CONTEXT] = ctx
    if workerinput is None:  # pytest-xdist workers only send reports
        from pytest_trt import live
        from pytest_trt.ab import store
        from pytest_trt.controller import Controller

        store.register_writer()
        controller = Controller(config, ctx)
        config.pluginmanager.register(controller, "pytest-trt-controller")
        live.install(config, lambda display: _listen(ctx, controller, display))


def _listen(ctx: Context, controller: Controller, display: Live) -> None:
    ctx.progress.listener = display
    controller.on_result.append(display.finished)


def _register_backends(config: pytest.Config) -> None:
    from pytest_trt import backends

    try:
        added = backends.register_all(config.hook.pytest_trt_backends(config=config))
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"pytest_trt_backends: {exc}") from None
    config.stash[HOOK_BACKENDS] = [backend.name for backend in added]


def pytest_unconfigure(config: pytest.Config) -> None:
    """The registry outlives a session run in-process (pytester): take this session's backends out."""
    from pytest_trt import backends

    for name in config.stash.get(HOOK_BACKENDS, []):
        backends.unregister(name)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "trt_case" not in metafunc.fixturenames:
        return
    from pytest_trt import session

    session.parametrize(metafunc, metafunc.config.stash[CONTEXT])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A wrong side in ``@pytest.mark.trt_ab(...)`` or an input beyond the schema limits is a usage
    error (exit 4) before anything runs."""
    from pytest_trt import session
    from pytest_trt.ab import arms

    arms.check_markers(items)
    session.check_input_sizes(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    from pytest_trt import session

    session.junit_summary(item)  # before the report is made: it copies the item's properties
    report = yield
    session.annotate(item, report)
    return report
