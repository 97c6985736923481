"""GPU-side code of rerank-sidecar. Deliberately empty: ``import workers.contract`` must stay
light (no torch), so nothing heavy is imported here."""
