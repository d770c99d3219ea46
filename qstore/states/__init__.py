"""Quantum-native primitives over collections (DESIGN section 5).

superposition  several branches per record with complex amplitudes
measurement    Born-rule sampling of branches, optional durable collapse
entanglement   groups of records whose updates and collapses propagate with strength ρ
decoherence    coherence times: expiry that reads honour at once and a sweeper enforces
tunneling      search that enters far regions with WKB-shaped probability
quantum_state  stored state vectors and their Born-rule measurement
"""
