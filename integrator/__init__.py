"""The integrator core: events, store, readiness, queue, lease and the workflow that lands candidates on main.

Nothing in this package imports ``discord``.
"""
