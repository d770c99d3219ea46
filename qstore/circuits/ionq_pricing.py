"""Cost estimates for IonQ jobs, checked against a budget before anything is submitted."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cirq


@dataclass(frozen=True)
class IonQPricing:
    """USD prices per gate-shot and the minimum charge per job (circuit).

    Defaults are IonQ Aria's published pay-as-you-go rates (Azure Quantum IonQ
    provider page and IonQ's AQT formula, 2024): $0.000220 per single-qubit
    gate-shot, $0.000975 per two-qubit gate-shot, and a $12.42 minimum per
    program without error mitigation ($97.50 with it). Check current prices
    and pass your own ``IonQPricing`` if they differ. IonQ's cloud simulator
    is free (``FREE``).
    """

    one_qubit_gate_shot: float = 0.000220
    two_qubit_gate_shot: float = 0.000975
    minimum_per_job: float = 12.42

    def job_cost(self, circuit: cirq.AbstractCircuit, shots: int) -> float:
        """max(minimum, shots * (n1 * p1 + n2 * p2)); measurements are not charged."""
        n1 = n2 = 0
        for op in circuit.all_operations():
            if cirq.is_measurement(op):
                continue
            if len(op.qubits) == 1:
                n1 += 1
            else:
                n2 += 1
        if n1 == n2 == 0:
            return 0.0
        return max(self.minimum_per_job, shots * (n1 * self.one_qubit_gate_shot + n2 * self.two_qubit_gate_shot))

    def estimate(self, circuits: Sequence[cirq.AbstractCircuit], shots: int) -> float:
        return float(sum(self.job_cost(c, shots) for c in circuits))


FREE = IonQPricing(0.0, 0.0, 0.0)
ARIA = IonQPricing()


def default_pricing(target: str) -> IonQPricing:
    """Free for the cloud simulator, Aria rates for any QPU target."""
    return FREE if target == "simulator" else ARIA
