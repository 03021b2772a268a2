"""Training: architectures, checkpoint I/O, inference helpers and the train loop."""
