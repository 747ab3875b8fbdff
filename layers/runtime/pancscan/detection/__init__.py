"""The model and what is made of its outputs: slice checks, the slice model, the series rule, results."""
