"""The main job on one machine: engine, Redis, a scoring worker and the sidecar, a sample
multimodal catalog, and baseline vs reranked searches side by side."""
