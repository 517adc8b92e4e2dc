"""Exporters: Label Studio (task JSON, labeling config, live server), COCO detection JSON, Hugging Face datasets."""
