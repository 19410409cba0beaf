"""Synthetic population and agency-extract generator (test data for the whole pipeline).

Public API: :func:`generate`. See sources/synthetic/README.md for the landing layout,
column lists, error model, injected faults and the ground-truth folder.
"""

from sources.synthetic.generator import generate

__all__ = ["generate"]
