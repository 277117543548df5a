#!/usr/bin/env python3
"""Write a launcher for every console script in pyproject.toml ([project.scripts]).

    packaging/launchers.py BINDIR LIBDIR

The Debian package keeps hostd and its vendored dependencies in a private directory (LIBDIR on
the device) instead of the system's site-packages, so each launcher puts LIBDIR first on
sys.path and calls the entry point; main()'s return value is the exit code.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# -I: no PYTHON* variables, user site or script directory on sys.path (a root daemon imports from
# the image only); -S: no site module, a third of the interpreter's start, for nothing hostd needs
# (the standard library and LIBDIR).  One word: the kernel passes the shebang's rest as one argument.
TEMPLATE = """\
#!/usr/bin/python3 -IS
import sys

sys.dont_write_bytecode = True  # compiled at install (postinst): nothing written to the root at run time
sys.path.insert(0, "{libdir}")
from {module} import {function}  # noqa: E402

sys.exit({function}())
"""


def scripts() -> dict[str, str]:
    """name -> "module:function" from pyproject.toml."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write /usr/bin launchers for hostd's console scripts.")
    ap.add_argument("bindir", type=Path, help="where to write them")
    ap.add_argument("libdir", help="the private directory on the device, e.g. /usr/lib/hostd/python")
    args = ap.parse_args(argv)
    args.bindir.mkdir(parents=True, exist_ok=True)
    for name, target in scripts().items():
        module, function = target.split(":")
        launcher = args.bindir / name
        launcher.write_text(TEMPLATE.format(libdir=args.libdir, module=module, function=function))
        launcher.chmod(0o755)
    return 0


if __name__ == "__main__":
    sys.exit(main())
