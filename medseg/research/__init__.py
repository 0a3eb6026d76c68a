"""Research workflow: hyperparameter search, learning-rate range test, model export.

Modules:
    search_space  ``load_search_space(path) -> SearchSpace``, ``apply_params`` (linear lr scaling with batch size)
    tune          ``tune(config, space, trials, out) -> TuneResult`` (Optuna, validation split only, MedianPruner)
    tune_report   results.csv / results.md / dice_vs_params.png / best.yaml / search.json; ``search_card_entry``
    lr_find       ``lr_find(config, out) -> LrFindResult`` (LR range test, plot, suggestion)
    export        ``export_model(model_dir, fmt) -> ExportResult``, ``load_exported_network(path)``
"""

from __future__ import annotations
