"""The worked sweep examples (examples/, docs/examples/sweeps.md) run end to end and tell a story
that agrees with the networks' own outputs: two seeds of the digits block MLP (every block pair)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_two_seeds_sweep_all_block_pairs_and_agree_with_their_outputs(tmp_path, capsys):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import sweep_seeds
    finally:
        sys.path.remove(str(EXAMPLES))

    found = sweep_seeds.main(["--report-dir", str(tmp_path)])
    result, checks = found["result"], found["checks"]
    assert result.mode == "all" and result.layers_a == ("blocks.0", "blocks.1", "blocks.2", "blocks.3")
    assert len(result.cells) == 16 and all(c.cka is not None for c in result.cells)
    assert all(n["test_accuracy"] > 0.9 for n in checks["networks"])  # both networks learnt the task
    assert checks["story"].startswith("agrees"), checks["story"]
    # the run folder holds the whole grid and the checks
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    record = json.loads((folder / "record.json").read_text())
    assert len(record["sweep"]["cells"]) == 16
    assert json.loads((folder / "checks.json").read_text())["story"] == checks["story"]
    again = sweep_seeds.main(["--report-dir", str(tmp_path / "again")])  # deterministic
    assert again["result"].to_dict()["cells"] == result.to_dict()["cells"]
    assert again["checks"]["answer_agreement"] == checks["answer_agreement"]
    assert "first failing layer" in capsys.readouterr().out
