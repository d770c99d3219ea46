"""Quantum-native primitives over collections (DESIGN section 5), as pure rules.

Each module maps record documents (``qstore.records``), the caller's inputs and explicit
random draws to new documents; ``Collection`` reads, commits and indexes. Nothing here
touches LMDB or an index, so every rule is testable on its own.

superposition  several branches per record with complex amplitudes
measurement    Born-rule choice of a branch, collapse, and its spread to entangled partners
entanglement   groups, the one ρ of a pair, and how an update moves partners
decoherence    the view of an expired record that every operation shares
tunneling      regions, Voronoi-cell distances, entry probabilities and result selection
quantum_state  stored state vectors and their Born-rule measurement
"""
