"""The kernel benchmark: MAC counting against a hand count, the peak from given flags, and a smoke-sized record."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from labkit.core.data import DatasetInfo
from labkit.core.models import build_model
from labkit.studies.speed import (
    LOOP_NAMES,
    BuildContext,
    MacCounter,
    SpeedOptions,
    derive_peak,
    parse_options,
    read_cpu,
    run_speed,
    write_record,
)

ZEN4_FLAGS = frozenset({"fma", "avx", "avx2", "avx512f", "avx512_bf16"})


class ConvLinear(nn.Module):
    """Conv 1->4 (3x3, no padding) on 8x8, then Linear 144->5: MACs by hand below."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


HAND_MACS_PER_IMAGE = 4 * 6 * 6 * (1 * 3 * 3) + 144 * 5  # conv: outputs x (in x kh x kw); linear: in x out


def test_mac_count_matches_a_hand_count() -> None:
    net = ConvLinear()
    with torch.no_grad(), MacCounter([net]) as c:
        net(torch.rand(3, 1, 8, 8))
    assert c.macs == 3 * HAND_MACS_PER_IMAGE
    assert c.flops == 2 * c.macs  # a no_grad forward: x1
    with MacCounter([net]) as c_train:  # weights train, the image needs no gradient
        net(torch.rand(3, 1, 8, 8))
    conv_macs, fc_macs = 3 * 4 * 6 * 6 * 9, 3 * 144 * 5
    # conv: forward + weight gradient (its input, the image, needs none); fc: forward + input and weight gradients
    assert c_train.flops == 2 * (2 * conv_macs + 3 * fc_macs)
    # the control: a hand count that forgets the kernel size must not match
    assert c.macs != 3 * (4 * 6 * 6 + 144 * 5)


def test_mac_count_of_lenet5_and_a_transposed_conv() -> None:
    lenet = build_model("lenet5", 1, 10, 28)
    with torch.no_grad(), MacCounter([lenet]) as c:
        lenet(torch.rand(2, 1, 28, 28))
    # padded to 32: conv1 28*28*6*25, conv2 10*10*16*150, fc 400*120 + 120*84 + 84*10
    assert c.macs == 2 * (28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10)
    up = nn.ConvTranspose2d(4, 2, 4, 2, 1)
    with torch.no_grad(), MacCounter([up]) as c_up:
        up(torch.rand(1, 4, 5, 5))
    assert c_up.macs == 4 * 5 * 5 * 2 * 4 * 4  # every input value meets out_channels x kh x kw weights
    from labkit.synthesis.generators import UpsampleConv2d

    fused = UpsampleConv2d(4, 6)
    with torch.no_grad(), MacCounter([fused]) as c_fused:
        fused(torch.rand(1, 4, 7, 7))
    # the transposed conv's count (16 per input value and output channel), not the written-out 3x3 conv's 36
    assert c_fused.macs == 4 * 7 * 7 * 6 * 16 and c_fused.macs != 14 * 14 * 6 * 4 * 9


def test_peak_is_reproducible_from_given_flags() -> None:
    zen4 = derive_peak(ZEN4_FLAGS, "AuthenticAMD", 25, 17, 2600.0, 2)
    assert zen4.microarch == "Zen 4" and zen4.vector_bits == 512 and zen4.pipe_bits == 256
    assert zen4.flops_per_cycle_per_core == 32 and zen4.gflops == pytest.approx(2 * 2.6 * 32)
    assert derive_peak(ZEN4_FLAGS, "AuthenticAMD", 25, 17, 2600.0, 2) == zen4  # reproducible
    avx2_only = derive_peak(frozenset({"fma", "avx", "avx2"}), "AuthenticAMD", 25, 17, 2600.0, 2)
    assert avx2_only.gflops == zen4.gflops  # Zen 4's pipes are 256 bits: AVX-512 does not double the peak
    zen5 = derive_peak(ZEN4_FLAGS, "AuthenticAMD", 26, 2, 2600.0, 2)
    assert zen5.gflops == pytest.approx(2 * zen4.gflops)  # 512-bit pipes
    sse = derive_peak(frozenset({"sse2"}), "GenuineIntel", 6, 0, 2000.0, 1)
    assert sse.microarch == "unknown" and "assumed" in sse.derivation
    assert sse.gflops == pytest.approx(2.0 * 2 * 4)  # 2 GHz x 2 FLOP per FMA x 4 lanes x 1 pipe (no FMA flag)
    assert "Zen 4" in zen4.derivation and "2.600 GHz" in zen4.derivation


def test_cpuinfo_is_read() -> None:
    text = ("vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
            "cpu MHz\t\t: 2596.134\nflags\t\t: fpu fma avx2 avx512f\n\nprocessor\t: 1\n")
    cpu = read_cpu(text)
    assert (cpu["vendor"], cpu["family"], cpu["model"]) == ("AuthenticAMD", 25, 17)
    assert {"avx512f", "fma"} <= cpu["flags"] and cpu["mhz"] > 0


def test_options_parse_and_refuse_unknown_names() -> None:
    opts = parse_options("channels_last+no_sync+student=512")
    assert opts == SpeedOptions(channels_last=True, no_sync=True, batch={"student": 512})
    assert parse_options(opts.label()) == opts and parse_options("fp32-nchw") == SpeedOptions()
    chunked = parse_options("channels_last+box_chunk=512+fused_adam")
    assert chunked.box_chunk == 512 and chunked.fused_adam and parse_options(chunked.label()) == chunked
    with pytest.raises(ValueError):
        parse_options("channels_first")
    with pytest.raises(ValueError):
        parse_options("no-such-loop=5")


def test_a_smoke_sized_record_has_every_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    info = DatasetInfo("fashion-mnist", tuple(str(i) for i in range(10)), (1, 28, 28))
    ctx = BuildContext(build_model("lenet5", 1, 10, 28).eval(), info)
    small = {name: 20 if name == "signopt-probes" else 4 for name in LOOP_NAMES}
    record = run_speed([SpeedOptions(batch=small)], threads_n=1, repeats=1, warmup=0, target_s=0.0, tiny=False,
                       ctx=ctx, bandwidth_mb=8)
    assert [r.loop for r in record.results] == list(LOOP_NAMES)
    for r in record.results:
        assert r.images_per_s > 0 and r.mflop_per_image > 0 and r.gflops > 0 and 0 < r.peak_share
        assert r.batch == small[r.loop]
    assert record.peak["gflops"] > 0 and record.peak["derivation"] and record.memory_gb_s > 0
    js, md = write_record(record, tmp_path)
    data = json.loads(js.read_text())
    assert {"machine", "peak", "flop_convention", "memory_gb_s", "op_overhead_us", "results"} <= set(data)
    assert "| loop |" in md.read_text() and "GFLOP/s" in md.read_text()


def test_the_speed_command_parses_its_options() -> None:
    from labkit.studies.cli import build_parser

    args = build_parser().parse_args(["speed", "--options", "fp32-nchw", "channels_last+box_chunk=512",
                                      "--loops", "box-decision", "student"])
    assert args.options == [SpeedOptions(), SpeedOptions(channels_last=True, box_chunk=512)]
    assert args.loops == ["box-decision", "student"] and args.threads == 2
    with pytest.raises(SystemExit):  # the control: an unknown switch is refused by the parser
        build_parser().parse_args(["speed", "--options", "channels_first"])


def test_verdicts_say_reached_or_which_ceiling_binds() -> None:
    from labkit.studies.speed import (
        LAB_DEFAULTS,
        LoopResult,
        SpeedRecord,
        loop_verdicts,
        options_label,
        verdict_markdown,
    )

    lab = options_label(LAB_DEFAULTS)

    def row(loop: str, options: str, ips: float, step_ms: float, tiny_ms: float | None) -> LoopResult:
        return LoopResult(loop, loop, options, 100, 100, step_ms, ips, 1.0, ips / 1e3, ips / 1e3 / 100.0, 1.0, 0.0,
                          tiny_ms)

    rec = SpeedRecord({}, {"gflops": 100.0}, "", 10.0, 1.0, 1, [
        row("fast", "fp32-nchw", 1000, 100.0, 1.0), row("fast", lab, 3500, 28.6, 1.0),
        row("launchy", "fp32-nchw", 1000, 100.0, 40.0), row("launchy", lab, 1250, 80.0, 40.0),
        row("orphan", lab, 10, 1.0, None)], 1.0, "", "")
    v = {x["loop"]: x for x in loop_verdicts(rec)}
    assert set(v) == {"fast", "launchy"}  # no before row: no verdict
    assert v["fast"]["reached"] and v["fast"]["lab_x"] == pytest.approx(3.5)
    slow = v["launchy"]
    assert not slow["reached"] and slow["bound"] == "op-launch bound"
    assert slow["fixed_share"] == pytest.approx(0.5) and slow["launch_ceiling"] == pytest.approx(2500)
    # 3x of 1,000 img/s at 1 MFLOP per image is 3 GFLOP/s: 3 % of a 100 GFLOP/s peak
    assert slow["peak_share_needed"] == pytest.approx(0.03)
    text = "\n".join(verdict_markdown(rec))
    assert "| fast | 1,000 | 3,500 | 3.50 |" in text and "50 %, 2,500 img/s (2.50×)" in text
