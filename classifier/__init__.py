
from salt.cli import quiet_console

quiet_console()  # before anything imports TensorFlow: no C++ log chatter on the console
