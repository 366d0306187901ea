"""Symbolic (sympy) models of subliminal transfer with numpy evaluators.

This package is a leaf: it imports neither torch nor :mod:`limen.verify`.
"""
