"""A holder frozen (SIGSTOP of its process group) and resumed after a takeover changes nothing
(issue 13, acceptance 1): real ``integrator run`` processes, a real bare remote with the hooks.

Representative phases here; ``bench/freeze.py`` loops over random ones (``tests/support/freezing.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.freezing import freeze_round


@pytest.mark.parametrize("phase", ["merged", "before_push", "push"])
def test_a_frozen_holder_resumed_after_a_takeover_writes_nothing_and_stands_by(
    tmp_path: Path, phase: str
) -> None:
    result = freeze_round(tmp_path, phase)
    assert "event=standby_again" in result.old_log
    if phase == "push":
        # The resumed push reached the remote with the old number; the hook refused it, not CAS.
        assert result.refused_by_fence
