"""Sessions: `tests` (each package alone with the local core), `compose`, `lint`; `bench` on demand.

Run everything CI runs with `python3 -m nox`.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "uvloop", "compose", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PACKAGES = ["lowhaio", "lowhaio_redirect", "lowhaio_retry", "lowhaio_chunked", "lowhaio_aws_sigv4"]
TEST_TOOLS = ["pytest>=8", "pytest-cov>=5"]


def _install(session: nox.Session, *packages: str, tools: list[str]) -> None:
    # The core and the packages under test in one pip call, so that pip never takes the
    # unrelated `lowhaio` <= 0.0.89 releases from the index to satisfy a wrapper; then again,
    # forced, so that a reused virtualenv never tests an older build of the same version.
    local = [f"./{package}" for package in dict.fromkeys(("lowhaio", *packages))]
    session.install(*local, *tools)
    session.install("--no-deps", "--force-reinstall", *local)


@nox.session
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """One package's tests with 100% line and branch coverage of that package."""
    _install(session, package, tools=TEST_TOOLS)
    session.run(
        "pytest",
        f"tests/{package}",
        "--cov",  # of the installed package: see [tool.coverage.run] in pyproject.toml
        "--cov-report=term-missing",
        "--cov-fail-under=100",
        *session.posargs,
        env={"COVERAGE_PACKAGE": package},
    )


@nox.session
def uvloop(session: nox.Session) -> None:
    """The core's tests again, every one on uvloop's event loop."""
    _install(session, tools=[*TEST_TOOLS, "uvloop"])
    session.run("pytest", "tests/lowhaio", *session.posargs, env={"LOWHAIO_TEST_LOOP": "uvloop"})


@nox.session
def compose(session: nox.Session) -> None:
    """Stacks of wrappers, with every package installed."""
    _install(session, *PACKAGES, tools=TEST_TOOLS)
    session.run("pytest", "tests/compose", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff format and check, and mypy --strict over every package."""
    _install(session, *PACKAGES, tools=["ruff", "mypy", "pytest"])
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")
    session.run("mypy", *(f"{package}/src" for package in PACKAGES))


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark against aiohttp and a raw asyncio client (not run by default)."""
    _install(session, tools=["aiohttp", "uvloop"])
    session.run("python", "bench/bench.py", *session.posargs)
