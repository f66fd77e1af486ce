"""Training: the loop (`loop.train`, which reads top to bottom), the trainer (G, D, G_ema, optimisers and the two
update steps), and what the loop's maintenance calls: the run folder, the log rows and divergence guard, the
checkpoint saver, the real-image stream, the EMA, and what `amp="auto"` decides from."""
