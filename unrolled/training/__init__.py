"""Training schemes, the trainer and safe checkpoints."""
