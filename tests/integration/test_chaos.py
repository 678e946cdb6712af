"""The kill campaign in miniature (bench/chaos.py): SIGKILLed workers must not lose or re-decide requests.

Two ``conveyor worker --pipeline echo`` processes on a broker of the campaign's own; 2,000
requests over 100 sessions published at 40/s by a librdkafka client while two random workers are
SIGKILLed and restarted. Every request must get a result, and every result of one request must be
the same answer (the echo of its text). Waits are safety caps only: the campaign stops as soon as
every request is answered, or when every group has committed its whole input (nothing more can
come), so the verdict does not depend on how fast the machine is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import CampaignConfig, run_campaign

pytestmark = pytest.mark.integration

CONFIG = CampaignConfig(requests=2000, sessions=100, rate=40, workers=2, kills=2, seed=20261124,
                        quiet_s=60, cap_s=600, ready_timeout_s=180)


def test_sigkilled_workers_lose_no_request_and_answer_each_once(tmp_path: Path) -> None:
    result = run_campaign(CONFIG, tmp_path)

    assert len(result.kills) == CONFIG.kills, result.explain()
    assert result.published == CONFIG.requests and result.publish_failed == 0, result.explain()
    assert result.lost == [], f"{len(result.lost)} requests got no result:\n{result.explain()}"
    assert result.answered == CONFIG.requests, result.explain()
    assert result.conflicting == [], f"requests answered twice, differently:\n{result.explain()}"
    assert result.wrong == [], f"results that are not the echo of the request:\n{result.explain()}"
