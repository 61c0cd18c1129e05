"""The integration-blocked follow-up template: the answer to the seed's open question 2.

The text lives here, in code, so the installed package needs no data files. The copy under
``todos/templates/integration-blocked/`` is generated from this module
(``python -m integrator.followup_template todos/templates/integration-blocked``) and a test keeps
the two equal. Placeholders are ``{{name}}``; rendering is one pass, so a value that happens to
contain ``{{...}}`` is never expanded again.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

from integrator import reasons

TEMPLATE_NAME = "integration-blocked"

REQUIREMENTS_MD = """\
# Integration blocked: {{slug}}

<!-- Written by the integrator from the integration-blocked template (integrator/followup_template.py).
     Refreshed on every block of this slug: edits here are overwritten. -->

## Goal

Get {{slug}} integrated into {{main_branch}}. The integrator tried to merge {{branch}} at {{sha}}
onto {{main_branch}} at {{main_sha}} and was blocked with `{{reason_code}}`: {{reason_summary}}.

## Candidate

- Slug: {{slug}}
- Branch: {{branch}}
- Sha: {{sha}}
- Tried on {{main_branch}} at: {{main_sha}}
- Reason code: `{{reason_code}}`
- Blocked {{blocked_count}} time(s): first at {{first_blocked_at}}, last at {{last_blocked_at}}

## Evidence

{{evidence}}

## Next action

{{next_action}}
"""

IMPLEMENTATION_PLAN_MD = """\
# Implementation plan: unblock {{slug}}

<!-- Written by the integrator from the integration-blocked template; refreshed on every block. -->

Blocked with `{{reason_code}}` on {{main_branch}} at {{main_sha}} (candidate {{sha}} on {{branch}}).
Tick the boxes as you go; the integrator marks this follow-up resolved when {{slug}} lands.

{{checklist}}
"""

STATE_YAML = """\
# Integration-blocked follow-up; written by the integrator, do not edit by hand.
kind: integration-blocked
status: {{status}}
slug: {{slug}}
todo: {{todo}}
branch: {{branch}}
sha: {{sha}}
main_sha: {{main_sha}}
reason_code: {{reason_code}}
blocked_count: {{blocked_count}}
first_blocked_at: {{first_blocked_at}}
last_blocked_at: {{last_blocked_at}}
resolved_at: {{resolved_at}}
merge_sha: {{merge_sha}}
"""

# The resolution note ``resolve_followup`` appends to requirements.md.
RESOLUTION_MD = """\

## Resolution

Resolved: {{slug}} integrated as {{merge_sha}} at {{resolved_at}}.
"""

TEMPLATES: dict[str, str] = {
    "requirements.md": REQUIREMENTS_MD,
    "implementation-plan.md": IMPLEMENTATION_PLAN_MD,
    "state.yaml": STATE_YAML,
}

# What each placeholder holds. In the markdown files values arrive already formatted (code spans,
# fenced blocks); in state.yaml they arrive as YAML scalars.
PLACEHOLDERS: dict[str, str] = {
    "slug": "the candidate's slug (the follow-up todo is `<slug>-integration-blocked`)",
    "todo": "the follow-up todo's slug, `<slug>-integration-blocked` (state.yaml)",
    "branch": "the candidate's branch",
    "sha": "the candidate sha that was blocked (the newest block)",
    "main_sha": "the main sha the integration was tried on",
    "main_branch": "the configured main branch name",
    "reason_code": reasons.listed(),
    "reason_summary": "half a sentence saying what the reason code means",
    "blocked_count": "how many times this slug has been blocked since the follow-up was created",
    "first_blocked_at": "UTC ISO-8601 time of the first block",
    "last_blocked_at": "UTC ISO-8601 time of the newest block",
    "evidence": "the evidence rendered as markdown (conflicted paths and trimmed hunks, log tail, stderr)",
    "next_action": "one sentence with the commands that unblock the candidate",
    "checklist": "markdown checklist: fix, push, emit finalize_ready, confirm (commands filled in)",
    "status": "open or resolved (state.yaml)",
    "resolved_at": "UTC ISO-8601 time the slug integrated, or null (state.yaml and the resolution note)",
    "merge_sha": "the merge commit on main that integrated the slug, or null",
}

README_MD = """\
# Template: integration-blocked follow-up

Generated from `integrator/followup_template.py` by
`python -m integrator.followup_template todos/templates/integration-blocked`; a test keeps this
folder equal to the module, so edit the module, not these files.

When a candidate is blocked, the integrator (`integrator/followup.py`) renders these files into
`todos/<slug>-integration-blocked/` and adds one entry to `todos/roadmap.yaml`
(`slug: <slug>-integration-blocked`, `group: <slug>`). A repeated block of the same slug refreshes
the files and increments `blocked_count`; it never makes a second folder or roadmap entry. When the
slug integrates, `state.yaml` becomes `status: resolved` and requirements.md gets a `## Resolution`
note. See `docs/blocked-flow.md` for a rendered example.

## Placeholders

{{placeholder_table}}
"""


_PLACEHOLDER_RE = re.compile(r"\{\{([a-z_]+)\}\}")


def placeholders(template: str) -> list[str]:
    """The placeholder names in ``template``, in first-use order."""
    return list(dict.fromkeys(_PLACEHOLDER_RE.findall(template)))


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill every ``{{name}}``; a placeholder without a value is a bug and raises KeyError."""
    missing = [name for name in placeholders(template) if name not in values]
    if missing:
        raise KeyError(f"template values missing: {', '.join(missing)}")
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


def template_files() -> dict[str, str]:
    """The files of ``todos/templates/integration-blocked/``, exactly as they must be on disk."""
    table = "\n".join(
        ["| placeholder | holds |", "| --- | --- |"]
        + [f"| `{{{{{name}}}}}` | {text} |" for name, text in PLACEHOLDERS.items()]
    )
    return {
        "README.md": render(README_MD, {"placeholder_table": table}),
        **TEMPLATES,
        "resolution.md": RESOLUTION_MD,
    }


def write_template_files(dest: Path) -> list[Path]:
    """(Re)generate the documented copy of the template under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in template_files().items():
        path = dest / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - a maintainer's regeneration command
    # Silent on purpose: the core prints only from cli; `git status` shows what changed.
    write_template_files(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("todos/templates") / TEMPLATE_NAME)
