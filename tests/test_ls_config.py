"""The Label Studio labeling config: the right controls per task, hostile label values escaped, and read back."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from app.export.label_studio_config import LabelingConfigError, labeling_config, parse_labeling_config
from rise.tasks import TaskType

HOSTILE = ["a\"<b>&'c", "x & y", "<script>alert(1)</script>", "new\nline", "tab\there", "]]>", "ünïcode ✓"]


class TestLabelingConfig:
    def test_classification_has_image_single_choice_and_reasoning(self):
        root = ElementTree.fromstring(labeling_config("classification", ["circle", "square"]))
        assert root.find("Image").attrib["value"] == "$image"
        choices = root.find("Choices")
        assert (choices.get("name"), choices.get("toName"), choices.get("choice")) == ("label", "image", "single")
        assert [c.get("value") for c in choices.iter("Choice")] == ["circle", "square"]
        assert root.find("TextArea").attrib["name"] == "reasoning"
        assert root.find("RectangleLabels") is None

    def test_detection_has_rectangle_labels(self):
        root = ElementTree.fromstring(labeling_config("detection", ["circle"]))
        assert [label.get("value") for label in root.iter("Label")] == ["circle"]
        assert root.find("RectangleLabels").attrib["toName"] == "image"

    def test_grounding_shows_the_query_without_adding_a_data_key(self):
        root = ElementTree.fromstring(labeling_config("grounding", []))
        assert any(header.get("value") == "$query" for header in root.iter("Header"))
        # Only named tags with a $value are data keys; Label Studio allows image uploads with one data key.
        assert [e.get("value") for e in root.iter() if e.get("name") and e.get("value", "").startswith("$")] == [
            "$image"
        ]
        assert [label.get("value") for label in root.iter("Label")] == ["target"]

    def test_distribution_projects_get_a_distribution_text_area(self):
        root = ElementTree.fromstring(labeling_config("classification", ["a", "b"], distribution=True))
        assert {area.get("name") for area in root.iter("TextArea")} == {"reasoning", "distribution"}

    @pytest.mark.parametrize("task_type", ["classification", "detection"])
    def test_hostile_labels_stay_exactly_as_given(self, task_type):
        config = labeling_config(task_type, HOSTILE)
        assert "<script>" not in config and "&lt;script&gt;" in config
        values = [e.get("value") for e in ElementTree.fromstring(config).iter() if e.tag in ("Choice", "Label")]
        assert values == HOSTILE

    @pytest.mark.parametrize("labels", [[], ["ok", " "]])
    def test_labels_label_studio_cannot_show_are_refused(self, labels):
        with pytest.raises(LabelingConfigError, match="non-empty labels"):
            labeling_config("detection", labels)


class TestParseLabelingConfig:
    @pytest.mark.parametrize(
        ("task_type", "labels", "distribution"),
        [
            ("classification", HOSTILE, False),
            ("classification", ["a", "b"], True),
            ("detection", HOSTILE, False),
            ("grounding", ["the one"], False),
        ],
    )
    def test_our_config_reads_back_as_the_project(self, task_type, labels, distribution):
        summary = parse_labeling_config(labeling_config(task_type, labels, distribution=distribution))
        assert (summary.task_type, summary.labels, summary.distribution) == (TaskType(task_type), labels, distribution)

    def test_hand_written_rectangle_and_labels_config_is_detection(self):
        xml = """<View><Image name="img" value="$url"/>
          <Rectangle name="box" toName="img"/><Labels name="lab" toName="img"><Label value="car"/></Labels></View>"""
        summary = parse_labeling_config(xml)
        assert (summary.task_type, summary.labels) == (TaskType.detection, ["car"])

    @pytest.mark.parametrize(
        ("xml", "message"),
        [("<View><Image", "not valid XML"), ('<View><Text name="t" value="$t"/></View>', "neither <Choices>")],
    )
    def test_configs_we_cannot_use_are_refused(self, xml, message):
        with pytest.raises(LabelingConfigError, match=message):
            parse_labeling_config(xml)
