"""The benchmark scripts, importable as ``benchmarks.<name>`` (tests); shared machinery: unfoldkit.experiments.benchmarking."""
