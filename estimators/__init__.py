"""Exact partial information decomposition (PID) estimators.

This package is a leaf: it never imports :mod:`limen.verify`.
"""
