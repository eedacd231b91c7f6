"""tools/bench_compare.py: the throughput benchmark runs compare.py on what it wrote and reports its figures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_compare_reports_throughput_of_a_real_comparison(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(REPO / "tools" / "bench_compare.py"), "--samples", "300", "--classes",
                          "20", "--kind", "logits", "--batch-size", "128", "--work", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"4 backends x 300 x 20 logits .*: ([0-9.]+) s, ([0-9.]+) GB/s, peak RSS (\d+) MB", out)
    assert m, out
    assert float(m.group(1)) > 0 and int(m.group(3)) > 0
    result = json.loads((tmp_path / "logits-300x20" / "comparison.json").read_text())
    assert result["num_samples"] == 300 and len(result["pairs"]) == 6     # four backends, every pair
    assert result["pairs"]["savedmodel vs tensorrt_fp16"]["metrics"]["max_abs_diff"] > 0
