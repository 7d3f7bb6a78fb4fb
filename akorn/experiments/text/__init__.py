"""Language modelling with AKOrN: byte-level text, causal Kuramoto models, baselines, sampling."""
