"""Build the mass-attenuation table that the bag phantom ships with.

Writes ``src/napari_xray_denoise/data/attenuation.npz``: total mass attenuation
coefficients mu/rho (cm^2/g, coherent + incoherent scattering + photo-absorption, Elam
tables as served by ``xraydb.material_mu``) for the phantom's materials at 10..160 keV in
1 keV steps, with each material's chemical formula and nominal density (g/cm^3).

``xraydb`` is needed only here (``pip install napari-xray-denoise[phantom]``); the
phantom itself reads the shipped file and never imports xraydb.

Usage::

    python scripts/make_attenuation_table.py [--out PATH]
"""

from __future__ import annotations

import argparse
import importlib.metadata
from pathlib import Path

import numpy as np

#: name -> (chemical formula, nominal density in g/cm^3, what it stands for).
#: Formulas are molar (xraydb's chemparse syntax); the density only sets the linear
#: attenuation mu = (mu/rho) * density used by the phantom.
MATERIALS: dict[str, tuple[str, float, str]] = {
    "nylon": ("C6H11NO", 1.14, "bag fabric (nylon 6)"),
    "cellulose": ("C6H10O5", 1.50, "cotton clothing, paper, books"),
    "sucrose": ("C12H22O11", 1.59, "food"),
    "water": ("H2O", 1.00, "water, drinks"),
    "ethanol": ("C2H6O", 0.789, "spirits, perfume"),
    "polyethylene": ("C2H4", 0.94, "PE containers"),
    "pvc": ("C2H3Cl", 1.38, "PVC items, cable insulation"),
    "pet": ("C10H8O4", 1.38, "PET bottles"),
    "tnt": ("C7H5N3O6", 1.65, "TNT-like explosive"),
    "rdx": ("C3H6N6O6", 1.72, "RDX-like plastic explosive (C-4 bulk density)"),
    "aluminium": ("Al", 2.70, "laptop chassis, trolley rails"),
    "copper": ("Cu", 8.96, "wires, circuit boards"),
    "steel": ("Fe0.70Cr0.19Ni0.11", 7.90, "stainless steel tools"),
    "csi": ("CsI", 4.51, "detector scintillator (not a bag material)"),
}

ENERGIES_KEV = np.arange(10.0, 160.0 + 0.5, 1.0)

DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "src" / "napari_xray_denoise" / "data" / "attenuation.npz"
)


def build_table() -> dict[str, np.ndarray]:
    """Return the arrays written to the .npz file (see the module docstring)."""
    import xraydb  # optional dependency, only needed to regenerate the table

    names = list(MATERIALS)
    mu_rho = np.empty((len(names), ENERGIES_KEV.size))
    for i, name in enumerate(names):
        formula, _, _ = MATERIALS[name]
        # material_mu with density 1 g/cm^3 gives mu/rho in cm^2/g; energies in eV.
        mu_rho[i] = xraydb.material_mu(formula, ENERGIES_KEV * 1000.0, density=1.0, kind="total")
    version = importlib.metadata.version("xraydb")
    return {
        "energies_kev": ENERGIES_KEV,
        "names": np.array(names),
        "formulas": np.array([MATERIALS[n][0] for n in names]),
        "densities_g_cm3": np.array([MATERIALS[n][1] for n in names]),
        "mu_rho_cm2_g": mu_rho,
        "source": np.array(f"xraydb {version}, material_mu(kind='total'), Elam tables"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz path")
    args = parser.parse_args(argv)
    table = build_table()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **table)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {table['source']})")


if __name__ == "__main__":
    main()
