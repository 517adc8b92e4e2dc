"""The demo base model: a small Qwen2-VL trained from scratch to see synthetic scenes, and nothing more.

It describes each object (colour, shape, size, coarse position), finds and boxes objects, and grounds queries that
name an object, in the app's prompt and answer formats. It is not taught any project's labelling rule: that is what
RISE must teach it (`bench/learning.py`, `bench/feedback_loop.py`).

    from rise.demo_model import DemoModelConfig, train_demo_model
    train_demo_model("models/demo", DemoModelConfig(max_minutes=10))
"""

from rise.demo_model.train import DemoModelConfig, train_demo_model

__all__ = ["DemoModelConfig", "train_demo_model"]
