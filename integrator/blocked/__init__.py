"""A blocked candidate: what it is blocked on, shown so a person can act without rerunning anything.

- :mod:`~integrator.blocked.conflicts` and :mod:`~integrator.blocked.hunks`: a ``merge_conflict``'s
  paths and hunks, read from the tree ``git merge-tree`` wrote.
- :mod:`~integrator.blocked.evidence`: a failed verify's log tail, a failed git command's stderr.
- :mod:`~integrator.blocked.remedy`: one entry per reason code, giving the next action sentence and
  the follow-up checklist.
- :mod:`~integrator.blocked.text`: trimming for Discord and markdown, redaction of credentials.
- :mod:`~integrator.blocked.records`: the ``blocked_evidence`` rows (the untrimmed evidence).

The reason codes themselves are :class:`integrator.reasons.ReasonCode`.
"""
