"""The segmenter: SE-ResNeXt50 encoder, U-Net, losses, weight conversion, presets, training, prediction."""
