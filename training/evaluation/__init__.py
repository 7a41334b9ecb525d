"""Downstream e-commerce tasks, by name. Each reads real data by default (or a user path of the same
shape) and fine-tunes/scores an HF encoder folder; none of them imports Ray.

    task, path = parse_task_spec("product-matching:/data/wdc/cameras")
    data = task.load(path, config.evaluate, cache_dir)
    metrics = task.run(model_dir, data, TrialParams(learning_rate=5e-5, epochs=2), config.evaluate)
    baselines = task.baselines(data, config.evaluate, {"model": model_dir})  # majority class, exact title, ...

`training.evaluation.hygiene` lists every validation and test item, so pretraining text can be kept free of them.
"""

from __future__ import annotations

from training.evaluation.attribute_tagging import AttributeTagging
from training.evaluation.base import Task, TaskData, TaskDataError, TrialParams
from training.evaluation.fill_mask import FillMask
from training.evaluation.finetune import ModelFolderError, check_encoder
from training.evaluation.page_type import PageType
from training.evaluation.product_matching import ProductMatching
from training.evaluation.similarity import Similarity

TASKS: dict[str, Task] = {
    t.name: t for t in (ProductMatching(), PageType(), AttributeTagging(), Similarity(), FillMask())
}

__all__ = [
    "TASKS", "ModelFolderError", "Task", "TaskData", "TaskDataError", "TrialParams", "check_encoder", "get_task",
    "parse_task_spec",
]


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise TaskDataError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def parse_task_spec(spec: str) -> tuple[Task, str | None]:
    """`NAME` or `NAME:PATH` -> (task, path or None for the task's real default data)."""
    name, _, path = spec.partition(":")
    return get_task(name.strip()), (path.strip() or None)
