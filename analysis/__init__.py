"""Reading results back and measuring them: GHM statistics (`ghm_stats`) and their run-level analysis
(`ghm_runs`), ranking measures (`ranking_metrics`), the evaluation report (`evaluation`) and the sweep table
(`sweep`). Apart from `evaluation`, which scores recordings with a model, nothing here needs torch."""
