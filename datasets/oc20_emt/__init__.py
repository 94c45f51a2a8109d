"""OC20-style adsorbate-slab data generated with ASE's EMT calculator (see README.md in this folder)."""

from .generate import ADSORBATES, FACETS, METALS, OOD_ADSORBATES, OOD_CATALYSTS, SPLITS

__all__ = ["ADSORBATES", "FACETS", "METALS", "OOD_ADSORBATES", "OOD_CATALYSTS", "SPLITS"]
