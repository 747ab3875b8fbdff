"""PancScan runtime: decode a CT slice, check it is one, run the exported model. No TensorFlow.

Research software. Not a medical device.
"""

__version__ = "0.1.0"
