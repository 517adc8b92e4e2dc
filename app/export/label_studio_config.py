"""The Label Studio labeling config (XML) for a project, and the reverse: what task a config describes.

Every value that comes from a user (label names, the project title) goes through `quoteattr`, so a label such as
`a"<b>&` stays one label and cannot open a tag. Control names are those of `app.export.label_studio`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from app.errors import AppError
from app.export.label_studio import DISTRIBUTION, IMAGE, LABEL, QUERY, REASONING, box_labels
from rise.tasks import TaskType

# Newlines and tabs inside an attribute would be normalised to spaces by any XML parser; keep them as written.
_ATTRIBUTE_ENTITIES = {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


class LabelingConfigError(AppError, ValueError):
    """A labeling config cannot be generated or understood; the message names the fix."""


def _attr(value: str) -> str:
    return quoteattr(value, _ATTRIBUTE_ENTITIES)


def labeling_config(task_type: TaskType | str, labels: Sequence[str], *, distribution: bool = False) -> str:
    """The labeling config for a project.

    Classification: the image and a single-choice `Choices`; detection and grounding: the image and
    `RectangleLabels` (grounding shows its query above the image). Every config ends with the `reasoning` text
    area holding the model's chain of thought, editable so a reviewer in Label Studio can fix it.

    Raises:
        LabelingConfigError: a label set that Label Studio cannot show (empty, or empty labels).
    """
    task_type = TaskType(task_type)
    values = box_labels(task_type, labels) if task_type is not TaskType.classification else list(labels)
    if not values or any(not value.strip() for value in values):
        raise LabelingConfigError(
            f"A {task_type.value} project needs non-empty labels to make a Label Studio config, got {list(labels)}."
        )
    lines = ["<View>"]
    if task_type is TaskType.grounding:
        # A Header, not a named <Text>: Label Studio accepts direct image uploads only into projects whose config
        # has one data key (the image), and only named object tags count as data keys.
        lines += ['  <Header value="Find:" size="6"/>', f'  <Header value="${QUERY}" size="4"/>']
    lines.append(f'  <Image name="{IMAGE}" value="${IMAGE}" zoom="true" zoomControl="true"/>')
    if task_type is TaskType.classification:
        lines.append(f'  <Choices name="{LABEL}" toName="{IMAGE}" choice="single" showInline="true">')
        lines += [f"    <Choice value={_attr(value)}/>" for value in values]
        lines.append("  </Choices>")
        if distribution:
            lines += [
                '  <Header value="Probability per label (JSON)"/>',
                f'  <TextArea name="{DISTRIBUTION}" toName="{IMAGE}" rows="2" editable="true" maxSubmissions="1"/>',
            ]
    else:
        lines.append(f'  <RectangleLabels name="{LABEL}" toName="{IMAGE}">')
        lines += [f"    <Label value={_attr(value)}/>" for value in values]
        lines.append("  </RectangleLabels>")
    lines += [
        '  <Header value="Reasoning (chain of thought)"/>',
        f'  <TextArea name="{REASONING}" toName="{IMAGE}" rows="5" editable="true" maxSubmissions="1"/>',
        "</View>",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ConfigSummary:
    """The project a labeling config describes."""

    task_type: TaskType
    labels: list[str]
    distribution: bool


def parse_labeling_config(xml: str) -> ConfigSummary:
    """Read the task type and labels from a labeling config (ours or a hand-written one).

    `Choices` means classification; `RectangleLabels` (or `Rectangle` with `Labels`) means detection, or grounding
    when the config shows the task's `$query`. The labels are the values of the first such control.

    Raises:
        LabelingConfigError: not XML, or no control this app understands.
    """
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as error:
        raise LabelingConfigError(f"The labeling config is not valid XML: {error}") from None
    shows_query = any(element.get("name") == QUERY or element.get("value") == f"${QUERY}" for element in root.iter())
    for element in root.iter():
        if element.tag == "Choices":
            values = [choice.get("value", "") for choice in element.iter("Choice")]
            has_distribution = any(area.get("name") == DISTRIBUTION for area in root.iter("TextArea"))
            return ConfigSummary(TaskType.classification, values, has_distribution)
        if element.tag in ("RectangleLabels", "Labels"):
            values = [label.get("value", "") for label in element.iter("Label")]
            task_type = TaskType.grounding if shows_query else TaskType.detection
            return ConfigSummary(task_type, values, False)
    raise LabelingConfigError(
        "The labeling config has neither <Choices> (classification) nor <RectangleLabels> (boxes); "
        "only image classification, detection and grounding projects can be imported."
    )
