#!/usr/bin/env python3
"""The gate: fail the run on the verdicts in summary.json, after the report has been written.

  python scripts/gate.py --summary results/summary.json --report results/report.md \\
      [--fail-on-mismatch | --no-fail-on-mismatch] [--fail-on-inconclusive | --no-fail-on-inconclusive] \\
      --output results/gate.json

A pair whose verdict is `mismatch` (with --fail-on-mismatch, the default) or `inconclusive` (with
--fail-on-inconclusive, the default: nothing was verified) fails the gate: exit status 1 and one line naming each
such model and pair, its verdict and its reason, and where the report is. Nothing is written then. Otherwise
--output records the outcome (the verdicts let through included) and the exit status is 0.

The gate is its own step so that a failing verdict cannot take the report with it: Snakemake deletes the outputs of
a failed job, and the report's files are the report step's outputs, not the gate's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

from trtverify import __version__
from trtverify.errors import UserError, run_main
from trtverify.io import read_json, write_json
from trtverify.report_gpus import identity_failures
from trtverify.schema import parse_with_defaults

SCHEMA_VERSION = 1
VERDICTS = ("identical", "consistent", "drift", "mismatch", "inconclusive")
FLAGS = {"mismatch": "report.fail_on_mismatch", "inconclusive": "report.fail_on_inconclusive"}


class Finding(NamedTuple):
    model: str
    pair: str
    verdict: str
    reason: str

    def __str__(self) -> str:
        return f"{self.model}: {self.pair} is {self.verdict} ({self.reason})"


def corrupt(path: str, what: str) -> UserError:
    return UserError(f"summary {path} {what}: it is not a summary.json of scripts/report.py; rerun the report step")


def pair_verdicts(summary: Any, path: str) -> list[Finding]:
    """Every pair's verdict and reason, checked against the summary's own verdict counts."""
    if not isinstance(summary, dict) or not isinstance(summary.get("models"), dict):
        raise corrupt(path, "has no 'models' object")
    counts = summary.get("verdict_counts")
    if not isinstance(counts, dict) or "verdict" not in summary:
        raise corrupt(path, "lacks 'verdict' or 'verdict_counts'")
    found = []
    for model, entry in summary["models"].items():
        pairs = entry.get("pairs") if isinstance(entry, dict) else None
        if not isinstance(pairs, dict):
            raise corrupt(path, f"has no pairs for model '{model}'")
        for name, pair in pairs.items():
            if not isinstance(pair, dict) or pair.get("verdict") not in VERDICTS:
                verdict = pair.get("verdict") if isinstance(pair, dict) else pair
                raise corrupt(path, f"gives {model}: {name} the verdict {verdict!r} (known: {', '.join(VERDICTS)})")
            found.append(Finding(model, name, pair["verdict"], str(pair.get("reason") or "no reason given")))
    tally = {v: sum(f.verdict == v for f in found) for v in VERDICTS}
    differ = [f"{v} {counts.get(v, 0)} counted, {tally[v]} listed" for v in VERDICTS if counts.get(v, 0) != tally[v]]
    if differ:
        raise corrupt(path, "contradicts itself (" + "; ".join(differ) + ")")
    return found


def judge(found: Sequence[Finding], fail_on: Mapping[str, bool]) -> tuple[list[Finding], list[Finding]]:
    """(failing, let through): the mismatch/inconclusive pairs, split by whether their flag is on."""
    flagged = [f for f in found if f.verdict in FLAGS]
    return [f for f in flagged if fail_on[f.verdict]], [f for f in flagged if not fail_on[f.verdict]]


def failure_message(failing: Sequence[Finding], report: str) -> str:
    flags = sorted({FLAGS[f.verdict] for f in failing})
    return (f"{len(failing)} pair(s) fail the gate: " + "; ".join(map(str, failing))
            + f". The report with the figures is {report}; fix the conversion, or set {' / '.join(flags)}: false"
            " to record these verdicts without failing")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--summary", required=True, help="summary.json of the report step")
    p.add_argument("--report", required=True, help="the report the failure message points to (results/report.md)")
    p.add_argument("--fail-on-mismatch", action=argparse.BooleanOptionalAction,
                   help="fail when a pair's verdict is mismatch")
    p.add_argument("--fail-on-inconclusive", action=argparse.BooleanOptionalAction,
                   help="fail when a pair's verdict is inconclusive: nothing was verified")
    p.add_argument("--output", required=True, help="gate.json to write when the gate passes")
    args = parse_with_defaults(p, argv, {
        "fail_on_mismatch": "report.fail_on_mismatch", "fail_on_inconclusive": "report.fail_on_inconclusive"})

    summary = read_json(args.summary, what="summary")
    found = pair_verdicts(summary, args.summary)
    fail_on = {"mismatch": args.fail_on_mismatch, "inconclusive": args.fail_on_inconclusive}
    failing, let_through = judge(found, fail_on)
    differing = identity_failures(summary)  # a GPU that answers otherwise than the others fails, whatever the flags
    if failing or differing:
        Path(args.output).unlink(missing_ok=True)      # a pass recorded by an earlier run must not stay behind
        reasons = [failure_message(failing, args.report)] if failing else []
        if differing:
            reasons.append(f"{len(differing)} GPU run(s) differ from the node's first GPU: " + "; ".join(differing)
                           + f". The report is {args.report}; check that GPU's driver and health, or replace it")
        raise UserError(" ".join(reasons))
    write_json(args.output, {
        "schema_version": SCHEMA_VERSION, "gate": "pass", "summary_verdict": summary["verdict"],
        "fail_on_mismatch": args.fail_on_mismatch, "fail_on_inconclusive": args.fail_on_inconclusive,
        "verdict_counts": {v: sum(f.verdict == v for f in found) for v in VERDICTS},
        "let_through": [str(f) for f in let_through],
        "generator": {"program": "scripts/gate.py", "trtverify": __version__}})
    print(f"gate: pass ({len(found)} pair(s); {len(let_through)} mismatch/inconclusive let through by config)")
    return 0


if __name__ == "__main__":
    run_main(main)
