"""The paper's method on explicit arrays: embeddings (Sec. 3.2, 3.3), knowledge points (Sec. 3.4)."""
