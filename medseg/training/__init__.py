"""Training: one loop whose behaviour is set by config (losses, optimiser, schedule, checkpoints, logs).

Modules:
    loop          ``train(config, run_dir)``, ``resume(run_dir, max_epochs=None)`` -> TrainResult; TrainingDiverged
    data          datalist -> patient split -> cached datasets and loaders (test patients dropped)
    schedule      ``build_optimizer``, ``build_scheduler``, ``lr_factor`` (warm-up, cosine / poly)
    validation    sliding-window validation, Dice per class and the background-only baseline
    checkpoint    ``save_checkpoint`` (atomic), ``load_checkpoint`` (weights_only), RNG capture/restore
    transfer      ``init_from_checkpoint`` (name + shape match), ``freeze_encoder``
    logs          CSV, optional TensorBoard, PNG plots
    distributed   torchrun / DDP context (gloo on CPU, NCCL on CUDA)
    run_folder    run-folder layout, resolved config, versions
    losses        ``build_loss`` (networks helper)
"""

from __future__ import annotations
