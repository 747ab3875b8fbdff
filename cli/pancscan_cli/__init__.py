"""The `pancscan` command: the composition root of the runtime, the training package, the hospital-side
client and the local stack (each imported only by the commands that need it)."""
