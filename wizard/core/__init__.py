"""The pure core: scenario model, provider catalog, budgets, sizing and findings.

Standard library only (tests/test_layout.py enforces it).
"""
