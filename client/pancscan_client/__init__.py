"""The hospital side: the batch client (`pancscan submit`), the DICOM secondary capture it makes, and
the heatmap overlay image. Not in the Lambda layer: no function runs them."""
