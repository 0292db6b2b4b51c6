"""A stand-in for the raw tier's command runner (``seawall.dataplane.iptables.backend.Runner``):
it answers by command and records every call, so the raw tier's decisions
(what it saves, restores, creates, swaps, destroys) are unit-tested without root."""

from __future__ import annotations

from collections.abc import Sequence


class FakeRunner:
    """Answers by the whole command line or by the program name (an ``Exception``
    answer is raised); records every call as (argv, stdin); "" when nothing matches."""

    def __init__(self, answers: dict[str, str | Exception] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, argv: Sequence[str], stdin: str | None = None) -> str:
        self.calls.append((list(argv), stdin))
        for key in (" ".join(argv), argv[0]):
            if key in self.answers:
                answer = self.answers[key]
                if isinstance(answer, Exception):
                    raise answer
                return answer
        return ""
