"""What hostd's start pays for before READY=1 beyond its interpreter: no class methods generated."""

from __future__ import annotations

import subprocess
import sys

# In a fresh interpreter: hostd.daemon, then every import of Daemon.run (what a start loads before
# READY=1, read from its source so that a new one is covered), then the dataclasses among the
# classes hostd's modules define.
PROGRAM = """
import ast, dataclasses, inspect, sys
import hostd.daemon
for node in ast.walk(ast.parse(inspect.getsource(hostd.daemon.Daemon.run).lstrip())):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        exec(ast.unparse(node))
modules = [module for name, module in list(sys.modules.items()) if name.split(".")[0] == "hostd"]
print(len(modules), *sorted(
    f"{module.__name__}.{name}"
    for module in modules
    for name, value in vars(module).items()
    if isinstance(value, type) and value.__module__ == module.__name__ and dataclasses.is_dataclass(value)
))
"""


def test_the_daemons_modules_define_no_dataclass() -> None:
    """A dataclass generates its methods when its module is imported: ~0.6 ms of CPU a class at
    every start.  The modules the daemon loads before READY=1 use plain records (hostd/record.py)."""
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) > 40 and out[1:] == []
