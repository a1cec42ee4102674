"""The training spine that both models use: devices and precision, batches, resumable stages, the k-fold
loop, learning-rate schedules, encoder initialisation, shared layers and fold-averaged prediction."""

from salt.cli import quiet_console

quiet_console()  # before anything imports TensorFlow: no C++ log chatter on the console
