"""Push authority: only the integrator writes main, and the remote enforces it (docs/authority.md).

One module per concept; import from the module:

- :mod:`~integrator.authority.remote`: the integrator's files in the bare remote, its mode file;
- :mod:`~integrator.authority.credential`: the credential, its push options and probe markers;
- :mod:`~integrator.authority.record`: ``authority.json`` (what was installed, what verify found);
- :mod:`~integrator.authority.hooks`: rendering and installing the pre-receive/post-receive hooks;
- :mod:`~integrator.authority.spool`: the post-receive spool turned into ``branch_pushed`` events;
- :mod:`~integrator.authority.transport`, :mod:`~integrator.authority.probes`,
  :mod:`~integrator.authority.verify`: ``authority verify``, every known bypass tried for real.
"""
