"""Test-only wiring shared by the suites (never imported by the product)."""
