"""Shared core of the TGS Salt project: data, folds, metric, RLE, synthetic data, augmentation.

No model code lives here (and nothing here imports keras).
"""
