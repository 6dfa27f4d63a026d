"""The model: T5 from a hub id, a local directory or the tiny preset; the prompts; label scoring and decoding."""
