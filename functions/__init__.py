"""The two Lambda functions (handlers only; each imports the runtime package and nothing else of ours)."""
