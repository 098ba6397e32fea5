"""Benchmarks, run from the repository root as ``python -m scripts.bench.<name>``:

- ``align``: deformable alignment, time and peak memory of forward + backward per implementation;
- ``data``: the training data loader, image folders vs LMDB (``data_layout``: the data it writes,
  ``data_loader``: what it measures);
- ``models``: training and inference of vsrlab's models against the reference implementations
  (``models_spec``: what is measured, ``models_train`` / ``models_infer`` / ``models_align``: one
  module per job, ``models_run``: the plan and the fresh processes).

Each writes its section of ``docs/benchmarks.md``; ``common`` holds what they share: wall time, peak
memory, the machine (with the CPU's bf16 / AVX-512 / AMX capability) and the Markdown table writer.
"""
