"""Training, lesion simulation, evaluation and export of the PancScan model (TensorFlow lives here)."""
