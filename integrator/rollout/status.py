"""``integrator rollout status``: one row per roadmap entry, with the live evidence its probes show."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from integrator.rollout.models import RoadmapEntry, Rollout
from integrator.rollout.probes import PROBES

if TYPE_CHECKING:
    from integrator.config import Config


@dataclass(frozen=True)
class SliceStatus:
    slug: str
    group: str | None
    after: tuple[str, ...]
    delivered: bool
    rollout: bool  # a declared rollout's parent or slice (others are e.g. follow-up todos)
    gate: str | None
    score: float | None
    blockers: tuple[str, ...]
    build: str | None
    review: str | None
    evidence: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "group": self.group,
            "after": list(self.after),
            "delivered": self.delivered,
            "rollout": self.rollout,
            "gate": self.gate,
            "score": self.score,
            "blockers": list(self.blockers),
            "build": self.build,
            "review": self.review,
            "evidence": self.evidence,
        }


def _entries(rollout: Rollout) -> list[RoadmapEntry]:
    """Roadmap entries (each slug once, in roadmap order), then delivered slices no longer on it."""
    entries = list(rollout.roadmap or ())
    listed = {e.slug for e in entries}
    entries += [RoadmapEntry(d.slug) for d in rollout.delivered if d.slug not in listed]
    first: dict[str, RoadmapEntry] = {}
    for entry in entries:
        first.setdefault(entry.slug, entry)
    return list(first.values())


def slice_statuses(rollout: Rollout, evidence: Mapping[str, str] | None = None) -> list[SliceStatus]:
    """One row per roadmap entry in roadmap order, then delivered slices no longer on the roadmap."""
    evidence = evidence or {}
    todos = set(rollout.rollout_todos)
    rows: list[SliceStatus] = []
    for entry in _entries(rollout):
        docs = rollout.docs.get(entry.slug)
        state = docs.state if docs else None
        rows.append(
            SliceStatus(
                slug=entry.slug,
                group=entry.group,
                after=entry.after,
                delivered=entry.slug in rollout.delivered_slugs,
                rollout=entry.slug in todos,
                gate=state.gate.status if state else None,
                score=state.gate.score if state else None,
                blockers=state.gate.blockers if state else (),
                build=state.build if state else None,
                review=state.review if state else None,
                evidence=evidence.get(entry.slug),
            )
        )
    return rows


def _fact(name: str, cfg: Config) -> str | None:
    probe = PROBES.get(name)
    if probe is None:
        return f"probe {name} is not known (see `integrator rollout validate`)"
    try:
        return probe(cfg)
    # A status display must survive any one probe breaking; the failure is shown, not hidden.
    except Exception as err:
        return f"probe {getattr(probe, '__name__', name)} failed: {type(err).__name__}: {err}"


def live_facts(cfg: Config, rollout: Rollout) -> dict[str, list[str]]:
    """What the running system shows for each roadmap entry, one fact per probe the entry names."""
    out: dict[str, list[str]] = {}
    for entry in _entries(rollout):
        facts = [fact for name in entry.probes if (fact := _fact(name, cfg))]
        if facts:
            out[entry.slug] = facts
    return out


def join_facts(facts: Mapping[str, list[str]]) -> dict[str, str]:
    """The facts of each slug in one text: the ``evidence`` of each :class:`SliceStatus`."""
    return {slug: "; ".join(found) for slug, found in facts.items()}
