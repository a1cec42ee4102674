"""Throughput benchmark of the segmenter and the classifier: `python -m bench.run --out OUT/bench`."""
