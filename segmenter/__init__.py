"""Segmentation network: SE-ResNeXt50 encoder, U-Net, losses, weight conversion (and the lead's train/predict)."""
