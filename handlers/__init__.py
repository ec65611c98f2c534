"""Dialogue: the engine, the neutral message model, and one module per feature flow."""
