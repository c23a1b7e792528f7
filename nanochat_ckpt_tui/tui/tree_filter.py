"""The tree's filter: ``d20 >1000`` keeps the steps over 1000 of tags named like d20; which
rows it lets through, how many steps per tag, which tags it opens. No Textual in here."""

from __future__ import annotations

from ..fmt import plural
from ..store.layout import Catalog, Checkpoint, Tag
from .tree_rows import stage_key, tag_key

OPS = (">=", "<=", ">", "<", "=")
Term = tuple[str | None, int, str]  # (comparison or None, number, word)


def parse_filter(text: str) -> list[Term]:
    """``"d20 >1000"`` → ``[(None, 0, "d20"), (">", 1000, ">1000")]``."""
    out: list[Term] = []
    for term in text.lower().split():
        op = next((o for o in OPS if term.startswith(o)), None)
        if op and term[len(op):].isdigit():
            out.append((op, int(term[len(op):]), term))
        else:
            out.append((None, 0, term))
    return out


def matches(terms: list[Term], hay: str, ck: Checkpoint | None) -> bool:
    """Every term matches: a step comparison, a word in the stage/tag names, or a word in
    the step number (``@3000`` or ``3000``)."""
    for op, n, term in terms:
        if op is not None:
            if ck is None:
                return False
            step = ck.step
            ok = (step >= n if op == ">=" else step <= n if op == "<=" else step > n
                  if op == ">" else step < n if op == "<" else step == n)
            if not ok:
                return False
        elif term in hay:
            continue
        elif ck is None or term.lstrip("@") not in str(ck.step):
            return False
    return True


# (the rows shown or None: no filter; matching steps per tag key; the tag keys to open)
FilterView = tuple[set[str] | None, dict[str, int], list[str]]


def filter_view(catalog: Catalog | None, text: str) -> FilterView:
    """The keys of the rows ``text`` lets through (None: no filter, all of them), the
    number of matching steps per tag, and the tags to open: those where the filter
    picks steps (a step term), not where the tag's name alone matches. A tag or stage
    shows when something under it does; a tag without checkpoints when its name
    matches."""
    terms = parse_filter(text)
    if not terms or catalog is None:
        return None, {}, []
    shown: set[str] = set()
    counts: dict[str, int] = {}
    opening: list[str] = []
    add, update = shown.add, shown.update
    for stage in catalog.stages:
        skey = stage_key(stage)
        for tag in stage.tags:
            hay = f"{stage.label} {stage.dirname} {tag.name}".lower()
            keys = _matching_steps(terms, hay, tag)
            if keys or (not tag.checkpoints and matches(terms, hay, None)):
                update(keys)
                tkey = tag_key(tag)
                add(tkey)
                add(skey)
                counts[tkey] = len(keys)
                if keys and not all(op is None and term in hay for op, _, term in terms):
                    opening.append(tkey)
    return shown, counts, opening


def _matching_steps(terms: list[Term], hay: str, tag: Tag) -> list[str]:
    """The keys of the tag's steps :func:`matches` keeps, without asking it of every step
    when the names settle it: a word in the names holds for every step, and a word that is
    neither in the names nor made of digits holds for none (typing ``d17`` over 20,000 steps
    looks at d17's only)."""
    rest = [t for t in terms if not (t[0] is None and t[2] in hay)]
    if not rest:
        return [c.key for c in tag.checkpoints]
    if any(op is None and any(ch not in DIGITS for ch in term.lstrip("@"))
           for op, _, term in rest):
        return []
    return [c.key for c in tag.checkpoints if matches(rest, hay, c)]


DIGITS = frozenset("0123456789")  # (a step's number is written with these)


def summary(text: str, shown: set[str] | None, counts: dict[str, int]) -> str:
    """``"6 matches in 3 tags"``, ``"no matches for 'foo'"`` or "" (no filter), from a
    :func:`filter_view`'s rows and counts."""
    if shown is None:
        return ""
    if not shown:
        return f"no matches for {text!r}"
    n = sum(counts.values())
    tags = sum(1 for v in counts.values() if v) if n else len(counts)
    return f"{n} match{'' if n == 1 else 'es'}" + \
        (f" in {plural(tags, 'tag')}" if n else f"; {plural(tags, 'empty tag')}")
