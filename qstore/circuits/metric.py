"""Fubini–Study metric tensor from a state and its parameter derivatives (for QNG)."""
from __future__ import annotations

import numpy as np

METRIC_KINDS = ("full", "block", "diag")


def fubini_study_metric(psi: np.ndarray, derivs: np.ndarray, kind: str = "full", block: int | None = None
                        ) -> np.ndarray:
    """g_ij = Re(<d_i psi|d_j psi> - <d_i psi|psi><psi|d_j psi>) for each sample.

    Args:
        psi: states (B, D).
        derivs: d psi / d theta_k (B, P, D).
        kind: ``full``; ``block`` keeps the diagonal blocks of size ``block``
            (one ansatz layer each) and zeroes the rest; ``diag`` keeps the diagonal.
    Returns:
        (B, P, P) float64.
    """
    B, P, _ = derivs.shape
    overlap = np.einsum("bpd,bd->bp", derivs.conj(), psi)          # <d_i psi|psi>
    if kind == "diag":
        g = np.einsum("bpd,bpd->bp", derivs.conj(), derivs).real - np.abs(overlap) ** 2
        out = np.zeros((B, P, P))
        out[:, np.arange(P), np.arange(P)] = g
        return out
    if kind == "block":
        size = block or P
        out = np.zeros((B, P, P))
        for start in range(0, P, size):
            sl = slice(start, start + size)
            d, o = derivs[:, sl], overlap[:, sl]
            out[:, sl, sl] = (np.einsum("bid,bjd->bij", d.conj(), d) - o[:, :, None] * o[:, None, :].conj()).real
        return out
    gram = np.einsum("bid,bjd->bij", derivs.conj(), derivs)
    return (gram - overlap[:, :, None] * overlap[:, None, :].conj()).real
