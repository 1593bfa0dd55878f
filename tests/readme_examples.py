"""The READMEs' examples, run as a user runs them (standard library only).

Every ```python block in a Markdown file of the repository is a whole program. `run` writes one
to `example.py` in a directory of its own and runs it with this Python (so against the packages
as installed, not the source folders), each origin the README names (`https://example.com`)
replaced by a local server's. It must exit with 0 and print exactly what the block's
`# prints ...` comments say, in order (the local origins named back as the README names them):
so an example that raises, or prints something else, fails its test.

`tests/compose/test_readme_examples.py` runs them all against `example_site.Site`, but those
that name an S3 endpoint (`amazonaws.com`): `tests/s3/test_s3_seaweedfs.py` runs those against
SeaweedFS.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parent.parent

# A fenced block, indented as a whole when it is inside a list item.
_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)```python\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
# Another spelling of a Python block (```py, ```python3, ```pycon) would go unrun: refused.
_OTHER_PYTHON_FENCE = re.compile(r"^[ \t]*```[ \t]*(?!python\n)py", re.M)
_PRINTS = re.compile(r"#[ \t]*prints (.*)$", re.M)


@dataclass(frozen=True)
class Example:
    path: pathlib.Path
    line: int  # of the opening fence
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def uses_s3(self) -> bool:
        return "amazonaws.com" in self.code

    def expected(self) -> list[str]:
        """What the program prints: its `# prints ...` comments, in order."""
        return _PRINTS.findall(self.code)


def markdown_files() -> list[pathlib.Path]:
    """Every Markdown file of the repository, outside hidden folders (.git, .nox)."""
    found = []
    for folder, folders, files in os.walk(ROOT):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found += [pathlib.Path(folder, name) for name in files if name.endswith(".md")]
    return sorted(found)


def examples() -> list[Example]:
    found = []
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")
        other = _OTHER_PYTHON_FENCE.search(text)
        if other:
            line = text.count("\n", 0, other.start()) + 1
            raise ValueError(f"{path}:{line}: write Python examples as ```python to run them")
        for block in _BLOCK.finditer(text):
            line = text.count("\n", 0, block.start()) + 1
            found.append(Example(path, line, textwrap.dedent(block["code"])))
    return found


def _replaced(text: str, replacements: Mapping[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


async def run(
    example: Example,
    origins: Mapping[str, str],
    directory: pathlib.Path,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run `example` in `directory` with `origins` (as the README names them: the local
    server's) and `env` added to this process's environment; check its exit and output."""
    script = directory / "example.py"
    script.write_text(_replaced(example.code, origins), encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        script.name,
        cwd=directory,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:  # the test timed out: no process outlives it
            process.kill()
            await process.wait()
    assert process.returncode == 0, f"{example.name} failed:\n{stderr.decode(errors='replace')}"
    output = _replaced(stdout.decode(), {local: named for named, local in origins.items()})
    assert output.splitlines() == example.expected(), f"{example.name} printed:\n{output}"
