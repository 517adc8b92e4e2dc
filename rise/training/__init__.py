"""RISE training: the data snapshot, stage 1 (RISE-CoT), stage 2 (filter, SFT, RFT), the baselines and evaluation.

Each stage has its config dataclass in `config`, its code in its own module, and `pipeline` runs them in order,
resumably. `python -m rise.train` is the entry point (`accelerate launch -m rise.train` for several GPUs).
"""
