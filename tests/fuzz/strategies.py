"""Hypothesis strategies over lattice.fuzz's random programs.

A program is determined by its seed (``lattice.fuzz.generate``), so the strategies draw seeds;
hypothesis's database then remembers failing seeds between runs, and a failure prints the seed
and the source so ``python -m lattice.fuzz --replay SEED`` reproduces it.
"""
from __future__ import annotations

from hypothesis import strategies as st

from lattice.fuzz import Program, generate

seeds = st.integers(min_value=0, max_value=2**31 - 1)
programs: st.SearchStrategy[Program] = seeds.map(generate)
