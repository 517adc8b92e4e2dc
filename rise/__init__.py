"""The ML core of RISE Annotate: tasks, prompts, parsing, rewards, models and the RISE training stages.

Nothing here imports the database or the UI: every function takes plain records so training can run on a GPU box
that has neither.
"""
