"""The rules read like the snakemake-workflows catalog's: a docstring on each, input and params functions in
rules/common.smk rather than lambdas, defaults in config/schema.yaml (which Snakemake's validate fills in) rather than
`.get(key, default)`, and every `report()` output with a caption, a category and labels."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from conftest import REPO

TINY = REPO / "tests" / "data" / "config-tiny.yaml"
WORKFLOW_FILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]


def code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of a workflow file, less its comments."""
    return [(n, line.split("#", 1)[0]) for n, line in enumerate(text.splitlines(), 1)]


def restated_defaults(text: str) -> list[str]:
    """Lines that hide a config default (`.get(`) or hold a lambda: the schema has the default, and common.smk has
    the functions."""
    return [f"{n}: {line.strip()}" for n, line in code_lines(text) if ".get(" in line or re.search(r"\blambda\b", line)]


def test_the_check_finds_what_it_forbids() -> None:
    sample = 'x = 1  # a .get( in a comment is fine\n    batch=config["a"].get("b", 4),\n    f=lambda w: w.model,\n'
    assert restated_defaults(sample) == ['2: batch=config["a"].get("b", 4),', "3: f=lambda w: w.model,"]


def test_no_rule_file_restates_a_default_or_holds_a_lambda() -> None:
    found = {str(p.relative_to(REPO)): restated_defaults(p.read_text()) for p in WORKFLOW_FILES}
    assert {f: lines for f, lines in found.items() if lines} == {}


def test_every_config_key_the_rules_read_is_required_or_has_a_schema_default() -> None:
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]
    text = "\n".join(p.read_text() for p in WORKFLOW_FILES).replace("BENCH[", 'config["benchmark"][')
    reads = set(re.findall(r'config\["(\w+)"\]\["(\w+)"\]', text))
    assert ("compare", "batch_size") in reads   # the pattern sees the reads it is meant to
    missing = []
    for section, key in sorted(reads):
        spec = schema[section]
        if key not in spec.get("required", []) and "default" not in spec["properties"][key]:
            missing.append(f"{section}.{key}")
    assert missing == []


def test_every_rule_has_a_docstring() -> None:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules", "--configfile", str(TINY),
                           "--replace-workflow-config"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    heads = [line for line in proc.stdout.splitlines() if line and not line.startswith(" ")]
    assert len(heads) >= 20
    assert [h for h in heads if " (" not in h] == []   # --list-rules shows "name (docstring)"


def test_every_report_output_has_a_caption_category_and_labels() -> None:
    text = "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    calls = re.findall(r"=report\((.*?)\n        \),", text, re.S)
    assert len(calls) >= 3
    for call in calls:
        for argument in ("caption=", "category=", "labels="):
            assert argument in call, call
        caption = re.search(r'caption="\.\./(.+?)"', call)
        assert caption and (REPO / caption.group(1)).read_text().strip(), call
