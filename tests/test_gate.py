"""scripts/gate.py: which verdicts fail the gate under which flags, its one-line messages, and what it writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import gate  # scripts/ is on the test path (pyproject.toml)
from conftest import leftovers, run_script
from trtverify.errors import UserError

REASONS = {"identical": "bit-equal", "consistent": "within 1e-05 + 1e-04|ref|", "drift": "0.5 % outside",
           "mismatch": "top-1 agreement 0.9 (at least 0.99)", "inconclusive": "outputs constant across samples"}


def summary(*verdicts: str) -> dict[str, Any]:
    """A summary.json as scripts/report.py writes it (only the keys the gate reads), one pair per verdict."""
    pairs = {f"savedmodel vs b{i}": {"a": "savedmodel", "b": f"b{i}", "verdict": v, "reason": REASONS[v]}
             for i, v in enumerate(verdicts)}
    counts = {v: list(verdicts).count(v) for v in gate.VERDICTS}
    return {"schema_version": 2, "verdict": "fail" if "mismatch" in verdicts else "pass", "verdict_counts": counts,
            "models": {"net": {"verdict": "pass", "pairs": pairs}}}


def run(tmp_path: Path, content: Any, *flags: str) -> Path:
    path = tmp_path / "summary.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    out = tmp_path / "gate.json"
    gate.main(["--summary", str(path), "--report", "results/report.md", "--output", str(out), *flags])
    return out


@pytest.mark.parametrize("verdict", ["identical", "consistent", "drift"])
def test_passing_verdicts_pass_under_every_flag(tmp_path: Path, verdict: str) -> None:
    out = run(tmp_path, summary(verdict, "identical"))
    written = json.loads(out.read_text())
    assert written["gate"] == "pass" and written["let_through"] == []
    assert written["verdict_counts"][verdict] == (2 if verdict == "identical" else 1)


@pytest.mark.parametrize("verdict, flag", [("mismatch", "--fail-on-mismatch"),
                                           ("inconclusive", "--fail-on-inconclusive")])
def test_a_flagged_verdict_fails_by_default_and_with_its_flag(tmp_path: Path, verdict: str, flag: str) -> None:
    for flags in ((), (flag,)):
        with pytest.raises(UserError) as err:
            run(tmp_path, summary("identical", verdict), *flags)
        msg = str(err.value)
        assert msg.startswith("1 pair(s) fail the gate: net: savedmodel vs b1 is " + verdict)
        assert f"({REASONS[verdict]})" in msg and "results/report.md" in msg
        assert f"report.fail_on_{verdict}: false" in msg
        assert not (tmp_path / "gate.json").exists()


@pytest.mark.parametrize("verdict, off", [("mismatch", "--no-fail-on-mismatch"),
                                          ("inconclusive", "--no-fail-on-inconclusive")])
def test_a_verdict_whose_flag_is_off_is_let_through_and_recorded(tmp_path: Path, verdict: str, off: str) -> None:
    written = json.loads(run(tmp_path, summary("consistent", verdict), off).read_text())
    assert written["gate"] == "pass"
    assert written["let_through"] == [f"net: savedmodel vs b1 is {verdict} ({REASONS[verdict]})"]
    assert written[f"fail_on_{verdict}"] is False


def test_each_flag_only_governs_its_own_verdict(tmp_path: Path) -> None:
    both = summary("mismatch", "inconclusive")
    with pytest.raises(UserError, match=r"^1 pair\(s\) fail the gate: net: savedmodel vs b1 is inconclusive"):
        run(tmp_path, both, "--no-fail-on-mismatch")
    with pytest.raises(UserError, match=r"^1 pair\(s\) fail the gate: net: savedmodel vs b0 is mismatch"):
        run(tmp_path, both, "--no-fail-on-inconclusive")
    with pytest.raises(UserError, match=r"^2 pair\(s\) fail the gate: .* mismatch .*; .* inconclusive") as err:
        run(tmp_path, both)
    assert "report.fail_on_inconclusive / report.fail_on_mismatch: false" in str(err.value)
    assert len(json.loads(run(tmp_path, both, "--no-fail-on-mismatch", "--no-fail-on-inconclusive")
                          .read_text())["let_through"]) == 2


def test_a_failing_gate_removes_an_earlier_pass(tmp_path: Path) -> None:
    run(tmp_path, summary("identical"))
    assert (tmp_path / "gate.json").exists()
    with pytest.raises(UserError):
        run(tmp_path, summary("mismatch"))
    assert not (tmp_path / "gate.json").exists()


def contradicting() -> dict[str, Any]:
    s = summary("mismatch")
    s["verdict_counts"]["mismatch"] = 0
    return s


@pytest.mark.parametrize("content, message", [
    (None, "does not exist; run the step that writes it"),
    ("{not json", "is not valid JSON"),
    ([1, 2], "has no 'models' object"),
    ({"models": {}}, "lacks 'verdict' or 'verdict_counts'"),
    ({**summary("identical"), "models": {"net": {"pairs": None}}}, "has no pairs for model 'net'"),
    ({**summary("identical"), "models": {"net": {"pairs": {"a vs b": {"verdict": "fine"}}}}},
     "gives net: a vs b the verdict 'fine' (known: identical, consistent, drift, mismatch, inconclusive)"),
    (contradicting(), "contradicts itself (mismatch 0 counted, 1 listed)"),
])
def test_a_missing_or_corrupt_summary_ends_in_one_line(tmp_path: Path, content: Any, message: str) -> None:
    args = ["--summary", str(tmp_path / "summary.json"), "--report", "r.md", "--output", str(tmp_path / "gate.json")]
    if content is not None:
        (tmp_path / "summary.json").write_text(content if isinstance(content, str) else json.dumps(content))
    proc = run_script("gate.py", *args, check=False)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(err) == 1, proc.stderr
    assert err[0].startswith("gate.py: error: ") and message in err[0], err[0]
    assert not (tmp_path / "gate.json").exists() and leftovers(tmp_path) == []


def test_the_command_line_fails_with_exit_1_and_passes_with_0(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary("mismatch")))
    args = ["--summary", str(path), "--report", "results/report.md", "--output", str(tmp_path / "gate.json")]
    failed = run_script("gate.py", *args, check=False)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1
    passed = run_script("gate.py", *args, "--no-fail-on-mismatch")
    assert passed.returncode == 0 and "gate: pass (1 pair(s); 1 mismatch/inconclusive let through" in passed.stdout
