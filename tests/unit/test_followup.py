"""The integration-blocked follow-up todo: real files in a temporary todos directory, no mocks."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from integrator import followup
from integrator import followup_template as tpl
from integrator.blocked.remedy import next_action
from integrator.errors import InvalidInput
from integrator.followup import RoadmapError, resolve_followup, write_followup
from integrator.reasons import REASON_CODES

REPO_ROOT = Path(__file__).resolve().parents[2]
SHA = "1" * 40
SHA2 = "2" * 40
MAIN = "a" * 40
MERGE = "c" * 40
DESCRIPTION = "Integration of fix-login is blocked; see fix-login-integration-blocked/requirements.md"

CONFLICT: dict[str, Any] = {
    "conflicted_paths": ["src/app.py", "docs/with space.md"],
    "hunks": {
        "src/app.py": "@@ lines 1-5 @@\n<<<<<<< main\nx = 1\n=======\nx = 2\n>>>>>>> candidate",
        "docs/with space.md": (
            "```python\nfenced in the file\n```\n<<<<<<< main\na\n=======\nb\n>>>>>>> candidate"
        ),
    },
    "hunks_full": {"src/app.py": "FULL TEXT NOT FOR MARKDOWN", "docs/with space.md": "FULL"},
    "base": "b" * 40,
    "main": MAIN,
    "candidate": SHA,
    "tree": "d" * 40,
    "messages": ["CONFLICT (content): Merge conflict in src/app.py"],
}


def block(
    todos: Path,
    *,
    slug: str = "fix-login",
    sha: str = SHA,
    at: str = "2025-03-01T10:00:00.000000+00:00",
    reason: str = "merge_conflict",
    evidence: dict[str, Any] | None = None,
) -> followup.FollowUp:
    ev = CONFLICT if evidence is None else evidence
    return write_followup(
        todos,
        slug=slug,
        branch="feat/login",
        sha=sha,
        reason_code=reason,
        evidence=ev,
        next_action=next_action(
            reason, slug=slug, branch="feat/login", evidence=ev, remote="origin", main_branch="main"
        ),
        main_sha=MAIN,
        blocked_at=at,
        remote="origin",
        main_branch="main",
    )


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------- create / refresh


def test_first_block_creates_the_todo_and_one_roadmap_entry(tmp_path: Path) -> None:
    note = block(tmp_path)
    folder = tmp_path / "fix-login-integration-blocked"
    assert note == followup.FollowUp(
        slug="fix-login-integration-blocked", path=folder, created=True, blocked_count=1, roadmap_added=True
    )
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["implementation-plan.md", "requirements.md", "state.yaml"]
    assert load(tmp_path / "roadmap.yaml") == [
        {
            "slug": "fix-login-integration-blocked",
            "group": "fix-login",
            "description": DESCRIPTION,
        }
    ]
    state = load(folder / "state.yaml")
    assert state == {
        "kind": "integration-blocked",
        "status": "open",
        "slug": "fix-login",
        "todo": "fix-login-integration-blocked",
        "branch": "feat/login",
        "sha": SHA,
        "main_sha": MAIN,
        "reason_code": "merge_conflict",
        "blocked_count": 1,
        "first_blocked_at": "2025-03-01T10:00:00.000000+00:00",
        "last_blocked_at": "2025-03-01T10:00:00.000000+00:00",
        "resolved_at": None,
        "merge_sha": None,
    }


def test_requirements_and_plan_carry_evidence_and_commands(tmp_path: Path) -> None:
    folder = block(tmp_path).path
    req = (folder / "requirements.md").read_text(encoding="utf-8")
    for heading in ("## Goal", "## Candidate", "## Evidence", "## Next action"):
        assert heading in req
    assert "{{" not in req
    assert "- `src/app.py`" in req and "- `docs/with space.md`" in req
    assert "x = 1\n=======\nx = 2" in req
    # The hunk contains a ``` fence, so the block around it must use a longer one.
    assert "````\n```python\nfenced in the file\n```" in req
    assert "FULL TEXT NOT FOR MARKDOWN" not in req
    assert f"Merge base `{'b' * 40}`" in req
    plan = (folder / "implementation-plan.md").read_text(encoding="utf-8")
    assert plan.count("- [ ] ") == 4
    assert "git fetch origin && git switch feat/login && git merge origin/main" in plan
    assert "git push origin feat/login" in plan
    assert "integrator emit finalize_ready --slug fix-login --branch feat/login" in plan
    assert "integrator status | grep -F -- fix-login" in plan


def test_three_blocks_make_one_folder_one_entry_and_count_three(tmp_path: Path) -> None:
    first = block(tmp_path, at="2025-03-01T10:00:00.000000+00:00")
    second = block(
        tmp_path,
        sha=SHA2,
        at="2025-03-02T10:00:00.000000+00:00",
        reason="verify_failed",
        evidence={"command_line": "pytest -q", "exit_status": 1, "log_tail": "E   boom", "log_full": "x"},
    )
    third = block(tmp_path, sha=SHA2, at="2025-03-03T10:00:00.000000+00:00")
    assert (first.created, second.created, third.created) == (True, False, False)
    assert (first.roadmap_added, second.roadmap_added, third.roadmap_added) == (True, False, False)
    assert third.blocked_count == 3
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == ["fix-login-integration-blocked"]
    assert len(load(tmp_path / "roadmap.yaml")) == 1
    state = load(third.path / "state.yaml")
    assert state["blocked_count"] == 3 and state["sha"] == SHA2 and state["reason_code"] == "merge_conflict"
    assert state["first_blocked_at"] == "2025-03-01T10:00:00.000000+00:00"
    assert state["last_blocked_at"] == "2025-03-03T10:00:00.000000+00:00"
    req = (third.path / "requirements.md").read_text(encoding="utf-8")
    assert "Blocked 3 time(s)" in req and "E   boom" not in req  # refreshed, not appended to


def test_recording_the_same_block_twice_counts_it_once(tmp_path: Path) -> None:
    block(tmp_path)
    again = block(tmp_path)
    assert again.blocked_count == 1 and not again.created


def test_verify_and_git_evidence_render_their_tails(tmp_path: Path) -> None:
    verify = block(
        tmp_path,
        reason="verify_failed",
        evidence={
            "command_line": "make test",
            "exit_status": 2,
            "timed_out": False,
            "log_tail": "FAILED x",
            "log_full": "",
        },
    )
    text = (verify.path / "requirements.md").read_text(encoding="utf-8")
    assert "Command: `make test` (exit status 2)." in text and "```\nFAILED x\n```" in text
    other = block(
        tmp_path,
        slug="other",
        reason="git_error",
        evidence={
            "command_line": "git fetch origin",
            "stderr": "fatal: unable to access",
            "stderr_full": "",
            "last_line": "fatal: unable to access",
        },
    )
    assert "fatal: unable to access" in (other.path / "requirements.md").read_text(encoding="utf-8")
    moved = block(tmp_path, slug="moved", reason="branch_moved", evidence={"branch_tip": "e" * 40})
    assert f"- branch_tip: `{'e' * 40}`" in (moved.path / "requirements.md").read_text(encoding="utf-8")


def test_unknown_main_sha_is_allowed(tmp_path: Path) -> None:
    note = write_followup(
        tmp_path,
        slug="s",
        branch="b",
        sha=SHA,
        reason_code="git_error",
        evidence={},
        next_action="Check the remote.",
        main_sha="",
        blocked_at="2025-03-01T00:00Z",
        remote="origin",
        main_branch="main",
    )
    assert load(note.path / "state.yaml")["main_sha"] is None
    assert "(no evidence recorded)" in (note.path / "requirements.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------- roadmap

HOSTILE_ROADMAP = (
    "# Rollout roadmap: order matters (comment kept)\n"
    "\n"
    "- slug: 'event-model'   # single-quoted on purpose\n"
    "  group: rollout\n"
    "  after: []\n"
    '  description: "Events: strict validation, and a description line that is much longer than eighty '
    'characters so a re-dump would fold it"\n'
    "\n"
    "- slug: queue-lease\n"
    "  after: [event-model]     # flow list\n"
    "  description: >-\n"
    "    Folded text\n"
    "    over two lines\n"
    '  extra: {a: 1, b: "two"}\n'
    "  tags:\n"
    "  - one\n"
    "  - two\n"
    "- slug: unicode-ñ\n"
    "  description: ünïcödé   \n"
    "  note: ~\n"
    "  yes_value: yes\n"
    "- just a string entry\n"
    "# trailing comment\n"
)


def test_roadmap_comments_and_foreign_entries_survive_byte_for_byte(tmp_path: Path) -> None:
    roadmap = tmp_path / "roadmap.yaml"
    roadmap.write_bytes(HOSTILE_ROADMAP.encode())
    block(tmp_path)
    after = roadmap.read_bytes()
    assert after.startswith(HOSTILE_ROADMAP.encode())
    added = after[len(HOSTILE_ROADMAP.encode()) :].decode()
    assert added == (
        f"- slug: fix-login-integration-blocked\n  group: fix-login\n  description: {DESCRIPTION}\n"
    )
    data = load(roadmap)
    assert len(data) == 5 and data[-1]["slug"] == "fix-login-integration-blocked"
    block(tmp_path, at="2025-04-01T00:00:00+00:00")
    assert roadmap.read_bytes() == after


def test_roadmap_of_this_repository_accepts_an_entry_unchanged(tmp_path: Path) -> None:
    original = (REPO_ROOT / "todos" / "roadmap.yaml").read_bytes()
    (tmp_path / "roadmap.yaml").write_bytes(original)
    block(tmp_path)
    after = (tmp_path / "roadmap.yaml").read_bytes()
    assert after.startswith(original) and after.count(b"fix-login-integration-blocked") == 2


@pytest.mark.parametrize(
    ("original", "expected_items"),
    [
        ("", 1),
        ("# only a comment\n", 1),
        ("- slug: a\n  description: no trailing newline", 2),
        ("  - slug: a\n    group: g\n  - slug: b\n", 3),
        ("- slug: a\r\n  group: g\r\n", 2),
    ],
    ids=["empty", "comments-only", "no-final-newline", "indented-list", "crlf"],
)
def test_roadmap_shapes_keep_their_bytes(tmp_path: Path, original: str, expected_items: int) -> None:
    roadmap = tmp_path / "roadmap.yaml"
    roadmap.write_bytes(original.encode())
    block(tmp_path)
    after = roadmap.read_bytes().decode()
    assert after.startswith(original)
    data = load(roadmap)
    assert len(data) == expected_items
    assert data[-1] == {
        "slug": "fix-login-integration-blocked",
        "group": "fix-login",
        "description": data[-1]["description"],
    }
    if "\r\n" in original:
        assert "\n" not in after.replace("\r\n", "")


def test_flow_style_roadmap_is_rewritten_only_as_a_fallback(tmp_path: Path) -> None:
    roadmap = tmp_path / "roadmap.yaml"
    roadmap.write_text("[{slug: a}, {slug: b}]\n", encoding="utf-8")
    block(tmp_path)
    assert [e["slug"] for e in load(roadmap)] == ["a", "b", "fix-login-integration-blocked"]


def test_roadmap_file_mode_is_kept_and_no_temp_files_are_left(tmp_path: Path) -> None:
    roadmap = tmp_path / "roadmap.yaml"
    roadmap.write_text("- slug: a\n", encoding="utf-8")
    os.chmod(roadmap, 0o640)
    note = block(tmp_path)
    assert stat.S_IMODE(roadmap.stat().st_mode) == 0o640
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    assert stat.S_IMODE((note.path / "state.yaml").stat().st_mode) & 0o044 == 0o044 & ~_umask()


def _umask() -> int:
    # Reading the umask means setting it; done once in a test, never in the product.
    current = os.umask(0o022)
    os.umask(current)
    return current


@pytest.mark.parametrize(
    "content",
    ["items:\n  - slug: a\n", "just text\n", "- a\n- [unclosed\n", "a: 1\n---\nb: 2\n", b"\xff\xfe- a\n"],
    ids=["mapping", "scalar", "bad-yaml", "two-documents", "not-utf8"],
)
def test_invalid_roadmap_is_refused_and_nothing_is_written(tmp_path: Path, content: str | bytes) -> None:
    roadmap = tmp_path / "roadmap.yaml"
    roadmap.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = snapshot(tmp_path)
    with pytest.raises(RoadmapError) as err:
        block(tmp_path)
    assert isinstance(err.value, InvalidInput) and err.value.code == "invalid_roadmap"
    assert "roadmap.yaml" in err.value.message
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "fix-login-integration-blocked").exists()


@pytest.mark.parametrize("slug", ["../evil", "a/b", "-rf", "UPPER", "x" * 65, "", "dot.dot", "new\nline"])
def test_hostile_slug_is_rejected_before_any_write(tmp_path: Path, slug: str) -> None:
    with pytest.raises(InvalidInput, match="slug"):
        block(tmp_path, slug=slug)
    with pytest.raises(InvalidInput, match="slug"):
        resolve_followup(tmp_path, slug, merge_sha=MERGE, resolved_at="2025-03-05T00:00:00+00:00")
    assert list(tmp_path.iterdir()) == []


def test_bad_branch_sha_and_reason_are_rejected_before_any_write(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="branch"):
        write_followup(
            tmp_path,
            slug="s",
            branch="-x",
            sha=SHA,
            reason_code="git_error",
            evidence={},
            next_action=".",
            main_sha=MAIN,
            blocked_at="t",
            remote="origin",
            main_branch="main",
        )
    with pytest.raises(InvalidInput, match="sha"):
        block(tmp_path, sha="HEAD")
    with pytest.raises(InvalidInput, match="reason_code"):
        write_followup(
            tmp_path,
            slug="s",
            branch="b",
            sha=SHA,
            reason_code="nope",
            evidence={},
            next_action=".",
            main_sha=MAIN,
            blocked_at="t",
            remote="origin",
            main_branch="main",
        )
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- resolve


def test_resolve_without_a_followup_returns_false(tmp_path: Path) -> None:
    assert resolve_followup(tmp_path, "never-blocked", merge_sha=MERGE, resolved_at="t") is False
    assert list(tmp_path.iterdir()) == []


def test_resolve_marks_it_resolved_once(tmp_path: Path) -> None:
    note = block(tmp_path)
    assert resolve_followup(tmp_path, "fix-login", merge_sha=MERGE, resolved_at="2025-03-05T00:00:00+00:00")
    state = load(note.path / "state.yaml")
    assert state["status"] == "resolved"
    assert state["resolved_at"] == "2025-03-05T00:00:00+00:00" and state["merge_sha"] == MERGE
    assert state["blocked_count"] == 1 and state["sha"] == SHA
    req = (note.path / "requirements.md").read_text(encoding="utf-8")
    line = f"Resolved: `fix-login` integrated as `{MERGE}` at 2025-03-05T00:00:00+00:00."
    assert req.count(line) == 1 and req.count("## Resolution") == 1
    before = snapshot(tmp_path)
    assert resolve_followup(tmp_path, "fix-login", merge_sha="e" * 40, resolved_at="2025-03-06T00:00Z")
    assert snapshot(tmp_path) == before


def test_a_new_block_after_resolution_reopens_the_same_todo(tmp_path: Path) -> None:
    block(tmp_path)
    resolve_followup(tmp_path, "fix-login", merge_sha=MERGE, resolved_at="2025-03-05T00:00:00+00:00")
    again = block(tmp_path, sha=SHA2, at="2025-03-07T00:00:00+00:00")
    state = load(again.path / "state.yaml")
    assert (state["status"], state["blocked_count"], state["resolved_at"]) == ("open", 2, None)
    assert "## Resolution" not in (again.path / "requirements.md").read_text(encoding="utf-8")
    assert len(load(tmp_path / "roadmap.yaml")) == 1


def test_a_corrupt_state_file_is_rebuilt(tmp_path: Path) -> None:
    note = block(tmp_path)
    (note.path / "state.yaml").write_text("{not: [valid", encoding="utf-8")
    again = block(tmp_path, sha=SHA2, at="2025-03-02T00:00:00+00:00")
    assert again.blocked_count == 1 and load(again.path / "state.yaml")["status"] == "open"


# --------------------------------------------------------------------------------------- template


def test_documented_template_copy_equals_the_packaged_template() -> None:
    folder = REPO_ROOT / "todos" / "templates" / tpl.TEMPLATE_NAME
    expected = tpl.template_files()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir() if p.is_file()}
    assert on_disk == expected, "regenerate: python -m integrator.followup_template " + str(folder)


def test_every_placeholder_is_documented_and_rendering_is_one_pass() -> None:
    used = {name for text in (*tpl.TEMPLATES.values(), tpl.RESOLUTION_MD) for name in tpl.placeholders(text)}
    assert used == set(tpl.PLACEHOLDERS)
    assert tpl.render("{{a}} {{b}}", {"a": "{{b}}", "b": "x"}) == "{{b}} x"
    with pytest.raises(KeyError, match="b"):
        tpl.render("{{a}} {{b}}", {"a": "1"})


def test_written_files_match_the_template_structure(tmp_path: Path) -> None:
    folder = block(tmp_path).path
    for name, template in tpl.TEMPLATES.items():
        text = (folder / name).read_text(encoding="utf-8")
        # Every literal line of the template (no placeholder in it) appears in the rendered file.
        for line in template.splitlines():
            if "{{" not in line:
                assert line in text.splitlines(), (name, line)


# ------------------------------------------------------------------------------------------- docs

DOC = REPO_ROOT / "docs" / "blocked-flow.md"
EXAMPLE_MAIN = "5f4bdf6aa99bb483603ef3da624547527f1dc99d"
EXAMPLE_SHA = "42bf83da3bf63a0defdd58227f1b0562e565d30c"
EXAMPLE_EVIDENCE: dict[str, Any] = {
    "conflicted_paths": ["docs/old-flow.md", "src/auth/login.py"],
    "hunks": {
        "docs/old-flow.md": (
            "(deleted on main but modified by the candidate; decide whether the file should exist and "
            "reapply or drop the candidate's change)\ngit: CONFLICT (modify/delete): docs/old-flow.md "
            "deleted in main (5f4bdf6aa9) and modified in candidate (42bf83da3b).  "
            "Version candidate (42bf83da3b) of docs/old-flow.md left in tree."
        ),
        "src/auth/login.py": (
            "@@ lines 4-11 @@\ndef login(user, password):\n    if not user.check(password):\n"
            '        raise PermissionError("bad password")\n<<<<<<< main (5f4bdf6aa9)\n'
            "    return issue(user, ttl=settings.TOKEN_TTL)\n=======\n"
            '    return issue(user, ttl=900, scope="web")\n>>>>>>> candidate (42bf83da3b)'
        ),
    },
    "base": "9a272911b2357efa32202c9b00de2c629084cf8c",
    "main": EXAMPLE_MAIN,
    "candidate": EXAMPLE_SHA,
}


def _doc_block(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"`{title}`:\n\n") + len(title) + 5
    fence_line, rest = text[start:].split("\n", 1)
    fence = fence_line.rstrip("abcdefghijklmnopqrstuvwxyz")
    return rest[: rest.index("\n" + fence + "\n")] + "\n"


def test_the_rendered_example_in_the_docs_is_what_the_code_writes(tmp_path: Path) -> None:
    (tmp_path / "roadmap.yaml").write_text(
        "# Rollout roadmap\n- slug: integration-blocked-flow\n"
        "  description: Blocked candidates yield evidence.\n",
        encoding="utf-8",
    )
    for at in ("2025-03-01T10:05:00.123456+00:00", "2025-03-01T11:40:00.000000+00:00"):
        note = write_followup(
            tmp_path,
            slug="fix-login",
            branch="feat/login",
            sha=EXAMPLE_SHA,
            reason_code="merge_conflict",
            evidence=EXAMPLE_EVIDENCE,
            main_sha=EXAMPLE_MAIN,
            blocked_at=at,
            next_action=next_action(
                "merge_conflict",
                slug="fix-login",
                branch="feat/login",
                evidence=EXAMPLE_EVIDENCE,
                remote="origin",
                main_branch="main",
            ),
            remote="origin",
            main_branch="main",
        )
    prefix = "todos/fix-login-integration-blocked/"
    for name in ("requirements.md", "implementation-plan.md", "state.yaml"):
        assert _doc_block(prefix + name) == (note.path / name).read_text(encoding="utf-8"), name
    text = DOC.read_text(encoding="utf-8")
    assert (tmp_path / "roadmap.yaml").read_text(encoding="utf-8") in text
    for code in REASON_CODES:
        assert f"`{code}`" in text
