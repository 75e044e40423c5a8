"""The reference model, its losses, the torch data pipeline and the training loop."""
