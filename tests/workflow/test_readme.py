"""README.md as a user reads it: every Python block runs as pasted after set-up command 1.

The blocks run, one fresh interpreter each, in the folder of a small demo run (the session
fixture ``small_luna_run``: the same files command 1 writes, ``results/luna16/patches/subset{0,1}.h5``,
from a smaller demo).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from snakerun import REPO

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_blocks_are_found():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n\nz = 3\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\n\nz = 3\n"]


README_BLOCKS = python_blocks((REPO / "README.md").read_text())


def test_the_readme_has_python_blocks():
    assert len(README_BLOCKS) >= 2


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.parametrize("number", range(len(README_BLOCKS)))
def test_readme_python_block_runs_as_pasted(small_luna_run, number):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-"], input=README_BLOCKS[number], cwd=small_luna_run, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"README Python block {number + 1} failed:\n{README_BLOCKS[number]}\n{proc.stderr[-3000:]}"
