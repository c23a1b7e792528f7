"""Fuzzed inputs (fast CI slice; the long run is benchmarks/fuzz_long.py): the only exception
that escapes the reader, the summary and the meta parser is CheckpointError; nothing runs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzing

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wd = tmp_path_factory.mktemp("fuzz")
    fuzzing.warm_up(wd)
    return wd


@pytest.fixture(scope="module")
def real_files(demo_master: Path) -> list[bytes]:
    names = ["base_checkpoints/d4/model_001000.pt", "base_checkpoints/d4/optim_001000_rank0.pt",
             "mid_checkpoints/d4/optim_000200.pt", "base_checkpoints/d2_legacy/step_1000.pt",
             "chatsft_checkpoints/d4/model_000300.pt"]
    return [(demo_master / n).read_bytes() for n in names]


def check(o: fuzzing.Outcome) -> None:
    assert o.ok, fuzzing.describe(o)


def test_crafted_inputs(workdir: Path) -> None:
    outcomes = [fuzzing.run_case(n, d, workdir)
                for n, d in fuzzing.crafted_cases(random.Random(1))]
    bad = [fuzzing.describe(o) for o in outcomes if not o.ok]
    assert not bad, bad
    assert len(outcomes) > 50


def test_malicious_payload_never_runs(workdir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    pkl = (b"\x80\x02" + fuzzing.glob("os", "system") + fuzzing.lit(f"touch {marker}")
           + b"\x85R.")
    o = fuzzing.run_case("os.system", fuzzing.torch_zip(pkl, {}), workdir)
    check(o)
    assert not marker.exists()


def test_meta_inputs(workdir: Path) -> None:
    for name, data in fuzzing.meta_cases(random.Random(2)):
        check(fuzzing.run_case(name, data, workdir, meta=True))


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_random_bytes(workdir: Path, data: bytes) -> None:
    check(fuzzing.run_case("random", data, workdir, trace_memory=False))


@SETTINGS
@given(which=st.integers(0, 4), seed=st.integers(0, 2**32 - 1))
def test_mutated_real_checkpoints(workdir: Path, real_files: list[bytes], which: int,
                                  seed: int) -> None:
    name, data = fuzzing.mutate(real_files[which], random.Random(seed))
    check(fuzzing.run_case(name, data, workdir, trace_memory=False))


@SETTINGS
@given(shape=st.lists(st.integers(-3, 2**40), max_size=4),
       stride=st.lists(st.integers(-3, 2**40), max_size=4),
       offset=st.integers(-3, 2**50), numel=st.integers(-1, 64),
       storage=st.sampled_from(["FloatStorage", "BFloat16Storage", "UntypedStorage",
                                "BoolStorage", "NoSuchStorage"]),
       blob=st.integers(0, 64))
def test_crafted_tensor_headers(workdir: Path, shape: list[int], stride: list[int], offset: int,
                                numel: int, storage: str, blob: int) -> None:
    ops = fuzzing.tensor_ops("0", tuple(shape), tuple(stride), offset, numel, storage)
    data = fuzzing.torch_zip(fuzzing.state_dict_pickle([("w", ops)]), {"0": b"\1" * blob})
    check(fuzzing.run_case("tensor header", data, workdir, trace_memory=False))
