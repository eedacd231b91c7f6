#!/usr/bin/env python3
"""Make the installed tensorrt-stubs usable by mypy: `python tools/trt_stubs.py [OUT]` (default build/mypy-stubs).

tensorrt-stubs (10.13) cannot be used as installed: its `tensorrt` and `tensorrt_bindings` packages have no py.typed
marker, so mypy skips them (and `ignore_missing_imports` then types all of TensorRT as Any), and
tensorrt_bindings/tensorrt.pyi does not parse (parameters named `in`, a parameter without a default after ones with
defaults). This copies the two packages into OUT (git-ignored, never committed), repairs each line Python's parser
rejects until the file parses, and writes what it changed to OUT/REPAIRS.txt. pyproject.toml points mypy_path at OUT.
Nothing else of the stubs is changed; errors mypy finds inside them are silenced there (pyproject.toml overrides).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import sys
from pathlib import Path

PACKAGES = ("tensorrt", "tensorrt_bindings")
MAX_REPAIRS = 200


def find_stubs() -> Path:
    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec is None or spec.origin is None:
        sys.exit("trt_stubs: tensorrt-stubs is not installed; pip install --no-deps -r envs/requirements-nodeps.txt")
    site = Path(spec.origin).parent.parent
    missing = [p for p in PACKAGES if not (site / p).is_dir()]
    if missing:
        sys.exit(f"trt_stubs: {site} lacks {', '.join(missing)}; reinstall tensorrt-stubs")
    return site


def repair_line(line: str) -> str:
    """One def line's known faults: `in` as a parameter name; a parameter without default after defaults."""
    fixed = re.sub(r"([(,]\s*)in(\s*:)", r"\1in_\2", line)
    match = re.match(r"(\s*def \w+\()(.*)(\)\s*(->.*)?:\s*)$", fixed)
    if match:
        params, seen_default = [], False
        for param in split_params(match.group(2)):
            if "=" in param:
                seen_default = True
            elif seen_default and param.strip() and not param.strip().startswith("*"):
                param = f"{param} = ..."
            params.append(param)
        fixed = match.group(1) + ",".join(params) + match.group(3)
    return fixed


def split_params(text: str) -> list[str]:
    """Split a parameter list at top-level commas (annotations may hold brackets)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def repair(path: Path) -> list[str]:
    lines = path.read_text().splitlines(keepends=True)
    changes = []
    for _ in range(MAX_REPAIRS):
        try:
            ast.parse("".join(lines), filename=str(path))
            break
        except SyntaxError as exc:
            n = (exc.lineno or 1) - 1
            fixed = repair_line(lines[n].rstrip("\n")) + "\n"
            if fixed == lines[n]:
                sys.exit(f"trt_stubs: {path}:{n + 1} does not parse ({exc.msg}) and is not a known fault: {lines[n]}")
            changes.append(f"{path.name}:{n + 1}: {lines[n].strip()}\n  -> {fixed.strip()}")
            lines[n] = fixed
    else:
        sys.exit(f"trt_stubs: {path} still does not parse after {MAX_REPAIRS} repairs")
    path.write_text("".join(lines))
    return changes


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/mypy-stubs")
    site = find_stubs()
    if out.exists():
        shutil.rmtree(out)
    changes = []
    for package in PACKAGES:
        shutil.copytree(site / package, out / package, ignore=shutil.ignore_patterns("__pycache__"))
        (out / package / "py.typed").write_text("")
        for stub in sorted((out / package).rglob("*.pyi")):
            changes += repair(stub)
    (out / "REPAIRS.txt").write_text("\n".join(changes) + "\n")
    print(f"trt_stubs: tensorrt-stubs from {site} ready for mypy in {out} ({len(changes)} lines repaired)")


if __name__ == "__main__":
    main()
