"""``conveyor dlq replay``: republish dead letters to the topic they came from, once each.

Once each: every replayed letter is recorded (key ``topic:partition:offset`` of the original
message) on ``conveyor.dlq.replayed``; a later replay skips those, whatever its filters. A letter
that was truncated (its value was too large to carry) cannot be replayed and is reported; a
redacted one is replayed as stored (PII masked), and reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from streams.app import Settings
from streams.client import Client
from streams.envelope import DeadLetter
from streams.topics import DLQ

__all__ = ["REPLAYED", "REPLAY_HEADER", "ReplayReport", "replay"]

REPLAYED = "conveyor.dlq.replayed"
REPLAY_HEADER = "conveyor-replay"  # a step runs a replayed message again even though it failed it before


@dataclass
class ReplayReport:
    replayed: list[DeadLetter] = field(default_factory=list)
    already: int = 0
    filtered: int = 0
    truncated: list[DeadLetter] = field(default_factory=list)
    redacted: int = 0


def letter_key(letter: DeadLetter) -> str:
    return f"{letter.topic}:{letter.partition}:{letter.offset}"


def original_bytes(letter: DeadLetter) -> bytes:
    import base64

    return base64.b64decode(letter.value) if letter.value_encoding == "base64" else letter.value.encode("utf-8")


async def replay(settings: Settings, step: str | None = None, since: datetime | None = None, dry_run: bool = False,
                 read_s: float = 3.0) -> ReplayReport:
    report = ReplayReport()
    async with Client(settings) as client:
        done = {key.decode() async for key, _ in client.read(REPLAYED, None, read_s) if key}
        letters = [DeadLetter.model_validate_json(v) async for _, v in client.read(DLQ, None, read_s)]
        for letter in letters:
            if letter_key(letter) in done:
                report.already += 1
                continue
            if (step is not None and letter.step != step) or (since is not None and letter.timestamp < since.timestamp()):
                report.filtered += 1
                continue
            if letter.truncated:
                report.truncated.append(letter)
                continue
            report.redacted += bool(letter.redacted)
            report.replayed.append(letter)
            if not dry_run:
                key = letter.key.encode("utf-8") if letter.key is not None else None
                await client.send(letter.topic, original_bytes(letter), key, headers=[(REPLAY_HEADER, b"1")])
                await client.send(REPLAYED, b"", letter_key(letter).encode())
                done.add(letter_key(letter))
    return report


def describe(report: ReplayReport, dry_run: bool) -> list[str]:
    verb = "would replay" if dry_run else "replayed"
    lines = [f"{verb} {len(report.replayed)} dead letter(s); {report.already} replayed before, "
             f"{report.filtered} filtered out, {len(report.truncated)} truncated (cannot be replayed)"]
    for letter in report.replayed[:20]:
        lines.append(f"  {letter.step:<14} {letter_key(letter):<40} {letter.request_id or '-':<24} {letter.error_class}")
    if report.redacted:
        lines.append(f"{report.redacted} of them carry PII masked when they were dead-lettered (CONVEYOR_STORE_RAW_PII)")
    for letter in report.truncated[:5]:
        lines.append(f"  truncated: {letter_key(letter)} ({letter.size:,} bytes, sha256 {letter.sha256[:12]}…)")
    return lines
