"""The vocabulary of results files: the row names that a run's summary.json (training) and an evaluation's
results.json (eval) share, so that the two can be read side by side."""

ENCODER, RANDOM_INIT, RAW_PIXELS = "encoder", "random init", "raw pixels"
SCHEMA_VERSION = 1  # of every JSON file the project writes (summary, results, cells, attacks, run.json, exports)
