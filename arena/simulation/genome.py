"""Genes: what an organism inherits, how a gene mutates, and a genome's stable signature."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from arena.simulation.board import BACTERIA, FUNGI, KIND_NAMES, PHAGE


@dataclass(frozen=True, slots=True)
class Gene:
    """One gene: its layer (and plane), the range it is clipped to, and its mutation's spread."""

    layer: str
    plane: int | None
    low: float
    high: float
    mutation_sd: float
    decimals: int  # the signature's precision


GENES = (
    Gene("growth_rate", None, 0.05, 3.0, 0.1, 2),
    Gene("resistance", 0, 0.0, 10.0, 0.2, 2),
    Gene("resistance", 1, 0.0, 10.0, 0.2, 2),
    Gene("resistance", 2, 0.0, 10.0, 0.2, 2),
    Gene("optimum_temperature", None, -50.0, 150.0, 2.0, 1),
)


@dataclass(frozen=True, slots=True)
class Genome:
    growth_rate: float
    resistance: tuple[float, float, float]  # to antibiotics A, B, C
    optimum_temperature: float

    def values(self) -> tuple[float, ...]:
        """In `GENES` order."""
        return (self.growth_rate, *self.resistance, self.optimum_temperature)


# What a spawned organism starts with: fungi resist more and grow slower; phages feed on
# bacteria, not nutrients, and no antibiotic touches them (their resistance is unused).
DEFAULT_GENOMES = {
    BACTERIA: Genome(1.0, (0.5, 0.5, 0.5), 37.0),
    FUNGI: Genome(0.5, (1.5, 1.5, 1.5), 25.0),
    PHAGE: Genome(0.05, (0.0, 0.0, 0.0), 37.0),
}


def mutate(
    genes: npt.NDArray[np.float32], rate: float, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """`genes` is (organisms x len(GENES)); each gene mutates with probability `rate`, by a normal
    step of its own spread, clipped to its range. Returns the new genes and, per organism, how
    many genes mutated. Draws the same numbers whatever `rate` is, so the rate changes outcomes,
    never the sequence of draws."""
    hits = rng.random(genes.shape) < rate
    steps = rng.standard_normal(genes.shape)
    spread = np.array([gene.mutation_sd for gene in GENES], np.float64)
    low = np.array([gene.low for gene in GENES], np.float64)
    high = np.array([gene.high for gene in GENES], np.float64)
    mutated = np.clip(genes + np.where(hits, steps * spread, 0.0), low, high).astype(np.float32)
    return mutated, hits.sum(axis=1).astype(np.int32)


def signature(kind: int, genome: Genome) -> str:
    """Stable across machines: the kind and every gene rounded to its precision, hashed."""
    rounded = [
        f"{value:.{gene.decimals}f}" for gene, value in zip(GENES, genome.values(), strict=True)
    ]
    text = KIND_NAMES[kind] + ":" + ",".join(rounded)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
