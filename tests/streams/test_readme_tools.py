"""README's "Tools and the planner": its files, copied out of the README into a folder of their own, run unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.readme import snippet


def test_readme_tool_and_planner_pipeline_run_offline(tmp_path: Path) -> None:
    (tmp_path / "mytools.py").write_text(snippet("# mytools.py\nfrom streams import tool"))
    (tmp_path / "tools.yaml").write_text(snippet("# tools.yaml"))
    code = ("import json; from streams.testing import run; "
            "rs = run('tools.yaml', ['How much does shipping a 2.5 kg parcel cost?', "
            "'What is 12 * 7 and how many days between 2026-01-01 and 2026-02-01?']); "
            "print(json.dumps([r.model_dump(mode='json') for r in rs]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    parcel, maths = json.loads(done.stdout.strip().splitlines()[-1])
    assert parcel["status"] == "ok" and parcel["output"]["stopped"] == "done"
    [call] = parcel["output"]["tool_calls"]
    assert call["name"] == "shipping_cost" and call["arguments"] == {"weight_kg": 2.5} and call["result"] == 7.5
    assert parcel["usage"]["cost_usd"] == 0.001  # the tool's declared cost is booked
    assert [c["name"] for c in maths["output"]["tool_calls"]] == ["calculator", "date_diff"]
    assert maths["output"]["tool_calls"][0]["result"] == 84
    bad = (tmp_path / "tools.yaml").read_text().replace("calculator, date_diff", "calculatr")
    (tmp_path / "bad.yaml").write_text(bad)
    checked = subprocess.run([sys.executable, "-m", "streams.cli", "check", "bad.yaml"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1 and "tool 'calculatr' is not a known tool" in checked.stderr
