"""The cost ledger: entries on ``conveyor.ledger`` (keyed by tenant) folded into the ``cost-ledger`` table.

Once per request: a re-delivered entry (the final step re-ran after a crash) is recognised by the
``ledger-seen`` table, keyed by tenant and request id, whose entries expire after the
de-duplication window (``CONVEYOR_STATE_TTL_S``), so it does not grow with traffic.
"""

from __future__ import annotations

from typing import Any

import asyncio

import orjson

from streams import faust_adapter
from streams.envelope import request_key
from streams.outputs import Outputs
from streams.state import StateTable

__all__ = ["LedgerProcessor"]

EMPTY = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}


class LedgerProcessor:
    """Folds cost entries into per-tenant totals, once per (tenant, request id)."""

    def __init__(self, outputs: Outputs, table: Any, seen: StateTable, durable: bool = True) -> None:
        self.outputs = outputs
        self.table = table  # a Faust table (durable: changelog deliveries awaited) or a dict (streams.testing)
        self.seen = seen
        self.durable = durable

    async def process(self, message: Any) -> None:
        m = self.outputs.metrics
        try:
            entry = orjson.loads(message.value)
            tenant = str(entry["tenant"])
            request_id = str(entry["request_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            m.messages.labels("-", "ledger", "invalid").inc()
            await self.outputs.dead_letter(message, None, "ledger", exc, 0, None)
            return
        key = request_key(tenant, request_id)
        if self.seen.get(key) is not None:
            m.messages.labels("-", "ledger", "skipped").inc()
            return
        totals = {**EMPTY, **{k: v for k, v in (self.table.get(tenant) or {}).items() if k in EMPTY}}
        totals["requests"] += 1
        totals["input_tokens"] += int(entry.get("input_tokens", 0))
        totals["output_tokens"] += int(entry.get("output_tokens", 0))
        totals["cost_usd"] = round(totals["cost_usd"] + float(entry.get("cost_usd", 0.0)), 10)
        writes = [faust_adapter.put(self.table, message.partition, tenant, totals) if self.durable else None,
                  self.seen.set(key, 1, message.partition)]
        if not self.durable:
            self.table[tenant] = totals
        await asyncio.gather(*(w for w in writes if w is not None))  # on the broker before the entry is acked
        m.messages.labels("-", "ledger", "ok").inc()
