"""scripts/bench.py's `gpu` section: the peak table, the FLOP count behind MFU, and the code path on a CPU.

The section's figures need a GPU, which tests never have; here the section is run on the CPU with a
small model in place of ResNet-50, so that the path a GPU session takes is known to work.
"""

from types import SimpleNamespace

import pytest

from benchmarks import section_gpu, steps


@pytest.mark.parametrize("kind, peak", [
    ("NVIDIA H100 80GB HBM3", 989e12),  # SXM: 989.4 TFLOP/s dense bf16 (NVIDIA H100 data sheet)
    ("NVIDIA H100 PCIe", 756e12),  # PCIe: 756 TFLOP/s dense bf16
    ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12),  # A100 data sheet: 312 TFLOP/s bf16
    ("TPU v4", 275e12),
])
def test_peak_table_picks_the_specific_name_first(kind, peak):
    assert section_gpu.peak_flops(kind) == peak


def test_unknown_device_has_no_peak_and_no_mfu():
    assert section_gpu.peak_flops("cpu") is None
    assert section_gpu.mfu(1e12, 0.1, None) is None


def test_mfu_of_the_reference_throughput():
    # ResNet-50 at 7,000 images/s on an H100 SXM: He et al. 2015 (table 1) count 3.8e9 multiply-adds per
    # 224x224 image; training does 3 products of the forward's size, 2 FLOPs per multiply-add:
    # 6 * 3.8e9 * 7000 / 989e12 = 0.1614 of the peak.
    flops = section_gpu.train_flops_per_image(int(3.8e9)) * 256
    assert section_gpu.mfu(flops, 256 / 7000, 989e12) == pytest.approx(6 * 3.8e9 * 7000 / 989e12)
    assert section_gpu.mfu(flops, 256 / 7000, 989e12) == pytest.approx(0.1614, abs=1e-4)


def test_full_run_is_skipped_on_a_cpu():
    data = section_gpu.run(SimpleNamespace(quick=False, models=None, rounds=None))
    assert data["skipped"].startswith("skipped: JAX runs on the CPU")
    assert section_gpu.markdown(data)[0].startswith("skipped")


def test_quick_run_measures_bf16_and_f32_steps(monkeypatch):
    monkeypatch.setattr(section_gpu, "QUICK_CASE", steps.TrainCase("lenet5_modern", (32, 32, 1), 4))
    data = section_gpu.run(SimpleNamespace(quick=True, models=None, rounds=1))
    assert set(data["impls"]) == {"bf16", "f32"}
    for s in data["impls"].values():
        assert s["median_s"] > 0 and s["images_per_s"] == pytest.approx(4 / s["median_s"])
        assert s["mfu"] is None  # no peak for a CPU
    # lenet5_modern: C1 5x5x1x6 on 28x28, C3 5x5x6x16 on 10x10, C5 400x120, F6 120x84, output 84x10.
    macs = 28 * 28 * 25 * 6 + 10 * 10 * 25 * 6 * 16 + 400 * 120 + 120 * 84 + 84 * 10
    assert data["macs_per_image"] == macs
    assert data["flops_per_step"] == 6 * macs * 4
    text = "\n".join(section_gpu.markdown(data))
    assert "| bf16 |" in text and "| f32 |" in text and "bf16 over f32" in text
