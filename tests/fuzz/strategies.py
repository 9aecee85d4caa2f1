"""Hypothesis strategies over lattice.testing.fuzz's random programs.

A program is determined by its seed (``lattice.testing.fuzz.generate``), so the strategies draw seeds;
hypothesis's database then remembers failing seeds between runs, and a failure prints the seed
and the source so ``python -m lattice.testing.fuzz --replay SEED`` reproduces it.
"""
from __future__ import annotations

from hypothesis import strategies as st

from lattice.testing.fuzz import Program, generate

seeds = st.integers(min_value=0, max_value=2**31 - 1)
programs: st.SearchStrategy[Program] = seeds.map(generate)
