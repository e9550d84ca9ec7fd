"""Evaluation helpers: dataset readers and metric wrappers (e.g. `crowdsight.eval.mot`)."""
