"""Ensemble: tune post-processing rules on out-of-fold predictions, write the submission and the report.

Works on the models' saved output files only (OUT/segmenter/..., OUT/classifier/...), never on model code.
"""
