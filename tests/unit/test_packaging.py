"""The packaging, checked without building it: packaging/install-map, the Debian package's
control files, the Yocto recipe (parsed with a small BitBake-assignment parser), the versions,
and the man pages and bash completion generated from the programs' parsers."""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
DEBIAN = PACKAGING / "debian"
RECIPES = sorted((PACKAGING / "yocto").glob("hostd_*.bb"))
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]

sys.path.insert(0, str(PACKAGING))
import argwalk  # noqa: E402
import completion  # noqa: E402
import launchers  # noqa: E402
import manpages  # noqa: E402


def install_map() -> list[tuple[str, str, str]]:
    rows = []
    for line in (PACKAGING / "install-map").read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if parts:
            assert len(parts) in (2, 3), f"install-map: {line!r} is not 'source destination [mode]'"
            rows.append((parts[0], parts[1], parts[2] if len(parts) == 3 else "0644"))
    return rows


# ------------------------------------------------------------------------------------ install-map


def test_install_map_sources_exist_and_destinations_are_unique() -> None:
    rows = install_map()
    assert rows
    for src, dst, mode in rows:
        assert (REPO / src).is_file(), f"install-map names {src}, which is not in the repository"
        assert dst.startswith("/") and re.fullmatch(r"0[0-7]{3}", mode), (src, dst, mode)
    destinations = [dst for _, dst, _ in rows]
    assert len(destinations) == len(set(destinations))


def test_every_unit_file_and_sample_profile_is_shipped() -> None:
    mapped = {src: dst for src, dst, _ in install_map()}
    units = [p for p in (REPO / "units").rglob("*") if p.is_file() and not p.name.startswith("README")]
    unmapped = [str(p.relative_to(REPO)) for p in units if str(p.relative_to(REPO)) not in mapped]
    assert not unmapped, f"add these to packaging/install-map, or they are not in any package: {unmapped}"
    for sample in (REPO / "nm_connections").iterdir():
        if sample.name != "README.md":
            rel = str(sample.relative_to(REPO))
            assert mapped.get(rel) == f"/usr/share/hostd/nm_connections/{sample.name}", rel


def test_install_files_installs_every_row(tmp_path: Path) -> None:
    subprocess.run([str(PACKAGING / "install-files"), str(tmp_path)], check=True)
    for src, dst, mode in install_map():
        installed = tmp_path / dst.lstrip("/")
        assert installed.read_bytes() == (REPO / src).read_bytes(), dst
        assert stat.S_IMODE(installed.stat().st_mode) == int(mode, 8), dst


# ------------------------------------------------------------------------------------ Debian


def deb822(path: Path) -> list[dict[str, str]]:
    """Paragraphs of a Debian control file: field -> value (continuation lines joined)."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    name = ""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                paragraphs.append(current)
            current = {}
        elif line[0].isspace():
            current[name] += "\n" + line.strip()
        else:
            name, _, value = line.partition(":")
            current[name] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def relations(value: str) -> list[str]:
    return [r.strip() for r in value.replace("\n", " ").split(",") if r.strip()]


def test_debian_control() -> None:
    source, binary = deb822(DEBIAN / "control")
    for name in ("Source", "Section", "Priority", "Maintainer", "Build-Depends", "Standards-Version"):
        assert source.get(name), name
    assert source["Rules-Requires-Root"] == "no"
    build_depends = relations(source["Build-Depends"])
    assert "debhelper-compat (= 13)" in build_depends
    assert {"dh-sequence-python3", "python3-pip", "python3-setuptools", "python3-wheel"} <= set(build_depends)

    assert binary["Package"] == source["Source"] == "hostd"
    assert binary["Architecture"].split() == ["amd64", "arm64"]
    depends = relations(binary["Depends"])
    assert {"python3 (>= 3.11)", "dbus", "${misc:Depends}", "${shlibs:Depends}"} <= set(depends)
    assert set(relations(binary["Recommends"])) == {
        "network-manager",
        "avahi-daemon",
        "dnsmasq",
        "chrony",
        "modemmanager",
    }
    summary, _, long = binary["Description"].partition("\n")
    assert summary and len(summary) < 80 and long


def test_debian_vendors_exactly_the_runtime_dependencies_pinned_in_range() -> None:
    text = (DEBIAN / "vendor-requirements.txt").read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pin = re.fullmatch(r"([\w.-]+)==([\w.]+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
            name, version, hashes = pin.groups()
            pins[name] = version
            # a wheel per architecture the package is built for
            assert len(hashes.split()) == len(deb822(DEBIAN / "control")[1]["Architecture"].split())
    wanted = {}
    for requirement in PYPROJECT["project"]["dependencies"]:
        name, spec = re.fullmatch(r"([\w.-]+)\s*(.*)", requirement).groups()
        wanted[name] = spec
    assert pins.keys() == wanted.keys()
    for name, version in pins.items():
        for clause in filter(None, wanted[name].split(",")):
            op, bound = re.fullmatch(r"\s*(>=|<=|==|!=|<|>)\s*([\w.]+)\s*", clause).groups()
            pinned, limit = (tuple(int(x) for x in v.split(".")) for v in (version, bound))
            limit += (0,) * (len(pinned) - len(limit))
            ok = {
                "<": pinned < limit,
                "<=": pinned <= limit,
                ">": pinned > limit,
                ">=": pinned >= limit,
                "==": pinned == limit,
                "!=": pinned != limit,
            }[op]
            assert ok, f"{name}=={version} is outside pyproject.toml's {wanted[name]}"


def test_debian_rules_and_maintainer_scripts() -> None:
    rules = (DEBIAN / "rules").read_text()
    assert "packaging/install-files" in rules and "/usr/lib/hostd/python" in rules
    assert "manpages.py" in rules and "completion.py" in rules and "launchers.py" in rules
    assert "dh_installsystemd --no-start" in rules
    # the rules name the units they handle: every unit with an [Install] section must be among them
    named = set(re.findall(r"[\w.-]+\.(?:service|timer)", rules))
    enabled = {p.name for p in (REPO / "units").glob("*.[st]*") if "[Install]" in p.read_text()}
    assert enabled <= named, f"not in debian/rules: {sorted(enabled - named)}"
    assert "dh_python3 --no-guessing-deps $(PRIVATE)" in rules  # byte-compiled at install
    assert (DEBIAN / "source/format").read_text().strip() == "3.0 (native)"
    for script in ("rules", "prerm", "postinst"):
        assert (DEBIAN / script).stat().st_mode & 0o111, f"debian/{script} must be executable"
    # removing the package leaves the device's configuration alone: no script deletes anything
    for script in DEBIAN.glob("p*[mt]"):
        assert not re.search(r"\brm\b|/mnt/|/etc/NetworkManager", script.read_text()), script.name


# ------------------------------------------------------------------------------------ Yocto


@dataclass
class Recipe:
    """What a BitBake recipe assigns: each variable's final value (flags as VAR[flag]) and its
    shell/python functions by name (with overrides, e.g. "do_install:append")."""

    values: dict[str, str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)
    inherits: list[str] = field(default_factory=list)


ASSIGNMENT = re.compile(
    r"(?:export\s+)?(?P<var>[\w${}.+/-]+(?::[\w${}.+/-]+)*)(?:\[(?P<flag>[\w.-]+)\])?"
    r"\s*(?P<op>\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*"
    r"""(?P<value>"[^"\\]*(?:\\.[^"\\]*)*"|'[^']*')"""
)
FUNCTION = re.compile(r"(?:python\s+)?(?P<name>[\w${}:-]+)\s*\(\s*\)\s*\{\s*")


def parse_bitbake(text: str) -> Recipe:
    """A BitBake subset: VAR op "value" (=, ?=, ??=, :=, +=, =+, .=, =.; the quoted value ends the
    line, as BitBake requires), VAR:override, flags, line continuations, comment lines, inherit,
    and functions ending at a "}" line.  Anything else raises, so a malformed line fails the test
    instead of being skipped."""
    recipe = Recipe()
    lines = text.replace("\\\n", "").splitlines()  # continuation: joined as BitBake does
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if match := FUNCTION.fullmatch(line):
            body = []
            while lines[i].rstrip() != "}":
                body.append(lines[i])
                i += 1
            i += 1
            recipe.functions[match["name"]] = "\n".join(body)
            continue
        if line.startswith("inherit "):
            recipe.inherits += line.split()[1:]
            continue
        match = ASSIGNMENT.fullmatch(line)
        if not match:
            raise ValueError(f"not a BitBake assignment: {line!r}")
        key = match["var"] + (f"[{match['flag']}]" if match["flag"] else "")
        value, old = match["value"][1:-1], recipe.values.get(key)
        op = match["op"]
        if op in ("=", ":="):
            recipe.values[key] = value
        elif op == "?=" or op == "??=":
            recipe.values.setdefault(key, value)
        elif op == "+=":
            recipe.values[key] = f"{old} {value}" if old else value
        elif op == "=+":
            recipe.values[key] = f"{value} {old}" if old else value
        elif op == ".=":
            recipe.values[key] = (old or "") + value
        else:  # =.
            recipe.values[key] = value + (old or "")
    return recipe


# OpenEmbedded's directory variables on a merged-/usr distro (the install-map's layout)
OE_DIRS = {
    "PN": "hostd",
    "prefix": "/usr",
    "exec_prefix": "/usr",
    "bindir": "/usr/bin",
    "datadir": "/usr/share",
    "sysconfdir": "/etc",
    "libdir": "/usr/lib",
    "nonarch_libdir": "/usr/lib",
    "nonarch_base_libdir": "/usr/lib",
    "systemd_unitdir": "/usr/lib/systemd",
    "systemd_system_unitdir": "/usr/lib/systemd/system",
    "PYTHON_SITEPACKAGES_DIR": "/usr/lib/python3/site-packages",
}


def expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m[1], m[0]), value)


@pytest.fixture(scope="module")
def recipe() -> Recipe:
    assert len(RECIPES) == 1, "one recipe: packaging/yocto/hostd_<version>.bb"
    parsed = parse_bitbake(RECIPES[0].read_text())
    parsed.values.setdefault("PV", RECIPES[0].stem.split("_", 1)[1])
    return parsed


def test_bitbake_parser() -> None:
    parsed = parse_bitbake(
        'A = "1"\nA += "2"\nA =+ "0"\nB ?= "x"\nB ?= "y"\nC:append = " \\\n    c \\\n"\n'
        'D[doc] = \'d\'\nexport E := "e"\ndo_x:append() {\n    echo "}"\n}\ninherit one two\n'
    )
    assert parsed.values == {"A": "0 1 2", "B": "x", "C:append": "     c ", "D[doc]": "d", "E": "e"}
    assert parsed.functions == {"do_x:append": '    echo "}"'}
    assert parsed.inherits == ["one", "two"]
    with pytest.raises(ValueError):
        parse_bitbake('A = "unterminated\n')


def test_recipe_required_variables(recipe: Recipe) -> None:
    for name in (
        "SUMMARY",
        "LICENSE",
        "LIC_FILES_CHKSUM",
        "SRC_URI",
        "SRCREV",
        "SYSTEMD_SERVICE:${PN}",
        "RDEPENDS:${PN}",
        "FILES:${PN}",
    ):
        assert recipe.values.get(name, "").strip(), f"the recipe does not set {name}"
    assert {"python_setuptools_build_meta", "systemd"} <= set(recipe.inherits)
    assert recipe.values["LICENSE"] == PYPROJECT["project"]["license"]["text"]
    assert recipe.values["SRC_URI"].startswith("${HOSTD_GIT_URI}")
    assert recipe.values["HOSTD_GIT_URI"].startswith("git://")
    # the units with an [Install] section, which the Debian package enables too
    enabled = sorted(p.name for p in (REPO / "units").glob("*.[st]*") if "[Install]" in p.read_text())
    assert sorted(recipe.values["SYSTEMD_SERVICE:${PN}"].split()) == enabled


def test_recipe_license_checksum_matches_license_file(recipe: Recipe) -> None:
    name, md5 = re.fullmatch(r"file://([\w.-]+);md5=([0-9a-f]{32})", recipe.values["LIC_FILES_CHKSUM"]).groups()
    assert hashlib.md5((REPO / name).read_bytes()).hexdigest() == md5


def test_recipe_installs_and_packages_every_install_map_row(recipe: Recipe) -> None:
    install = recipe.functions["do_install:append"]
    assert re.search(r"\$\{S\}/packaging/install-files \$\{D\}\s*$", install), "do_install runs install-files"
    variables = {**OE_DIRS, "PV": recipe.values["PV"]}
    patterns = [expand(p, variables) for p in recipe.values["FILES:${PN}"].split()]
    for src, dst, _ in install_map():
        covered = any(fnmatch(dst, p) or dst.startswith(p.rstrip("/") + "/") for p in patterns)
        assert covered, f"FILES:${{PN}} does not cover {dst} (from {src})"
    unit = next(dst for _, dst, _ in install_map() if dst.endswith("/hostd.service"))
    assert unit == f"{OE_DIRS['systemd_system_unitdir']}/hostd.service"


# stdlib modules hostd may import -> the OpenEmbedded package that has them (python3-manifest.json)
OE_PYTHON3 = {
    **dict.fromkeys(
        (
            "__future__",
            "abc",
            "argparse",
            "ast",
            "binascii",
            "bisect",
            "codecs",
            "collections",
            "configparser",
            "contextlib",
            "copy",
            "dataclasses",
            "enum",
            "errno",
            "fcntl",
            "fnmatch",
            "functools",
            "gc",
            "glob",
            "grp",
            "heapq",
            "importlib",
            "inspect",
            "io",
            "ipaddress",
            "itertools",
            "linecache",
            "locale",
            "math",
            "operator",
            "os",
            "pathlib",
            "platform",
            "posix",
            "pwd",
            "re",
            "select",
            "selectors",
            "shutil",
            "signal",
            "stat",
            "struct",
            "subprocess",
            "sys",
            "textwrap",
            "threading",
            "time",
            "traceback",
            "types",
            "typing",
            "unicodedata",
            "urllib.parse",
            "warnings",
            "weakref",
            "zlib",
        ),
        "python3-core",
    ),
    "asyncio": "python3-asyncio",
    "base64": "python3-netclient",
    "ctypes": "python3-ctypes",
    "datetime": "python3-datetime",
    "difflib": "python3-difflib",
    "email": "python3-email",
    "http": "python3-netclient",
    "ssl": "python3-io",
    "hashlib": "python3-crypt",
    "json": "python3-json",
    "logging": "python3-logging",
    "pprint": "python3-pprint",
    "queue": "python3-threading",
    "random": "python3-math",
    "secrets": "python3-netclient",
    "shlex": "python3-shell",
    "socket": "python3-io",
    "_json": "python3-json",  # the C half of json, in the same package
    "_socket": "python3-io",  # the C half of socket, in the same package
    "_struct": "python3-core",  # the C half of struct, in the same package
    "_thread": "python3-core",  # the C half of threading, built into the interpreter
    "string": "python3-stringold",
    "tempfile": "python3-io",
    "tomllib": "python3-tomllib",
    "urllib": "python3-netclient",
    "uuid": "python3-netclient",
    "zoneinfo": "python3-zoneinfo",
}


def imported_modules() -> set[str]:
    """Absolute imports anywhere in the hostd package (dotted names)."""
    found = set()
    for path in (REPO / "hostd").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return found


def test_recipe_rdepends_cover_every_import(recipe: Recipe) -> None:
    rdepends = set(recipe.values["RDEPENDS:${PN}"].split())
    distributions = {re.match(r"[\w.-]+", d)[0] for d in PYPROJECT["project"]["dependencies"]}
    for module in sorted(imported_modules()):
        top = module.split(".")[0]
        if top == "hostd":
            continue
        if top in sys.stdlib_module_names:
            key = next((k for k in (module, top) if k in OE_PYTHON3), None)
            assert key, f"hostd imports {module}: add it to OE_PYTHON3 (its package in OE's python3-manifest.json)"
            assert OE_PYTHON3[key] in rdepends, f"hostd imports {module}: RDEPENDS needs {OE_PYTHON3[key]}"
        else:
            dist = next((d for d in distributions if re.sub(r"[-.]", "_", d.lower()) == top), None)
            assert dist, f"hostd imports {module}, which is not a dependency in pyproject.toml"
            assert f"python3-{dist.lower()}" in rdepends, f"RDEPENDS needs python3-{dist.lower()}"


# ------------------------------------------------------------------------------------ versions


def test_versions_agree() -> None:
    from hostd import __version__

    recipe_version = RECIPES[0].stem.split("_", 1)[1]
    first = (DEBIAN / "changelog").read_text().splitlines()[0]
    name, version = re.match(r"(\S+) \(([^)]+)\)", first).groups()
    assert name == "hostd"
    assert VERSION == __version__ == recipe_version == version.split("-")[0]


def test_build_deb_reads_the_package_sources() -> None:
    listed = subprocess.run(
        [str(PACKAGING / "build-deb"), "--list-inputs"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for needed in ("pyproject.toml", "LICENSE", "hostd/cli.py", "packaging/debian/control", "packaging/install-map"):
        assert needed in listed
    assert not [name for name in listed if "__pycache__" in name]


# ------------------------------------------------------------------------------------ generated files


def parsers() -> dict[str, argparse.ArgumentParser]:
    return {program.name: argwalk.load(program)[1] for program in argwalk.PROGRAMS}


def every_command(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) of the parser and every nested subcommand, read from argparse directly."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_command(sub, (*path, name))


def test_man_pages_cover_every_subcommand_and_option(tmp_path: Path) -> None:
    manpages.main([str(tmp_path)])
    for name, parser in parsers().items():
        program = next(p for p in argwalk.PROGRAMS if p.name == name)
        page = (tmp_path / f"{name}.{program.section}").read_text()
        assert page.startswith('.\\"') and f".TH {name.upper()} {program.section} " in page
        plain = page.replace("\\-", "-")
        for path, sub in every_command(parser):
            if path:
                assert f'.SS "{" ".join((name, *path))}"' in plain, path
            for action in sub._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for choice in action._choices_actions:
                        assert manpages.escape(choice.help) in page, (path, choice.dest)
                elif action.help != argparse.SUPPRESS:
                    for option in action.option_strings:
                        assert option in plain, (path, option)
                    if action.help and "%(" not in action.help:
                        assert manpages.escape(action.help) in page, (path, action.dest)
    cli = (tmp_path / "hostctl.1").read_text()
    codes = re.findall(r"^\.B (\d+)$", cli.split(".SH EXIT STATUS", 1)[1], re.M)
    assert codes and codes == sorted(codes) and "0" in codes


@pytest.mark.skipif(not shutil.which("groff"), reason="needs groff")
def test_man_pages_render_without_warnings(tmp_path: Path) -> None:
    manpages.main([str(tmp_path)])
    for page in tmp_path.iterdir():
        result = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True)
        assert result.returncode == 0 and not result.stderr, (page.name, result.stderr)


def test_exit_codes_from_a_docstring() -> None:
    doc = "Tool.\n\nDoes things.  Exit codes: 0 success; 1 bad input,\nor worse; 2 misuse.  More text.\n"
    assert manpages.exit_codes(doc) == [("0", "success"), ("1", "bad input, or worse"), ("2", "misuse")]
    assert "Exit codes" not in manpages.description(doc) and "More text." in manpages.description(doc)
    assert manpages.exit_codes("0 success, 1 failure") == []


def test_bash_completion_offers_every_subcommand_and_option(tmp_path: Path) -> None:
    script = tmp_path / "hostctl"
    completion.main([str(script)])
    text = script.read_text()
    expected = {}  # words typed after "hostctl" -> (offered for an empty word, offered for "-")
    for path, sub in every_command(parsers()["hostctl"]):
        words = set()
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                words |= set(action.choices)
            elif not action.option_strings and action.choices:
                words |= {str(c) for c in action.choices}
        for word in words:
            assert re.search(rf"\b{re.escape(word)}\b", text), word
        options = {o for a in sub._actions if a.help != argparse.SUPPRESS for o in a.option_strings}
        expected[" ".join(path)] = (words, options)
    if not shutil.which("bash"):
        pytest.skip("needs bash to run the completion")
    probes = "".join(
        f"COMP_WORDS=(hostctl {path} {shlex.quote(cur)}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); "
        f'COMPREPLY=(); _hostctl; echo "{path}|{cur}|${{COMPREPLY[*]}}"\n'
        for path in expected
        for cur in ("", "-")
    )
    result = subprocess.run(["bash", "-c", f"source {script}\n{probes}"], capture_output=True, text=True, check=True)
    assert not result.stderr
    offered = {}
    for line in result.stdout.splitlines():
        path, cur, reply = line.split("|")
        offered[(path, cur)] = set(reply.split())
    for path, (words, options) in expected.items():
        assert offered[(path, "")] == words, path
        assert offered[(path, "-")] == options, path


def test_launchers_call_every_console_script(tmp_path: Path) -> None:
    launchers.main([str(tmp_path), "/usr/lib/hostd/python"])
    for name, target in PYPROJECT["project"]["scripts"].items():
        launcher = tmp_path / name
        module, function = target.split(":")
        text = launcher.read_text()
        assert text.startswith("#!/usr/bin/python3 -IS\n") and launcher.stat().st_mode & 0o111
        assert 'sys.path.insert(0, "/usr/lib/hostd/python")' in text
        assert text.index("sys.dont_write_bytecode = True") < text.index("sys.path.insert")
        assert f"from {module} import {function}" in text
        compile(text, name, "exec")


def test_launchers_run_without_site_packages(tmp_path: Path) -> None:
    # -I -S: only the standard library and the private directory are importable, as on a device.
    launchers.main([str(tmp_path), str(REPO)])
    done = subprocess.run([str(tmp_path / "hostctl"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: hostctl" in done.stdout, done.stderr


def test_recipe_passes_oelint_adv() -> None:
    """The recipe cannot be built here: the Yocto community's recipe linter holds it to the style
    guide instead.  Errors and warnings fail; its suggestions ("info") are left to judgement."""
    linter = Path(sys.executable).with_name("oelint-adv")
    recipes = sorted((REPO / "packaging" / "yocto").glob("*.bb"))
    result = subprocess.run([str(linter), "--quiet", *map(str, recipes)], capture_output=True, text=True)
    findings = [line for line in result.stderr.splitlines() if re.search(r":(error|warning):", line)]
    assert recipes and findings == [], "\n".join(findings)
