"""What the checkpoint tree's rows stand for: a reference per node, the row keys, and a
catalog's rows by key (made off the UI thread for a big catalog). No Textual in here."""

from __future__ import annotations

from typing import NamedTuple

from ..store.layout import Catalog, Checkpoint, Stage, Tag


class NodeRef(NamedTuple):
    """What a tree node stands for: ``kind`` is "stage", "tag" or "ck"."""

    kind: str
    key: str


def expected_steps(catalog: Catalog) -> int:
    """The steps of the catalog, or, while tags are still being scanned, as many as the
    tags listed so far have on average."""
    tags = catalog.tags
    done = [t for t in tags if not t.scanning]
    steps = sum(len(t.checkpoints) for t in done)
    return steps * len(tags) // len(done) if done and len(done) < len(tags) else steps


Index = dict[str, Stage | Tag | Checkpoint]  # a row's object by its key


def index_rows(catalog: Catalog) -> Index:
    """Every row's object by its key (the tree's ``objects``)."""
    out: Index = {}
    for stage in catalog.stages:
        out[stage_key(stage)] = stage
        for tag in stage.tags:
            out[tag_key(tag)] = tag
            for ck in tag.checkpoints:
                out[ck.key] = ck
    return out


def stage_key(stage: Stage) -> str:
    return f"stage:{stage.dirname}"


def tag_key(tag: Tag) -> str:
    return f"{tag.stage}/{tag.name}"
