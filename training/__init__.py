"""The training spine that both models use: devices and precision, batches, resumable stages, the k-fold
loop, learning-rate schedules, encoder initialisation, shared layers and fold-averaged prediction."""
